"""One scrape of /metrics, from the request's headers to the response body: `scrape`.

Read `scrape` top to bottom; every step it calls returns to it:

1. the time budget (X-Prometheus-Scrape-Timeout-Seconds) and the format (Accept);
2. every member at once (`_scrape_member`): its /metrics from the fetch in flight that
   concurrent scrapes share (etcd/metrics_fetch.py), waited for within its own deadline,
   relabeled as soon as it arrives (web/relabel_cache.py, web/relabel.py); meanwhile the
   exporter's own families are gathered as text (`_own_families`, web/families.py), each
   probe outcome encoded once and kept until the next (web/own_text.py);
3. the members' families merged by name next to the exporter's own (web/proxy.py), the
   per-member families built from this scrape and the counts kept across scrapes;
4. the body rendered (web/proxy.py) and, if asked for, gzipped (web/gzipped.py).

The aiohttp handlers (web/app.py) only route: they pass the request's headers here and send
what comes back.
"""

from __future__ import annotations

import asyncio
import functools
import logging
from collections.abc import Callable, Mapping, Sequence
from dataclasses import dataclass, field

from prometheus_client import CollectorRegistry

from etcd_inspector.config import ScrapeConfig
from etcd_inspector.etcd.metrics_fetch import FetchResult, MetricsFetcher
from etcd_inspector.runtime.runtime import ClusterRuntime
from etcd_inspector.web import families
from etcd_inspector.web.families import MEMBER_FAMILY_KINDS, MemberCounters, MemberScrape
from etcd_inspector.web.gzipped import gzip_body
from etcd_inspector.web.own_text import OutcomeCache, OwnPart, OwnText, encode_part
from etcd_inspector.web.proxy import (
    OPENMETRICS_CONTENT_TYPE,
    TEXT_CONTENT_TYPE,
    MemberTextCache,
    merge,
    render,
)
from etcd_inspector.web.relabel import MalformedMetrics
from etcd_inspector.web.relabel_cache import RelabelCache

log = logging.getLogger(__name__)

TIMEOUT_HEADER = "X-Prometheus-Scrape-Timeout-Seconds"
MIN_BUDGET_SECONDS = 0.1
# Members take 2 ms or more to answer /metrics; the requests are written well within this.
OWN_FAMILIES_DELAY = 0.0005


@dataclass
class ScrapeState:
    """What the scrape path keeps from one scrape to the next (one per app)."""

    relabel: RelabelCache = field(default_factory=RelabelCache)
    member_text: MemberTextCache = field(default_factory=MemberTextCache)
    counters: MemberCounters = field(default_factory=MemberCounters)
    outcomes: OutcomeCache = field(default_factory=OutcomeCache)
    # Scrapes in progress. What only concurrent scrapes can share (the fetches in flight, their
    # relabeling, the members' rendered text) is let go when the last one ends: at 60 clusters
    # that is ~23 MB held for nothing between two scrapes.
    active: int = 0

    def let_go(self) -> None:
        self.relabel.let_go()
        self.member_text.let_go()


async def scrape(
    headers: Mapping[str, str],
    config: ScrapeConfig,
    runtimes: Sequence[ClusterRuntime],
    registry: CollectorRegistry,
    state: ScrapeState,
    only: tuple[str, str] | None = None,
) -> tuple[bytes, dict[str, str]]:
    """The body and headers answering one scrape of every member of every cluster, or of one
    member as its own target (`only` = (cluster, endpoint))."""
    state.active += 1
    try:
        return await _scrape(headers, config, runtimes, registry, state, only)
    finally:
        state.active -= 1
        if state.active == 0:
            state.let_go()


async def _scrape(
    headers: Mapping[str, str],
    config: ScrapeConfig,
    runtimes: Sequence[ClusterRuntime],
    registry: CollectorRegistry,
    state: ScrapeState,
    only: tuple[str, str] | None,
) -> tuple[bytes, dict[str, str]]:
    budget = scrape_budget(headers.get(TIMEOUT_HEADER), config)
    openmetrics = wants_openmetrics(headers.get("Accept"))
    targets = scrape_targets(runtimes, only)

    # A member's own target carries that member and nothing the other targets repeat.
    own_task = asyncio.create_task(
        _own_families(runtimes, registry, openmetrics, state.outcomes)
        if only is None
        else _no_families()
    )
    try:
        members = await asyncio.gather(
            *(_scrape_member(t, e, budget, config, state) for t in targets for e in t.endpoints)
        )
    except BaseException:
        own_task.cancel()
        raise
    if only is None:
        configured = {(t.name, e) for t in targets for e in t.endpoints}
        state.relabel.retain(configured)
        state.counters.retain(configured)
    own = await own_task

    answered = [(m, m.exposition) for m in members if m.exposition is not None]
    merged = merge([e for _, e in answered], {**own.kinds, **MEMBER_FAMILY_KINDS})
    for (m, _), counts in zip(answered, merged.clashes, strict=True):
        for outcome, n in counts.items():
            state.counters.clashes[(m.cluster, m.endpoint, outcome)] += n
    own.add(
        encode_part(families.member_families(runtimes, members, state.counters, only), openmetrics)
    )

    # A member's own target renders its own text; only /metrics shares the cached one.
    body = render(merged, own, openmetrics, state.member_text if only is None else None)
    content_type = OPENMETRICS_CONTENT_TYPE if openmetrics else TEXT_CONTENT_TYPE
    response_headers = {"Content-Type": content_type, "Vary": "Accept-Encoding"}
    if accepts_gzip(headers.get("Accept-Encoding")):
        # Level 1, in pieces on every core (web/gzipped.py): ~0.5 ms for a 0.5 MB body.
        body = await gzip_body(body)
        response_headers["Content-Encoding"] = "gzip"
    return body, response_headers


# --------------------------------------------------------------------------- the request


def scrape_budget(header: str | None, scrape: ScrapeConfig) -> float:
    """Prometheus tells us its scrape timeout; answer a little before it (blackbox's rule)."""
    budget = scrape.timeout
    if header:
        try:
            budget = min(budget, float(header) - scrape.timeout_offset)
        except ValueError:
            pass
    return max(MIN_BUDGET_SECONDS, budget)


def wants_openmetrics(accept: str | None) -> bool:
    """OpenMetrics 1.0 when the scraper lists it at all (Prometheus puts it first)."""
    return any(
        item.split(";", 1)[0].strip() == "application/openmetrics-text"
        for item in (accept or "").split(",")
    )


def accepts_gzip(accept_encoding: str | None) -> bool:
    for item in (accept_encoding or "").split(","):
        coding, _, params = item.strip().partition(";")
        if coding.strip().lower() in ("gzip", "*"):
            return params.replace(" ", "") not in ("q=0", "q=0.0", "q=0.00", "q=0.000")
    return False


@dataclass(frozen=True)
class ClusterTarget:
    """What a scrape needs of one cluster."""

    name: str
    fetcher: MetricsFetcher
    endpoints: tuple[str, ...]
    # endpoint -> member label, asked when the member's text has arrived: the status probe
    # may have learned the names meanwhile (at start-up), and the whole scrape uses that name.
    member_name: Callable[[str], str]


def scrape_targets(
    runtimes: Sequence[ClusterRuntime], only: tuple[str, str] | None = None
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


# --------------------------------------------------------------------------- the steps


async def _scrape_member(
    target: ClusterTarget,
    endpoint: str,
    budget: float,
    config: ScrapeConfig,
    state: ScrapeState,
) -> MemberScrape:
    """One member: its /metrics from the fetch in flight (or a new one, counted), waited for
    within the member's own deadline (never beyond `budget`), relabeled (cached per fetch)."""
    fetcher = target.fetcher
    wait = fetcher.wait_deadline(endpoint, config.member_timeout, budget)
    if fetcher.start_flight(endpoint):
        state.counters.fetches[(target.name, endpoint)] += 1
    fetch = await fetcher.fetch_shared(endpoint, wait)
    member = target.member_name(endpoint)
    exposition = None
    if fetch.error is None and fetch.text is not None:
        try:
            exposition = state.relabel.relabel(
                target.name, endpoint, member, fetch, config.metrics_allow, config.metrics_deny
            )
        except MalformedMetrics as err:
            fetch = FetchResult(fetch.url, None, "parse", fetch.duration_seconds, str(err))
    if fetch.error is not None:
        state.counters.errors[(target.name, endpoint, fetch.error)] += 1
        log.warning(
            "member metrics fetch failed",
            extra={"cluster": target.name, "member": member, "url": fetch.url,
                   "reason": fetch.error, "err": fetch.detail},
        )  # fmt: skip
    return MemberScrape(target.name, endpoint, member, fetch, exposition)


async def _own_families(
    runtimes: Sequence[ClusterRuntime],
    registry: CollectorRegistry,
    openmetrics: bool,
    outcomes: OutcomeCache,
) -> OwnText:
    """`own_families`, gathered while the members render their /metrics."""
    await asyncio.sleep(OWN_FAMILIES_DELAY)  # the members' requests go out first
    return own_families(runtimes, registry, openmetrics, outcomes)


def own_families(
    runtimes: Sequence[ClusterRuntime],
    registry: CollectorRegistry,
    openmetrics: bool,
    outcomes: OutcomeCache,
) -> OwnText:
    """The exporter's own families but the per-member ones. Only the process' own families and
    the runs in progress are encoded at every scrape; a probe's outcome is encoded once (at 60
    clusters, re-encoding every outcome at every scrape was ~100 ms of CPU)."""
    own = OwnText()
    own.add(encode_part(registry.collect(), openmetrics))
    own.add(_build_info(openmetrics))
    for rt in runtimes:
        for name, scheduled in rt.probes.items():
            probe = scheduled.probe
            progress = rt.state.progress.get(name)
            running = None
            if progress is not None:
                running = encode_part(
                    families.progress_families(rt.name, probe, progress), openmetrics
                )
                own.add(running)
            outcome = rt.state.outcomes.get(name)
            if outcome is not None:
                build = functools.partial(families.outcome_families, rt.name, name, probe, outcome)
                part = outcomes.part((rt.name, name), outcome, probe, openmetrics, build)
                # While a run is in progress its families (a scan's keys so far) stand for the
                # last outcome's of the same names.
                own.add(part if running is None else part.without(running.names()))
    outcomes.sweep()
    return own


@functools.cache
def _build_info(openmetrics: bool) -> OwnPart:
    return encode_part([families.build_info()], openmetrics)


async def _no_families() -> OwnText:
    return OwnText()
