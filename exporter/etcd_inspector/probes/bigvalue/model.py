"""bigvalue's options, progress and result (frozen values, no I/O)."""

from __future__ import annotations

from dataclasses import dataclass
from itertools import pairwise

from pydantic import model_validator

from etcd_inspector.config import Section
from etcd_inspector.keyspace.prefixes import PrefixRules
from etcd_inspector.report.thresholds import BIG_VALUE_BYTES

DEFAULT_BUCKETS = (64, 256, 1024, 4096, 16384, 65536, 131072, 262144, 524288, 1048576, 1572864)


class BigValueOptions(Section):
    # The largest page; pages start at 1000 keys at most and adapt (pacing.py).
    page_size: int = 10000
    # A hard cap on the adaptive pace; 0 = no cap (the pace comes from the cluster alone).
    keys_per_second: int = 0
    # The pace never drops below this, however busy the cluster (a scan always finishes).
    min_keys_per_second: int = 1000
    threshold_bytes: int = BIG_VALUE_BYTES  # the mixin's big_value_threshold_bytes
    top_n: int = 10
    prefixes: tuple[str, ...] = ()  # () = the whole keyspace
    prefix_depth: int = 2
    max_prefixes: int = 200
    kubernetes: bool = True
    value_size_buckets: tuple[int, ...] = DEFAULT_BUCKETS

    @model_validator(mode="after")
    def _check(self) -> BigValueOptions:
        at_least = {
            "page_size": (self.page_size, 1),
            "keys_per_second": (self.keys_per_second, 0),
            "min_keys_per_second": (self.min_keys_per_second, 1),
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
        return self

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
    # What the scan cost and how it paced itself (benchmarks, debug logs; not in the report).
    requests: int = 0  # Range requests, empty ones included
    empty_requests: int = 0
    keys_counted: int = 0  # keys etcd walked to count the requests' ranges
    first_request_seconds: float = 0.0
    pace_decreases: int = 0  # times the controller halved the rate
    last_page_size: int = 0
    waited_seconds: float = 0.0  # time spent waiting between pages
    shadowed_pages: int = 0  # pages not judged: our own HashKV (or count) ran meanwhile
    # Prefixes that gained keys since the oldest earlier scan within the growth window (a
    # prefix absent then counts from 0): (prefix, keys gained, seconds between the two scans).
    # Empty on a probe's first scan (`inspect`): there is nothing to compare with.
    prefix_growth: tuple[PrefixGrowth, ...] = ()
    leased_keys: int = 0  # keys attached to a lease (etcd_inspector_lease_keys)


@dataclass(frozen=True)
class PrefixGrowth:
    prefix: str
    gained: int
    over_seconds: float
