"""The exporter's web application: create_app(config) builds it, no I/O at import."""

from __future__ import annotations

import asyncio
import logging
import time
from collections.abc import AsyncIterator
from typing import Any

from aiohttp import web
from prometheus_client import CollectorRegistry, GCCollector, PlatformCollector, ProcessCollector
from prometheus_client.metrics_core import Metric

from etcd_inspector.config import Config
from etcd_inspector.render.inspection import ClusterInspection
from etcd_inspector.render.jsondoc import to_json
from etcd_inspector.runtime.runtime import ClusterRuntime, build_runtime
from etcd_inspector.web import families, status_page
from etcd_inspector.web.gzipped import gzip_body
from etcd_inspector.web.relabel_cache import RelabelCache
from etcd_inspector.web.scrape import (
    ClusterTarget,
    MemberTextCache,
    encode_each,
    merge_members,
    render_scrape,
    scrape_budget,
    scrape_members,
    wants_openmetrics,
)

log = logging.getLogger(__name__)

CONFIG = web.AppKey("config", Config)
RUNTIMES: web.AppKey[list[ClusterRuntime]] = web.AppKey("runtimes")
SELF_REGISTRY = web.AppKey("self_registry", CollectorRegistry)
RELABEL_CACHE = web.AppKey("relabel_cache", RelabelCache)
MEMBER_TEXT_CACHE = web.AppKey("member_text_cache", MemberTextCache)
# The status page and its JSON twin are "now": a cache would show a stale verdict.
NO_STORE = {"Cache-Control": "no-store"}
# Members take 2 ms or more to answer /metrics; the requests are written well within this.
OWN_FAMILIES_DELAY = 0.0005


def scrape_targets(
    runtimes: list[ClusterRuntime], only: tuple[str, str] | None = None
) -> list[ClusterTarget]:
    """Every member of every cluster, or `only` = (cluster, endpoint)."""
    targets = []
    for rt in runtimes:
        endpoints = tuple(e for e in rt.state.endpoints if only is None or only == (rt.name, e))
        if endpoints:
            # The topology as the scrape starts (immutable): one scrape names every member
            # alike, even if a status round lands while it fetches.
            names = rt.state.topology.name_of
            targets.append(ClusterTarget(rt.name, rt.metrics, endpoints, names))
    return targets


async def _scrape(request: web.Request, only: tuple[str, str] | None = None) -> web.Response:
    """Fetch (shared), relabel (cached per fetch), merge with our own families, render."""
    app = request.app
    scrape_config = app[CONFIG].scrape
    budget = scrape_budget(
        request.headers.get("X-Prometheus-Scrape-Timeout-Seconds"), scrape_config
    )
    runtimes = app[RUNTIMES]
    targets = scrape_targets(runtimes, only)
    # A member's own target carries that member and nothing the other targets repeat.
    openmetrics = wants_openmetrics(request.headers.get("Accept"))
    own_task = asyncio.create_task(_own_families(app, openmetrics if only is None else None))
    try:
        result = await scrape_members(
            targets,
            budget,
            scrape_config.member_timeout,
            app[RELABEL_CACHE],
            scrape_config.metrics_allow,
            scrape_config.metrics_deny,
        )
    except BaseException:
        own_task.cancel()
        raise
    if only is None:
        app[RELABEL_CACHE].retain({(t.name, e) for t in targets for e in t.endpoints})
    own, encoded = await own_task
    merged = merge_members(result, targets, own, families.MEMBER_FAMILIES)
    own.extend(families.member_families(runtimes, result, only))
    # A member's own target renders its own text; only /metrics shares the cached one.
    cache = app[MEMBER_TEXT_CACHE] if only is None else None
    accept = request.headers.get("Accept")
    body, content_type = render_scrape(merged, own, accept, cache, encoded)
    headers = {"Content-Type": content_type, "Vary": "Accept-Encoding"}
    if accepts_gzip(request.headers.get("Accept-Encoding")):
        # Level 1, in pieces on every core (web/gzipped.py): ~0.5 ms for a 0.5 MB body.
        body = await gzip_body(body)
        headers["Content-Encoding"] = "gzip"
    return web.Response(body=body, headers=headers)


async def _own_families(
    app: web.Application, openmetrics: bool | None
) -> tuple[list[Metric], dict[int, str]]:
    """The exporter's own families but the per-member ones, built and encoded while the
    members render their /metrics (~1.3 ms of CPU that would otherwise follow the last
    member's answer); none for one member's own target (`openmetrics` None)."""
    if openmetrics is None:
        return [], {}
    await asyncio.sleep(OWN_FAMILIES_DELAY)  # the members' requests go out first
    runtimes = app[RUNTIMES]
    own = [*app[SELF_REGISTRY].collect(), families.build_info()]
    own += families.probe_families(runtimes)
    return own, encode_each(own, openmetrics)


def accepts_gzip(accept_encoding: str | None) -> bool:
    for item in (accept_encoding or "").split(","):
        coding, _, params = item.strip().partition(";")
        if coding.strip().lower() in ("gzip", "*"):
            return params.replace(" ", "") not in ("q=0", "q=0.0", "q=0.00", "q=0.000")
    return False


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
    app[RELABEL_CACHE] = RelabelCache()
    app[MEMBER_TEXT_CACHE] = MemberTextCache()
    app.router.add_get("/", handle_landing)
    app.router.add_get("/api/v1/status", handle_status_api)
    app.router.add_get(config.web.telemetry_path, handle_metrics)
    app.router.add_get("/members/{member}/metrics", handle_member_metrics)
    app.router.add_get("/-/healthy", handle_healthy)
    app.router.add_get("/-/ready", handle_ready)
    app.cleanup_ctx.append(_lifecycle)
    return app
