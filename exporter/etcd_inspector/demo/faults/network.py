"""Network faults on one member's peer links (see peerproxy for which bytes are whose)."""

from __future__ import annotations

from typing import ClassVar

from etcd_inspector.demo.faults.base import Fault
from etcd_inspector.demo.faults.cluster import FaultCluster
from etcd_inspector.demo.faults.peerproxy import Direction, LinkRule


class _PeerLinkFault(Fault):
    def __init__(self, cluster: FaultCluster, member: str, rule: LinkRule) -> None:
        super().__init__(cluster, member)
        self.rule = rule

    def unavailable(self) -> str | None:
        if self.member not in self.cluster.network.routes:
            return "the member's peer URL does not pass a harness proxy"
        if len(self.cluster.names) < 2:
            return "a single member has no peer links"
        return None

    def _inject(self) -> None:
        self.cluster.network.set_rule(self.member, self.rule)

    def _heal(self) -> None:
        self.cluster.network.set_rule(self.member, None)


class PeerDelay(_PeerLinkFault):
    """Every chunk on the member's peer links waits `delay` +- `jitter` seconds (one way)."""

    kind: ClassVar[str] = "peer-delay"

    def __init__(
        self,
        cluster: FaultCluster,
        member: str,
        delay: float,
        jitter: float = 0.0,
        direction: Direction = "both",
    ) -> None:
        super().__init__(cluster, member, LinkRule(delay=delay, jitter=jitter, direction=direction))


class PeerLoss(_PeerLinkFault):
    """A lossy link: each chunk kills its connection with chance `share`, and a new connection
    is refused with that chance (TCP has no lost packets to show, only broken connections)."""

    kind: ClassVar[str] = "peer-loss"

    def __init__(
        self, cluster: FaultCluster, member: str, share: float, direction: Direction = "both"
    ) -> None:
        if not 0.0 < share <= 1.0:
            raise ValueError(f"loss share must be in (0, 1], got {share}")
        super().__init__(cluster, member, LinkRule(loss=share, direction=direction))


class PeerBlackhole(_PeerLinkFault):
    """The member is cut off from every peer: nothing passes in either direction."""

    kind: ClassVar[str] = "peer-blackhole"
    silences_member: ClassVar[bool] = True

    def __init__(self, cluster: FaultCluster, member: str) -> None:
        super().__init__(cluster, member, LinkRule(blackhole=True))
