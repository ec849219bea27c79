"""hotkeys' options and result (frozen values, no I/O)."""

from __future__ import annotations

from dataclasses import dataclass
from typing import Any

from pydantic import model_validator

from etcd_inspector.config import Duration, Section
from etcd_inspector.errors import ErrorKind, ProbeError


class HotKeysOptions(Section):
    # Key prefixes to watch; () watches the whole keyspace.
    prefixes: tuple[str, ...] = ()
    top_n: int = 10
    # Space-Saving counters: the only per-key state, whatever the number of keys.
    capacity: int = 1000
    # Time constant of the exponential decay behind the "recent rate".
    rate_window_seconds: Duration = 60.0
    # Keys writing less than this (writes/s) are not reported among the hot keys.
    min_rate: float = 1.0
    prefix_depth: int = 2
    max_prefixes: int = 200
    # No response for this long while the cluster's revision moved on: restart the watch.
    stall_seconds: Duration = 60.0
    # Ask the watch for each write's previous value (prev_kv) and count the rewrites that left
    # the value unchanged (etcd_inspector_noop_writes_per_second). Off by default: etcd then
    # reads the previous value of every event from its backend and sends it along (README:
    # "No-op writes" for the measured cost).
    noop_writes: bool = False

    @model_validator(mode="after")
    def _check(self) -> HotKeysOptions:
        if self.top_n < 1:
            raise ValueError("top_n must be at least 1")
        if self.capacity < self.top_n:
            raise ValueError("capacity must be at least top_n")
        if self.rate_window_seconds <= 0:
            raise ValueError("rate_window_seconds must be positive")
        if self.min_rate < 0:
            raise ValueError("min_rate must not be negative")
        if self.prefix_depth < 1:
            raise ValueError("prefix_depth must be at least 1")
        if self.max_prefixes < 1:
            raise ValueError("max_prefixes must be at least 1")
        if self.stall_seconds <= 0:
            raise ValueError("stall_seconds must be positive")
        if any(not p for p in self.prefixes):
            raise ValueError("prefixes must not contain an empty string (use [] for everything)")
        # Two watches over one key would count its writes twice.
        for a in self.prefixes:
            for b in self.prefixes:
                if a != b and b.startswith(a):
                    raise ValueError(f"prefixes overlap: {a!r} contains {b!r}")
        if len(set(self.prefixes)) != len(self.prefixes):
            raise ValueError("prefixes contain duplicates")
        return self


@dataclass(frozen=True)
class PrefixWrites:
    prefix: str
    op: str  # put | delete
    count: int


@dataclass(frozen=True)
class HotKey:
    key: str  # the label value (keys.key_label), not the raw key
    writes_per_second: float


@dataclass(frozen=True)
class HotKeysResult:
    prefix_writes: tuple[PrefixWrites, ...]
    hot_keys: tuple[HotKey, ...]  # hottest first
    events_total: int
    # The lowest revision every watched range has seen up to (None before the first stream).
    revision: int | None
    # The status probe's highest member revision minus `revision`; None unless the whole
    # keyspace is watched (a narrow watch's revision only moves with its own writes).
    lag_revisions: int | None
    missed_windows_total: int
    restarts_total: int
    watched_endpoints: tuple[str, ...]
    sketch_entries: int
    # Revisions skipped by the missed windows (compacted before the watch could read them): an
    # upper bound of the events lost, since one revision may hold several (a Txn).
    missed_revisions_total: int = 0
    # (key label, writes counted since the watch started), most first: `inspect --watch`
    # divides them by its window, the way its header divides events_total.
    key_writes: tuple[tuple[str, int], ...] = ()
    # The exporter's decayed rate of all writes together (the hot keys' time constant).
    events_per_second: float | None = None
    # With the noop_writes option (else None): the keys most rewritten with an unchanged value,
    # by decayed rate, and counted since the start (as hot_keys and key_writes), and the total.
    noop_writes: tuple[HotKey, ...] | None = None
    noop_key_writes: tuple[tuple[str, int], ...] = ()
    noop_writes_total: int | None = None


class WatchUnavailable(ProbeError):
    """The watch is down (past the grace period) or not started. `partial`: what the watch
    has counted so far, still exported (with probe_success 0) so its lag stays visible."""

    def __init__(self, message: str, partial: Any = None) -> None:
        super().__init__(ErrorKind.WATCH_DOWN, message, partial=partial)


class WatchBehind(ProbeError):
    """The watch streams but has not caught up with revisions the cluster had long enough ago
    (watch.py's behind_by): its counts are incomplete, so the run fails; `partial` is the
    snapshot, so the lag is still exported."""

    def __init__(self, message: str, partial: Any = None) -> None:
        super().__init__(ErrorKind.WATCH_DOWN, message, partial=partial)
