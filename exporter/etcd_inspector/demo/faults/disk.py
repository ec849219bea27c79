"""A full disk: the member's tmpfs filled to the last byte (the data dir must live on one)."""

from __future__ import annotations

import contextlib
import errno
import os
from pathlib import Path
from typing import ClassVar

from etcd_inspector.demo.faults.base import Fault
from etcd_inspector.demo.faults.cluster import FaultCluster
from etcd_inspector.demo.faults.owned import owned_name

FILL_CHUNK = 1 << 20


class DiskFull(Fault):
    """Fill the member's size-limited tmpfs with a filler file until ENOSPC; heal deletes it
    (and restarts the member if it exited). etcd 3.4 writes inside its preallocated 64 MB WAL
    segment, so the first write that fails is the backend's: `failed to commit tx ... no space
    left on device` is fatal and the process exits."""

    kind: ClassVar[str] = "disk-full"
    silences_member: ClassVar[bool] = True

    def __init__(self, cluster: FaultCluster, member: str, restart: bool = True) -> None:
        super().__init__(cluster, member)
        self.restart = restart  # etcd exits on ENOSPC (a fatal commit): heal starts it again
        self.filler: Path | None = None

    def unavailable(self) -> str | None:
        if self.member not in self.cluster.mounts:
            return "the member's data dir is not on a harness tmpfs (FaultCluster tmpfs_bytes)"
        return None

    def _inject(self) -> None:
        self.filler = self.cluster.mounts[self.member] / owned_name("filler")
        block = b"\0" * FILL_CHUNK
        fd = os.open(self.filler, os.O_WRONLY | os.O_CREAT | os.O_TRUNC, 0o600)
        try:
            size = FILL_CHUNK
            while size:
                try:
                    os.write(fd, block[:size])
                except OSError as err:
                    if err.errno != errno.ENOSPC:
                        raise
                    size //= 2  # down to the last byte
        finally:
            os.close(fd)

    def free_bytes(self) -> int:
        st = os.statvfs(self.cluster.mounts[self.member])
        return st.f_bavail * st.f_frsize

    def _heal(self) -> None:
        if self.filler is not None:
            with contextlib.suppress(FileNotFoundError):
                self.filler.unlink()
        self.filler = None
        member = self.cluster.member(self.member)
        if self.restart and not member.running:
            member.stop()  # reap the exited process
            member.start()
            self.cluster.cluster.wait_healthy(members=[member])
