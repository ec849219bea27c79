"""Runs every enabled probe of a cluster in the background, one task per probe.

Each run has its own deadline (asyncio.timeout); a failed or timed-out run is logged and
published as success=0, never fatal to the loop. Runs of one probe never overlap, so a frozen
member can hold at most one in-flight request per member per probe.
"""

from __future__ import annotations

import asyncio
import contextlib
import logging
import time
from collections.abc import Mapping
from dataclasses import dataclass

from etcd_inspector.cluster.state import ClusterState, ProbeOutcome
from etcd_inspector.etcd.client import RUN_DEADLINE
from etcd_inspector.probes.base import Probe, ProbeContext, ProbeSpec

log = logging.getLogger(__name__)


@dataclass(frozen=True)
class ScheduledProbe:
    spec: ProbeSpec
    probe: Probe
    interval: float
    timeout: float


def local_member_leads(state: ClusterState, local_endpoint: str | None) -> bool:
    """Sidecar mode: True when this instance's own member is the leader (or no sidecar mode)."""
    if local_endpoint is None:
        return True
    status = state.latest("status")
    st = status.status_of(local_endpoint) if status is not None else None
    return st is not None and st.leader_id == st.member_id


async def run_probe_once(
    scheduled: ScheduledProbe, ctx: ProbeContext, state: ClusterState
) -> ProbeOutcome:
    name = scheduled.spec.name
    start = time.monotonic()
    previous = state.outcomes.get(name)
    last_success = previous.last_success_at if previous else None
    deadline = RUN_DEADLINE.set(asyncio.get_running_loop().time() + scheduled.timeout)
    try:
        async with asyncio.timeout(scheduled.timeout):
            result = await scheduled.probe.run(ctx)
    except TimeoutError:
        error = f"timed out after {scheduled.timeout:g}s"
        result = None
    except asyncio.CancelledError:
        raise
    except Exception as err:  # a probe bug or an etcd error: record it, keep the loop alive
        error = f"{type(err).__name__}: {err}"
        result = None
        log.debug("probe failed", exc_info=True, extra={"cluster": state.name, "probe": name})
    else:
        error = None
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
    )
    if error:
        log.warning("probe run failed", extra={"cluster": state.name, "probe": name, "err": error})
    state.publish(outcome)
    return outcome


class Scheduler:
    def __init__(
        self,
        state: ClusterState,
        base_ctx: ProbeContext,
        probes: Mapping[str, ScheduledProbe],
        local_endpoint: str | None = None,
    ) -> None:
        self.state = state
        self.base_ctx = base_ctx
        self.probes = dict(probes)
        self.local_endpoint = local_endpoint
        self._tasks: list[asyncio.Task[None]] = []
        self.first_round = asyncio.Event()

    def context_for(self, name: str) -> ProbeContext:
        def progress(p: object) -> None:
            self.state.publish_progress(name, p)

        return ProbeContext(
            cluster=self.base_ctx.cluster,
            members=self.base_ctx.members,
            state=self.state,
            key_labels=self.base_ctx.key_labels,
            progress=progress,
        )

    async def _loop(self, scheduled: ScheduledProbe) -> None:
        ctx = self.context_for(scheduled.spec.name)
        if scheduled.spec.name != "status":
            await self.first_round.wait()  # the others need the member names status resolves
        active = False
        while True:
            started = time.monotonic()
            if scheduled.spec.cluster_wide and not local_member_leads(
                self.state, self.local_endpoint
            ):
                if active:
                    await self._stand_down(scheduled)
                    active = False
            else:
                active = True
                await run_probe_once(scheduled, ctx, self.state)
            if scheduled.spec.name == "status":
                self.first_round.set()
            await asyncio.sleep(max(0.0, scheduled.interval - (time.monotonic() - started)))

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
        if "status" not in self.probes:
            self.first_round.set()
        # status first: other probes use the member names it resolves
        for name in sorted(self.probes, key=lambda n: n != "status"):
            task = asyncio.create_task(self._loop(self.probes[name]), name=f"probe-{name}")
            self._tasks.append(task)

    async def stop(self) -> None:
        for task in self._tasks:
            task.cancel()
        for task in self._tasks:
            with contextlib.suppress(asyncio.CancelledError, Exception):
                await task
        self._tasks.clear()
        for scheduled in self.probes.values():
            with contextlib.suppress(Exception):
                async with asyncio.timeout(5):
                    await scheduled.probe.close()
