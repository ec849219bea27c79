"""An in-memory etcd: a FAKE for unit tests of probe logic only.

It implements the narrow client interfaces of `etcd_inspector.etcd.interfaces` (KV, Watch,
Maintenance, Cluster: `Member`) over a Python dict with an MVCC history, so a test can plant
exactly the cluster it wants (a member of another cluster, a diverged keyspace, a full quota, a
compacted revision, a member that times out) and check what a probe makes of it: findings,
the JSON and text report, metrics. It is not an etcd: no Raft, no gRPC, no auth, no bbolt file
(`snapshot` streams a stand-in). Whether the real adapter and real etcd answer the same way is
what the integration tests (`-m etcd`) prove; nothing here replaces one of them.

`make lint` (and `make test`) run mypy --strict on this file: `as_members` fails to check when
MemoryMember stops satisfying `Member`.
"""

from __future__ import annotations

import hashlib
import json
import zlib
from collections.abc import AsyncIterator, Sequence
from dataclasses import dataclass, field

from etcd_inspector.errors import ErrorKind
from etcd_inspector.etcd.errors import EtcdError, WatchCompacted
from etcd_inspector.etcd.interfaces import Member
from etcd_inspector.etcd.types import (
    HashKV,
    MemberInfo,
    MemberList,
    MemberStatus,
    RangePage,
    TLSFiles,
    WatchBatch,
    WatchEvent,
)


@dataclass
class KeyValue:
    """What etcd's mvccpb.KeyValue carries (etcd.types.KeyValueLike: plain attributes, so
    not frozen; nothing here changes one after it is made)."""

    key: bytes
    value: bytes
    version: int
    create_revision: int
    mod_revision: int
    lease: int = 0


class MemoryStore:
    """One keyspace with its whole history: revision N is the N-th write (etcd starts at 1)."""

    def __init__(self) -> None:
        self.revision = 1
        self.compact_revision = 0
        # (revision, key, the key's value after the write, or None for a delete)
        self.history: list[tuple[int, bytes, KeyValue | None]] = []
        # Active lease IDs (granting one costs no revision, as in etcd).
        self.leases: set[int] = set()

    def put(self, key: bytes, value: bytes) -> int:
        before = self.at(self.revision).get(key)
        self.revision += 1
        kv = KeyValue(
            key=key, value=value, version=before.version + 1 if before else 1,
            create_revision=before.create_revision if before else self.revision,
            mod_revision=self.revision,
        )  # fmt: skip
        self.history.append((self.revision, key, kv))
        return self.revision

    def delete(self, key: bytes) -> int:
        self.revision += 1
        self.history.append((self.revision, key, None))
        return self.revision

    def compact(self, revision: int) -> None:
        self.compact_revision = revision

    def at(self, revision: int) -> dict[bytes, KeyValue]:
        """The live keys at `revision`."""
        live: dict[bytes, KeyValue] = {}
        for rev, key, kv in self.history:
            if rev > revision:
                break
            if kv is None:
                live.pop(key, None)
            else:
                live[key] = kv
        return live

    def copy(self) -> MemoryStore:
        twin = MemoryStore()
        twin.revision, twin.compact_revision = self.revision, self.compact_revision
        twin.history = list(self.history)
        return twin


def in_range(key: bytes, start: bytes, end: bytes) -> bool:
    """etcd's range rules: end b"" is the one key `start`; end b"\\0" is every key >= start."""
    if end == b"":
        return key == start
    if end == b"\0":
        return key >= start
    return start <= key < end


@dataclass
class MemoryMember:
    """One member of a MemoryCluster. Set `fail` to make every call raise EtcdError of that
    kind (TIMEOUT for a frozen member, UNAVAILABLE for a stopped one); `hash_fail` for HashKV
    alone (PERMISSION_DENIED: a user without the root role). `calls` records what was asked."""

    name: str
    member_id: int
    store: MemoryStore
    cluster: MemoryCluster
    endpoint: str = ""
    request_timeout: float = 5.0
    tls: TLSFiles = field(default_factory=TLSFiles)
    db_size: int = 0
    db_size_in_use: int = 0
    version: str = "3.5.1"
    is_learner: bool = False
    fail: ErrorKind | None = None
    hash_fail: ErrorKind | None = None
    # Members of another cluster report their own cluster ID and member list.
    cluster_id: int | None = None
    calls: list[tuple[str, int]] = field(default_factory=list)

    def __post_init__(self) -> None:
        if not self.endpoint:
            self.endpoint = f"http://{self.name}.memory:2379"

    def _check(self, call: str, revision: int = 0) -> None:
        self.calls.append((call, revision))
        if self.fail is not None:
            raise EtcdError(self.endpoint, self.fail, f"{call}: planted failure")

    def _revision(self, revision: int) -> int:
        if revision and revision > self.store.revision:
            raise EtcdError(self.endpoint, ErrorKind.FUTURE_REVISION,
                            "etcdserver: mvcc: required revision is a future revision")  # fmt: skip
        if revision and revision < self.store.compact_revision:
            raise EtcdError(self.endpoint, ErrorKind.COMPACTED,
                            "etcdserver: mvcc: required revision has been compacted")  # fmt: skip
        return revision or self.store.revision

    # ----------------------------------------------------------------------- Maintenance

    async def status(self, timeout: float | None = None) -> MemberStatus:
        self._check("status")
        return MemberStatus(
            endpoint=self.endpoint, member_id=self.member_id,
            cluster_id=self.cluster_id or self.cluster.cluster_id,
            leader_id=self.cluster.leader_id if self.cluster_id is None else self.member_id,
            raft_term=2, raft_index=self.store.revision + 10,
            raft_applied_index=self.store.revision + 10, revision=self.store.revision,
            db_size=self.db_size, db_size_in_use=self.db_size_in_use or self.db_size,
            version=self.version, is_learner=self.is_learner, errors=(),
        )  # fmt: skip

    async def hash_kv(self, revision: int, timeout: float | None = None) -> HashKV:
        self._check("hash_kv", revision)
        if self.hash_fail is not None:
            raise EtcdError(self.endpoint, self.hash_fail, "auth: permission denied")
        at = self._revision(revision)
        digest = 0
        for key, kv in sorted(self.store.at(at).items()):
            digest = zlib.crc32(key + b"\0" + kv.value, digest)
        return HashKV(hash=digest, compact_revision=self.store.compact_revision,
                      revision=self.store.revision)  # fmt: skip

    async def snapshot(self, timeout: float | None = None) -> AsyncIterator[bytes]:
        """A stand-in, not a bbolt file: the live keys as JSON, then their SHA-256 (32 bytes),
        the way etcd ends a snapshot stream."""
        self._check("snapshot")
        live = self.store.at(self.store.revision)
        body = json.dumps({k.decode(errors="replace"): len(v.value) for k, v in live.items()})
        data = body.encode()
        yield data
        yield hashlib.sha256(data).digest()

    # ----------------------------------------------------------------------- Cluster

    async def member_list(self, timeout: float | None = None) -> MemberList:
        self._check("member_list")
        if self.cluster_id is not None:  # a single-member cluster of its own
            return MemberList(self.cluster_id, (self.info(),))
        return MemberList(self.cluster.cluster_id, tuple(m.info() for m in self.cluster.members
                                                         if m.cluster_id is None))  # fmt: skip

    def info(self) -> MemberInfo:
        return MemberInfo(self.member_id, self.name, (self.endpoint.replace("2379", "2380"),),
                          (self.endpoint,), self.is_learner)  # fmt: skip

    # ----------------------------------------------------------------------- KV

    async def range_page(
        self,
        key: bytes,
        range_end: bytes,
        *,
        limit: int,
        revision: int = 0,
        serializable: bool = True,
        keys_only: bool = False,
        timeout: float | None = None,
    ) -> RangePage:
        self._check("range", revision)
        at = self._revision(revision)
        found = sorted(
            (kv for k, kv in self.store.at(at).items() if in_range(k, key, range_end)),
            key=lambda kv: kv.key,
        )
        page = found[:limit] if limit else found
        if keys_only:
            page = [KeyValue(kv.key, b"", kv.version, kv.create_revision, kv.mod_revision)
                    for kv in page]  # fmt: skip
        return RangePage(kvs=page, more=len(found) > len(page), count=len(found),
                         revision=self.store.revision)  # fmt: skip

    async def count_keys(
        self,
        revision: int = 0,
        *,
        key: bytes = b"\0",
        range_end: bytes = b"\0",
        serializable: bool = True,
        timeout: float | None = None,
    ) -> tuple[int, int]:
        self._check("count", revision)
        at = self._revision(revision)
        count = sum(1 for k in self.store.at(at) if in_range(k, key, range_end))
        return count, self.store.revision

    # ----------------------------------------------------------------------- Watch

    async def watch(
        self, key: bytes, range_end: bytes, start_revision: int, prev_kv: bool = False
    ) -> AsyncIterator[WatchBatch]:
        """The history from `start_revision` (0: from now), one batch per revision, then an
        empty batch when it is all sent (as etcd's progress notify); ends there. A test that
        wants more events writes them and watches again from the next revision."""
        self._check("watch", start_revision)
        if start_revision and start_revision < self.store.compact_revision:
            raise WatchCompacted(self.endpoint, self.store.compact_revision)
        yield WatchBatch(events=(), revision=self.store.revision)  # the create response
        start = start_revision or self.store.revision + 1
        last: dict[bytes, bytes | None] = {}
        for rev, k, kv in self.store.history:
            before, last[k] = last.get(k), None if kv is None else kv.value
            if rev >= start and in_range(k, key, range_end):
                same = prev_kv and kv is not None and before == kv.value
                yield WatchBatch(events=(WatchEvent(k, kv is None, rev, same),), revision=rev)

    async def lease_ids(self, timeout: float | None = None) -> tuple[int, ...]:
        self._check("lease_ids")
        return tuple(sorted(self.store.leases))

    async def close(self) -> None:
        self.calls.append(("close", 0))


class MemoryCluster:
    """Members sharing one store (a healthy cluster: every member has every write), the first
    one leading. `diverge(name)` gives a member a copy of its own to write to."""

    def __init__(self, names: Sequence[str] = ("m1", "m2", "m3"), cluster_id: int = 0xC1) -> None:
        self.cluster_id = cluster_id
        self.store = MemoryStore()
        self.members = [
            MemoryMember(name=name, member_id=0x100 + i, store=self.store, cluster=self)
            for i, name in enumerate(names, start=1)
        ]
        self.leader_id = self.members[0].member_id

    def member(self, name: str) -> MemoryMember:
        return next(m for m in self.members if m.name == name)

    @property
    def endpoints(self) -> tuple[str, ...]:
        return tuple(m.endpoint for m in self.members)

    def put(self, key: bytes, value: bytes) -> int:
        return self.store.put(key, value)

    def diverge(self, name: str) -> MemoryStore:
        """Give member `name` its own copy of the keyspace (a member that lost writes)."""
        member = self.member(name)
        member.store = self.store.copy()
        return member.store

    def add_stranger(self, name: str, cluster_id: int = 0xC2) -> MemoryMember:
        """A member of another cluster listed among the endpoints by mistake."""
        stranger = MemoryMember(name=name, member_id=0x900, store=MemoryStore(), cluster=self,
                                cluster_id=cluster_id)  # fmt: skip
        self.members.append(stranger)
        return stranger


def as_members(cluster: MemoryCluster) -> list[Member]:
    """The members as the probes see them (mypy checks MemoryMember against Member here)."""
    return list(cluster.members)
