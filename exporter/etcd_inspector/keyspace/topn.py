"""A bounded top-N: the N largest (value, key) items seen, in O(N) memory (pure).

A min-heap whose root is the smallest kept item; a new item replaces it only when it is larger.
Hot loops can skip the call entirely with `if value > top.floor:`; `floor` is -inf until the
heap is full. Ties: once full, an item whose value equals the smallest kept value is not taken
(first come, first kept), so feeding keys in sorted order keeps the smallest keys among equals.
"""

from __future__ import annotations

import heapq
import math
from typing import Generic, TypeVar

K = TypeVar("K")


class TopN(Generic[K]):
    __slots__ = ("_heap", "floor", "n")

    def __init__(self, n: int) -> None:
        if n < 0:
            raise ValueError(f"top-N size must be 0 or more, got {n}")
        self.n = n
        self._heap: list[tuple[float, K]] = []
        # With n == 0 nothing may enter.
        self.floor: float = -math.inf if n else math.inf

    def push(self, value: float, key: K) -> None:
        heap = self._heap
        if len(heap) < self.n:
            heapq.heappush(heap, (value, key))
            if len(heap) == self.n:
                self.floor = heap[0][0]
        elif value > self.floor:
            heapq.heapreplace(heap, (value, key))
            self.floor = heap[0][0]

    def items(self) -> list[tuple[float, K]]:
        """The kept items, largest value first (equal values: smaller key first)."""
        return sorted(self._heap, key=lambda item: (-item[0], item[1]))

    def __len__(self) -> int:
        return len(self._heap)
