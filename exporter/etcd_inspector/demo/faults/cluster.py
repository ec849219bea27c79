"""A local cluster wired for faults: peer URLs through proxies, data dirs optionally on tmpfs."""

from __future__ import annotations

import contextlib
import time
from collections.abc import Mapping
from pathlib import Path
from typing import Any, ClassVar, Protocol

from etcd_inspector.demo.faults.measure import read_metrics
from etcd_inspector.demo.faults.mounts import mount_tmpfs, unmount
from etcd_inspector.demo.faults.peerproxy import PeerNetwork, fetch_member_ids
from etcd_inspector.demo.faults.processes import owner_env
from etcd_inspector.demo.localcluster import (
    HEALTH_TIMEOUT_SECONDS,
    LocalCluster,
    LocalMember,
    build_cluster,
)


class ActiveFault(Protocol):
    """What the cluster knows of an injected fault (base.Fault; named here by shape, so the
    faults can know their cluster without an import cycle)."""

    member: str
    kind: ClassVar[str]
    silences_member: ClassVar[bool]

    def heal(self) -> None: ...


class FaultCluster:
    """Owns a LocalCluster, its peer proxies and its tmpfs mounts; `stop()` removes them all."""

    def __init__(
        self, cluster: LocalCluster, network: PeerNetwork, mounts: Mapping[str, Path]
    ) -> None:
        self.cluster = cluster
        self.network = network
        self.mounts = dict(mounts)  # member name -> tmpfs mountpoint holding its data dir
        self.active: list[ActiveFault] = []  # injected and not yet healed

    @classmethod
    def build(
        cls,
        size: int = 3,
        *,
        base_dir: Path,
        tmpfs_bytes: Mapping[str, int] | None = None,
        **kwargs: Any,
    ) -> FaultCluster:
        """Lay out a cluster whose members advertise proxy ports; members named in
        `tmpfs_bytes` get their data dir on a tmpfs of that size (mounted here)."""
        base_dir.mkdir(parents=True, exist_ok=True)
        mounts: dict[str, Path] = {}
        try:
            for name, size_bytes in (tmpfs_bytes or {}).items():
                mountpoint = base_dir / f"{name}.tmpfs"
                mount_tmpfs(mountpoint, size_bytes, name)
                mounts[name] = mountpoint
            cluster = build_cluster(
                size,
                base_dir=base_dir,
                proxied_peers=True,
                data_dirs={name: mp / "data.etcd" for name, mp in mounts.items()},
                **kwargs,
            )
        except BaseException:
            for mountpoint in mounts.values():
                unmount(mountpoint)
            raise
        for m in cluster.members:
            m.env.update(owner_env())
        routes = {m.name: (m.peer_port, m.listen_peer_port or m.peer_port) for m in cluster.members}

        def processes() -> dict[int, str]:
            return {m.process.pid: m.name for m in cluster.members if m.process is not None}

        return cls(cluster, PeerNetwork(routes, processes), mounts)

    def start(self, timeout: float = HEALTH_TIMEOUT_SECONDS) -> None:
        try:
            self.network.start()
            self.cluster.start(timeout)
            self.network.learn_ids(fetch_member_ids(self.cluster.members[0].listen_peer_url))
        except BaseException:
            self.stop()
            raise

    def stop(self) -> None:
        """Heal what is still injected, stop the members, close the proxies, unmount."""
        try:
            for fault in list(reversed(self.active)):
                with contextlib.suppress(Exception):
                    fault.heal()
            self.cluster.stop()
        finally:
            self.network.close()
            for mountpoint in self.mounts.values():
                unmount(mountpoint)

    def __enter__(self) -> FaultCluster:
        return self

    def __exit__(self, *exc: object) -> None:
        self.stop()

    def member(self, name: str) -> LocalMember:
        return self.cluster.member(name)

    @property
    def names(self) -> list[str]:
        return self.cluster.member_names

    def leader(self, timeout: float = 10.0, among: list[str] | None = None) -> str:
        """The member whose own /metrics says it leads (asked of `among`, default all)."""
        deadline = time.monotonic() + timeout
        while True:
            for name in among or self.names:
                member = self.member(name)
                if not member.running or member.frozen:
                    continue
                try:
                    if read_metrics(member, timeout=1.0).value("etcd_server_is_leader") == 1:
                        return name
                except OSError:
                    pass
            if time.monotonic() > deadline:
                raise TimeoutError(f"no leader among {among or self.names} after {timeout}s")
            time.sleep(0.1)

    def followers(self) -> list[str]:
        leader = self.leader()
        return [n for n in self.names if n != leader]


def start_fault_cluster(size: int = 3, **kwargs: Any) -> FaultCluster:
    fc = FaultCluster.build(size, **kwargs)
    fc.start()
    return fc
