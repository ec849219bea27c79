"""Drill group `partition`: a follower cut off from its peers (PeerBlackhole), clients still
reach it. One cluster; see tests/drillkit.py for the stack and tests/drill_catalog.py."""

from __future__ import annotations

import time
from pathlib import Path

import pytest

from drill_catalog import FINDINGS, NEVER
from drillkit import Expect, drill_stack, record_group, run_drill
from etcd_inspector.demo.faults import PeerBlackhole

pytestmark = [pytest.mark.etcd, pytest.mark.prometheus, pytest.mark.drills]
GROUP = "partition"


def test_a_follower_cut_off_from_its_peers(etcd_binary: str, tmp_path: Path) -> None:
    started = time.monotonic()
    with drill_stack(GROUP, tmp_path, etcd_binary) as stack:
        cut = stack.fc.followers()[0]
        fault = PeerBlackhole(stack.fc, cut)
        run_drill(
            stack, "follower cut off", fault.inject, fault.heal,
            [
                Expect("etcdNoLeader", "critical", cut),
                # The writer keeps writing through the others (a third of its puts time out
                # on the cut member): over 1000 revisions behind within ~30 s.
                Expect("EtcdInspectorMemberRevisionLag", "warning", cut),
                Expect("EtcdInspectorMemberAppliedIndexLag", "warning", cut),
                # The writer's puts through the cut member fail as proposals there.
                Expect("etcdHighNumberOfFailedProposals", "warning", cut),
            ],
            {cut}, FINDINGS[GROUP], NEVER.get(GROUP, ()),
        )  # fmt: skip
    record_group(GROUP, time.monotonic() - started)
