"""Drill group `slowdisk`: a follower's data disk throttled to 5 write IOPS (cgroup v1 blkio),
WAL fsync p99 of seconds on that member only. One cluster; see tests/drillkit.py."""

from __future__ import annotations

import time
from pathlib import Path

import pytest

from drill_catalog import FINDINGS, NEVER
from drillkit import Expect, drill_stack, record_group, run_drill
from etcd_inspector.demo.faults import DiskThrottle

pytestmark = [pytest.mark.etcd, pytest.mark.prometheus, pytest.mark.drills]
GROUP = "slowdisk"


def test_a_follower_on_a_slow_disk(etcd_binary: str, tmp_path: Path) -> None:
    started = time.monotonic()
    with drill_stack(GROUP, tmp_path, etcd_binary) as stack:
        slow = stack.fc.followers()[0]
        fault = DiskThrottle(stack.fc, slow, write_iops=5)
        run_drill(
            stack, "a follower's disk at 5 write IOPS", fault.inject, fault.heal,
            [
                Expect("etcdHighFsyncDurations", "warning", slow),
                Expect("etcdHighFsyncDurations", "critical", slow),
                Expect("etcdHighCommitDurations", "warning", slow),
            ],
            {slow}, FINDINGS[GROUP], NEVER.get(GROUP, ()),
            inspect_probes=("status", "performance"),
        )  # fmt: skip
    record_group(GROUP, time.monotonic() - started)
