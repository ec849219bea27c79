"""Resource faults through cgroup v1: a slow disk (blkio throttle) and a starved CPU (CFS quota)."""

from __future__ import annotations

import os
from pathlib import Path
from typing import ClassVar

from etcd_inspector.demo.faults.base import Fault
from etcd_inspector.demo.faults.cgroups import ProcessCgroup, controller_missing
from etcd_inspector.demo.faults.cluster import FaultCluster

CFS_PERIOD_US = 100_000


def block_device(path: Path) -> tuple[int, int] | None:
    """major:minor of the whole disk holding `path` (blkio throttles disks, not partitions);
    None when `path` is on no block device (tmpfs, overlay's anonymous devices)."""
    dev = os.stat(path).st_dev
    major, minor = os.major(dev), os.minor(dev)
    sysfs = Path(f"/sys/dev/block/{major}:{minor}")
    if not sysfs.exists():
        return None
    if (sysfs / "partition").exists():
        parent = (sysfs.resolve().parent / "dev").read_text().strip()
        pmajor, pminor = parent.split(":")
        return int(pmajor), int(pminor)
    return major, minor


class _CgroupFault(Fault):
    controller: ClassVar[str] = ""

    def __init__(self, cluster: FaultCluster, member: str) -> None:
        super().__init__(cluster, member)
        self.group = ProcessCgroup(self.controller, member)

    def unavailable(self) -> str | None:
        if not self.cluster.member(self.member).running:
            return "the member is not running"
        return controller_missing(self.controller)

    def _enter(self) -> None:
        process = self.cluster.member(self.member).process
        assert process is not None
        self.group.enter(process.pid)

    def _heal(self) -> None:
        self.group.remove()


class DiskThrottle(_CgroupFault):
    """At most `write_iops` writes per second to the disk under the member's data dir: every
    WAL fdatasync and backend commit waits its turn (the writes are issued by etcd itself, so
    cgroup v1 charges them to its group)."""

    kind: ClassVar[str] = "disk-throttle"
    controller: ClassVar[str] = "blkio"

    def __init__(self, cluster: FaultCluster, member: str, write_iops: int) -> None:
        super().__init__(cluster, member)
        self.write_iops = write_iops

    def device(self) -> tuple[int, int] | None:
        return block_device(self.cluster.member(self.member).data_dir)

    def unavailable(self) -> str | None:
        if self.device() is None:
            return "the member's data dir is on no block device (tmpfs?)"
        return super().unavailable()

    def _inject(self) -> None:
        device = self.device()
        assert device is not None
        self._enter()
        major, minor = device
        self.group.write("blkio.throttle.write_iops_device", f"{major}:{minor} {self.write_iops}")


class CpuQuota(_CgroupFault):
    """The member gets `share` of one CPU per 100 ms period (cpu.cfs_quota_us)."""

    kind: ClassVar[str] = "cpu-quota"
    controller: ClassVar[str] = "cpu"

    def __init__(self, cluster: FaultCluster, member: str, share: float) -> None:
        super().__init__(cluster, member)
        if not 0.0 < share < 64:
            raise ValueError(f"CPU share must be positive, got {share}")
        self.share = share

    def _inject(self) -> None:
        self._enter()
        self.group.write("cpu.cfs_period_us", str(CFS_PERIOD_US))
        self.group.write("cpu.cfs_quota_us", str(max(1000, int(self.share * CFS_PERIOD_US))))

    def throttled_seconds(self) -> float:
        """Time the member's group spent throttled so far (cpu.stat throttled_time)."""
        for line in self.group.read("cpu.stat").splitlines():
            key, value = line.split()
            if key == "throttled_time":
                return int(value) / 1e9
        return 0.0
