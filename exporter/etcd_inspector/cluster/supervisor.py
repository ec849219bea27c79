"""One supervisor for every long-running task of a cluster: probe loops and probes' own tasks
(the hot-key watch).

A task is a coroutine factory run until stop(). If it raises (a bug: the loops themselves catch
what etcd can throw at them) or returns, the supervisor logs it with its traceback, counts a
restart and runs it again after an exponential backoff, so one broken task never dies quietly and
never spins. stop() cancels and waits, each task for a bounded time: shutdown stays prompt even
with frozen members.
"""

from __future__ import annotations

import asyncio
import contextlib
import logging
import time
from collections.abc import Callable, Coroutine
from typing import Any

log = logging.getLogger(__name__)

BACKOFF_MIN_SECONDS = 0.2
BACKOFF_MAX_SECONDS = 10.0
# A task that ran this long before it died starts its next backoff from the minimum again.
HEALTHY_RUN_SECONDS = 60.0
STOP_TIMEOUT_SECONDS = 5.0

TaskFactory = Callable[[], Coroutine[Any, Any, None]]


class Supervisor:
    def __init__(self, cluster: str) -> None:
        self.cluster = cluster
        self._tasks: dict[str, asyncio.Task[None]] = {}
        self.restarts: dict[str, int] = {}
        self.last_error: dict[str, str] = {}

    def running(self, name: str) -> bool:
        task = self._tasks.get(name)
        return task is not None and not task.done()

    def spawn(self, name: str, factory: TaskFactory) -> None:
        """Start `name` unless it is already running."""
        if self.running(name):
            return
        self._tasks[name] = asyncio.create_task(
            self._keep(name, factory), name=f"{self.cluster}/{name}"
        )

    async def _keep(self, name: str, factory: TaskFactory) -> None:
        backoff = BACKOFF_MIN_SECONDS
        while True:
            started = time.monotonic()
            try:
                await factory()
            except asyncio.CancelledError:
                raise
            except Exception as err:
                self.last_error[name] = f"{type(err).__name__}: {err}"
                log.exception(
                    "task died; restarting", extra={"cluster": self.cluster, "task": name}
                )
            else:
                self.last_error[name] = "ended"
                log.error("task ended; restarting", extra={"cluster": self.cluster, "task": name})
            self.restarts[name] = self.restarts.get(name, 0) + 1
            if time.monotonic() - started >= HEALTHY_RUN_SECONDS:
                backoff = BACKOFF_MIN_SECONDS
            await asyncio.sleep(backoff)
            backoff = min(backoff * 2, BACKOFF_MAX_SECONDS)

    async def stop(self, prefix: str = "") -> None:
        """Cancel every task whose name starts with `prefix` and wait for it (bounded)."""
        names = [n for n in self._tasks if n.startswith(prefix)]
        tasks = [self._tasks.pop(n) for n in names]
        for task in tasks:
            task.cancel()
        for task in tasks:
            with contextlib.suppress(asyncio.CancelledError, Exception):
                async with asyncio.timeout(STOP_TIMEOUT_SECONDS):
                    await task
