"""What every fault is: a small named object that injects, heals, and says whether a cluster can
take it (after etcd's tests/robustness/failpoint). `injected()` always heals, also when the
body raises."""

from __future__ import annotations

import contextlib
from collections.abc import Iterator
from typing import TYPE_CHECKING, ClassVar

from etcd_inspector.demo.faults.owned import FaultError

if TYPE_CHECKING:
    from etcd_inspector.demo.faults.cluster import FaultCluster

class Fault:
    """A named fault on one member. Subclasses set `kind` and implement `_inject`, `_heal` and
    (optionally) `unavailable`."""

    kind: ClassVar[str] = "fault"
    # The member stops taking part in raft (cut off, dead, paused, out of disk): the cluster
    # refuses such a fault when it would leave fewer members than a quorum.
    silences_member: ClassVar[bool] = False

    def __init__(self, cluster: FaultCluster, member: str) -> None:
        self.cluster = cluster
        self.member = member
        self.active = False

    @property
    def name(self) -> str:
        return f"{self.kind}:{self.member}"

    def unavailable(self) -> str | None:
        """Why this cluster cannot take the fault (None: it can). Checked before inject."""
        return None

    def _inject(self) -> None:
        raise NotImplementedError

    def _heal(self) -> None:
        raise NotImplementedError

    def cluster_unavailable(self) -> str | None:
        """Why the cluster as it is now (other faults included) cannot take this one."""
        names = self.cluster.names
        if self.member not in names:
            return f"no member {self.member!r} (members: {', '.join(names)})"
        if any(f.member == self.member and f.kind == self.kind for f in self.cluster.active):
            return "the same fault is already on this member"
        if self.silences_member:
            silent = {f.member for f in self.cluster.active if f.silences_member} | {self.member}
            if len(names) - len(silent) <= len(names) // 2:
                return (
                    f"silencing {', '.join(sorted(silent))} would leave "
                    f"{len(names) - len(silent)} of {len(names)} members: no quorum"
                )
        return None

    def inject(self) -> None:
        reason = self.cluster_unavailable() or self.unavailable()
        if reason is not None:
            raise FaultError(f"{self.name}: {reason}")
        self.active = True  # before _inject: a half-done inject is still healed
        self.cluster.active.append(self)
        self._inject()

    def heal(self) -> None:
        if self.active:
            self.active = False
            try:
                self._heal()
            finally:
                self.cluster.active.remove(self)

    @contextlib.contextmanager
    def injected(self) -> Iterator[Fault]:
        try:
            self.inject()
            yield self
        finally:
            self.heal()

    def __repr__(self) -> str:
        return f"<{type(self).__name__} {self.name}{' active' if self.active else ''}>"
