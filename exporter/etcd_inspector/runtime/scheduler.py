"""Runs every enabled probe of a cluster in the background, one supervised loop per probe.

Each run has its own deadline (asyncio.timeout); a failed or timed-out run is logged and
published as success=0 with its ErrorKind, never fatal to the loop. Runs of one probe never
overlap, so a frozen member can hold at most one in-flight request per member per probe. The
probe that provides the topology runs first; the others wait for its first round.

A probe's second run comes `phase_fraction` of its interval after the first, not a whole
interval: every cluster starts at once, and with the same interval their runs of one probe
would otherwise stay in step forever (60 clusters parsing their members' /metrics in the same
second every 15 s, the event loop blocked while a scrape waits). Prometheus spreads its targets
over the interval the same way, by a hash of the target.
"""

from __future__ import annotations

import asyncio
import contextlib
import functools
import logging
import time
import zlib
from collections.abc import Mapping
from dataclasses import dataclass, replace
from typing import Any

from etcd_inspector.cluster.state import ClusterState, ProbeOutcome
from etcd_inspector.cluster.supervisor import Supervisor
from etcd_inspector.cluster.topology import Topology
from etcd_inspector.errors import ErrorKind, ProbeError
from etcd_inspector.etcd.client import RUN_DEADLINE
from etcd_inspector.etcd.errors import EtcdError
from etcd_inspector.probes.base import Probe, ProbeContext, ProbeSpec

log = logging.getLogger(__name__)


@dataclass(frozen=True)
class ScheduledProbe:
    spec: ProbeSpec
    probe: Probe[Any, Any]
    interval: float
    timeout: float


def local_member_leads(topology: Topology, local_endpoint: str | None) -> bool:
    """Sidecar mode: True when this instance's own member is the leader (or no sidecar mode)."""
    return local_endpoint is None or topology.is_leader(local_endpoint)


# The second run comes at least this fraction of the interval after the first.
MIN_PHASE_FRACTION = 0.1


def phase_fraction(cluster: str, probe: str) -> float:
    """Where in its interval a cluster's probe runs, in [MIN_PHASE_FRACTION, 1): stable for a
    name (a restart keeps the spread), spread evenly over many names."""
    u = zlib.crc32(f"{cluster}\0{probe}".encode()) / 2**32
    return MIN_PHASE_FRACTION + (1 - MIN_PHASE_FRACTION) * u


def _failure(err: Exception, timeout: float) -> tuple[str, ErrorKind]:
    if isinstance(err, TimeoutError):
        return f"timed out after {timeout:g}s", ErrorKind.TIMEOUT
    if isinstance(err, ProbeError):
        return err.message, err.kind
    if isinstance(err, EtcdError):
        return str(err), err.kind
    return f"{type(err).__name__}: {err}", ErrorKind.INTERNAL


async def run_probe_once(
    scheduled: ScheduledProbe, ctx: ProbeContext, state: ClusterState
) -> ProbeOutcome:
    name = scheduled.spec.name
    start = time.monotonic()
    previous = state.outcomes.get(name)
    last_success = previous.last_success_at if previous else None
    deadline = RUN_DEADLINE.set(asyncio.get_running_loop().time() + scheduled.timeout)
    result: Any = None
    error: str | None = None
    kind: ErrorKind | None = None
    try:
        async with asyncio.timeout(scheduled.timeout):
            result = await scheduled.probe.run(ctx)
    except asyncio.CancelledError:
        raise
    except Exception as err:  # a probe bug or an etcd error: record it, keep the loop alive
        error, kind = _failure(err, scheduled.timeout)
        result = err.partial if isinstance(err, ProbeError) else None
        if kind is ErrorKind.INTERNAL:
            log.exception("probe bug", extra={"cluster": state.name, "probe": name})
    finally:
        RUN_DEADLINE.reset(deadline)
    now = time.time()
    outcome = ProbeOutcome(
        probe=name,
        success=error is None,
        duration_seconds=time.monotonic() - start,
        finished_at=now,
        last_success_at=now if error is None else last_success,
        result=result,
        error=error,
        error_kind=kind,
    )
    if error:
        log.warning(
            "probe run failed",
            extra={"cluster": state.name, "probe": name, "reason": kind, "err": error},
        )
    if scheduled.spec.provides_topology and isinstance(result, Topology):
        state.set_topology(replace(result, taken_at=now))
    state.publish(outcome)
    return outcome


class Scheduler:
    def __init__(
        self,
        state: ClusterState,
        base_ctx: ProbeContext,
        probes: Mapping[str, ScheduledProbe],
        local_endpoint: str | None = None,
        supervisor: Supervisor | None = None,
    ) -> None:
        self.state = state
        self.base_ctx = base_ctx
        self.probes = dict(probes)
        self.local_endpoint = local_endpoint
        self.supervisor = supervisor or base_ctx.supervisor or Supervisor(state.name)
        self.first_round = asyncio.Event()

    def context_for(self, name: str) -> ProbeContext:
        def progress(p: object) -> None:
            self.state.publish_progress(name, p)

        return replace(self.base_ctx, progress=progress, supervisor=self.supervisor)

    async def _loop(self, scheduled: ScheduledProbe) -> None:
        ctx = self.context_for(scheduled.spec.name)
        if not scheduled.spec.provides_topology:
            await self.first_round.wait()  # the others need the names the topology resolves
        active = False
        # After the first run (at once: scrapes and readiness want data), the phase.
        wait = scheduled.interval * phase_fraction(self.state.name, scheduled.spec.name)
        while True:
            started = time.monotonic()
            if scheduled.spec.cluster_wide and not local_member_leads(
                self.state.topology, self.local_endpoint
            ):
                if active:
                    await self._stand_down(scheduled)
                    active = False
            else:
                active = True
                await run_probe_once(scheduled, ctx, self.state)
            if scheduled.spec.provides_topology:
                self.first_round.set()
            await asyncio.sleep(max(0.0, wait - (time.monotonic() - started)))
            wait = scheduled.interval

    async def _stand_down(self, scheduled: ScheduledProbe) -> None:
        """Sidecar mode, leadership moved away: release what the probe holds (a watch) and
        withdraw its results, so only the leader's sidecar exports cluster-wide series."""
        name = scheduled.spec.name
        log.info("local member no longer leads; probe stands down", extra={"probe": name})
        with contextlib.suppress(Exception):
            async with asyncio.timeout(5):
                await scheduled.probe.close()
        self.state.forget(name)

    def start(self) -> None:
        if not any(s.spec.provides_topology for s in self.probes.values()):
            self.first_round.set()
        # the topology first: other probes use the member names it resolves
        for name in sorted(self.probes, key=lambda n: not self.probes[n].spec.provides_topology):
            self.supervisor.spawn(f"probe/{name}", functools.partial(self._loop, self.probes[name]))

    async def stop(self) -> None:
        await self.supervisor.stop()
        for scheduled in self.probes.values():
            with contextlib.suppress(Exception):
                async with asyncio.timeout(5):
                    await scheduled.probe.close()
