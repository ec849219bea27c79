"""The exporter's web application: create_app(config) builds it, no I/O at import."""

from __future__ import annotations

import asyncio
import logging
import signal
import time
from collections.abc import AsyncIterator, Callable, Iterable
from typing import Any

from aiohttp import web
from prometheus_client import CollectorRegistry, GCCollector, PlatformCollector, ProcessCollector
from prometheus_client.core import GaugeMetricFamily
from prometheus_client.metrics_core import Metric
from prometheus_client.registry import Collector

from etcd_inspector.config import Config
from etcd_inspector.render.inspection import ClusterInspection
from etcd_inspector.render.jsondoc import to_json
from etcd_inspector.runtime.reload import ConfigReloader, ReloadStatus, RuntimeSet
from etcd_inspector.runtime.runtime import ClusterRuntime
from etcd_inspector.sharding import Shard
from etcd_inspector.web import status_page
from etcd_inspector.web.scrape import ScrapeState, scrape

log = logging.getLogger(__name__)

CONFIG = web.AppKey("config", Config)
RUNTIMES: web.AppKey[list[ClusterRuntime]] = web.AppKey("runtimes")
SELF_REGISTRY = web.AppKey("self_registry", CollectorRegistry)
SCRAPE_STATE = web.AppKey("scrape_state", ScrapeState)
RUNTIME_SET = web.AppKey("runtime_set", RuntimeSet)
RELOADER = web.AppKey("reloader", ConfigReloader)
HANDLE_SIGHUP = web.AppKey("handle_sighup", bool)
# The status page and its JSON twin are "now": a cache would show a stale verdict.
NO_STORE = {"Cache-Control": "no-store"}


async def _scrape(request: web.Request, only: tuple[str, str] | None = None) -> web.Response:
    app = request.app
    running = app[RUNTIMES]
    runtimes = list(running)  # a reload may change the list during the scrape
    config = app[RUNTIME_SET].config.scrape
    body, headers = await scrape(
        request.headers, config, runtimes, app[SELF_REGISTRY], app[SCRAPE_STATE], only
    )
    return web.Response(body=body, headers=headers)


async def handle_metrics(request: web.Request) -> web.Response:
    return await _scrape(request)


async def handle_member_metrics(request: web.Request) -> web.Response:
    """One member as its own target (the blackbox/snmp multi-target pattern):
    /members/<member>/metrics, with ?cluster=<name> when several clusters are watched."""
    member = request.match_info["member"]
    cluster = request.query.get("cluster")
    found = [
        (rt.name, e)
        for rt in request.app[RUNTIMES]
        if cluster is None or rt.name == cluster
        for e in rt.state.endpoints
        if rt.state.member_name(e) == member
    ]
    if len(found) != 1:
        why = "no such member" if not found else "several clusters have it: add ?cluster="
        return web.Response(status=404, text=f"{why}: {member}\n")
    return await _scrape(request, found[0])


async def handle_healthy(_request: web.Request) -> web.Response:
    return web.Response(text="Healthy.\n")


async def handle_ready(request: web.Request) -> web.Response:
    # Ready once every cluster has had one status round: the first scrape then has names.
    if request.app[RUNTIME_SET].ready:
        return web.Response(text="Ready.\n")
    return web.Response(status=503, text="Not ready: first status probe still running.\n")


def live_status(runtimes: list[ClusterRuntime]) -> dict[str, Any]:
    """The document of `inspect --output json`, from what the running probes know now."""
    now = time.time()
    inspections = [ClusterInspection.of_runtime(rt, live=True) for rt in runtimes]
    return to_json(inspections, started_at=now, finished_at=now)


async def handle_landing(request: web.Request) -> web.Response:
    doc = live_status(request.app[RUNTIMES])
    body = status_page.render(doc["clusters"], request.app[CONFIG].web.telemetry_path)
    return web.Response(text=body, content_type="text/html", headers=NO_STORE)


async def handle_status_api(request: web.Request) -> web.Response:
    return web.json_response(live_status(request.app[RUNTIMES]), headers=NO_STORE)


async def handle_reload(request: web.Request) -> web.Response:
    """POST /-/reload, as Prometheus' --web.enable-lifecycle: 200, or 500 with the reason."""
    result = await request.app[RELOADER].reload()
    if result.ok:
        return web.Response(text="Configuration reloaded.\n")
    return web.Response(status=500, text=f"Configuration not reloaded: {result.error}\n")


async def _lifecycle(app: web.Application) -> AsyncIterator[None]:
    running = app[RUNTIME_SET]
    running.start()
    app[RUNTIMES] = running.runtimes  # the same list; reloads change it in place
    shard = app[CONFIG].shard
    names = ",".join(rt.name for rt in running.runtimes)
    log.info(
        "probes started",
        extra={"clusters": names, "shard": shard.index, "total_shards": shard.total},
    )
    hangup = app[HANDLE_SIGHUP]
    if hangup:
        asyncio.get_running_loop().add_signal_handler(signal.SIGHUP, app[RELOADER].trigger)
    yield
    if hangup:
        asyncio.get_running_loop().remove_signal_handler(signal.SIGHUP)
    # A reload in progress finishes first; shutdown stays prompt: every close is bounded.
    await app[RELOADER].close()
    await running.close()


class ShardInfo(Collector):
    """This replica's shard: which share of the configured clusters its /metrics has."""

    def __init__(self, shard: Shard) -> None:
        self._shard = shard

    def collect(self) -> Iterable[Metric]:
        info = GaugeMetricFamily(
            "etcd_inspector_shard_info",
            "This replica's shard (--shard of --total-shards): it watches and exposes only "
            "the configured clusters that hash to it; 0 of 1 when not sharded.",
            labels=["shard", "total_shards"],
        )
        info.add_metric([str(self._shard.index), str(self._shard.total)], 1)
        yield info


def self_registry(shard: Shard | None = None) -> CollectorRegistry:
    registry = CollectorRegistry(auto_describe=False)
    registry.register(ShardInfo(shard or Shard()))
    ProcessCollector(registry=registry)
    PlatformCollector(registry=registry)
    GCCollector(registry=registry)
    return registry


def create_app(
    config: Config, load: Callable[[], Config] | None = None, handle_sighup: bool = False
) -> web.Application:
    """`load` re-reads the configuration for SIGHUP (if `handle_sighup`) and POST /-/reload;
    without it a reload keeps `config`."""
    app = web.Application()
    app[CONFIG] = config
    running = RuntimeSet(config)
    status = ReloadStatus()
    app[RUNTIME_SET] = running
    app[RELOADER] = ConfigReloader(running, load or (lambda: config), status)
    app[HANDLE_SIGHUP] = handle_sighup
    app[SELF_REGISTRY] = self_registry(config.shard)
    app[SELF_REGISTRY].register(status)
    app[SCRAPE_STATE] = ScrapeState()
    app.router.add_get("/", handle_landing)
    app.router.add_get("/api/v1/status", handle_status_api)
    app.router.add_get(config.web.telemetry_path, handle_metrics)
    app.router.add_get("/members/{member}/metrics", handle_member_metrics)
    app.router.add_get("/-/healthy", handle_healthy)
    app.router.add_get("/-/ready", handle_ready)
    app.router.add_post("/-/reload", handle_reload)
    app.cleanup_ctx.append(_lifecycle)
    return app
