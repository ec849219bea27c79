"""What the watchers count (pure): a Space-Saving sketch and bounded prefix counters."""

from __future__ import annotations

from collections.abc import Iterable, Sequence

from etcd_inspector.etcd.types import WatchEvent
from etcd_inspector.keyspace.keys import DEFAULT_SENSITIVE_PREFIXES, key_label
from etcd_inspector.keyspace.prefixes import OTHER, PrefixRules, group_label, group_of, prefix_of
from etcd_inspector.keyspace.spacesaving import DecayingHeavyHitters, Rate, SpaceSaving
from etcd_inspector.probes.hotkeys.model import HotKey, HotKeysOptions, PrefixWrites

# No-op rewrites are reported from this decayed rate on (writes/s), whatever the hot keys'
# min_rate: a key rewritten unchanged every 30 s (backend.ai#13752's 200 keys) reads 0.033/s.
NOOP_MIN_RATE = 0.01


class WriteCounters:
    """Everything the watchers count, shared by all watched ranges. Mutated only by the event
    loop's one thread, so snapshots need no lock."""

    def __init__(self, options: HotKeysOptions, rules: PrefixRules, now: float) -> None:
        self.options = options
        self.rules = rules
        self.sketch = DecayingHeavyHitters(options.capacity, options.rate_window_seconds, now)
        # Plain counts since the start, for `inspect --watch`: a window shorter than the decay's
        # time constant reports writes counted / window, which agrees with its header.
        self.counts = SpaceSaving(options.capacity)
        # raw prefix group (None: OTHER) -> [puts, deletes]; labels are made at snapshot time,
        # which keeps the per-event work to one group_of() and one dict lookup.
        self.groups: dict[bytes | None, list[int]] = {}
        self.events_total = 0
        self.missed_windows_total = 0
        self.missed_revisions_total = 0
        self.restarts_total = 0
        # The noop_writes option: the same, for puts that left the value unchanged.
        self.noop_sketch: DecayingHeavyHitters | None = None
        self.noop_counts: SpaceSaving | None = None
        self.noop_total = 0
        if options.noop_writes:
            self.noop_sketch = DecayingHeavyHitters(
                options.capacity, options.rate_window_seconds, now
            )
            self.noop_counts = SpaceSaving(options.capacity)

    def count(self, events: Sequence[WatchEvent], now: float) -> None:
        keys = [ev.key for ev in events]
        if self.noop_sketch is not None and self.noop_counts is not None:
            same = [ev.key for ev in events if ev.unchanged]
            if same:
                self.noop_sketch.add_many(same, now)
                self.noop_counts.add_many(same)
                self.noop_total += len(same)
        self.sketch.add_many(keys, now)
        self.counts.add_many(keys)
        groups, rules, max_groups = self.groups, self.rules, self.options.max_prefixes
        for ev in events:
            group: bytes | None = group_of(ev.key, rules)[0]
            counts = groups.get(group)
            if counts is None:
                # Once full, new groups go to OTHER, which may take one slot past the bound;
                # a group that has its own series keeps it, so every series stays monotonic.
                if len(groups) >= max_groups:
                    group = None
                counts = groups.setdefault(group, [0, 0])
            counts[ev.is_delete] += 1
        self.events_total += len(events)

    def prefix_writes(self) -> tuple[PrefixWrites, ...]:
        # Distinct groups can share a label (printable_key cuts very long ones): add them up.
        by_label: dict[str, list[int]] = {}
        for group, counts in self.groups.items():
            label = OTHER if group is None else group_label(group)
            total = by_label.setdefault(label, [0, 0])
            total[0] += counts[0]
            total[1] += counts[1]
        return tuple(
            PrefixWrites(label, op, counts[i])
            for label, counts in sorted(by_label.items())
            for i, op in enumerate(("put", "delete"))
        )

    def key_writes(
        self, key_labels: str, sensitive: tuple[str, ...] = DEFAULT_SENSITIVE_PREFIXES
    ) -> tuple[tuple[str, int], ...]:
        """The top-N keys by writes counted since the start (lower bounds), as label values;
        keys that share a label are added up."""
        return self._counted(self.counts, key_labels, sensitive)

    def noop_key_writes(
        self, key_labels: str, sensitive: tuple[str, ...] = DEFAULT_SENSITIVE_PREFIXES
    ) -> tuple[tuple[str, int], ...]:
        """key_writes of the no-op rewrites (empty without the noop_writes option)."""
        if self.noop_counts is None:
            return ()
        return self._counted(self.noop_counts, key_labels, sensitive)

    def _counted(
        self, counts: SpaceSaving, key_labels: str, sensitive: tuple[str, ...]
    ) -> tuple[tuple[str, int], ...]:
        by_label: dict[str, int] = {}
        for counted in counts.top(self.options.top_n, guaranteed=True):
            writes = round(counted.count - counted.error)
            if writes <= 0:
                break
            label = key_label(
                counted.key, key_labels, prefix_of(counted.key, self.rules), sensitive
            )
            by_label[label] = by_label.get(label, 0) + writes
        return tuple(sorted(by_label.items(), key=lambda kv: (-kv[1], kv[0])))

    def hot_keys(
        self,
        now: float,
        key_labels: str,
        sensitive: tuple[str, ...] = DEFAULT_SENSITIVE_PREFIXES,
    ) -> tuple[HotKey, ...]:
        """The top-N keys by recent rate at or above min_rate, as label values.

        Rates are the sketch's guaranteed lower bounds: with many more keys than counters, a
        key that just took over a counter inherits its count as error, and the upper bound
        would show a key written once as hot. Exact for keys tracked since their first write.
        Keys that share a label (prefix mode, cut long keys) are added up so no series is
        duplicated."""
        return self._rates(self.sketch, now, self.options.min_rate, key_labels, sensitive)

    def noop_writes(
        self, now: float, key_labels: str, sensitive: tuple[str, ...] = DEFAULT_SENSITIVE_PREFIXES
    ) -> tuple[HotKey, ...] | None:
        """The keys most rewritten with an unchanged value, as hot_keys ranks them (None
        without the noop_writes option)."""
        if self.noop_sketch is None:
            return None
        return self._rates(self.noop_sketch, now, NOOP_MIN_RATE, key_labels, sensitive)

    def _rates(
        self,
        sketch: DecayingHeavyHitters,
        now: float,
        floor: float,
        key_labels: str,
        sensitive: tuple[str, ...],
    ) -> tuple[HotKey, ...]:
        by_label: dict[str, float] = {}
        rates: Iterable[Rate] = sketch.top(self.options.top_n, now, guaranteed=True)
        for rate in rates:
            per_second = rate.guaranteed_per_second
            if per_second < floor:
                break
            label = key_label(rate.key, key_labels, prefix_of(rate.key, self.rules), sensitive)
            by_label[label] = by_label.get(label, 0.0) + per_second
        ranked = sorted(by_label.items(), key=lambda kv: (-kv[1], kv[0]))
        return tuple(HotKey(label, per_second) for label, per_second in ranked)
