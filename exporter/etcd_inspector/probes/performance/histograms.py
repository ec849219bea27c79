"""Quantiles and rates between two reads of a member's /metrics (pure, no I/O).

etcd's histograms and counters are cumulative since the member started. What happened within a
window is the difference of two reads: per bucket for a histogram (as Prometheus' rate() over
the window does), per series for a counter. A counter that went down was reset (the member
restarted): the later read alone is then what happened since. The quantile is Prometheus'
histogram_quantile: linear interpolation within the bucket the rank falls in, the highest
finite bound when it falls in +Inf, and no value (None) when nothing was observed.
"""

from __future__ import annotations

import math
from collections.abc import Iterable, Mapping
from dataclasses import dataclass

from prometheus_client.parser import text_string_to_metric_families

# The families the performance probe reads; everything else in a /metrics text is skipped.
WAL_FSYNC = "etcd_disk_wal_fsync_duration_seconds"
BACKEND_COMMIT = "etcd_disk_backend_commit_duration_seconds"
PEER_RTT = "etcd_network_peer_round_trip_time_seconds"
PROPOSALS_FAILED = "etcd_server_proposals_failed_total"
PROPOSALS_PENDING = "etcd_server_proposals_pending"
SLOW_APPLIES = "etcd_server_slow_apply_total"
LEADER_CHANGES = "etcd_server_leader_changes_seen_total"
HISTOGRAMS = (WAL_FSYNC, BACKEND_COMMIT, PEER_RTT)
SCALARS = (PROPOSALS_FAILED, PROPOSALS_PENDING, SLOW_APPLIES, LEADER_CHANGES)

# A bucket's series: the label values other than `le` (e.g. To="8e9e05c52164694d"), sorted.
Group = tuple[tuple[str, str], ...]
# upper bound -> cumulative count
Buckets = Mapping[float, float]


@dataclass(frozen=True)
class MetricsRead:
    """What the probe keeps of one /metrics read: the few families it needs."""

    at: float  # monotonic seconds
    # histogram -> label group -> buckets
    histograms: Mapping[str, Mapping[Group, Buckets]]
    # family -> value, summed over its series
    scalars: Mapping[str, float]


_WANTED = (*HISTOGRAMS, *SCALARS)


def wanted_lines(text: str) -> str:
    """Only the lines (samples, HELP and TYPE) of HISTOGRAMS and SCALARS: a member's /metrics
    is ~150 KB, of which these are a few KB, and the parser is what costs (~60 ms a read)."""
    return "".join(
        line
        for line in text.splitlines(keepends=True)
        if line.startswith(_WANTED) or (line.startswith("# ") and line[7:].startswith(_WANTED))
    )


def parse_read(text: str, at: float) -> MetricsRead:
    """The families of HISTOGRAMS and SCALARS from a /metrics text."""
    histograms: dict[str, dict[Group, dict[float, float]]] = {}
    scalars: dict[str, float] = {}
    for family in text_string_to_metric_families(wanted_lines(text)):
        if family.name in HISTOGRAMS:
            groups = histograms.setdefault(family.name, {})
            for s in family.samples:
                if not s.name.endswith("_bucket"):
                    continue
                group = tuple(sorted((k, v) for k, v in s.labels.items() if k != "le"))
                groups.setdefault(group, {})[float(s.labels["le"])] = s.value
        else:
            # The parser names a counter's family without `_total` (newer versions).
            for name in {family.name, family.name + "_total"} & set(SCALARS):
                scalars[name] = sum(s.value for s in family.samples if s.name == name)
    return MetricsRead(at, histograms, scalars)


def counter_increase(before: float | None, after: float | None) -> float | None:
    """How much a counter grew between two reads; after a reset, what it counted since."""
    if after is None:
        return None
    if before is None:
        return None
    return after - before if after >= before else after


def bucket_increase(before: Buckets | None, after: Buckets) -> dict[float, float]:
    """Per-bucket observations between two reads of one histogram series."""
    if before is None:
        return dict(after)
    if any(after.get(le, 0.0) < count for le, count in before.items()):
        return dict(after)  # reset: the member restarted in between
    return {le: count - before.get(le, 0.0) for le, count in after.items()}


def observed(buckets: Buckets) -> float:
    """How many observations a set of cumulative buckets holds (its +Inf bucket)."""
    return max(buckets.values(), default=0.0)


def quantile(q: float, buckets: Buckets) -> float | None:
    """Prometheus' histogram_quantile(q) of cumulative buckets (None: nothing observed)."""
    bounds = sorted(buckets)
    if not bounds or not math.isinf(bounds[-1]):
        return None
    total = buckets[bounds[-1]]
    if total <= 0:
        return None
    rank = q * total
    lower, below = 0.0, 0.0
    for upper in bounds:
        count = buckets[upper]
        if count >= rank:
            if math.isinf(upper):
                # Prometheus returns the highest finite bound when the rank is in +Inf.
                return lower if len(bounds) > 1 else None
            if upper <= 0 or count == below:
                return upper
            return lower + (upper - lower) * (rank - below) / (count - below)
        lower, below = upper, count
    return None  # not reached: the +Inf bucket holds the total


def merge(groups: Iterable[Buckets]) -> dict[float, float]:
    """Buckets of several series added up (sum without the labels that tell them apart)."""
    out: dict[float, float] = {}
    for buckets in groups:
        for le, count in buckets.items():
            out[le] = out.get(le, 0.0) + count
    return out


@dataclass(frozen=True)
class WindowQuantile:
    value: float | None  # None: nothing observed in the window
    count: float  # observations in the window


def window_quantile(
    q: float, before: MetricsRead, after: MetricsRead, histogram: str
) -> dict[Group, WindowQuantile]:
    """The q-quantile of every series of `histogram`, over what it observed between the reads."""
    out: dict[Group, WindowQuantile] = {}
    earlier = before.histograms.get(histogram, {})
    for group, buckets in after.histograms.get(histogram, {}).items():
        delta = bucket_increase(earlier.get(group), buckets)
        out[group] = WindowQuantile(quantile(q, delta), observed(delta))
    return out


def window_rate(before: MetricsRead, after: MetricsRead, counter: str) -> float | None:
    """Per-second increase of a counter between the reads (None: missing, or no time passed)."""
    seconds = after.at - before.at
    grew = counter_increase(before.scalars.get(counter), after.scalars.get(counter))
    if grew is None or seconds <= 0:
        return None
    return grew / seconds
