"""One scrape of /metrics: plain inputs in, a frozen result out, then the body.

The aiohttp handler only routes: it computes the budget, calls `scrape_members`, builds the
exporter's own families from the result and the published probe state, merges and renders.
Members' expositions stay text (web/proxy.py); only the exporter's own families go through
prometheus_client's encoders.
"""

from __future__ import annotations

import asyncio
import logging
import re
from collections.abc import Mapping, Sequence
from dataclasses import dataclass, field
from typing import Any

from prometheus_client import exposition as text_format
from prometheus_client.metrics_core import Metric
from prometheus_client.openmetrics import exposition as openmetrics_format

from etcd_inspector.config import ScrapeConfig
from etcd_inspector.etcd.metrics_fetch import FetchResult, MemberTimeout, MetricsFetcher
from etcd_inspector.web.proxy import (
    MalformedMetrics,
    MemberExposition,
    Merged,
    merge,
    own_kinds,
    relabel,
    render,
)

log = logging.getLogger(__name__)

MIN_BUDGET_SECONDS = 0.1
TEXT_CONTENT_TYPE = text_format.CONTENT_TYPE_PLAIN_0_0_4
OPENMETRICS_CONTENT_TYPE = "application/openmetrics-text; version=1.0.0; charset=utf-8"
_EOF = "# EOF\n"


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


@dataclass(frozen=True)
class ClusterTarget:
    """What a scrape needs of one cluster."""

    name: str
    fetcher: MetricsFetcher
    member_names: dict[str, str]  # endpoint -> member label


@dataclass(frozen=True)
class MemberScrape:
    cluster: str
    endpoint: str
    member: str
    fetch: FetchResult
    exposition: MemberExposition | None = None  # None unless the fetch and its check succeeded


@dataclass(frozen=True)
class ScrapeResult:
    members: tuple[MemberScrape, ...]

    def fetch_of(self, cluster: str, endpoint: str) -> FetchResult | None:
        return next(
            (m.fetch for m in self.members if m.cluster == cluster and m.endpoint == endpoint),
            None,
        )


@dataclass
class RelabelCache:
    """Each member's latest fetch, relabeled once: scrapes that shared a fetch share this too.

    Keyed by (cluster, endpoint); an entry is reused only for the very same FetchResult (and
    member label and filters), so it never outlives the fetch in flight it came from.
    """

    _last: dict[tuple[str, str], tuple[object, MemberExposition | MalformedMetrics]] = field(
        default_factory=dict
    )

    def relabel(
        self,
        cluster: str,
        endpoint: str,
        member: str,
        fetch: FetchResult,
        allow: re.Pattern[str] | None,
        deny: re.Pattern[str] | None,
    ) -> MemberExposition:
        assert fetch.text is not None
        key = (fetch, member, allow, deny)
        cached = self._last.get((cluster, endpoint))
        if cached is not None and _same(cached[0], key):
            outcome = cached[1]
        else:
            try:
                outcome = relabel(fetch.text, cluster, member, allow, deny)
            except MalformedMetrics as err:
                outcome = err
            self._last[(cluster, endpoint)] = (key, outcome)
        if isinstance(outcome, MalformedMetrics):
            raise outcome
        return outcome


def _same(a: object, b: tuple[FetchResult, str, object, object]) -> bool:
    # Identity for the fetch (two fetches may well have equal texts but are not the same).
    return isinstance(a, tuple) and a[0] is b[0] and a[1:] == b[1:]


async def scrape_members(
    targets: Sequence[ClusterTarget],
    budget: float,
    member_timeout: MemberTimeout = "auto",
    cache: RelabelCache | None = None,
    allow: re.Pattern[str] | None = None,
    deny: re.Pattern[str] | None = None,
) -> ScrapeResult:
    """Every member of every cluster concurrently, each within its own deadline (never beyond
    `budget`), relabeled as soon as it arrives."""
    cache = cache if cache is not None else RelabelCache()

    async def one(target: ClusterTarget, endpoint: str) -> MemberScrape:
        member = target.member_names.get(endpoint, endpoint)
        fetcher = target.fetcher
        wait = fetcher.wait_deadline(endpoint, member_timeout, budget)
        fetch = await fetcher.fetch_shared(endpoint, wait)
        exposition = None
        if fetch.error is None and fetch.text is not None:
            try:
                exposition = cache.relabel(target.name, endpoint, member, fetch, allow, deny)
            except MalformedMetrics as err:
                fetch = FetchResult(fetch.url, None, "parse", fetch.duration_seconds, str(err))
        if fetch.error is not None:
            fetcher.record_failure(endpoint, fetch.error)
            log.warning(
                "member metrics fetch failed",
                extra={"cluster": target.name, "member": member, "url": fetch.url,
                       "reason": fetch.error, "err": fetch.detail},
            )  # fmt: skip
        return MemberScrape(target.name, endpoint, member, fetch, exposition)

    members = await asyncio.gather(
        *(one(t, endpoint) for t in targets for endpoint in t.member_names)
    )
    return ScrapeResult(tuple(members))


def merge_members(
    result: ScrapeResult,
    targets: Sequence[ClusterTarget],
    own: Sequence[Metric],
    reserved: Mapping[str, str],
) -> Merged:
    """Group the members' families by name next to the exporter's own (`own`, and `reserved`:
    names of own families built later, with their kinds); count each member's clashes."""
    fetchers = {t.name: t.fetcher for t in targets}
    scraped = [m for m in result.members if m.exposition is not None]
    merged = merge([m.exposition for m in scraped if m.exposition], {**own_kinds(own), **reserved})
    for m, counts in zip(scraped, merged.clashes, strict=True):
        for outcome, n in counts.items():
            fetchers[m.cluster].clashes[(m.endpoint, outcome)] += n
    return merged


def encode_own(families: Sequence[Metric], openmetrics: bool) -> str:
    """The exporter's own families, by prometheus_client, without OpenMetrics' `# EOF`."""
    collector: Any = _Families(families)
    if openmetrics:
        text: bytes = openmetrics_format.generate_latest(collector)  # type: ignore[no-untyped-call]
        return text.decode().removesuffix(_EOF)
    return text_format.generate_latest(collector).decode()


def render_scrape(
    merged: Merged, own: Sequence[Metric], accept: str | None
) -> tuple[bytes, str]:
    """The response body and its Content-Type for the Accept header."""
    openmetrics = wants_openmetrics(accept)
    body = render(merged, own, lambda fams: encode_own(fams, openmetrics), openmetrics)
    return body.encode(), OPENMETRICS_CONTENT_TYPE if openmetrics else TEXT_CONTENT_TYPE


class _Families:
    """What prometheus_client's encoders need: something with collect()."""

    def __init__(self, families: Sequence[Metric]) -> None:
        self._families = families

    def collect(self) -> Sequence[Metric]:
        return self._families
