"""What etcd answers, as frozen values: the adapter's output types (no I/O, no gRPC)."""

from __future__ import annotations

from collections.abc import Sequence
from dataclasses import dataclass
from typing import Protocol


@dataclass(frozen=True)
class MemberStatus:
    endpoint: str
    member_id: int
    cluster_id: int
    leader_id: int
    raft_term: int
    raft_index: int
    raft_applied_index: int
    revision: int
    db_size: int
    db_size_in_use: int
    version: str
    is_learner: bool
    errors: tuple[str, ...]
    # Active alarms of the whole cluster, as this member knows them (parsed from `errors`).
    alarms: tuple[Alarm, ...] = ()
    # etcd >= 3.6 only (None before): the db file's version, and whether a downgrade is
    # enabled (etcd/status36.py).
    storage_version: str | None = None
    downgrade_enabled: bool | None = None
    downgrade_target_version: str | None = None

    @property
    def is_leader(self) -> bool:
        """Whether the member is the leader it reports (it can be wrong while partitioned)."""
        return self.leader_id != 0 and self.leader_id == self.member_id


@dataclass(frozen=True)
class MemberInfo:
    id: int
    name: str
    peer_urls: tuple[str, ...]
    client_urls: tuple[str, ...]
    is_learner: bool


@dataclass(frozen=True)
class MemberList:
    cluster_id: int
    members: tuple[MemberInfo, ...]


@dataclass(frozen=True)
class Alarm:
    member_id: int
    alarm: str


@dataclass(frozen=True)
class HashKV:
    hash: int
    compact_revision: int
    revision: int


class KeyValueLike(Protocol):
    key: bytes
    value: bytes
    version: int
    create_revision: int
    mod_revision: int
    lease: int


@dataclass(frozen=True)
class RangePage:
    kvs: Sequence[KeyValueLike]
    more: bool
    count: int
    revision: int


@dataclass(frozen=True)
class WatchEvent:
    key: bytes
    is_delete: bool
    mod_revision: int
    # A put that left the value as it was (known only when the watch asked for prev_kv).
    unchanged: bool = False


@dataclass(frozen=True)
class WatchBatch:
    events: tuple[WatchEvent, ...]
    revision: int


@dataclass(frozen=True)
class TLSFiles:
    ca_file: str | None = None
    cert_file: str | None = None
    key_file: str | None = None
    server_name: str | None = None
