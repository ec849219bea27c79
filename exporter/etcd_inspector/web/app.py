"""The exporter's web application: create_app(config) builds it, no I/O at import."""

from __future__ import annotations

import asyncio
import html
import logging
import time
from collections import Counter
from collections.abc import AsyncIterator, Sequence

import aiohttp
from aiohttp import web
from prometheus_client import CollectorRegistry, GCCollector, PlatformCollector, ProcessCollector
from prometheus_client.exposition import choose_encoder
from prometheus_client.metrics_core import Metric

from etcd_inspector import __version__
from etcd_inspector.cluster.runtime import ClusterRuntime, build_runtime
from etcd_inspector.config import Config, ScrapeConfig
from etcd_inspector.etcd.metrics_fetch import FetchResult, fetch_metrics
from etcd_inspector.web import families as collector
from etcd_inspector.web.proxy import MalformedMetrics, merge_families, relabel

log = logging.getLogger(__name__)

CONFIG = web.AppKey("config", Config)
RUNTIMES = web.AppKey("runtimes", list[ClusterRuntime])
SESSION = web.AppKey("session", aiohttp.ClientSession)
SCRAPE_ERRORS = web.AppKey("scrape_errors", Counter)
SELF_REGISTRY = web.AppKey("self_registry", CollectorRegistry)

MIN_BUDGET_SECONDS = 0.1


def scrape_budget(header: str | None, scrape: ScrapeConfig) -> float:
    """Prometheus tells us its scrape timeout; answer a little before it (blackbox's rule)."""
    budget = scrape.timeout
    if header:
        try:
            budget = min(budget, float(header) - scrape.timeout_offset)
        except ValueError:
            pass
    return max(MIN_BUDGET_SECONDS, budget)


class _Families:
    """What prometheus_client's encoders need: something with collect()."""

    def __init__(self, families: Sequence[Metric]) -> None:
        self._families = families

    def collect(self) -> Sequence[Metric]:
        return self._families


async def _fetch_cluster(
    app: web.Application, rt: ClusterRuntime, budget: float
) -> list[tuple[tuple[str, str], FetchResult]]:
    cfg = rt.config
    server_name = (cfg.metrics_tls or cfg.tls).server_name
    results = await asyncio.gather(
        *(
            fetch_metrics(app[SESSION], e.metrics_url, budget, rt.metrics_ssl, server_name)
            for e in cfg.endpoints
        )
    )
    return [((rt.name, e.url), r) for e, r in zip(cfg.endpoints, results, strict=True)]


async def collect_members(
    app: web.Application, budget: float
) -> tuple[dict[tuple[str, str], FetchResult], list[Metric]]:
    runtimes = app[RUNTIMES]
    groups = await asyncio.gather(*(_fetch_cluster(app, rt, budget) for rt in runtimes))
    fetches = dict(pair for group in groups for pair in group)
    errors: Counter = app[SCRAPE_ERRORS]
    proxied: list[Metric] = []
    scrape = app[CONFIG].scrape
    for rt in runtimes:
        for endpoint in rt.state.endpoints:
            member = rt.state.member_name(endpoint)
            fetch = fetches[(rt.name, endpoint)]
            if fetch.error is None and fetch.text is not None:
                try:
                    proxied.extend(
                        relabel(
                            fetch.text, rt.name, member, scrape.metrics_allow, scrape.metrics_deny
                        )
                    )
                    continue
                except MalformedMetrics as err:
                    fetch = FetchResult(fetch.url, None, "parse", fetch.duration_seconds, str(err))
                    fetches[(rt.name, endpoint)] = fetch
            errors[(rt.name, member, fetch.error)] += 1
            log.warning(
                "member metrics fetch failed",
                extra={"cluster": rt.name, "member": member, "url": fetch.url,
                       "reason": fetch.error, "err": fetch.detail},
            )  # fmt: skip
    return fetches, proxied


async def handle_metrics(request: web.Request) -> web.Response:
    app = request.app
    budget = scrape_budget(
        request.headers.get("X-Prometheus-Scrape-Timeout-Seconds"), app[CONFIG].scrape
    )
    fetches, proxied = await collect_members(app, budget)
    runtimes = app[RUNTIMES]
    own = [
        collector.build_info(),
        *collector.member_families(runtimes, fetches, app[SCRAPE_ERRORS]),
        *collector.probe_families(runtimes),
    ]
    families, conflicts = merge_families([own, app[SELF_REGISTRY].collect(), proxied])
    for name in sorted(set(conflicts)):
        log.debug("metric family with conflicting types dropped", extra={"metric": name})
    encoder, content_type = choose_encoder(request.headers.get("Accept", ""))
    body = encoder(_Families(families))  # type: ignore[arg-type]
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


def _landing_rows(runtimes: Sequence[ClusterRuntime]) -> str:
    now = time.time()
    rows = []
    for rt in runtimes:
        status = rt.state.latest("status")
        for endpoint in rt.state.endpoints:
            st = status.status_of(endpoint) if status else None
            state = "up" if st else "down"
            extra = f"leader={st.leader_id == st.member_id} rev={st.revision}" if st else ""
            rows.append(
                f"<tr><td>{html.escape(rt.name)}</td>"
                f"<td>{html.escape(rt.state.member_name(endpoint))}</td>"
                f"<td>{html.escape(endpoint)}</td><td>{state}</td><td>{html.escape(extra)}</td></tr>"
            )
        for name, outcome in sorted(rt.state.outcomes.items()):
            ago = f"{now - outcome.finished_at:.0f}s ago"
            ok = "ok" if outcome.success else html.escape(outcome.error or "failed")
            rows.append(
                f"<tr><td>{html.escape(rt.name)}</td><td colspan=2>probe {html.escape(name)}</td>"
                f"<td>{ok}</td><td>{ago}, took {outcome.duration_seconds:.2f}s</td></tr>"
            )
    return "\n".join(rows)


async def handle_landing(request: web.Request) -> web.Response:
    path = html.escape(request.app[CONFIG].web.telemetry_path)
    body = f"""<!DOCTYPE html>
<html><head><title>etcd-inspector</title></head>
<body>
<h1>etcd-inspector {html.escape(__version__)}</h1>
<p>Prometheus exporter that proxies etcd members' metrics and inspects the clusters.</p>
<ul><li><a href="{path}">Metrics</a></li><li><a href="/-/healthy">Health</a></li>
<li><a href="/-/ready">Readiness</a></li></ul>
<h2>Clusters</h2>
<table border=1 cellpadding=4>
<tr><th>cluster</th><th>member</th><th>endpoint</th><th>state</th><th>details</th></tr>
{_landing_rows(request.app[RUNTIMES])}
</table>
</body></html>
"""
    return web.Response(text=body, content_type="text/html")


async def _lifecycle(app: web.Application) -> AsyncIterator[None]:
    config = app[CONFIG]
    app[SESSION] = aiohttp.ClientSession(
        connector=aiohttp.TCPConnector(limit_per_host=4), raise_for_status=False
    )
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
    await app[SESSION].close()


def self_registry() -> CollectorRegistry:
    registry = CollectorRegistry(auto_describe=False)
    ProcessCollector(registry=registry)
    PlatformCollector(registry=registry)
    GCCollector(registry=registry)
    return registry


def create_app(config: Config) -> web.Application:
    app = web.Application()
    app[CONFIG] = config
    app[SCRAPE_ERRORS] = Counter()
    app[SELF_REGISTRY] = self_registry()
    app.router.add_get("/", handle_landing)
    app.router.add_get(config.web.telemetry_path, handle_metrics)
    app.router.add_get("/-/healthy", handle_healthy)
    app.router.add_get("/-/ready", handle_ready)
    app.cleanup_ctx.append(_lifecycle)
    return app
