"""Drill group `slowpeer`: 200 ms (+-20 ms) on every peer link of the leader. One cluster; see
tests/drillkit.py."""

from __future__ import annotations

import time
from pathlib import Path

import pytest

from drill_catalog import EFFECT_CRITICALS, FINDINGS, NEVER
from drillkit import Expect, drill_stack, record_group, run_drill
from etcd_inspector.demo.faults import PeerDelay

pytestmark = [pytest.mark.etcd, pytest.mark.prometheus, pytest.mark.drills]
GROUP = "slowpeer"


def test_the_leaders_peer_links_slowed(etcd_binary: str, tmp_path: Path) -> None:
    started = time.monotonic()
    # grpc_server_handling_seconds (etcdGRPCRequestsSlow) is only exported with extensive metrics.
    with drill_stack(GROUP, tmp_path, etcd_binary, etcd_args=("--metrics=extensive",)) as stack:
        leader = stack.fc.leader()
        fault = PeerDelay(stack.fc, leader, delay=0.2, jitter=0.02)
        run_drill(
            stack, "the leader's peer links at 200 ms", fault.inject, fault.heal,
            [
                Expect("etcdMemberCommunicationSlow", "warning", leader),
                # Every write waits for the leader's delayed appends: slow on every member (a
                # warning: the effect; the cause is the alert above).
                Expect("etcdGRPCRequestsSlow", "warning", leader),
            ],
            {leader}, FINDINGS[GROUP], NEVER.get(GROUP, ()),
            allow_critical=EFFECT_CRITICALS.get(GROUP, ()),
        )  # fmt: skip
    record_group(GROUP, time.monotonic() - started)
