"""The exporter's web application: create_app(config) builds it, no I/O at import."""

from __future__ import annotations

import asyncio
import logging
import time
from collections.abc import AsyncIterator
from typing import Any

from aiohttp import web
from prometheus_client import CollectorRegistry, GCCollector, PlatformCollector, ProcessCollector

from etcd_inspector.cluster.runtime import ClusterRuntime, build_runtime
from etcd_inspector.config import Config
from etcd_inspector.report.jsondoc import to_json
from etcd_inspector.report.model import ClusterInspection
from etcd_inspector.web import families, status_page
from etcd_inspector.web.scrape import ClusterTarget, encode, scrape_budget, scrape_members

log = logging.getLogger(__name__)

CONFIG = web.AppKey("config", Config)
RUNTIMES: web.AppKey[list[ClusterRuntime]] = web.AppKey("runtimes")
SELF_REGISTRY = web.AppKey("self_registry", CollectorRegistry)
# The status page and its JSON twin are "now": a cache would show a stale verdict.
NO_STORE = {"Cache-Control": "no-store"}


def scrape_targets(runtimes: list[ClusterRuntime]) -> list[ClusterTarget]:
    """Each cluster with the topology it has now: one scrape labels everything by it, even if
    a status round lands while the members' /metrics are being fetched."""
    return [ClusterTarget(rt.name, rt.metrics, rt.state.topology) for rt in runtimes]


async def handle_metrics(request: web.Request) -> web.Response:
    app = request.app
    scrape_config = app[CONFIG].scrape
    budget = scrape_budget(
        request.headers.get("X-Prometheus-Scrape-Timeout-Seconds"), scrape_config
    )
    runtimes = app[RUNTIMES]
    targets = scrape_targets(runtimes)
    result = await scrape_members(
        targets, budget, scrape_config.metrics_allow, scrape_config.metrics_deny
    )
    own = [
        families.build_info(),
        *families.member_families(runtimes, targets, result),
        *families.probe_families(runtimes),
    ]
    body, content_type = encode(
        [own, app[SELF_REGISTRY].collect(), result.proxied], request.headers.get("Accept", "")
    )
    resp = web.Response(body=body, headers={"Content-Type": content_type})
    resp.enable_compression()
    return resp


async def handle_healthy(_request: web.Request) -> web.Response:
    return web.Response(text="Healthy.\n")


async def handle_ready(request: web.Request) -> web.Response:
    # Ready once every cluster has had one status round: the first scrape then has names.
    if all(rt.scheduler.first_round.is_set() for rt in request.app[RUNTIMES]):
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


async def _lifecycle(app: web.Application) -> AsyncIterator[None]:
    config = app[CONFIG]
    runtimes = [build_runtime(cluster, config) for cluster in config.clusters]
    app[RUNTIMES] = runtimes
    for rt in runtimes:
        rt.scheduler.start()
    log.info("probes started", extra={"clusters": ",".join(rt.name for rt in runtimes)})
    yield
    # Shutdown must stay prompt even with frozen members: every close is bounded.
    for rt in runtimes:
        try:
            async with asyncio.timeout(10):
                await rt.close()
        except TimeoutError:
            log.warning("cluster runtime did not close in time", extra={"cluster": rt.name})


def self_registry() -> CollectorRegistry:
    registry = CollectorRegistry(auto_describe=False)
    ProcessCollector(registry=registry)
    PlatformCollector(registry=registry)
    GCCollector(registry=registry)
    return registry


def create_app(config: Config) -> web.Application:
    app = web.Application()
    app[CONFIG] = config
    app[SELF_REGISTRY] = self_registry()
    app.router.add_get("/", handle_landing)
    app.router.add_get("/api/v1/status", handle_status_api)
    app.router.add_get(config.web.telemetry_path, handle_metrics)
    app.router.add_get("/-/healthy", handle_healthy)
    app.router.add_get("/-/ready", handle_ready)
    app.cleanup_ctx.append(_lifecycle)
    return app
