"""Heavy hitters in bounded memory: the Space-Saving sketch, with exponential decay for rates.

Space-Saving (Metwally, Agrawal, El Abbadi, 2005) keeps at most `capacity` counters whatever
the number of distinct keys. A key that is not tracked takes over the smallest counter: its
count starts at that minimum (which becomes its `error`) plus its own weight. For every tracked
key this guarantees

    count - error <= true weight <= count

and every key whose true weight exceeds total / capacity is tracked. The proof only adds
weights, so it holds unchanged for weighted increments.

"Recent rate" uses exponential decay (time constant `window_seconds`) rather than two rotating
windows: multiplying every counter by the same factor keeps both the order of the counters and
the error bounds above (they are linear), so a decayed Space-Saving is still a Space-Saving of
decayed weights, and there is no jump when a window rotates. It is implemented as forward decay
(Cormode et al., 2009): an event at time t is added with weight exp((t - landmark) / window),
which grows instead of every counter shrinking, so an event costs O(1) and decay costs nothing;
reading divides by exp((now - landmark) / window). Before the weights could overflow, the
landmark moves forward and all counters are rescaled once, O(capacity).

For a key written at a steady r writes/s the decayed count tends to r * window, so the rate is
count / window; a burst of n writes shows as n / window right after and fades with e^(-t/window).
Until several windows have passed since the sketch started, though, count / window would
underestimate (the time before the start counts as zero writes: a steady rate shows 15% of
itself after 10 s of a 60 s window), so the divisor is the decayed length of the time actually
observed, window * (1 - e^(-age/window)), which is exact for a steady rate at any age and tends
to `window` after a few windows. It is floored at MIN_OBSERVED_SECONDS (or the window if that is
shorter), so that in the first seconds a key written once or twice does not show as a hot key;
a steady rate shows age/10 of itself during those first 10 s.
"""

from __future__ import annotations

import heapq
import math
from collections.abc import Iterable
from dataclasses import dataclass

# exp(40) ~ 2.4e17: far from float overflow even after ~1e100 events, and rescaling happens once
# every 40 windows (40 minutes with a 60 s window).
RESCALE_EXPONENT = 40.0
MIN_OBSERVED_SECONDS = 10.0


@dataclass(frozen=True)
class Counted:
    key: bytes
    count: float  # an upper bound of the key's true weight
    error: float  # count - error is a lower bound


@dataclass(frozen=True)
class Rate:
    key: bytes
    per_second: float  # an upper bound of the key's true decayed rate
    error_per_second: float

    @property
    def guaranteed_per_second(self) -> float:
        """A lower bound of the key's true decayed rate."""
        return self.per_second - self.error_per_second


class SpaceSaving:
    """Weighted Space-Saving over bytes keys.

    The table maps key -> [count, error]. A min-heap holds exactly one (count, key) entry per
    tracked key, but its count may be stale: counts only grow, so a stale entry is a lower
    bound and the heap's top is still a lower bound of every count. Finding the minimum pops
    stale tops and pushes them back with their current count, which costs O(log capacity) per
    earlier increment (amortized), and an increment of a tracked key touches only the table.
    """

    def __init__(self, capacity: int) -> None:
        if capacity < 1:
            raise ValueError(f"capacity must be at least 1, got {capacity}")
        self.capacity = capacity
        self._table: dict[bytes, list[float]] = {}
        self._heap: list[tuple[float, bytes]] = []
        self.total = 0.0

    def __len__(self) -> int:
        return len(self._table)

    def __contains__(self, key: object) -> bool:
        return key in self._table

    def add(self, key: bytes, weight: float = 1.0) -> None:
        self.total += weight
        entry = self._table.get(key)
        if entry is not None:
            entry[0] += weight
            return
        self._insert(key, weight)

    def add_many(self, keys: Iterable[bytes], weight: float = 1.0) -> None:
        """add(key, weight) for each key; the watcher's hot path, hence the inlining."""
        table = self._table
        added = 0
        for key in keys:
            added += 1
            entry = table.get(key)
            if entry is not None:
                entry[0] += weight
            else:
                self._insert(key, weight)
        self.total += added * weight

    def _insert(self, key: bytes, weight: float) -> None:
        if len(self._table) < self.capacity:
            self._table[key] = [weight, 0.0]
            heapq.heappush(self._heap, (weight, key))
            return
        heap, table = self._heap, self._table
        while True:
            recorded, victim = heap[0]
            current = table[victim][0]
            if current == recorded:
                break
            heapq.heapreplace(heap, (current, victim))
        del table[victim]
        table[key] = [recorded + weight, recorded]
        heapq.heapreplace(heap, (recorded + weight, key))

    def min_count(self) -> float:
        """The smallest tracked count (0 while not full): an upper bound for any untracked key."""
        if len(self._table) < self.capacity:
            return 0.0
        return min(entry[0] for entry in self._table.values())

    def get(self, key: bytes) -> Counted | None:
        entry = self._table.get(key)
        return Counted(key, entry[0], entry[1]) if entry is not None else None

    def top(self, n: int, *, guaranteed: bool = False) -> list[Counted]:
        """The n largest counters, largest first (ties by key, for a stable order); with
        `guaranteed`, the n largest lower bounds (count - error) instead."""
        if guaranteed:
            best = heapq.nsmallest(
                n, self._table.items(), key=lambda kv: (kv[1][1] - kv[1][0], kv[0])
            )
        else:
            best = heapq.nsmallest(n, self._table.items(), key=lambda kv: (-kv[1][0], kv[0]))
        return [Counted(key, entry[0], entry[1]) for key, entry in best]

    def clear(self) -> None:
        self._table.clear()
        self._heap.clear()
        self.total = 0.0

    def scale(self, factor: float) -> None:
        """Multiply every counter (and the total) by `factor` > 0; order and bounds survive."""
        if factor <= 0:
            raise ValueError(f"factor must be positive, got {factor}")
        for entry in self._table.values():
            entry[0] *= factor
            entry[1] *= factor
        self.total *= factor
        self._heap = [(entry[0], key) for key, entry in self._table.items()]
        heapq.heapify(self._heap)


class DecayingHeavyHitters:
    """Space-Saving of exponentially decayed write counts; rates in events per second.

    Times are caller-supplied (time.monotonic() in the exporter) so tests control the clock.
    """

    def __init__(self, capacity: int, window_seconds: float, now: float) -> None:
        if window_seconds <= 0:
            raise ValueError(f"window_seconds must be positive, got {window_seconds}")
        self.window_seconds = window_seconds
        self.sketch = SpaceSaving(capacity)
        self._landmark = now
        self._started = now

    def __len__(self) -> int:
        return len(self.sketch)

    def _weight(self, now: float) -> float:
        exponent = (now - self._landmark) / self.window_seconds
        if exponent > RESCALE_EXPONENT:
            factor = math.exp(-exponent)
            if factor > 0.0:
                self.sketch.scale(factor)
            else:  # quiet for ~745 windows or more: everything has decayed below a float
                self.sketch.clear()
            self._landmark = now
            exponent = 0.0
        return math.exp(exponent)

    def add(self, key: bytes, now: float) -> None:
        self.sketch.add(key, self._weight(now))

    def add_many(self, keys: Iterable[bytes], now: float) -> None:
        """Events that happened at the same time, e.g. one watch response."""
        self.sketch.add_many(keys, self._weight(now))

    def _per_second(self, now: float) -> float:
        """Factor turning a stored (forward-decayed) count into a rate at `now`."""
        window = self.window_seconds
        observed = window * -math.expm1(-(now - self._started) / window)
        observed = max(observed, min(window, MIN_OBSERVED_SECONDS))
        return math.exp(-(now - self._landmark) / window) / observed

    def top(self, n: int, now: float, *, guaranteed: bool = False) -> list[Rate]:
        """The n highest rates (upper bounds), or with `guaranteed` the n highest lower bounds."""
        factor = self._per_second(now)
        return [
            Rate(c.key, c.count * factor, c.error * factor)
            for c in self.sketch.top(n, guaranteed=guaranteed)
        ]

    def rate(self, key: bytes, now: float) -> Rate | None:
        counted = self.sketch.get(key)
        if counted is None:
            return None
        factor = self._per_second(now)
        return Rate(key, counted.count * factor, counted.error * factor)

    def total_rate(self, now: float) -> float:
        """The decayed rate of all events together (exact: not subject to the sketch's error)."""
        return self.sketch.total * self._per_second(now)
