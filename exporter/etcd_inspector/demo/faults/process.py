"""Process faults: a crash (SIGKILL, healed by a restart), a pause (SIGSTOP or cgroup freezer)."""

from __future__ import annotations

import time
from typing import ClassVar, Literal

from etcd_inspector.demo.faults.base import Fault
from etcd_inspector.demo.faults.cgroups import ProcessCgroup, controller_missing
from etcd_inspector.demo.faults.cluster import FaultCluster
from etcd_inspector.demo.faults.owned import FaultError

PauseMethod = Literal["sigstop", "freezer"]


class Kill(Fault):
    """SIGKILL, like a crashed machine; heal restarts it on the same data dir."""

    kind: ClassVar[str] = "kill"
    silences_member: ClassVar[bool] = True

    def __init__(self, cluster: FaultCluster, member: str, wait_healthy: bool = True) -> None:
        super().__init__(cluster, member)
        self.wait_healthy = wait_healthy

    def unavailable(self) -> str | None:
        if not self.cluster.member(self.member).running:
            return "the member is not running"
        return None

    def _inject(self) -> None:
        self.cluster.member(self.member).kill()

    def _heal(self) -> None:
        member = self.cluster.member(self.member)
        member.start()
        if self.wait_healthy:
            self.cluster.cluster.wait_healthy(members=[member])


class Pause(Fault):
    """The process keeps its sockets but runs nothing: SIGSTOP, or the cgroup v1 freezer
    (which a process cannot notice or undo, unlike SIGSTOP/SIGCONT)."""

    kind: ClassVar[str] = "pause"
    silences_member: ClassVar[bool] = True

    def __init__(self, cluster: FaultCluster, member: str, method: PauseMethod = "sigstop") -> None:
        super().__init__(cluster, member)
        self.method = method
        self.group = ProcessCgroup("freezer", member)

    @property
    def name(self) -> str:
        return f"{self.kind}-{self.method}:{self.member}"

    def unavailable(self) -> str | None:
        if not self.cluster.member(self.member).running:
            return "the member is not running"
        return controller_missing("freezer") if self.method == "freezer" else None

    def _inject(self) -> None:
        member = self.cluster.member(self.member)
        if self.method == "sigstop":
            member.freeze()
            return
        assert member.process is not None
        self.group.enter(member.process.pid)
        self.group.write("freezer.state", "FROZEN")
        deadline = time.monotonic() + 5.0
        while self.group.read("freezer.state").strip() != "FROZEN":
            if time.monotonic() > deadline:
                raise FaultError(f"{self.name}: freezer did not reach FROZEN")
            time.sleep(0.01)

    def _heal(self) -> None:
        if self.method == "sigstop":
            self.cluster.member(self.member).thaw()
        else:
            self.group.remove()  # thaws, moves the process back, removes the group
