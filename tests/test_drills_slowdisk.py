"""Drill group `slowdisk`: a follower's data disk throttled to 5 write IOPS (cgroup v1 blkio),
WAL fsync p99 of seconds on that member only. One cluster; see tests/drillkit.py.

`etcd-inspector drill` watches the drill's Prometheus as a user would watch theirs during a
chaos experiment: started right before the injection with --duration the fault's hold, it must
report the same alerts firing (for the slow member) and resolving that Alertmanager delivered."""

from __future__ import annotations

import time
from pathlib import Path
from typing import Any

import pytest

from drill_catalog import FINDINGS, NEVER
from drillkit import (
    DRILL_FOR,
    FIRE_TIMEOUT,
    RESOLVE_TIMEOUT,
    DrillCommand,
    Expect,
    drill_stack,
    record_group,
    run_drill,
)
from etcd_inspector.demo.faults import DiskThrottle
from etcd_inspector.exitcodes import EXIT_OK

pytestmark = [pytest.mark.etcd, pytest.mark.prometheus, pytest.mark.drills]
GROUP = "slowdisk"
# How long the fault stays on: the alerts fire in ~20 s, inspect and the status page are
# checked after that; the drill command is told this --duration.
HOLD = 40.0
EXPECTED = ("etcdHighFsyncDurations", "etcdHighCommitDurations")


def test_a_follower_on_a_slow_disk(etcd_binary: str, tmp_path: Path) -> None:
    started = time.monotonic()
    with drill_stack(GROUP, tmp_path, etcd_binary) as stack:
        slow = stack.fc.followers()[0]
        fault = DiskThrottle(stack.fc, slow, write_iops=5)
        command = DrillCommand(
            stack, f"--expect={','.join(EXPECTED)}", f"--duration={HOLD:g}s", "--interval=1s",
            f"--resolve-timeout={RESOLVE_TIMEOUT:g}s",
        )  # fmt: skip

        def inject() -> None:
            command.start()
            fault.inject()

        expects = [
            Expect("etcdHighFsyncDurations", "warning", slow),
            Expect("etcdHighFsyncDurations", "critical", slow),
            Expect("etcdHighCommitDurations", "warning", slow),
        ]
        try:
            outcome = run_drill(
                stack, "a follower's disk at 5 write IOPS", inject, fault.heal, expects,
                {slow}, FINDINGS[GROUP], NEVER.get(GROUP, ()),
                inspect_probes=("status", "performance"), hold=HOLD,
            )  # fmt: skip
            code, report = command.report(timeout=HOLD + RESOLVE_TIMEOUT + 60)
        finally:
            command.stop()
    record_group(GROUP, time.monotonic() - started)

    # The command's clock starts at its first poll, a moment after the injection (run_drill's
    # clock, which Alertmanager's delivery times and `fault_on` are measured on).
    assert code == EXIT_OK, report
    assert report["passed"] and report["problems"] == [], report
    assert report["fault_seconds"] == HOLD and report["failed_polls"] == 0, report
    assert outcome.fault_on >= HOLD, outcome
    by_name: dict[str, dict[str, Any]] = {a["alert"]: a for a in report["expected"]}
    assert sorted(by_name) == sorted(EXPECTED), report
    for e in expects:
        alert = by_name[e.alert]
        assert alert["fired"] and alert["resolved"] and not alert["firing_at_start"], alert
        # Every instance of an expected alert is the slow member's (fsync: that member only).
        assert {i["labels"].get("member") for i in alert["instances"]} == {slow}, alert
        (mine,) = [i for i in alert["instances"] if i["labels"]["severity"] == e.severity]
        fired, resolved = mine["fired_after_seconds"], mine["resolved_after_seconds"]
        # Fires after the rules' `for:`, a little before Alertmanager delivers it (one poll,
        # the command's start-up, the delivery); resolves after the heal, past --duration.
        assert float(DRILL_FOR.removesuffix("s")) <= fired <= FIRE_TIMEOUT, mine
        assert outcome.fired[e] - 8 <= fired <= outcome.fired[e] + 1.5, (mine, outcome.fired[e])
        assert HOLD <= resolved <= outcome.fault_on + RESOLVE_TIMEOUT, mine
