"""hotkeys: a continuous watch counting writes per key prefix and the hottest keys (probe.py)."""

from etcd_inspector.probes.hotkeys.counters import WriteCounters
from etcd_inspector.probes.hotkeys.model import (
    HotKey,
    HotKeysOptions,
    HotKeysResult,
    PrefixWrites,
    WatchUnavailable,
)
from etcd_inspector.probes.hotkeys.probe import SPEC, HotKeysProbe
from etcd_inspector.probes.hotkeys.watch import (
    PROGRESS_NOTIFY_SECONDS,
    RangeWatcher,
    is_stalled,
    watch_order,
)

__all__ = [
    "PROGRESS_NOTIFY_SECONDS",
    "SPEC",
    "HotKey",
    "HotKeysOptions",
    "HotKeysProbe",
    "HotKeysResult",
    "PrefixWrites",
    "RangeWatcher",
    "WatchUnavailable",
    "WriteCounters",
    "is_stalled",
    "watch_order",
]
