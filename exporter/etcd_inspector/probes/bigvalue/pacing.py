"""How fast the keyspace scan reads and how large its pages are, from the cluster's own signals
(pure: no I/O, no clock; the probe feeds it every page, then waits and sizes as told).

Two signals, both free: the scan times every page anyway, and every answer's header carries the
member's current revision.

  * Latency against the member's own baseline (delay-based, like TCP Vegas or LEDBAT): with one
    request in flight the scan queues behind nothing but the cluster's other work, so a page
    slower than its expected cost means the member is busy. Expected cost = a fixed
    per-request latency (from pages of little work, empty ones mostly) + a per-key cost times the
    page's work, each a low quantile of the last BASELINE_PAGES pages (windowed minimums, as
    BBR's min-RTT, but robust to one lucky page); a page's work is the keys
    it returned plus the keys etcd walked to count its range at 1/COUNT_WEIGHT of the cost (the
    first page of a scan counts the whole range: that is not congestion).
  * The cluster's write rate: header revisions per second. Writes are what a scan must not
    slow down, so the share of the member's time the scan may take (its duty cycle: time in
    requests over wall time) is 1 / (1 + writes/s / WRITES_PER_SHARE_HALVING): all of it on
    an idle cluster, half at 20 writes/s, 1/51 at 1,000 writes/s.

Pages are judged only once the baselines hold WARMUP_PAGES pages of work and RATIO_PAGES
ratios followed: a median of one or two ratios from a baseline of one or two pages is the noise
of a cold start (a second page 4x the first on a shared machine: three halvings within the
first 0.2 s of a 500k-key scan, then a ramp back up). Pages answered while our own heavy
requests ran (PageSample.own_load: the consistency probe's count and HashKV of every member)
are not judged either: etcd serves a HashKV under its backend's read lock, the backend's
commit queues behind it and the pages behind the commit, so they slow down whoever the
member's clients are. Such a page holds the rate, teaches no baseline and no throughput; it
may still grow the page (held at 1000 keys through a hash, a scan made 40% more requests).
The write-rate share still applies to it, so a writing cluster keeps its protection while we
hash, and the latency signal resumes with the first page after the hash.

The rate follows AIMD (additive increase, multiplicative decrease). It starts at the cap (no
pace at all without one: an idle cluster is read as fast as it answers). When the latency ratio
(the median of the last RATIO_PAGES pages) exceeds TOLERANCE, the rate halves, from what the
scan achieved lately if that is lower, at most once per DECREASE_HOLDOFF_PAGES pages (as TCP
reacts once per round trip). A good page lets it grow: doubling back up to the rate of the last
decrease (it worked until then), then by ADDITIVE_SHARE of the fastest rate the member delivered
per page. AIMD rather than a PID loop or a gradient controller: the signal is noisy (a shared
machine, pages of varying cost) and AIMD needs only a yes/no per page; it settles just below
the point where the member starts queuing, whatever that member's capacity, where a PID needs a
latency set-point in seconds that differs by orders of magnitude between clusters. The rate
stays between the floor (a scan always finishes) and the cap (`keys_per_second`, 0 = none).

Page size moves within [min_page, max_page]: it doubles after good pages while the cluster
does not write and a page answers within PAGE_LATENCY_TARGET, halves with the rate; on a
writing cluster a page's expected cost must fit the scan's share of PAGE_LATENCY_TARGET (short
pages hold etcd's index lock and a CPU for less at a time); and a page never aims above
page_bytes, from the bytes per key seen (pages of 1 MiB values hold a few keys, pages of
100-byte values thousands).
"""

from __future__ import annotations

import math
import statistics
from collections import deque
from dataclasses import dataclass

# The ratio of a page's latency to its expected latency above which the rate halves, taken as
# the median of the last RATIO_PAGES pages: one slow page is noise (a GC pause, a neighbour on
# a shared machine: single pages of 1000 keys vary 10x there), three in five are the member.
TOLERANCE = 3.0
RATIO_PAGES = 5
# After a decrease, this many pages pass before the next one can happen.
DECREASE_HOLDOFF_PAGES = 3
DECREASE_FACTOR = 0.5
# Beyond the rate of the last decrease, each good page adds this share of the fastest rate the
# member delivered in this scan (not of the last decrease's rate: that would shrink with every
# decrease, and a noisy member would ratchet the scan down to the floor).
ADDITIVE_SHARE = 0.05
# The scan's share of the member's time halves at this write rate (revisions/s).
WRITES_PER_SHARE_HALVING = 20.0
# The write rate is measured over windows of this length ...
WRITE_WINDOW_SECONDS = 1.0
# ... and, early in a window, as if at least this much time had passed (a revision or two in
# the first milliseconds is not a storm).
WRITE_WINDOW_MIN_SECONDS = 0.1
# A page answers within this on an idle member; pages grow while under it.
PAGE_LATENCY_TARGET = 0.05
# A page aims at no more than this many bytes (keys and values).
PAGE_BYTES = 4 * 1024 * 1024
# Counting a key (etcd walks its index for the range's count) costs this many times less than
# returning it: ~0.4 us against ~1.2 us on etcd 3.4 (which collects every revision it counts).
COUNT_WEIGHT = 3
# Pages with less work than this (empty ones, mostly) only tell the fixed per-request latency.
SMALL_WORK = 50
# The fixed per-request latency assumed until a small page shows it (a round trip on a LAN).
OVERHEAD_PRIOR = 0.0005
# Pages the baselines remember, and the quantile of them taken as the baseline: a low quantile
# rather than the minimum, which on a noisy machine is one lucky page.
BASELINE_PAGES = 64
BASELINE_QUANTILE = 0.1
# Pages of work the baselines learn before any page is judged against them: a cold start.
WARMUP_PAGES = RATIO_PAGES
# Recent pages whose median throughput is what the scan "achieved lately".
THROUGHPUT_PAGES = 5
# The smallest page the pacer chooses (unless page_size is smaller, or values are big).
MIN_PAGE = 100
# The page a scan starts with, at most (the size pages had before they adapted).
START_PAGE = 1000


@dataclass(frozen=True)
class PacingLimits:
    floor: float  # keys/s the scan never goes below
    cap: float | None  # keys/s it never goes above; None = no cap
    min_page: int
    max_page: int
    page_bytes: int = PAGE_BYTES

    def __post_init__(self) -> None:
        if self.floor <= 0 or (self.cap is not None and self.cap < self.floor):
            raise ValueError("need 0 < floor <= cap")
        if not 1 <= self.min_page <= self.max_page:
            raise ValueError("need 1 <= min_page <= max_page")


@dataclass(frozen=True)
class PageSample:
    """One page, as the probe saw it."""

    latency: float  # seconds from asking to the answer
    keys: int  # keys returned
    nbytes: int  # bytes of keys and values returned
    counted: int  # keys etcd counted for the range (RangeResponse.count)
    at: float  # when the answer came (monotonic seconds)
    header_revision: int  # the member's current revision, from the answer's header
    # Our own heavy request (count, HashKV) ran while this page was out: its latency says how
    # busy we made the member, not its clients, so the page is not judged (cluster/own_load.py).
    own_load: bool = False


@dataclass(frozen=True)
class Decision:
    delay: float  # seconds to wait (from the answer) before asking for the next page
    limit: int  # the next page's size


class WriteRate:
    """Revisions per second at the member, from the answers' header revisions."""

    def __init__(self) -> None:
        self.value = 0.0
        self._window: tuple[float, int] | None = None  # (start, revision at start)
        self._previous: float | None = None  # the last complete window's rate

    def add(self, at: float, revision: int) -> float:
        if self._window is None:
            self._window = (at, revision)
            return self.value
        start, first = self._window
        elapsed = at - start
        current = max(0, revision - first) / max(elapsed, WRITE_WINDOW_MIN_SECONDS)
        if self._previous is None:
            self.value = current
        else:  # blend the last window into this one as this one fills
            weight = min(1.0, elapsed / WRITE_WINDOW_SECONDS)
            self.value = self._previous * (1 - weight) + current * weight
        if elapsed >= WRITE_WINDOW_SECONDS:
            self._previous, self._window = current, (at, revision)
        return self.value


class ScanPacer:
    """AIMD on the scan's rate and page size, fed one PageSample per page (module docstring)."""

    def __init__(self, limits: PacingLimits) -> None:
        self.limits = limits
        self.rate = limits.cap if limits.cap is not None else math.inf  # keys/s
        self._bytes_per_key = 0.0
        self.limit = self._page_bounds(START_PAGE)
        self.ratio = 1.0  # latency / expected latency: the median of the last pages'
        self._ratios: deque[float] = deque(maxlen=RATIO_PAGES)
        self.share = 1.0  # of the member's time the scan may take
        self.writes = WriteRate()
        self.decreases = 0
        self.shadowed = 0  # pages not judged: our own count or HashKV ran meanwhile
        self._ssthresh = math.inf  # the rate of the last decrease: doubling up to it
        self._holdoff = 0
        self._overheads: deque[float] = deque(maxlen=BASELINE_PAGES)
        self._fastest = math.inf
        self._unit_costs: deque[float] = deque(maxlen=BASELINE_PAGES)
        self._throughputs: deque[float] = deque(maxlen=THROUGHPUT_PAGES)
        self._peak = 0.0  # the fastest page's keys/s in this scan

    # ----------------------------------------------------------------------- the model

    @staticmethod
    def work(sample: PageSample) -> float:
        return sample.keys + sample.counted / COUNT_WEIGHT

    def expected(self, sample: PageSample) -> float | None:
        """The page's latency on an idle member, from the baselines; None before any."""
        if not self._unit_costs:
            return None
        return self._overhead() + _low(self._unit_costs) * self.work(sample)

    def _overhead(self) -> float:
        if self._overheads:
            return _low(self._overheads)
        return min(OVERHEAD_PRIOR, self._fastest)

    def _learn(self, sample: PageSample) -> float:
        """Update the baselines with the page; return the median latency ratio of the last pages
        (1.0 = as expected)."""
        self._fastest = min(self._fastest, sample.latency)
        expected = self.expected(sample)
        work = self.work(sample)
        if work < SMALL_WORK:
            # Mostly the fixed per-request latency; too little work to judge the member by.
            self._overheads.append(sample.latency)
            return self.ratio
        self._unit_costs.append(max(sample.latency - self._overhead(), 0.0) / work)
        warm = len(self._unit_costs) > WARMUP_PAGES  # this page's own cost came after them
        if expected is not None and expected > 0 and warm:
            self._ratios.append(sample.latency / expected)
        # A median of fewer pages than the window is one or two pages: noise (module docstring).
        return statistics.median(self._ratios) if len(self._ratios) == RATIO_PAGES else 1.0

    def _clamp(self, rate: float) -> float:
        rate = max(self.limits.floor, rate)
        return min(rate, self.limits.cap) if self.limits.cap is not None else rate

    # ----------------------------------------------------------------------- control

    def observe(self, sample: PageSample) -> Decision:
        """Account one page; return how long to wait and how large the next page is."""
        writes = self.writes.add(sample.at, sample.header_revision)
        self.share = 1.0 / (1.0 + writes / WRITES_PER_SHARE_HALVING)
        if sample.keys:  # whatever the latency: pages never aim above page_bytes
            bpk = sample.nbytes / sample.keys
            self._bytes_per_key = bpk if not self._bytes_per_key else (
                (self._bytes_per_key + bpk) / 2)  # fmt: skip
        if sample.own_load:
            self.shadowed += 1
            self._grow_page(sample)
            return self._decide(sample)
        self.ratio = self._learn(sample)
        if sample.keys and sample.latency > 0 and self.work(sample) >= SMALL_WORK:
            self._throughputs.append(sample.keys / sample.latency)
            self._peak = max(self._peak, self._throughputs[-1])
        achieved = statistics.median(self._throughputs) if self._throughputs else math.inf

        congested = self.ratio > TOLERANCE
        self._holdoff = max(0, self._holdoff - 1)
        if congested and not self._holdoff:
            self._ssthresh = min(self.rate, achieved)
            self.rate = self._clamp(self._ssthresh * DECREASE_FACTOR)
            self.limit = max(self.limits.min_page, int(self.limit * DECREASE_FACTOR))
            self._holdoff = DECREASE_HOLDOFF_PAGES
            self.decreases += 1
        elif not congested:
            if self.rate < self._ssthresh:
                self.rate = self._clamp(min(self.rate * 2, self._ssthresh))
            elif self.rate < math.inf:
                self.rate = self._clamp(self.rate + ADDITIVE_SHARE * self._peak)
            if self.rate < math.inf:
                # Not far above what the member delivered lately, so a decrease always bites.
                self.rate = self._clamp(min(self.rate, 2 * achieved))
            self._grow_page(sample)
        return self._decide(sample)

    def _grow_page(self, sample: PageSample) -> None:
        if self.share >= 0.99 and sample.keys and sample.latency < PAGE_LATENCY_TARGET:
            self.limit = min(self.limits.max_page, self.limit * 2)

    def _decide(self, sample: PageSample) -> Decision:
        """The next page's size and wait, from the rate, the share and the floor."""
        if self.share < 0.99 and sample.keys:
            # On a writing cluster a page costs at most the scan's share of the target.
            per_key = (self.expected(sample) or sample.latency) / sample.keys
            if per_key > 0:
                fits = int(PAGE_LATENCY_TARGET * self.share / per_key)
                self.limit = min(self.limit, max(fits, self.limits.min_page))
        self.limit = self._page_bounds(self.limit)

        # The next page may start when the rate allows, and not before the share does; the
        # floor overrides both.
        by_rate = sample.keys / self.rate - sample.latency if sample.keys else 0.0
        by_share = sample.latency * (1.0 / self.share - 1.0)
        delay = max(by_rate, by_share, 0.0)
        if sample.keys:
            delay = min(delay, max(0.0, sample.keys / self.limits.floor - sample.latency))
        return Decision(delay=delay, limit=self.limit)

    def _page_bounds(self, limit: int) -> int:
        limits = self.limits
        limit = max(limits.min_page, min(limits.max_page, limit))
        if self._bytes_per_key:
            limit = min(limit, max(1, int(limits.page_bytes / self._bytes_per_key)))
        if self.rate < math.inf:
            # A page holds at most one second's keys at the rate: waits stay short and even.
            limit = min(limit, max(1, int(self.rate)))
        return limit


def _low(values: deque[float]) -> float:
    """The BASELINE_QUANTILE of values."""
    ordered = sorted(values)
    return ordered[int(len(ordered) * BASELINE_QUANTILE)]
