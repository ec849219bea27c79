"""One scrape of /metrics: plain inputs in, a frozen result out, then the body.

The aiohttp handler only routes: it computes the budget, calls `scrape_members`, builds the
exporter's own families from the result and the published probe state, and encodes.
"""

from __future__ import annotations

import asyncio
import logging
import re
from collections.abc import Iterable, Sequence
from dataclasses import dataclass

from prometheus_client.exposition import choose_encoder
from prometheus_client.metrics_core import Metric

from etcd_inspector.cluster.topology import Topology
from etcd_inspector.config import ScrapeConfig
from etcd_inspector.etcd.metrics_fetch import FetchResult, MetricsFetcher
from etcd_inspector.web.proxy import MalformedMetrics, merge_families, relabel

log = logging.getLogger(__name__)

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


@dataclass(frozen=True)
class ClusterTarget:
    """What a scrape needs of one cluster."""

    name: str
    fetcher: MetricsFetcher
    topology: Topology  # as the scrape started: names every member of this scrape


@dataclass(frozen=True)
class MemberScrape:
    cluster: str
    endpoint: str
    member: str
    fetch: FetchResult


@dataclass(frozen=True)
class ScrapeResult:
    members: tuple[MemberScrape, ...]
    proxied: tuple[Metric, ...]

    def fetch_of(self, cluster: str, endpoint: str) -> FetchResult | None:
        return next(
            (m.fetch for m in self.members if m.cluster == cluster and m.endpoint == endpoint),
            None,
        )


async def scrape_members(
    targets: Sequence[ClusterTarget],
    budget: float,
    allow: re.Pattern[str] | None = None,
    deny: re.Pattern[str] | None = None,
) -> ScrapeResult:
    """Fetch every member of every cluster concurrently within `budget`; relabel what came."""
    fetched = await asyncio.gather(*(t.fetcher.fetch_all(budget) for t in targets))
    members: list[MemberScrape] = []
    proxied: list[Metric] = []
    for target, fetches in zip(targets, fetched, strict=True):
        for endpoint, fetch in fetches.items():
            member = target.topology.name_of(endpoint)
            if fetch.error is None and fetch.text is not None:
                try:
                    proxied.extend(relabel(fetch.text, target.name, member, allow, deny))
                except MalformedMetrics as err:
                    fetch = FetchResult(fetch.url, None, "parse", fetch.duration_seconds, str(err))
            if fetch.error is not None:
                target.fetcher.record_failure(endpoint, fetch.error)
                log.warning(
                    "member metrics fetch failed",
                    extra={"cluster": target.name, "member": member, "url": fetch.url,
                           "reason": fetch.error, "err": fetch.detail},
                )  # fmt: skip
            members.append(MemberScrape(target.name, endpoint, member, fetch))
    return ScrapeResult(tuple(members), tuple(proxied))


class _Families:
    """What prometheus_client's encoders need: something with collect()."""

    def __init__(self, families: Sequence[Metric]) -> None:
        self._families = families

    def collect(self) -> Sequence[Metric]:
        return self._families


def encode(groups: Iterable[Iterable[Metric]], accept: str) -> tuple[bytes, str]:
    """Merge families by name (first type wins) and encode for the Accept header."""
    families, conflicts = merge_families(groups)
    for name in sorted(set(conflicts)):
        log.debug("metric family with conflicting types dropped", extra={"metric": name})
    encoder, content_type = choose_encoder(accept)
    return encoder(_Families(families)), content_type
