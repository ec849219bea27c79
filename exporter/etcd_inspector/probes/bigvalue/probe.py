"""bigvalue: a paced, paged scan of the keyspace at one pinned revision.

What it finds: the value-size distribution, values over a threshold, the largest values, the
most rewritten keys (the KeyValue `version`, a long-term hot-key signal that needs no watch) and
keys/bytes per prefix group. "bytes" is always the size of values.

How it stays gentle:
  * one member serves the whole scan, a follower when the status probe says which one leads;
    every page is a serializable read at revision R, the revision of the scan's first page, so
    the result is the keyspace at R whatever is written meanwhile, and a failed member is
    replaced by the next one from the last key on (every member has the same history);
  * a ScanPacer (pacing.py) paces the pages and sizes them from the cluster's own signals
    (each page's latency against the member's baseline, the write rate from the answers'
    headers), between a floor (min_keys_per_second) and an optional cap (keys_per_second);
  * a page too large for gRPC is retried at half the size (down to 1 key);
  * memory is flat in the key count: one page at a time, two top-N heaps, a bounded prefix dict.

etcd answers every Range with `count`, the number of keys in [key, range_end), and computes it
by walking its index over that whole range under the index lock (3.4 and 3.5), `limit` or not:
paging [key, end-of-keyspace) costs O(remaining keys) per page, O(n^2) per scan, and holds up
writes meanwhile. So each page asks for a range only a few pages long, chosen by a Pager from
what the pages so far showed of the layout: etcd counts each key a few times per scan, not
n / page_size times, and the scan is linear in the key count. Only a scan's first page counts
the whole range (nothing is known yet); the next scan by the same probe starts where the last
one's first small range ended.
"""

from __future__ import annotations

import asyncio
import contextlib
import logging
import time
from collections import deque
from collections.abc import Iterable, Sequence
from typing import Any

from prometheus_client.core import GaugeMetricFamily, HistogramMetricFamily
from prometheus_client.metrics_core import Metric
from prometheus_client.utils import floatToGoString

from etcd_inspector.errors import ErrorKind
from etcd_inspector.etcd.errors import EtcdError
from etcd_inspector.etcd.types import KeyValueLike
from etcd_inspector.keyspace.prefixes import OTHER
from etcd_inspector.probes.base import (
    CACHED,
    Check,
    Probe,
    ProbeContext,
    ProbeFlag,
    ProbeSpec,
    ReportContext,
)
from etcd_inspector.probes.bigvalue.model import (
    BigValueOptions,
    BigValueResult,
    PrefixGrowth,
    PrefixUsage,
    ScanProgress,
)
from etcd_inspector.probes.bigvalue.pacing import PageSample, ScanPacer
from etcd_inspector.probes.bigvalue.paging import Pager, scan_ranges
from etcd_inspector.probes.bigvalue.reader import (
    Answer,
    ScanCost,
    _Reader,
    pacing_limits,
    scan_order,
)
from etcd_inspector.probes.bigvalue.tally import ScanTally, labelled
from etcd_inspector.report.findings import Finding, Severity
from etcd_inspector.report.format import duration, size, table
from etcd_inspector.report.thresholds import PREFIX_KEY_GROWTH_WINDOW_SECONDS
from etcd_inspector.report.view import (
    Cell,
    Format,
    Look,
    PageSection,
    Table,
    ViewInput,
    ViewPart,
    text,
)

# Rows per top list in the text report when top_n is 0.
DEFAULT_TOP_ROWS = 10

log = logging.getLogger(__name__)


# Keys tallied between two looks at the event loop: an answer to the page asked for ahead is
# timed when it is read, so the pacer sees etcd's latency, not the tally's (~1 ms of keys).
TALLY_CHUNK = 2000


async def _tally(tally: ScanTally, kvs: Sequence[KeyValueLike]) -> int:
    """tally.add in chunks, yielding to the event loop between them; the bytes read."""
    if len(kvs) <= TALLY_CHUNK:
        return tally.add(kvs) if kvs else 0
    nbytes = 0
    for i in range(0, len(kvs), TALLY_CHUNK):
        nbytes += tally.add(kvs[i : i + TALLY_CHUNK])
        await asyncio.sleep(0)
    return nbytes


class BigValueProbe(Probe[BigValueOptions, BigValueResult]):
    def __init__(self, options: BigValueOptions) -> None:
        super().__init__(options)
        # Per scan range, where the last scan's first small range ended: the next scan starts
        # there instead of having etcd count the whole range (see Pager).
        self._openings: dict[tuple[bytes, bytes], bytes] = {}
        # (wall clock, keys per prefix) of earlier scans within the growth window.
        self._prefix_history: deque[tuple[float, dict[str, int]]] = deque()

    def _prefix_growth(self, now: float, usage: Sequence[PrefixUsage]) -> tuple[PrefixGrowth, ...]:
        """Keys gained per prefix since the oldest scan within the window, as the alert
        EtcdInspectorPrefixKeyGrowth compares (a prefix new since then gained all its keys)."""
        window = PREFIX_KEY_GROWTH_WINDOW_SECONDS
        history = self._prefix_history
        while history and history[0][0] < now - window:
            history.popleft()
        growth: tuple[PrefixGrowth, ...] = ()
        if history:
            then, before = history[0]
            growth = tuple(
                PrefixGrowth(p.prefix, p.keys - before.get(p.prefix, 0), now - then)
                for p in usage
                if p.keys > before.get(p.prefix, 0)
            )
        history.append((now, {p.prefix: p.keys for p in usage}))
        return growth

    async def run(self, ctx: ProbeContext) -> BigValueResult:
        opts = self.options
        started = time.monotonic()
        started_at = time.time()
        order = scan_order([m.endpoint for m in ctx.members], ctx.topology)
        restarts = 0
        while True:
            tally = ScanTally(opts)
            try:
                reader, cost = await self._scan(ctx, order, tally, started_at)
            except EtcdError as err:
                # R was compacted under us: the result would mix revisions, start over once.
                if err.kind != ErrorKind.COMPACTED or restarts:
                    raise
                restarts += 1
                log.info(
                    "bigvalue scan restarts: its revision was compacted",
                    extra={"cluster": ctx.cluster, "probe": "bigvalue", "err": str(err)},
                )
                continue
            break
        tally.finish()
        cost.log_done(ctx.cluster, tally.keys, time.monotonic() - started)
        mode, rules = ctx.key_labels, opts.rules
        usage = tally.prefixes.usage()
        return BigValueResult(
            revision=reader.revision,
            member=ctx.member_name(reader.endpoint),
            keys=tally.keys,
            total_bytes=tally.total_bytes,
            bucket_bounds=opts.value_size_buckets,
            bucket_counts=tuple(tally.counts),
            threshold_bytes=opts.threshold_bytes,
            big_values=tally.big_values,
            big_values_bytes=tally.big_values_bytes,
            top_values=labelled(tally.top_values.items(), mode, rules, ctx.sensitive_prefixes),
            top_versions=labelled(tally.top_versions.items(), mode, rules, ctx.sensitive_prefixes),
            prefixes=usage,
            duration_seconds=time.monotonic() - started,
            restarts=restarts,
            prefix_growth=self._prefix_growth(time.time(), usage),
            leased_keys=tally.leased_keys,
            requests=cost.requests,
            empty_requests=cost.empty,
            keys_counted=cost.counted,
            first_request_seconds=cost.first_seconds,
            pace_decreases=cost.decreases,
            last_page_size=cost.last_page_size,
            waited_seconds=cost.waited,
            shadowed_pages=cost.shadowed,
        )

    async def _scan(
        self, ctx: ProbeContext, order: Sequence[int], tally: ScanTally, started_at: float
    ) -> tuple[_Reader, ScanCost]:
        """Page by page. Unpaced (no cap, and the pacer asked for no wait), the next page is
        asked for before this one is tallied: etcd answers while Python counts."""
        opts = self.options
        pacer = ScanPacer(pacing_limits(opts))
        reader = _Reader(ctx, order, pacer.limit)
        cost = ScanCost()
        unpaced = pacer.limits.cap is None
        for start, end in scan_ranges(opts.prefixes):
            pager = Pager(start, end, opening=self._openings.get((start, end)))
            ahead: asyncio.Task[Answer] | None = None
            try:
                while not pager.done:
                    answer = await (ahead or reader.ask(pager.key, pager.range_end))
                    page, kvs = answer.page, answer.page.kvs
                    cost.add(answer.latency, len(kvs), page.count)
                    pager.advance(kvs, page.more, page.count, answer.limit)
                    ahead = None
                    if unpaced and not pager.done:
                        ahead = asyncio.create_task(reader.ask(pager.key, pager.range_end))
                        await asyncio.sleep(0)  # the request goes out before the tally
                    nbytes = await _tally(tally, kvs)
                    if kvs:
                        ctx.progress(ScanProgress(tally.keys, reader.revision, started_at))
                    decision = pacer.observe(
                        PageSample(
                            latency=answer.latency, keys=len(kvs), nbytes=nbytes,
                            counted=page.count, at=answer.answered,
                            header_revision=page.revision,
                            own_load=ctx.own_load.overlapped(answer.asked),
                        )
                    )  # fmt: skip
                    reader.resize(decision.limit, nbytes)
                    unpaced = pacer.limits.cap is None and decision.delay <= 0
                    wait = decision.delay - (time.monotonic() - answer.answered)
                    if ahead is None and wait > 0:  # after the last page too: the cap holds
                        cost.waited += wait
                        await asyncio.sleep(wait)
            finally:
                if ahead is not None:  # the scan failed or was cancelled meanwhile
                    ahead.cancel()
                    with contextlib.suppress(asyncio.CancelledError, EtcdError):
                        await ahead
            if pager.opening is not None:
                self._openings[start, end] = pager.opening
        cost.decreases, cost.last_page_size = pacer.decreases, reader.limit
        cost.shadowed = pacer.shadowed
        return reader, cost

    def progress_metrics(self, cluster: str, progress: ScanProgress) -> Iterable[Metric]:
        return _scan_families(cluster, progress.keys_done, progress.revision)

    def metrics(self, cluster: str, result: BigValueResult) -> Iterable[Metric]:
        labels = ["cluster"]
        hist = HistogramMetricFamily(
            "etcd_inspector_value_size_bytes",
            f"Sizes of the values in the keyspace at the scanned revision. {CACHED}",
            labels=labels,
        )
        cumulative, buckets = 0, []
        for bound, count in zip(result.bucket_bounds, result.bucket_counts, strict=False):
            cumulative += count
            bound_text = floatToGoString(bound)  # type: ignore[no-untyped-call]
            buckets.append((bound_text, cumulative))
        buckets.append(("+Inf", result.keys))
        hist.add_metric([cluster], buckets, sum_value=result.total_bytes)
        yield hist

        def gauge(name: str, doc: str, value: float) -> GaugeMetricFamily:
            fam = GaugeMetricFamily(f"etcd_inspector_{name}", f"{doc} {CACHED}", labels=labels)
            fam.add_metric([cluster], value)
            return fam

        yield gauge("big_values", "Values larger than the big-value threshold.", result.big_values)
        yield gauge("lease_keys", "Keys attached to a lease (kv.lease).", result.leased_keys)
        yield gauge(
            "big_values_bytes",
            "Total size of the values larger than the big-value threshold.",
            result.big_values_bytes,
        )
        yield gauge(
            "big_value_threshold_bytes",
            "The big-value threshold the last scan used.",
            result.threshold_bytes,
        )
        top = GaugeMetricFamily(
            "etcd_inspector_value_size_top_bytes",
            f"Sizes of the largest values, by key (top N). {CACHED}",
            labels=["cluster", "key"],
        )
        for nbytes, label in result.top_values:
            top.add_metric([cluster, label], nbytes)
        yield top
        versions = GaugeMetricFamily(
            "etcd_inspector_key_version_top",
            "Versions (writes since creation) of the most rewritten keys (top N). " + CACHED,
            labels=["cluster", "key"],
        )
        for version, label in result.top_versions:
            versions.add_metric([cluster, label], version)
        yield versions
        pkeys = GaugeMetricFamily(
            "etcd_inspector_prefix_keys",
            f"Keys per prefix group ({OTHER} collects the groups over the limit). {CACHED}",
            labels=["cluster", "prefix"],
        )
        pbytes = GaugeMetricFamily(
            "etcd_inspector_prefix_bytes",
            f"Total size of the values per prefix group. {CACHED}",
            labels=["cluster", "prefix"],
        )
        for usage in result.prefixes:
            pkeys.add_metric([cluster, usage.prefix], usage.keys)
            pbytes.add_metric([cluster, usage.prefix], usage.bytes)
        yield pkeys
        yield pbytes
        # While a scan runs, progress_metrics()' families of the same names stand for these
        # (web/scrape.py, own_families): the series never disappears, never comes twice.
        yield from _scan_families(cluster, result.keys, result.revision)
        yield gauge(
            "scan_duration_seconds",
            "How long the last complete scan took.",
            result.duration_seconds,
        )

    def progress_text(self, progress: ScanProgress, now: float) -> str | None:
        text = f"scanning: {progress.keys_done} keys"
        if progress.revision:
            text += f" at revision {progress.revision}"
        if now > progress.started_at:
            text += f" ({progress.keys_done / (now - progress.started_at):.0f} keys/s)"
        return text

    # ----------------------------------------------------------------------- report

    def findings(self, result: BigValueResult, rc: ReportContext) -> Iterable[Finding]:
        """One finding per big value the top list names (by key, as /metrics labels it), and
        one for those it does not; prefix growth over the alert's limit."""
        t = rc.thresholds
        if result.big_values > t.big_values_max:
            threshold = result.threshold_bytes
            over = [(n, key) for n, key in result.top_values if n > threshold]
            for nbytes, key in over:
                yield Finding(
                    rc.cluster, "big_value",
                    f"value of {key} is {size(nbytes)} (threshold {size(threshold)})",
                    severity=Severity.INFO, subject=key, value=nbytes, threshold=threshold,
                )  # fmt: skip
            if result.big_values > len(over):
                more = result.big_values - len(over)
                yield Finding(
                    rc.cluster, "big_value",
                    f"{more} {'more ' if over else ''}value(s) larger than {size(threshold)} "
                    f"({result.big_values} in all, {size(result.big_values_bytes)})",
                    severity=Severity.INFO, value=result.big_values, threshold=t.big_values_max,
                    unit=Format.COUNT,
                )  # fmt: skip
        for g in result.prefix_growth:
            if g.gained > t.prefix_key_growth_max:
                yield Finding(
                    rc.cluster, "prefix_growth",
                    f"prefix {g.prefix} gained {g.gained} keys within {duration(g.over_seconds)} "
                    f"(limit {t.prefix_key_growth_max} per "
                    f"{duration(t.prefix_key_growth_window_seconds)})",
                    severity=Severity.WARNING, subject=g.prefix, value=g.gained,
                    threshold=t.prefix_key_growth_max,
                )  # fmt: skip

    def report_json(self, result: BigValueResult | None, rc: ReportContext) -> dict[str, Any]:
        if result is None:
            return {"keyspace": None}
        r = result
        return {
            "keyspace": {
                "revision": r.revision,
                "member": r.member,
                "keys": r.keys,
                "total_value_bytes": r.total_bytes,
                "duration_seconds": round(r.duration_seconds, 3),
                "threshold_bytes": r.threshold_bytes,
                "big_values": r.big_values,
                "big_values_bytes": r.big_values_bytes,
                "largest_values": [{"key": k, "bytes": s} for s, k in r.top_values],
                "most_modified": [{"key": k, "version": v} for v, k in r.top_versions],
                "prefixes": [
                    {"prefix": p.prefix, "keys": p.keys, "bytes": p.bytes}
                    for p in biggest_prefixes(r, len(r.prefixes))
                ],
                "prefix_growth": [
                    {
                        "prefix": g.prefix,
                        "keys_gained": g.gained,
                        "over_seconds": round(g.over_seconds, 1),
                    }
                    for g in sorted(r.prefix_growth, key=lambda g: (-g.gained, g.prefix))
                ],
            }
        }

    def report_text(self, result: BigValueResult | None, rc: ReportContext) -> list[str]:
        if result is None:
            return []
        r, n = result, self.options.top_n or DEFAULT_TOP_ROWS
        lines = [
            f"Keyspace scan (at revision {r.revision}, from {r.member}): {r.keys} keys, "
            f"{size(r.total_bytes)} of values, {r.duration_seconds:.1f}s",
            "",
            f"Largest values (threshold {size(r.threshold_bytes)}; {r.big_values} over it)",
        ]
        rows: list[list[Any]] = [
            [size(s), "OVER" if s > r.threshold_bytes else "", k] for s, k in r.top_values[:n]
        ]
        lines += table(["SIZE", "", "KEY"], rows) if rows else ["  (no keys)"]
        lines += ["", "Most-modified keys (version = writes since creation)"]
        rows = [[v, k] for v, k in r.top_versions[:n]]
        lines += table(["VERSION", "KEY"], rows) if rows else ["  (no keys)"]
        lines += ["", "Biggest prefixes (by value bytes)"]
        rows = [[p.prefix, p.keys, size(p.bytes)] for p in biggest_prefixes(r, n)]
        lines += table(["PREFIX", "KEYS", "BYTES"], rows) if rows else ["  (no keys)"]
        return lines


def biggest_prefixes(result: BigValueResult, n: int) -> list[PrefixUsage]:
    return sorted(result.prefixes, key=lambda p: (-p.bytes, -p.keys, p.prefix))[:n]


def _scan_families(cluster: str, keys: int, revision: int) -> list[Metric]:
    done = GaugeMetricFamily(
        "etcd_inspector_scan_keys",
        "Keys read by the keyspace scan: so far while it runs, then its total. " + CACHED,
        labels=["cluster"],
    )
    done.add_metric([cluster], keys)
    rev = GaugeMetricFamily(
        "etcd_inspector_scan_revision",
        f"The revision the keyspace scan reads (pinned for the whole scan). {CACHED}",
        labels=["cluster"],
    )
    rev.add_metric([cluster], revision)
    return [done, rev]


def keyspace_view(v: ViewInput) -> list[ViewPart]:
    """The largest values (over the threshold in red) and the biggest prefixes."""
    ks = v.doc.get("keyspace")
    if ks is None:
        return []
    limit, n = ks["threshold_bytes"], DEFAULT_TOP_ROWS
    largest = tuple(
        (text(x["key"], Look.KEY),
         Cell(x["bytes"], Format.BYTES, Look.BAD if x["bytes"] > limit else Look.PLAIN))
        for x in ks["largest_values"][:n]
    )  # fmt: skip
    prefixes = tuple(
        (text(p["prefix"], Look.KEY), text(p["keys"]), Cell(p["bytes"], Format.BYTES))
        for p in ks["prefixes"][:n]
    )
    caption = f"{ks['big_values']} over {size(limit)}; {ks['keys']} keys at revision "
    caption += str(ks["revision"])
    return [PageSection("Keyspace", (
        Table("largest", ("key", "size"), largest, "Largest values", caption, empty="none"),
        Table("prefixes", ("prefix", "keys", "bytes"), prefixes, "Biggest prefixes"),
    ), grid=True)]  # fmt: skip


SPEC = ProbeSpec(
    name="bigvalue",
    probe_type=BigValueProbe,
    description="Paced scan of the keyspace at a pinned revision: value sizes, big values, "
    "most rewritten keys, keys and bytes per prefix.",
    options_type=BigValueOptions,
    default_interval=600.0,
    default_timeout=540.0,
    cluster_wide=True,
    title="Keyspace scan",
    view=keyspace_view,
    checks=(
        Check(
            "big_value",
            "EtcdInspectorBigValues",
            Format.BYTES,
            thresholds=("big_values_max",),
        ),
        Check(
            "prefix_growth",
            "EtcdInspectorPrefixKeyGrowth",
            Format.COUNT,
            thresholds=("prefix_key_growth_max", "prefix_key_growth_window"),
        ),
    ),
    stale_seconds=6 * 3600,
    flags=(
        ProbeFlag(
            flag="--scan.keys-per-second",
            option="keys_per_second",
            type=int,
            metavar="N",
            help="Hard cap on the keyspace scan's adaptive pace (default 0 = no cap: the scan "
            "reads as fast as an idle cluster answers and slows down as it gets busy).",
        ),
    ),
)
