"""When the inspector itself loads a cluster's members (HashKV of every member), so that the
keyspace scan's pacer does not mistake its own sibling probe for the cluster's clients.

A HashKV reads the member's whole backend under its read-transaction lock (etcd 3.4 and 3.5):
the backend's periodic commit queues behind it, and the scan's pages behind that commit, so
pages answered meanwhile are slow whoever else uses the cluster. The consistency probe runs
its HashKV inside `running()`; the scan asks `overlapped(asked)` of each page. One OwnLoad per
cluster runtime, shared by its probes through ProbeContext (asyncio: one thread, no lock).
"""

from __future__ import annotations

import math
import time
from collections.abc import Callable, Iterator
from contextlib import contextmanager


class OwnLoad:
    """Our own heavy requests in flight against one cluster, and when the last one ended."""

    def __init__(self, clock: Callable[[], float] = time.monotonic) -> None:
        self._clock = clock
        self._in_flight = 0
        self._last_ended = -math.inf

    @property
    def in_flight(self) -> int:
        return self._in_flight

    @contextmanager
    def running(self) -> Iterator[None]:
        """Around one heavy request (awaited inside: `with own_load.running(): await ...`)."""
        self._in_flight += 1
        try:
            yield
        finally:
            self._in_flight -= 1
            self._last_ended = self._clock()

    def overlapped(self, since: float) -> bool:
        """Whether any of our heavy requests ran at some moment from `since` (the clock's
        seconds) until now: one in flight now, or one that ended since then."""
        return self._in_flight > 0 or self._last_ended >= since
