"""bigvalue: a paced, paged scan of the keyspace at one pinned revision.

What it finds: the value-size distribution, values over a threshold, the largest values, the
most rewritten keys (the KeyValue `version`, a long-term hot-key signal that needs no watch) and
keys/bytes per prefix group. "bytes" is always the size of values.

How it stays gentle:
  * one member serves the whole scan, a follower when the status probe says which one leads;
    every page is a serializable read at revision R, the revision of the scan's first page, so
    the result is the keyspace at R whatever is written meanwhile, and a failed member is
    replaced by the next one from the last key on (every member has the same history);
  * `keys_per_second` paces the pages, and a page is never larger than one second's budget;
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
import logging
import os
import time
from bisect import bisect_left
from collections.abc import Iterable, Sequence
from dataclasses import dataclass
from itertools import pairwise
from math import ceil

from prometheus_client.core import GaugeMetricFamily, HistogramMetricFamily
from prometheus_client.metrics_core import Metric
from prometheus_client.utils import floatToGoString

from etcd_inspector.etcd.client import (
    MAX_RECEIVE_BYTES,
    EtcdError,
    KeyValueLike,
    RangePage,
    prefix_range_end,
)
from etcd_inspector.keyspace.keys import key_label
from etcd_inspector.keyspace.prefixes import OTHER, PrefixRules, group_label, group_of, prefix_of
from etcd_inspector.keyspace.topn import TopN
from etcd_inspector.probes.base import CACHED, Probe, ProbeContext, ProbeSpec
from etcd_inspector.probes.status import StatusResult

log = logging.getLogger(__name__)

DEFAULT_BUCKETS = (64, 256, 1024, 4096, 16384, 65536, 131072, 262144, 524288, 1048576, 1572864)

# As a range_end: no upper bound (etcd's convention).
NO_END = b"\0"

# A page may ask for a range holding up to this many keys when that saves a request: etcd walks a
# key in ~50 ns and answers a request in ~0.5 ms (3 members on 2 cores; BENCHMARKS.md), so
# 10,000 keys cost about one request, and hold writers up for ~0.5 ms.
WALK_BUDGET = 10_000
# A guessed range aims at this many pages' worth of keys, so a guess somewhat off still fills one.
GUESS_PAGES = 2
# Ranges whose key count is known, kept at most (nested; about a dozen in practice).
MAX_KNOWN_RANGES = 32

# A member that lags behind R answers "future revision"; followers catch up within milliseconds.
_FUTURE_REVISION_RETRIES = 5
_FUTURE_REVISION_BACKOFF_SECONDS = 0.05


@dataclass(frozen=True)
class BigValueOptions:
    page_size: int = 1000
    keys_per_second: int = 20000  # 0 = unpaced
    threshold_bytes: int = 102400
    top_n: int = 10
    prefixes: tuple[str, ...] = ()  # () = the whole keyspace
    prefix_depth: int = 2
    max_prefixes: int = 200
    kubernetes: bool = True
    value_size_buckets: tuple[int, ...] = DEFAULT_BUCKETS

    def __post_init__(self) -> None:
        at_least = {
            "page_size": (self.page_size, 1),
            "keys_per_second": (self.keys_per_second, 0),
            "threshold_bytes": (self.threshold_bytes, 0),
            "top_n": (self.top_n, 0),
            "prefix_depth": (self.prefix_depth, 1),
            "max_prefixes": (self.max_prefixes, 1),
        }
        for name, (value, low) in at_least.items():
            if value < low:
                raise ValueError(f"{name} must be {low} or more, got {value}")
        buckets = self.value_size_buckets
        if not buckets or buckets[0] <= 0 or any(a >= b for a, b in pairwise(buckets)):
            raise ValueError(
                f"value_size_buckets must be positive and strictly increasing, got {list(buckets)}"
            )

    @property
    def rules(self) -> PrefixRules:
        return PrefixRules(depth=self.prefix_depth, kubernetes=self.kubernetes)


@dataclass(frozen=True)
class ScanProgress:
    keys_done: int
    revision: int
    started_at: float  # wall clock, seconds since the epoch


@dataclass(frozen=True)
class PrefixUsage:
    prefix: str
    keys: int
    bytes: int


@dataclass(frozen=True)
class BigValueResult:
    revision: int
    member: str  # the member that served the scan's last page
    keys: int
    total_bytes: int
    bucket_bounds: tuple[int, ...]
    bucket_counts: tuple[int, ...]  # per bucket, not cumulative; the last one is (max bound, +Inf)
    threshold_bytes: int
    big_values: int
    big_values_bytes: int
    top_values: tuple[tuple[int, str], ...]  # (value size, key label), largest first
    top_versions: tuple[tuple[int, str], ...]  # (version, key label), largest first
    prefixes: tuple[PrefixUsage, ...]  # sorted by prefix; OTHER collects what did not fit
    duration_seconds: float
    restarts: int  # scans restarted because R was compacted (0 or 1)


class ScanFailed(RuntimeError):
    pass


# --------------------------------------------------------------------------- pure helpers


def scan_ranges(prefixes: Sequence[str]) -> tuple[tuple[bytes, bytes], ...]:
    """[start, end) ranges to scan, in key order; a prefix inside another one is dropped so
    that no key is counted twice."""
    if not prefixes or "" in prefixes:
        return ((NO_END, NO_END),)
    kept: list[bytes] = []
    for prefix in sorted({p.encode() for p in prefixes}):
        if not (kept and prefix.startswith(kept[-1])):
            kept.append(prefix)
    return tuple((p, prefix_range_end(p)) for p in kept)


def earlier_end(a: bytes, b: bytes) -> bytes:
    """The smaller of two range ends, where NO_END is +infinity."""
    if a == NO_END:
        return b
    if b == NO_END:
        return a
    return min(a, b)


def key_before(key: bytes, bound: bytes) -> bool:
    """key < bound, where the bound NO_END is +infinity."""
    return bound == NO_END or key < bound


def common_prefix_length(a: bytes, b: bytes) -> int:
    # Byte-wise on purpose: keys are bytes, not paths.
    return len(os.path.commonprefix([a, b]))  # noqa: RUF071


def sibling_bound(key: bytes, depth: int, width: int) -> bytes:
    """A range_end `width` children on from key's own at byte `depth`: the rest of key's child
    there and the next width - 1 children, key[:depth] + (key[depth] + width). Past 0xff, the end
    of key[:depth]'s whole subtree (NO_END when nothing follows it). Always after key."""
    depth = min(depth, len(key) - 1)
    child = key[depth] + width
    if child <= 0xFF:
        return key[:depth] + bytes([child])
    return prefix_range_end(key[:depth])


class Pager:
    """Chooses each page's [key, range_end) for a scan of [start, end), from the pages read so
    far; pure, no I/O.

    etcd walks the whole requested range to count it (module docstring), so a range should hold
    a few pages' worth of keys, never the rest of the keyspace. Three sources for range_end, in
    this order:

      * a range whose key count is known (etcd counted it for an earlier page, less the keys
        read since) and holds at most max(WALK_BUDGET, GUESS_PAGES pages): the widest such;
      * after a full page: the page's keys share a byte prefix and spread over the children
        c_first..c_last at the next byte; assume the same density and take about GUESS_PAGES
        pages' worth of children from c_last on (sequential ids, random names, binary keys);
      * after a range ran dry: a guess of a couple of children at the byte depth where keys
        continued last time (a '/'-directory boundary, a decimal digit ...). A guess that finds
        nothing moves one byte up, one that finds too few widens, one that finds a crowd sends
        the next guess one byte deeper.

    With nothing known, the first range is the whole [start, end), which etcd counts once;
    `opening`, left by an earlier scan of the same range, is a first range_end that spares it.

    Correct whatever the choice: every range_end is after key and at most end, a page that
    stops early continues right after its last key, and a range read to the end continues at
    its range_end, so no key is skipped or read twice. The choices only decide how many keys
    etcd walks per page (budgeted as above) and how many requests come back short or empty.
    """

    def __init__(
        self,
        start: bytes,
        end: bytes,
        walk_budget: int | None = None,
        opening: bytes | None = None,
    ) -> None:
        self.key = start
        self.done = False
        # Nothing is known yet: the first page counts the whole range, unless an earlier scan
        # left its `opening`, the range_end of the first small range that found keys.
        self.range_end = end
        if opening is not None and opening != NO_END and key_before(start, opening):
            self.range_end = earlier_end(opening, end)
        self.opening: bytes | None = None
        self._end = end
        self._walk_budget = WALK_BUDGET if walk_budget is None else walk_budget
        # (range_end, keys in [key, range_end)), by range_end; counts fall as keys are read
        self._known: list[tuple[bytes, int]] = []
        self._last: bytes | None = None  # the last key read
        self._hint: tuple[int, int] | None = None  # (depth, width) to guess first
        self._guess: tuple[int, int] | None = None  # set while range_end is a guess

    def advance(self, kvs: Sequence[KeyValueLike], more: bool, count: int, limit: int) -> None:
        """Account the page just read from [key, range_end) (`count`: etcd's count of that
        range, `limit`: the page size asked for) and choose the next range, or set done."""
        bound, returned = self.range_end, len(kvs)
        guess, self._guess = self._guess, None
        budget = max(self._walk_budget, GUESS_PAGES * limit)
        if kvs:
            self._learn(kvs[0].key, guess, crowded=count > budget)
            self._last = kvs[-1].key
            if self.opening is None and count <= budget:
                self.opening = bound
        if more:
            key = kvs[-1].key + b"\0"
        elif bound == self._end:
            self.done = True
            return
        else:
            key = bound
        # Known ranges still ahead hold `returned` keys fewer: the page lay inside all of them.
        known = [(end, left - returned) for end, left in self._known if key_before(key, end)]
        if more:
            known.append((bound, count - returned))
            known.sort(key=lambda k: (k[0] == NO_END, k[0]))
        self._known = known[:MAX_KNOWN_RANGES]  # a bound on memory; only the widest are lost
        fits = [end for end, left in self._known if left <= budget]
        if fits:
            range_end = fits[-1]
        elif more:
            range_end = earlier_end(self._after_full_page(kvs, limit), bound)
        else:
            range_end = earlier_end(self._guess_after(key, guess, returned, limit), self._end)
        if not key_before(key, range_end):  # a bug here would skip or repeat keys: stop instead
            raise ScanFailed(f"paging went wrong: range_end {range_end!r} <= key {key!r}")
        self.key, self.range_end = key, range_end

    def _learn(self, first: bytes, guess: tuple[int, int] | None, crowded: bool) -> None:
        """Remember the byte depth at which this page's first key leaves the previous page's
        last: where to look first when a range runs dry."""
        if self._last is None:
            return
        if guess is not None and crowded:
            self._hint = (guess[0] + 1, 2)  # the guess was too shallow: deeper next time
            return
        depth = common_prefix_length(self._last, first)
        was = guess or self._hint
        self._hint = (depth, was[1] if was is not None and was[0] == depth else 2)

    @staticmethod
    def _after_full_page(kvs: Sequence[KeyValueLike], limit: int) -> bytes:
        """About GUESS_PAGES pages' worth of children after the page, at the byte where the
        page's first and last keys part, at the page's own density."""
        first, last = kvs[0].key, kvs[-1].key
        depth = common_prefix_length(first, last)
        if depth == len(last):  # a page of one key
            return sibling_bound(last, depth - 1, 2)
        # when first is a prefix of last, count it as the child just before last's
        low = first[depth] if depth < len(first) else last[depth] - 1
        return sibling_bound(
            last, depth, ceil((last[depth] - low) * GUESS_PAGES * limit / len(kvs))
        )

    def _guess_after(
        self, key: bytes, guess: tuple[int, int] | None, returned: int, limit: int
    ) -> bytes:
        """Where to look after a range that ran dry at key: the hint first, then up or wider
        as the last guess turned out."""
        if guess is None:
            depth, width = self._hint or (len(key) - 2, 2)
        elif returned == 0:  # found nothing: one byte up (at the top, wider)
            depth, width = (guess[0] - 1, 2) if guess[0] > 0 else (0, guess[1] * 4)
        else:  # found too few: wider, at most 4 times
            factor = min(4.0, GUESS_PAGES * limit / returned)
            depth, width = guess[0], max(guess[1] + 1, ceil(guess[1] * factor))
            self._hint = (depth, width)
        depth = max(0, min(depth, len(key) - 1))
        self._guess = (depth, width)
        return sibling_bound(key, depth, width)


def scan_order(endpoints: Sequence[str], status: StatusResult | None) -> list[int]:
    """Indexes of the members to read from, best first: followers that answered the last status
    probe, learners, the leader (spare it), then members of unknown state. Config order within
    each group, so the choice is stable from one scan to the next."""

    def rank(i: int) -> int:
        st = status.status_of(endpoints[i]) if status is not None else None
        if st is None:
            return 3
        if st.is_learner:
            return 1
        return 2 if st.leader_id == st.member_id else 0

    return sorted(range(len(endpoints)), key=rank)


class PrefixTally:
    """Keys and bytes per prefix group, holding at most 2 * max_groups groups.

    When full, only the max_groups largest (by bytes) stay and the others fold into OTHER. A
    sorted scan sees each closed group as one contiguous run and adds it once, so a folded group
    is one that max_groups complete groups outgrew: the final list is the exact top by bytes.
    Groups that are not closed (the leaf keys of a directory, e.g. /a/ for /a/x at depth 2, or
    ROOT) can recur between subdirectories; one folded in between ends up split across itself
    and OTHER. Totals stay exact either way.
    """

    def __init__(self, max_groups: int) -> None:
        self.max_groups = max_groups
        self.groups: dict[bytes, list[int]] = {}
        self.other_keys = 0
        self.other_bytes = 0

    def add(self, group: bytes, keys: int, nbytes: int) -> None:
        entry = self.groups.get(group)
        if entry is not None:
            entry[0] += keys
            entry[1] += nbytes
            return
        if len(self.groups) >= 2 * self.max_groups:
            self._fold(self.max_groups)
        self.groups[group] = [keys, nbytes]

    def _fold(self, keep: int) -> None:
        ranked = sorted(self.groups.items(), key=lambda g: (-g[1][1], -g[1][0], g[0]))
        for _group, (keys, nbytes) in ranked[keep:]:
            self.other_keys += keys
            self.other_bytes += nbytes
        self.groups = dict(ranked[:keep])

    def usage(self) -> tuple[PrefixUsage, ...]:
        self._fold(self.max_groups)
        merged: dict[str, list[int]] = {}
        # Distinct byte strings can print alike (escapes, truncation): their label is shared.
        for group, (keys, nbytes) in self.groups.items():
            entry = merged.setdefault(group_label(group), [0, 0])
            entry[0] += keys
            entry[1] += nbytes
        if self.other_keys:
            merged[OTHER] = [self.other_keys, self.other_bytes]
        return tuple(PrefixUsage(p, k, b) for p, (k, b) in sorted(merged.items()))


class ScanTally:
    """What one scan at one revision accumulates; memory bounded by top_n and max_prefixes."""

    def __init__(self, options: BigValueOptions) -> None:
        self.rules = options.rules
        self.bounds = options.value_size_buckets
        self.counts = [0] * (len(self.bounds) + 1)
        self.threshold = options.threshold_bytes
        self.keys = 0
        self.total_bytes = 0
        self.big_values = 0
        self.big_values_bytes = 0
        self.top_values: TopN[bytes] = TopN(options.top_n)
        self.top_versions: TopN[bytes] = TopN(options.top_n)
        self.prefixes = PrefixTally(options.max_prefixes)
        # The prefix group of the run of keys being read; flushed into `prefixes` when it ends.
        self._group: bytes | None = None
        self._group_closed = False
        self._group_keys = 0
        self._group_bytes = 0

    def add(self, kvs: Sequence[KeyValueLike]) -> int:
        """Account one page; returns the bytes it held (keys and values)."""
        # The hot loop: locals only, and the heaps are called only for candidates.
        bounds, counts, threshold, rules = self.bounds, self.counts, self.threshold, self.rules
        top_values, top_versions = self.top_values, self.top_versions
        value_floor = top_values.floor
        # A key at version 1 was written once, never modified: not a most-modified candidate.
        version_floor = max(top_versions.floor, 1)
        group, closed = self._group, self._group_closed
        group_keys, group_bytes = self._group_keys, self._group_bytes
        total = key_bytes = big = big_bytes = 0
        for kv in kvs:
            key = kv.key
            size = len(kv.value)
            total += size
            key_bytes += len(key)
            counts[bisect_left(bounds, size)] += 1
            if size > threshold:
                big += 1
                big_bytes += size
            if size > value_floor:
                top_values.push(size, key)
                value_floor = top_values.floor
            version = kv.version
            if version > version_floor:
                top_versions.push(version, key)
                version_floor = max(top_versions.floor, 1)
            if not (closed and key.startswith(group)):  # type: ignore[arg-type]
                new_group, closed = group_of(key, rules)
                if new_group != group:
                    if group is not None:
                        self.prefixes.add(group, group_keys, group_bytes)
                    group, group_keys, group_bytes = new_group, 0, 0
            group_keys += 1
            group_bytes += size
        self._group, self._group_closed = group, closed
        self._group_keys, self._group_bytes = group_keys, group_bytes
        self.keys += len(kvs)
        self.total_bytes += total
        self.big_values += big
        self.big_values_bytes += big_bytes
        return total + key_bytes

    def finish(self) -> None:
        if self._group is not None:
            self.prefixes.add(self._group, self._group_keys, self._group_bytes)
            self._group = None


def labelled(
    items: Iterable[tuple[float, bytes]], mode: str, rules: PrefixRules
) -> tuple[tuple[int, str], ...]:
    """Top-N items with key labels; items sharing a label (prefix mode, truncated keys) keep
    only the first, i.e. largest, so that no two series have the same labels."""
    out: dict[str, int] = {}
    for value, key in items:
        prefix = prefix_of(key, rules) if mode == "prefix" else None
        out.setdefault(key_label(key, mode, prefix), int(value))
    return tuple((value, label) for label, value in out.items())


# --------------------------------------------------------------------------- reading pages


class _Reader:
    """Pages from one member at a time, at one revision; moves on to the next member when one
    fails, and shrinks the page when gRPC finds it too large."""

    def __init__(self, ctx: ProbeContext, order: Sequence[int], page_size: int) -> None:
        self.ctx = ctx
        self.order = list(order)
        self.position = 0
        self.page_size = page_size
        self.limit = page_size
        self.revision = 0  # 0 until the first page pins it
        self.failures: list[str] = []

    @property
    def endpoint(self) -> str:
        return self.ctx.members[self.order[self.position]].endpoint

    def _fail_over(self, err: EtcdError) -> None:
        member = self.ctx.member_name(self.endpoint)
        self.failures.append(f"{member}: {err.kind}")
        self.position += 1
        if self.position >= len(self.order):
            raise ScanFailed(f"no member could serve the scan ({', '.join(self.failures)})")
        log.warning(
            "bigvalue scan moves to another member",
            extra={
                "cluster": self.ctx.cluster.name,
                "probe": "bigvalue",
                "member": member,
                "next_member": self.ctx.member_name(self.endpoint),
                "err": str(err),
            },
        )

    async def page(self, key: bytes, range_end: bytes) -> RangePage:
        lagging = 0
        while True:
            client = self.ctx.members[self.order[self.position]]
            try:
                page = await client.range_page(
                    key, range_end, limit=self.limit, revision=self.revision, serializable=True
                )
            except EtcdError as err:
                if err.kind == "compacted":
                    raise
                if err.kind == "too_large" and self.limit > 1:
                    self.limit //= 2
                    continue
                if err.kind == "future_revision" and lagging < _FUTURE_REVISION_RETRIES:
                    lagging += 1
                    await asyncio.sleep(_FUTURE_REVISION_BACKOFF_SECONDS * 2**lagging)
                    continue
                self._fail_over(err)
                lagging = 0
                continue
            if not self.revision:
                self.revision = page.revision
            return page

    def grow(self, page_bytes: int) -> None:
        """Back toward page_size after a shrink, while a doubled page would stay well under
        gRPC's limit (a page rejected as too large was read by etcd for nothing)."""
        if self.limit < self.page_size and page_bytes * 4 < MAX_RECEIVE_BYTES:
            self.limit = min(self.page_size, self.limit * 2)


# --------------------------------------------------------------------------- the probe


class BigValueProbe(Probe[BigValueOptions, BigValueResult]):
    def __init__(self, options: BigValueOptions) -> None:
        super().__init__(options)
        # Per scan range, where the last scan's first small range ended: the next scan starts
        # there instead of having etcd count the whole range (see Pager).
        self._openings: dict[tuple[bytes, bytes], bytes] = {}
        # True once this run has published progress: from then until the run ends (when the
        # scheduler drops the progress), progress_metrics() owns the scan_* series and metrics()
        # leaves them out, so a scrape never renders them twice and never misses them.
        self._progress_published = False

    async def run(self, ctx: ProbeContext) -> BigValueResult:
        try:
            return await self._run(ctx)
        finally:
            self._progress_published = False

    async def _run(self, ctx: ProbeContext) -> BigValueResult:
        opts = self.options
        started = time.monotonic()
        started_at = time.time()
        order = scan_order([m.endpoint for m in ctx.members], ctx.state.latest("status"))
        restarts = 0
        while True:
            tally = ScanTally(opts)
            try:
                reader = await self._scan(ctx, order, tally, started_at)
            except EtcdError as err:
                # R was compacted under us: the result would mix revisions, start over once.
                if err.kind != "compacted" or restarts:
                    raise
                restarts += 1
                log.info(
                    "bigvalue scan restarts: its revision was compacted",
                    extra={"cluster": ctx.cluster.name, "probe": "bigvalue", "err": str(err)},
                )
                continue
            break
        tally.finish()
        mode, rules = ctx.key_labels, opts.rules
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
            top_values=labelled(tally.top_values.items(), mode, rules),
            top_versions=labelled(tally.top_versions.items(), mode, rules),
            prefixes=tally.prefixes.usage(),
            duration_seconds=time.monotonic() - started,
            restarts=restarts,
        )

    async def _scan(
        self, ctx: ProbeContext, order: Sequence[int], tally: ScanTally, started_at: float
    ) -> _Reader:
        opts = self.options
        rate = opts.keys_per_second
        # A page is at most one second's budget, so pacing sleeps stay short and even.
        page_size = min(opts.page_size, rate) if rate else opts.page_size
        reader = _Reader(ctx, order, page_size)
        for start, end in scan_ranges(opts.prefixes):
            pager = Pager(start, end, opening=self._openings.get((start, end)))
            while not pager.done:
                asked_at = time.monotonic()
                page = await reader.page(pager.key, pager.range_end)
                limit = reader.limit  # what this page asked for; grow() may change it
                kvs = page.kvs
                if kvs:
                    reader.grow(tally.add(kvs))
                    ctx.progress(ScanProgress(tally.keys, reader.revision, started_at))
                    self._progress_published = True
                    if rate:
                        await asyncio.sleep(max(0.0, asked_at + len(kvs) / rate - time.monotonic()))
                pager.advance(kvs, page.more, page.count, limit)
            if pager.opening is not None:
                self._openings[start, end] = pager.opening
        return reader

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
            buckets.append((floatToGoString(bound), cumulative))
        buckets.append(("+Inf", result.keys))
        hist.add_metric([cluster], buckets, sum_value=result.total_bytes)
        yield hist

        def gauge(name: str, doc: str, value: float) -> GaugeMetricFamily:
            fam = GaugeMetricFamily(f"etcd_inspector_{name}", f"{doc} {CACHED}", labels=labels)
            fam.add_metric([cluster], value)
            return fam

        yield gauge("big_values", "Values larger than the big-value threshold.", result.big_values)
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
        for size, label in result.top_values:
            top.add_metric([cluster, label], size)
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
        if not self._progress_published:
            yield from _scan_families(cluster, result.keys, result.revision)
        yield gauge(
            "scan_duration_seconds",
            "How long the last complete scan took.",
            result.duration_seconds,
        )


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


SPEC = ProbeSpec(
    name="bigvalue",
    probe_type=BigValueProbe,
    description="Paced scan of the keyspace at a pinned revision: value sizes, big values, "
    "most rewritten keys, keys and bytes per prefix.",
    options_type=BigValueOptions,
    default_interval=600.0,
    default_timeout=540.0,
    cluster_wide=True,
)
