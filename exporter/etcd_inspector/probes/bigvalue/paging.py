"""Which range each page of the scan asks for (pure): see Pager."""

from __future__ import annotations

import os
from collections.abc import Sequence
from math import ceil

from etcd_inspector.errors import ErrorKind, ProbeError
from etcd_inspector.etcd.ranges import prefix_range_end
from etcd_inspector.etcd.types import KeyValueLike

# As a range_end: no upper bound (etcd's convention).
NO_END = b"\0"

# A page may ask for a range holding up to this many keys when that saves a request: etcd 3.4
# walks ~0.4 us per key it counts (it collects every revision; pacing.py's COUNT_WEIGHT) and
# answers a request in ~0.5-1 ms (3 members on 2 cores; BENCHMARKS.md), so a few thousand keys
# cost about one request, and hold writers up for as long. 10,000 until the in-memory model
# showed pages of 100 keys (a busy cluster's) counting 33-36x the keyspace: 13-15x at 3,000,
# with requests per page's worth of keys 1.03-1.28x at pages of 100 and 1,000 (2,000: 1.75x).
WALK_BUDGET = 3_000
# A guessed range aims at this many pages' worth of keys, so a guess somewhat off still fills one.
GUESS_PAGES = 2
# A guess that made etcd count this many walk budgets sends the next one down to the depth
# where the page's own keys part.
DEEP_CROWD = 8
# Ranges whose key count is known, kept at most (nested; about a dozen in practice).
MAX_KNOWN_RANGES = 32


class ScanFailed(ProbeError):
    def __init__(self, message: str) -> None:
        super().__init__(ErrorKind.SCAN_FAILED, message)


def scan_ranges(prefixes: Sequence[str]) -> tuple[tuple[bytes, bytes], ...]:
    """[start, end) ranges to scan, in key order; a prefix inside another one is dropped so
    that no key is counted twice."""
    if not prefixes or "" in prefixes:
        return ((NO_END, NO_END),)
    kept: list[bytes] = []
    for prefix in sorted({p.encode() for p in prefixes}):
        if not (kept and prefix.startswith(kept[-1])):
            kept.append(prefix)
    return tuple((p, prefix_range_end(p)) for p in kept)


def earlier_end(a: bytes, b: bytes) -> bytes:
    """The smaller of two range ends, where NO_END is +infinity."""
    if a == NO_END:
        return b
    if b == NO_END:
        return a
    return min(a, b)


def key_before(key: bytes, bound: bytes) -> bool:
    """key < bound, where the bound NO_END is +infinity."""
    return bound == NO_END or key < bound


def common_prefix_length(a: bytes, b: bytes) -> int:
    # Byte-wise on purpose: keys are bytes, not paths.
    return len(os.path.commonprefix([a, b]))  # noqa: RUF071


def sibling_bound(key: bytes, depth: int, width: int) -> bytes:
    """A range_end `width` children on from key's own at byte `depth`: the rest of key's child
    there and the next width - 1 children, key[:depth] + (key[depth] + width). Past 0xff, the end
    of key[:depth]'s whole subtree (NO_END when nothing follows it). Always after key."""
    depth = min(depth, len(key) - 1)
    child = key[depth] + width
    if child <= 0xFF:
        return key[:depth] + bytes([child])
    return prefix_range_end(key[:depth])


class Pager:
    """Chooses each page's [key, range_end) for a scan of [start, end), from the pages read so
    far; pure, no I/O.

    etcd walks the whole requested range to count it (module docstring), so a range should hold
    a few pages' worth of keys, never the rest of the keyspace. Three sources for range_end, in
    this order:

      * a range whose key count is known (etcd counted it for an earlier page, less the keys
        read since) and holds at most max(WALK_BUDGET, GUESS_PAGES pages): the widest such;
      * after a full page: the page's keys share a byte prefix and spread over the children
        c_first..c_last at the next byte; assume the same density and take about GUESS_PAGES
        pages' worth of children from c_last on (sequential ids, random names, binary keys);
      * after a range ran dry: a guess of a couple of children at the byte depth where keys
        continued last time (a '/'-directory boundary, a decimal digit ...). A guess that finds
        nothing moves one byte up, one that finds too few widens, one that finds a crowd sends
        the next guess one byte deeper.

    With nothing known, the first range is the whole [start, end), which etcd counts once;
    `opening`, left by an earlier scan of the same range, is a first range_end that spares it.

    Correct whatever the choice: every range_end is after key and at most end, a page that
    stops early continues right after its last key, and a range read to the end continues at
    its range_end, so no key is skipped or read twice. The choices only decide how many keys
    etcd walks per page (budgeted as above) and how many requests come back short or empty.
    """

    def __init__(
        self,
        start: bytes,
        end: bytes,
        walk_budget: int | None = None,
        opening: bytes | None = None,
    ) -> None:
        self.key = start
        self.done = False
        # Nothing is known yet: the first page counts the whole range, unless an earlier scan
        # left its `opening`, the range_end of the first small range that found keys.
        self.range_end = end
        if opening is not None and opening != NO_END and key_before(start, opening):
            self.range_end = earlier_end(opening, end)
        self.opening: bytes | None = None
        self._end = end
        self._walk_budget = WALK_BUDGET if walk_budget is None else walk_budget
        # (range_end, keys in [key, range_end)), by range_end; counts fall as keys are read
        self._known: list[tuple[bytes, int]] = []
        self._last: bytes | None = None  # the last key read
        self._hint: tuple[int, int] | None = None  # (depth, width) to guess first
        self._guess: tuple[int, int] | None = None  # set while range_end is a guess

    def advance(self, kvs: Sequence[KeyValueLike], more: bool, count: int, limit: int) -> None:
        """Account the page just read from [key, range_end) (`count`: etcd's count of that
        range, `limit`: the page size asked for) and choose the next range, or set done."""
        bound, returned = self.range_end, len(kvs)
        guess, self._guess = self._guess, None
        budget = max(self._walk_budget, GUESS_PAGES * limit)
        if kvs:
            self._learn(kvs[0].key, kvs[-1].key, guess, count / budget)
            self._last = kvs[-1].key
            if self.opening is None and count <= budget:
                self.opening = bound
        if more:
            key = kvs[-1].key + b"\0"
        elif bound == self._end:
            self.done = True
            return
        else:
            key = bound
        # Known ranges still ahead hold `returned` keys fewer: the page lay inside all of them.
        known = [(end, left - returned) for end, left in self._known if key_before(key, end)]
        if more:
            known.append((bound, count - returned))
            known.sort(key=lambda k: (k[0] == NO_END, k[0]))
        self._known = known[:MAX_KNOWN_RANGES]  # a bound on memory; only the widest are lost
        fits = [end for end, left in self._known if left <= budget]
        if fits:
            range_end = fits[-1]
        elif more:
            range_end = earlier_end(self._after_full_page(kvs, limit), bound)
        else:
            range_end = earlier_end(self._guess_after(key, guess, returned, limit), self._end)
        if not key_before(key, range_end):  # a bug here would skip or repeat keys: stop instead
            raise ScanFailed(f"paging went wrong: range_end {range_end!r} <= key {key!r}")
        self.key, self.range_end = key, range_end

    def _learn(
        self, first: bytes, last: bytes, guess: tuple[int, int] | None, crowd: float
    ) -> None:
        """Remember the byte depth at which this page's first key leaves the previous page's
        last: where to look first when a range runs dry. `crowd`: the keys etcd counted for
        the page over the walk budget."""
        if self._last is None:
            return
        if guess is not None and crowd > 1:
            # The guess was too shallow: one byte deeper next time; and where it held a
            # multitude, one byte above where this page's own keys part, or the next guesses
            # would walk that directory again and again, a byte deeper each (a small directory
            # before a big one: each of ~6 pages counted the whole big one).
            depth = guess[0] + 1
            if crowd > DEEP_CROWD:
                depth = max(depth, common_prefix_length(first, last) - 1)
            self._hint = (depth, 2)
            return
        depth = common_prefix_length(self._last, first)
        was = guess or self._hint
        self._hint = (depth, was[1] if was is not None and was[0] == depth else 2)

    @staticmethod
    def _after_full_page(kvs: Sequence[KeyValueLike], limit: int) -> bytes:
        """About GUESS_PAGES pages' worth of children after the page, at the byte where the
        page's first and last keys part, at the page's own density."""
        first, last = kvs[0].key, kvs[-1].key
        depth = common_prefix_length(first, last)
        if depth == len(last):  # a page of one key
            return sibling_bound(last, depth - 1, 2)
        # when first is a prefix of last, count it as the child just before last's
        low = first[depth] if depth < len(first) else last[depth] - 1
        return sibling_bound(
            last, depth, ceil((last[depth] - low) * GUESS_PAGES * limit / len(kvs))
        )

    def _guess_after(
        self, key: bytes, guess: tuple[int, int] | None, returned: int, limit: int
    ) -> bytes:
        """Where to look after a range that ran dry at key: the hint first, then up or wider
        as the last guess turned out."""
        if guess is None:
            depth, width = self._hint or (len(key) - 2, 2)
        elif returned == 0:  # found nothing: one byte up (at the top, wider)
            depth, width = (guess[0] - 1, 2) if guess[0] > 0 else (0, guess[1] * 4)
        else:  # found too few: wider, at most 4 times
            factor = min(4.0, GUESS_PAGES * limit / returned)
            depth, width = guess[0], max(guess[1] + 1, ceil(guess[1] * factor))
            self._hint = (depth, width)
        depth = max(0, min(depth, len(key) - 1))
        self._guess = (depth, width)
        return sibling_bound(key, depth, width)
