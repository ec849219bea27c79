"""hotkeys: a continuous watch counting writes per key prefix and the hottest keys (probe.py)."""

from etcd_inspector.probes.hotkeys.counters import WriteCounters
from etcd_inspector.probes.hotkeys.model import (
    HotKey,
    HotKeysOptions,
    HotKeysResult,
    PrefixWrites,
    WatchBehind,
    WatchUnavailable,
)
from etcd_inspector.probes.hotkeys.probe import SPEC, HotKeysProbe
from etcd_inspector.probes.hotkeys.watch import (
    CATCH_UP_SECONDS,
    PROGRESS_NOTIFY_SECONDS,
    RangeWatcher,
    behind_by,
    catch_up_target,
    is_stalled,
    watch_order,
)

__all__ = [
    "CATCH_UP_SECONDS",
    "PROGRESS_NOTIFY_SECONDS",
    "SPEC",
    "HotKey",
    "HotKeysOptions",
    "HotKeysProbe",
    "HotKeysResult",
    "PrefixWrites",
    "RangeWatcher",
    "WatchBehind",
    "WatchUnavailable",
    "WriteCounters",
    "behind_by",
    "catch_up_target",
    "is_stalled",
    "watch_order",
]
