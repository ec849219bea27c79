"""What one scan accumulates (pure): histogram, top-N, prefix groups; memory bounded."""

from __future__ import annotations

from bisect import bisect_left
from collections.abc import Iterable, Sequence

from etcd_inspector.etcd.types import KeyValueLike
from etcd_inspector.keyspace.keys import DEFAULT_SENSITIVE_PREFIXES, key_label
from etcd_inspector.keyspace.prefixes import OTHER, PrefixRules, group_label, group_of, prefix_of
from etcd_inspector.keyspace.topn import TopN
from etcd_inspector.probes.bigvalue.model import BigValueOptions, PrefixUsage


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
        self.leased_keys = 0  # keys attached to a lease (kv.lease != 0): free with the scan
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
        total = key_bytes = big = big_bytes = leased = 0
        for kv in kvs:
            key = kv.key
            size = len(kv.value)
            total += size
            key_bytes += len(key)
            counts[bisect_left(bounds, size)] += 1
            if size > threshold:
                big += 1
                big_bytes += size
            if kv.lease:
                leased += 1
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
        self.leased_keys += leased
        return total + key_bytes

    def finish(self) -> None:
        if self._group is not None:
            self.prefixes.add(self._group, self._group_keys, self._group_bytes)
            self._group = None


def labelled(
    items: Iterable[tuple[float, bytes]],
    mode: str,
    rules: PrefixRules,
    sensitive: tuple[str, ...] = DEFAULT_SENSITIVE_PREFIXES,
) -> tuple[tuple[int, str], ...]:
    """Top-N items with key labels; items sharing a label (prefix mode, truncated keys) keep
    only the first, i.e. largest, so that no two series have the same labels."""
    out: dict[str, int] = {}
    for value, key in items:
        prefix = prefix_of(key, rules) if mode == "prefix" else None
        out.setdefault(key_label(key, mode, prefix, sensitive), int(value))
    return tuple((value, label) for label, value in out.items())
