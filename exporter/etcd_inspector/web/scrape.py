"""One scrape of /metrics: plain inputs in, a frozen result out, then the body.

The aiohttp handler only routes: it computes the budget, calls `scrape_members`, builds the
exporter's own families from the result and the published probe state, merges and renders.
Members' expositions stay text (web/relabel.py, web/proxy.py); only the exporter's own families
go through prometheus_client's encoders.
"""

from __future__ import annotations

import asyncio
import logging
import math
import re
from collections.abc import Callable, Mapping, Sequence
from dataclasses import dataclass, field
from typing import Any

from prometheus_client import exposition as text_format
from prometheus_client.metrics_core import Metric
from prometheus_client.openmetrics import exposition as openmetrics_format

from etcd_inspector.config import ScrapeConfig
from etcd_inspector.etcd.metrics_fetch import FetchResult, MemberTimeout, MetricsFetcher
from etcd_inspector.web.proxy import (
    Merged,
    merge,
    own_kinds,
    own_names,
    render_members,
    render_own,
)
from etcd_inspector.web.relabel import MalformedMetrics, MemberExposition, escape_label_value
from etcd_inspector.web.relabel_cache import RelabelCache

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
    endpoints: tuple[str, ...]
    # endpoint -> member label, asked when the member's text has arrived: the status probe
    # may have learned the names meanwhile (at start-up), and the whole scrape uses that name.
    member_name: Callable[[str], str]


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

    def of(self, cluster: str, endpoint: str) -> MemberScrape | None:
        return next(
            (m for m in self.members if m.cluster == cluster and m.endpoint == endpoint), None
        )

    def fetch_of(self, cluster: str, endpoint: str) -> FetchResult | None:
        member = self.of(cluster, endpoint)
        return member.fetch if member is not None else None


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
        fetcher = target.fetcher
        wait = fetcher.wait_deadline(endpoint, member_timeout, budget)
        fetch = await fetcher.fetch_shared(endpoint, wait)
        member = target.member_name(endpoint)
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

    members = await asyncio.gather(*(one(t, endpoint) for t in targets for endpoint in t.endpoints))
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
    """The exporter's own families, without OpenMetrics' `# EOF`.

    Plain gauges, counters, histograms and summaries are written here (prometheus_client's
    encoders spend ~5 us per sample in the text format and ~9 us in OpenMetrics, checking
    every character of every label name: with ten clusters that was most of a scrape); any
    other family (units, timestamps, exemplars, `_created`, info, stateset) goes through
    prometheus_client's own encoder.
    """
    simple = [f for f in families if _simple(f)]
    rest = [f for f in families if not _simple(f)]
    out = [_encode_simple(fam, openmetrics) for fam in simple]
    if rest:
        collector: Any = _Families(rest)
        if openmetrics:
            text: bytes = openmetrics_format.generate_latest(collector)  # type: ignore[no-untyped-call]
            out.append(text.decode().removesuffix(_EOF))
        else:
            out.append(text_format.generate_latest(collector).decode())
    return "".join(out)


_SIMPLE_TYPES = {"gauge": "gauge", "counter": "counter", "histogram": "histogram",
                 "summary": "summary", "unknown": "untyped"}  # fmt: skip


def _simple(fam: Metric) -> bool:
    return (
        fam.type in _SIMPLE_TYPES
        and not fam.unit
        and all(
            s.timestamp is None and s.exemplar is None and s.native_histogram is None
            and not s.name.endswith("_created")
            for s in fam.samples
        )
    )  # fmt: skip


def _encode_simple(fam: Metric, openmetrics: bool) -> str:
    name = fam.name
    kind = _SIMPLE_TYPES[fam.type]
    if fam.type == "counter" and not openmetrics:
        name += "_total"
    if openmetrics and kind == "untyped":
        kind = "unknown"
    doc = fam.documentation.replace("\\", r"\\").replace("\n", r"\n")
    if openmetrics:
        doc = doc.replace('"', r"\"")
    lines = [f"# HELP {name} {doc}\n# TYPE {name} {kind}\n"]
    for s in fam.samples:
        if s.labels:
            labels = ",".join([f'{k}="{_escape(v)}"' for k, v in s.labels.items()])
            lines.append(f"{s.name}{{{labels}}} {_value(s.value)}\n")
        else:
            lines.append(f"{s.name} {_value(s.value)}\n")
    return "".join(lines)


def _escape(value: str) -> str:
    if "\\" in value or "\n" in value or '"' in value:
        return escape_label_value(value)
    return value


def _value(value: float) -> str:
    """Any float as both formats read it: +Inf, -Inf, NaN, else Python's shortest repr."""
    if value == math.inf:
        return "+Inf"
    if value == -math.inf:
        return "-Inf"
    if value != value:
        return "NaN"
    return repr(float(value))


@dataclass
class MemberTextCache:
    """The members' part of the latest body per format: scrapes that shared every member's
    fetch (concurrent scrapers) render it once. Keyed by the very expositions (held here, so
    their ids stay theirs) and the exporter's own names."""

    _last: dict[bool, tuple[tuple[object, ...], frozenset[str], bytes]] = field(
        default_factory=dict
    )

    def get(self, merged: Merged, taken: frozenset[str], openmetrics: bool) -> bytes:
        cached = self._last.get(openmetrics)
        if (
            cached is not None
            and cached[1] == taken
            and len(cached[0]) == len(merged.parts)
            and all(a is b for a, b in zip(cached[0], merged.parts, strict=True))
        ):
            return cached[2]
        text = render_members(merged, taken, openmetrics).encode()
        self._last[openmetrics] = (merged.parts, taken, text)
        return text


def encode_each(families: Sequence[Metric], openmetrics: bool) -> dict[int, str]:
    """Each family's text by id(): encoded ahead (while the members answer), used by
    `render_scrape` for the very same family objects."""
    return {id(fam): encode_own([fam], openmetrics) for fam in families}


def render_scrape(
    merged: Merged,
    own: Sequence[Metric],
    accept: str | None,
    cache: MemberTextCache | None = None,
    encoded: Mapping[int, str] | None = None,
) -> tuple[bytes, str]:
    """The response body and its Content-Type for the Accept header; `encoded` (encode_each,
    same format) spares encoding those of `own` again."""
    openmetrics = wants_openmetrics(accept)
    cache = cache if cache is not None else MemberTextCache()

    def encode(fams: Sequence[Metric]) -> str:
        if not encoded:
            return encode_own(fams, openmetrics)
        return "".join(
            [encoded.get(id(f)) or encode_own([f], openmetrics) for f in fams]
        )  # fmt: skip

    head = render_own(merged, own, encode, openmetrics)
    members = cache.get(merged, own_names(own), openmetrics)
    body = b"".join((head.encode(), members, _EOF.encode() if openmetrics else b""))
    return body, OPENMETRICS_CONTENT_TYPE if openmetrics else TEXT_CONTENT_TYPE


class _Families:
    """What prometheus_client's encoders need: something with collect()."""

    def __init__(self, families: Sequence[Metric]) -> None:
        self._families = families

    def collect(self) -> Sequence[Metric]:
        return self._families
