"""The current probe run's deadline, and each etcd call's share of it.

Apart from etcd/client.py (which re-exports both) so that a probe module can size its calls
without importing grpc and aetcd: `--help` and `snapshot` load every probe's spec.
"""

from __future__ import annotations

import asyncio
from contextvars import ContextVar

# Event-loop time by which the current background probe run must finish; set by the scheduler.
# A probe that makes several calls in a row sizes each from what is left, so one frozen member's
# call cannot use up the whole run (and with it the other members' answers).
RUN_DEADLINE: ContextVar[float | None] = ContextVar("etcd_inspector_run_deadline", default=None)


def call_timeout(default: float, share: float = 1.0) -> float:
    """`default`, capped at `share` of the time left in the current probe run (if any)."""
    deadline = RUN_DEADLINE.get()
    if deadline is None:
        return default
    return max(0.0, min(default, (deadline - asyncio.get_running_loop().time()) * share))
