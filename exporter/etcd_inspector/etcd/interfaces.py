"""The narrow client interfaces that probes depend on, one per etcd service.

Modelled on gardener etcd-backup-restore's `pkg/etcdutil/client/types.go` (KV, Maintenance,
Watcher, Cluster as separate small interfaces), and matched to what `client.MemberClient`
offers: these describe that class, they do not redesign it. A probe names the narrowest one it
needs (`Maintenance` for a Status call) or `Member` for everything a member answers; mypy
--strict checks below that MemberClient satisfies every one, and tests/memory_etcd.py holds an
in-memory implementation for unit tests of probe logic.

What etcd offers and MemberClient does not is left out (Put, Txn, Compact, Defragment, Alarm
disarm): the exporter never writes to etcd. A point read is a one-key range_page. Alarms come
with Status (`MemberStatus.alarms`), as MemberClient parses them from its errors.
"""

from __future__ import annotations

from collections.abc import AsyncIterator
from typing import TYPE_CHECKING, Protocol

from etcd_inspector.etcd.types import (
    HashKV,
    MemberList,
    MemberStatus,
    RangePage,
    TLSFiles,
    WatchBatch,
)


class Endpoint(Protocol):
    """One member's address and how calls to it are bounded; every interface has these."""

    @property
    def endpoint(self) -> str:
        """The client URL, e.g. https://10.0.0.1:2379: the key members are known by."""
        ...

    @property
    def request_timeout(self) -> float:
        """The default deadline of one call, in seconds (a call's `timeout` overrides it)."""
        ...

    @property
    def tls(self) -> TLSFiles:
        """The TLS files used to reach it (the status probe diagnoses handshakes with them)."""
        ...


class KV(Endpoint, Protocol):
    """Reads of the keyspace, at a revision (0: the member's current one), paged by `limit`."""

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
        """At most `limit` keys of [key, range_end), with `more` and the range's `count`."""
        ...

    async def count_keys(
        self,
        revision: int = 0,
        *,
        key: bytes = b"\0",
        range_end: bytes = b"\0",
        serializable: bool = True,
        timeout: float | None = None,
    ) -> tuple[int, int]:
        """(number of keys in [key, range_end) at `revision`, the member's current revision)."""
        ...


class Watch(Endpoint, Protocol):
    def watch(
        self, key: bytes, range_end: bytes, start_revision: int, prev_kv: bool = False
    ) -> AsyncIterator[WatchBatch]:
        """Write events from `start_revision` on, one batch per revision-ordered response;
        raises WatchCompacted when `start_revision` is gone, EtcdError when the stream breaks.
        With `prev_kv`, etcd also sends each put's previous value, and a put that left it
        unchanged is marked (WatchEvent.unchanged)."""
        ...


class Maintenance(Endpoint, Protocol):
    async def status(self, timeout: float | None = None) -> MemberStatus:
        """The member's Status, with the cluster's active alarms as it knows them."""
        ...

    async def hash_kv(self, revision: int, timeout: float | None = None) -> HashKV:
        """The hash of the keyspace up to `revision` (needs the root role when auth is on)."""
        ...

    def snapshot(self, timeout: float | None = None) -> AsyncIterator[bytes]:
        """The member's whole backend in chunks, its SHA-256 as the last 32 bytes."""
        ...


class Cluster(Endpoint, Protocol):
    async def member_list(self, timeout: float | None = None) -> MemberList:
        """The members as this member sees them (not linearizable: its own view)."""
        ...


class Lease(Endpoint, Protocol):
    async def lease_ids(self, timeout: float | None = None) -> tuple[int, ...]:
        """The IDs of the cluster's active leases, as this member's lessor holds them."""
        ...


class Member(KV, Watch, Maintenance, Cluster, Lease, Protocol):
    """Everything one member answers: what ProbeContext.members holds."""

    async def close(self) -> None: ...


if TYPE_CHECKING:
    from etcd_inspector.etcd.client import MemberClient

    def _member_client_is_a_member(client: MemberClient) -> Member:
        # mypy --strict fails here when MemberClient and these interfaces drift apart.
        return client
