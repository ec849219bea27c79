"""Drill group `kill`: a follower killed, then both followers killed, then four forced leader
moves, then the exporter itself paused. One cluster; see tests/drillkit.py."""

from __future__ import annotations

import signal
import time
from pathlib import Path

import pytest

from conftest import etcdctl
from drill_catalog import FINDINGS, NEVER
from drillkit import DrillStack, Expect, drill_stack, record_group, run_drill, wait_for
from etcd_inspector.demo.faults import Kill
from harness import member_ids

pytestmark = [pytest.mark.etcd, pytest.mark.prometheus, pytest.mark.drills]
GROUP = "kill"


def _settled(stack: DrillStack) -> None:
    wait_for(
        lambda: not stack.firing_now() and all(m.healthy() for m in stack.fc.cluster.members),
        "every member healthy and no alert firing", 60,
    )  # fmt: skip


def test_kills_leader_moves_and_a_paused_exporter(etcd_binary: str, tmp_path: Path) -> None:
    started = time.monotonic()
    with drill_stack(GROUP, tmp_path, etcd_binary) as stack:
        fc = stack.fc
        victim = fc.followers()[0]
        kill = Kill(fc, victim)
        run_drill(
            stack, "a follower killed", kill.inject, kill.heal,
            [
                Expect("EtcdInspectorMemberUnreachable", "warning", victim),
                Expect("etcdMembersDown", "warning"),
            ],
            {victim}, FINDINGS[GROUP], NEVER.get(GROUP, ()),
        )  # fmt: skip
        _settled(stack)

        leader = fc.leader()
        followers = [n for n in fc.names if n != leader]
        first = Kill(fc, followers[0], wait_healthy=False)
        # The harness refuses a fault that breaks quorum (FaultError): the second follower is
        # killed by hand, on purpose, and restarted on heal.
        second = fc.member(followers[1])

        def kill_both() -> None:
            first.inject()
            second.kill()

        def restart_both() -> None:
            second.start()
            first.heal()
            fc.cluster.wait_healthy()

        run_drill(
            stack, "both followers killed", kill_both, restart_both,
            [
                Expect("etcdInsufficientMembers", "critical"),
                # Without quorum the probes' linearizable reads fail: the scan says so.
                Expect("EtcdInspectorProbeFailing", "warning"),
            ],
            # The survivor has lost its quorum: etcdNoLeader for it is right.
            set(fc.names), FINDINGS[GROUP], NEVER.get(GROUP, ()),
        )  # fmt: skip
        _settled(stack)

        ids = member_ids(fc.cluster)

        def move_leader_four_times() -> None:
            for _ in range(4):
                current = fc.leader()
                target = next(n for n in fc.names if n != current)
                etcdctl(fc.cluster, "--endpoints", fc.member(current).client_url,
                        "move-leader", ids[target])  # fmt: skip
                wait_for(lambda t=target: fc.leader() == t, f"{target} leads", 10)  # type: ignore[misc]

        run_drill(
            stack, "four leader moves", move_leader_four_times, lambda: None,
            [Expect("etcdHighNumberOfLeaderChanges", "warning")], set(fc.names),
        )  # fmt: skip
        _settled(stack)

        run_drill(
            stack, "the exporter paused",
            lambda: stack.exporter.signal(signal.SIGSTOP),
            lambda: stack.exporter.signal(signal.SIGCONT),
            [Expect("EtcdInspectorDown", "warning")], set(),
        )  # fmt: skip
    record_group(GROUP, time.monotonic() - started)
