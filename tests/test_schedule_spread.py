"""Probe runs of many clusters spread over the interval instead of all at once (scheduler.py)."""

from __future__ import annotations

import asyncio
import itertools
from collections.abc import Iterable
from typing import Any

from prometheus_client.metrics_core import Metric

from etcd_inspector.cluster.state import ClusterState
from etcd_inspector.probes.base import Probe, ProbeContext, ProbeSpec
from etcd_inspector.runtime.scheduler import (
    MIN_PHASE_FRACTION,
    ScheduledProbe,
    Scheduler,
    phase_fraction,
)


def test_phase_is_stable_in_range_and_spread_over_a_fleet() -> None:
    names = [f"fleet-{i:03d}" for i in range(1, 61)]
    fractions = sorted(phase_fraction(n, "performance") for n in names)
    assert phase_fraction("fleet-001", "performance") == phase_fraction("fleet-001", "performance")
    assert all(MIN_PHASE_FRACTION <= f < 1 for f in fractions)
    # 60 clusters: no gap of more than a tenth of the interval without a run.
    assert max(b - a for a, b in itertools.pairwise(fractions)) < 0.1
    assert fractions[0] < MIN_PHASE_FRACTION + 0.1 and fractions[-1] > 0.9
    # The probes of one cluster are not in step either.
    assert phase_fraction("fleet-001", "status") != phase_fraction("fleet-001", "quota")


class Clock(Probe[Any, None]):
    """Records the loop time of each run."""

    def __init__(self, options: Any) -> None:
        super().__init__(options)
        self.runs: list[float] = []

    async def run(self, ctx: ProbeContext) -> None:
        self.runs.append(asyncio.get_running_loop().time())

    def metrics(self, cluster: str, result: None) -> Iterable[Metric]:
        return []


async def test_second_run_at_the_phase_then_every_interval() -> None:
    interval = 0.5
    spec = ProbeSpec(name="clock", probe_type=Clock, description="records run times")
    probes: dict[str, Clock] = {}
    schedulers = []
    for name in ("fleet-001", "fleet-002"):
        probe = Clock(None)
        probes[name] = probe
        state = ClusterState(name, ("http://127.0.0.1:2379",))
        ctx = ProbeContext(cluster=name, members=[], state=state)
        scheduled = ScheduledProbe(spec=spec, probe=probe, interval=interval, timeout=1.0)
        schedulers.append(Scheduler(state, ctx, {"clock": scheduled}))
    for s in schedulers:
        s.start()
    await asyncio.sleep(2 * interval + 0.2)
    for s in schedulers:
        await s.stop()
    for name, probe in probes.items():
        first, second, third = probe.runs[:3]
        phase = interval * phase_fraction(name, "clock")
        assert abs((second - first) - phase) < 0.05, (name, probe.runs)
        assert abs((third - second) - interval) < 0.05, (name, probe.runs)
    # Both started together; their second runs do not.
    assert abs(probes["fleet-001"].runs[1] - probes["fleet-002"].runs[1]) > 0.02
