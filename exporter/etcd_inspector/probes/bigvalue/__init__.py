"""bigvalue: a paced, paged scan of the keyspace at one pinned revision (see probe.py)."""

from etcd_inspector.probes.bigvalue.model import (
    DEFAULT_BUCKETS,
    BigValueOptions,
    BigValueResult,
    PrefixUsage,
    ScanProgress,
)
from etcd_inspector.probes.bigvalue.paging import (
    NO_END,
    Pager,
    ScanFailed,
    earlier_end,
    key_before,
    scan_ranges,
    sibling_bound,
)
from etcd_inspector.probes.bigvalue.probe import SPEC, BigValueProbe
from etcd_inspector.probes.bigvalue.reader import scan_order
from etcd_inspector.probes.bigvalue.tally import PrefixTally, ScanTally, labelled

__all__ = [
    "DEFAULT_BUCKETS",
    "NO_END",
    "SPEC",
    "BigValueOptions",
    "BigValueProbe",
    "BigValueResult",
    "Pager",
    "PrefixTally",
    "PrefixUsage",
    "ScanFailed",
    "ScanProgress",
    "ScanTally",
    "earlier_end",
    "key_before",
    "labelled",
    "scan_order",
    "scan_ranges",
    "sibling_bound",
]
