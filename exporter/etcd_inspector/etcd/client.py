"""The only module that speaks etcd's gRPC API.

aetcd is used for its generated protobuf stubs only: its high-level client has no TLS, no
revision/count_only on Range and no HashKV (see docs/decisions.md). We build our own grpc.aio
channels so every call carries a deadline, and we only ever call read RPCs: Range, Watch,
Status, Alarm(GET), HashKV, MemberList, LeaseLeases. Nothing here can write to etcd.
"""

from __future__ import annotations

import asyncio
import contextlib
import logging
import os
import re
from collections.abc import AsyncIterator, Sequence
from typing import Any
from urllib.parse import urlsplit

import grpc
from aetcd import rpc

from etcd_inspector.errors import ErrorKind
from etcd_inspector.etcd.auth import AuthGate, Credentials
from etcd_inspector.etcd.deadline import RUN_DEADLINE, call_timeout
from etcd_inspector.etcd.errors import EtcdError, WatchCompacted, classify
from etcd_inspector.etcd.ranges import MAX_RECEIVE_BYTES, prefix_range_end
from etcd_inspector.etcd.status36 import status36
from etcd_inspector.etcd.types import (
    Alarm,
    HashKV,
    KeyValueLike,
    MemberInfo,
    MemberList,
    MemberStatus,
    RangePage,
    TLSFiles,
    WatchBatch,
    WatchEvent,
)

# Re-exported: callers that talk to a member get its answer types from one import.
__all__ = [
    "MAX_RECEIVE_BYTES",
    "RUN_DEADLINE",
    "Alarm",
    "Credentials",
    "EtcdError",
    "HashKV",
    "KeyValueLike",
    "MemberClient",
    "MemberInfo",
    "MemberList",
    "MemberStatus",
    "RangePage",
    "TLSFiles",
    "WatchBatch",
    "WatchCompacted",
    "WatchEvent",
    "call_timeout",
    "grpc_target",
    "prefix_range_end",
]

log = logging.getLogger(__name__)

# etcd rejects client pings more often than --grpc-keepalive-min-time (default 5s).
_CHANNEL_OPTIONS = (
    ("grpc.max_receive_message_length", MAX_RECEIVE_BYTES),
    ("grpc.keepalive_time_ms", 10_000),
    ("grpc.keepalive_timeout_ms", 5_000),
    ("grpc.keepalive_permit_without_calls", 1),
    ("grpc.http2.max_pings_without_data", 0),
    ("grpc.enable_retries", 0),
    # gRPC's reconnect backoff grows to 120s: a member back from a long outage would then stay
    # "down" for up to two minutes. Probing a dead member every few seconds costs nothing.
    ("grpc.max_reconnect_backoff_ms", 5_000),
)


def grpc_target(url: str) -> tuple[str, bool]:
    """'https://10.0.0.1:2379' -> ('10.0.0.1:2379', True)."""
    parts = urlsplit(url)
    return parts.netloc, parts.scheme == "https"


def _read(path: str | None) -> bytes | None:
    if not path:
        return None
    with open(path, "rb") as f:
        return f.read()


def _file_stamps(tls: TLSFiles) -> tuple[tuple[int, int] | None, ...]:
    """(mtime, size) of each TLS file: a change means kubelet or cert-manager rotated them."""
    stamps = []
    for path in (tls.ca_file, tls.cert_file, tls.key_file):
        try:
            st = os.stat(path) if path else None
        except OSError:
            st = None
        stamps.append((st.st_mtime_ns, st.st_size) if st else None)
    return tuple(stamps)


def parse_alarms(errors: Sequence[str]) -> tuple[Alarm, ...]:
    """Active alarms from Status' `errors` ("memberID:123 alarm:NOSPACE "): etcd lists them there,
    so they are read without the Alarm RPC, which goes through raft even to list."""
    found = []
    for text in errors:
        m = _ALARM_TEXT.search(text)
        if m:
            found.append(Alarm(member_id=int(m.group(1)), alarm=m.group(2)))
    return tuple(found)


_ALARM_TEXT = re.compile(r"memberID:(\d+)\s+alarm:([A-Z_]+)")


def member_status(endpoint: str, r: Any) -> MemberStatus:
    """A StatusResponse as MemberStatus, with etcd 3.6's fields where the member sent them."""
    extra = status36(r.SerializeToString())
    return MemberStatus(
        endpoint=endpoint,
        member_id=r.header.member_id,
        cluster_id=r.header.cluster_id,
        leader_id=r.leader,
        raft_term=r.raftTerm,
        raft_index=r.raftIndex,
        # etcd < 3.4 does not send it; 0 then means "unknown"
        raft_applied_index=r.raftAppliedIndex,
        revision=r.header.revision,
        db_size=r.dbSize,
        db_size_in_use=r.dbSizeInUse,
        version=r.version,
        is_learner=r.isLearner,
        errors=tuple(r.errors),
        alarms=parse_alarms(r.errors),
        storage_version=extra.storage_version,
        downgrade_enabled=extra.downgrade_enabled,
        downgrade_target_version=extra.downgrade_target_version,
    )


class MemberClient:
    """One etcd member, reached at one client URL. Every call has a deadline."""

    def __init__(
        self,
        endpoint: str,
        *,
        tls: TLSFiles | None = None,
        credentials: Credentials | AuthGate | None = None,
        request_timeout: float = 5.0,
        dial_timeout: float | None = None,
    ) -> None:
        self.endpoint = endpoint
        self.tls = tls or TLSFiles()
        if isinstance(credentials, Credentials):
            credentials = AuthGate(credentials.username, password=credentials.password)
        self.auth = credentials
        self.request_timeout = request_timeout
        self.dial_timeout = dial_timeout
        # Added to the channel's options when it is made (the snapshot command's, for one).
        self.channel_options: tuple[tuple[str, str | int], ...] = ()
        self._channel: grpc.aio.Channel | None = None
        self._stamps: tuple[tuple[int, int] | None, ...] = ()
        self._token: str | None = None
        self._auth_not_enabled = False
        self._kv: rpc.KVStub | None = None
        self._maint: rpc.MaintenanceStub | None = None
        self._cluster: rpc.ClusterStub | None = None
        self._watch: rpc.WatchStub | None = None
        self._lease: rpc.LeaseStub | None = None

    def _ensure_channel(self) -> None:
        target, secure = grpc_target(self.endpoint)
        if self._channel is not None:
            if not secure or _file_stamps(self.tls) == self._stamps:
                return
            # Rotated certificate files: new connections must present the new ones. The old
            # channel is dropped (its calls in flight finish or fail on their own deadlines).
            log.info("TLS files changed; reconnecting", extra={"endpoint": self.endpoint})
            old, self._channel = self._channel, None
            self._token = None
            asyncio.get_running_loop().create_task(old.close(grace=1.0))
        options: list[tuple[str, str | int]] = [*_CHANNEL_OPTIONS, *self.channel_options]
        if self.dial_timeout is not None:
            # gRPC's MIN_CONNECT_TIMEOUT: how long one connection attempt may take (default 20s).
            options.append(
                ("grpc.min_reconnect_backoff_ms", max(100, int(self.dial_timeout * 1000)))
            )
        if secure:
            self._stamps = _file_stamps(self.tls)
            creds = grpc.ssl_channel_credentials(
                root_certificates=_read(self.tls.ca_file),
                private_key=_read(self.tls.key_file),
                certificate_chain=_read(self.tls.cert_file),
            )
            if self.tls.server_name:
                options.append(("grpc.ssl_target_name_override", self.tls.server_name))
            self._channel = grpc.aio.secure_channel(target, creds, options=options)
        else:
            self._channel = grpc.aio.insecure_channel(target, options=options)
        self._kv = rpc.KVStub(self._channel)
        self._maint = rpc.MaintenanceStub(self._channel)
        self._cluster = rpc.ClusterStub(self._channel)
        self._watch = rpc.WatchStub(self._channel)
        self._lease = rpc.LeaseStub(self._channel)

    async def _metadata(self, timeout: float) -> tuple[tuple[str, str], ...] | None:
        """The auth token to send, logging in first if there is none. Raises EtcdError."""
        gate = self.auth
        if gate is None or self._auth_not_enabled:
            return None
        if self._token is None:
            try:
                async with asyncio.timeout(timeout):
                    await gate.lock.acquire()
            except TimeoutError:
                raise EtcdError(
                    self.endpoint, ErrorKind.TIMEOUT, "timed out waiting for another login"
                ) from None
            try:
                if self._token is None and not self._auth_not_enabled:
                    await self._login(gate, timeout)
            finally:
                gate.lock.release()
        return None if self._token is None else (("token", self._token),)

    async def _login(self, gate: AuthGate, timeout: float) -> None:
        """Authenticate, one login of the cluster at a time (the caller holds gate.lock)."""
        wait = gate.wait_seconds()
        if wait > 0:
            raise EtcdError(
                self.endpoint,
                ErrorKind.AUTH_FAILED,
                f"authentication failed; next login attempt in {wait:.0f}s",
            )
        try:
            password = gate.password()
        except OSError as err:
            raise EtcdError(
                self.endpoint, ErrorKind.AUTH_FAILED, f"cannot read the password file: {err}"
            ) from None
        auth = rpc.AuthStub(self._channel)
        gate.attempted()
        try:
            resp = await auth.Authenticate(
                rpc.AuthenticateRequest(name=gate.username, password=password),
                timeout=timeout,
            )
        except grpc.aio.AioRpcError as err:
            detail = err.details() or str(err.code())
            # Like etcd's own clients, go on without a token while auth is off: credentials
            # are often rolled out before `etcdctl auth enable`. Once it is on, calls fail
            # with "user name is empty" and _unary logs in again.
            if "authentication is not enabled" in detail.lower():
                self._auth_not_enabled = True
                return
            kind = classify(err)
            if kind == ErrorKind.AUTH_FAILED:
                gate.failed(self.endpoint, detail)
            raise EtcdError(self.endpoint, kind, detail) from None
        gate.succeeded()
        self._token = resp.token

    async def _unary(
        self, method_name: str, stub_name: str, request: Any, timeout: float | None
    ) -> Any:
        """Call one unary RPC with a deadline; map gRPC errors to EtcdError."""
        timeout = self.request_timeout if timeout is None else timeout
        self._ensure_channel()
        for attempt in (1, 2):
            metadata = await self._metadata(timeout)
            try:
                method = getattr(getattr(self, stub_name), method_name)
                return await method(request, timeout=timeout, metadata=metadata)
            except grpc.aio.AioRpcError as err:
                kind = classify(err)
                if kind == ErrorKind.INVALID_TOKEN and attempt == 1 and self.auth is not None:
                    # Tokens expire (--auth-token-ttl) and die with a member's restart, and
                    # auth may have been enabled since we last looked: log in again, once.
                    self._token = None
                    self._auth_not_enabled = False
                    continue
                raise EtcdError(self.endpoint, kind, err.details() or str(err.code())) from None
        raise AssertionError("unreachable")

    async def status(self, timeout: float | None = None) -> MemberStatus:
        r = await self._unary("Status", "_maint", rpc.StatusRequest(), timeout)
        return member_status(self.endpoint, r)

    async def member_list(self, timeout: float | None = None) -> MemberList:
        # linearizable=False (the default, and the only choice on 3.4) lets a member answer
        # from its own view, which is what a consistency check wants to compare.
        r = await self._unary("MemberList", "_cluster", rpc.MemberListRequest(), timeout)
        return MemberList(
            cluster_id=r.header.cluster_id,
            members=tuple(
                MemberInfo(
                    id=m.ID,
                    name=m.name,
                    peer_urls=tuple(m.peerURLs),
                    client_urls=tuple(m.clientURLs),
                    is_learner=m.isLearner,
                )
                for m in r.members
            ),
        )

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
        req = rpc.RangeRequest(
            key=key,
            range_end=range_end,
            limit=limit,
            revision=revision,
            serializable=serializable,
            keys_only=keys_only,
        )
        r = await self._unary("Range", "_kv", req, timeout)
        return RangePage(kvs=r.kvs, more=r.more, count=r.count, revision=r.header.revision)

    async def count_keys(
        self,
        revision: int = 0,
        *,
        key: bytes = b"\0",
        range_end: bytes = b"\0",
        serializable: bool = True,
        timeout: float | None = None,
    ) -> tuple[int, int]:
        """(number of keys in [key, range_end) at `revision`, this member's current revision)."""
        req = rpc.RangeRequest(
            key=key, range_end=range_end, revision=revision, serializable=serializable,
            count_only=True,
        )  # fmt: skip
        r = await self._unary("Range", "_kv", req, timeout)
        return r.count, r.header.revision

    async def hash_kv(self, revision: int, timeout: float | None = None) -> HashKV:
        r = await self._unary("HashKV", "_maint", rpc.HashKVRequest(revision=revision), timeout)
        return HashKV(hash=r.hash, compact_revision=r.compact_revision, revision=r.header.revision)

    async def lease_ids(self, timeout: float | None = None) -> tuple[int, ...]:
        """The IDs of the active leases (LeaseLeases: read from the lessor, no raft round)."""
        r = await self._unary("LeaseLeases", "_lease", rpc.LeaseLeasesRequest(), timeout)
        return tuple(lease.ID for lease in r.leases)

    async def watch(
        self, key: bytes, range_end: bytes, start_revision: int, prev_kv: bool = False
    ) -> AsyncIterator[WatchBatch]:
        """Stream write events from `start_revision` on. The stream itself has no deadline
        (it is meant to run for hours); keepalive pings break it when the member freezes.
        Raises WatchCompacted when `start_revision` is gone, EtcdError when the stream breaks."""
        self._ensure_channel()
        metadata = await self._metadata(self.request_timeout)
        create = rpc.WatchRequest(
            create_request=rpc.WatchCreateRequest(
                key=key,
                range_end=range_end,
                start_revision=start_revision,
                progress_notify=True,
                # A backlog of big values comes as parts of at most --max-request-bytes each,
                # not as one message that no receive limit could bound (etcd >= 3.4).
                fragment=True,
                # The previous value of every event (etcd reads it from the backend and sends
                # it along): only to tell a no-op rewrite, the hot-key probe's noop_writes.
                prev_kv=prev_kv,
            )
        )

        async def requests() -> AsyncIterator[Any]:
            yield create
            # Keep the request side open: closing it makes etcd end the stream.
            await _forever()

        assert self._watch is not None
        call = self._watch.Watch(requests(), metadata=metadata)
        # Events of a fragmented response, held until its last part: a revision is applied whole
        # or not at all, so resuming after a break never skips the rest of one.
        parts: list[Any] = []
        try:
            async for resp in call:
                if resp.compact_revision:
                    raise WatchCompacted(self.endpoint, resp.compact_revision)
                if resp.canceled:
                    raise EtcdError(
                        self.endpoint, ErrorKind.CANCELLED, resp.cancel_reason or "canceled"
                    )
                if resp.fragment:
                    parts.extend(resp.events)
                    continue
                raw = [*parts, *resp.events] if parts else resp.events
                parts = []
                events = tuple(
                    WatchEvent(
                        key=ev.kv.key,
                        is_delete=ev.type == rpc.Event.DELETE,
                        mod_revision=ev.kv.mod_revision,
                        unchanged=prev_kv
                        and ev.type == rpc.Event.PUT
                        and ev.HasField("prev_kv")
                        and ev.prev_kv.value == ev.kv.value,
                    )
                    for ev in raw
                )
                yield WatchBatch(events=events, revision=resp.header.revision)
        except grpc.aio.AioRpcError as err:
            raise EtcdError(self.endpoint, classify(err), err.details() or "") from None
        finally:
            call.cancel()

    async def snapshot(self, timeout: float | None = None) -> AsyncIterator[bytes]:
        """Stream the member's whole backend (Maintenance.Snapshot: a read RPC, but with auth
        on only the root role may call it) in chunks; etcd appends the SHA-256 of what came
        before as the last 32 bytes. `timeout` bounds the whole stream (None: keepalive pings
        break it when the member freezes). Raises EtcdError when the stream breaks."""
        self._ensure_channel()
        assert self._maint is not None
        try:
            metadata = await self._metadata(self.request_timeout)
            call = self._maint.Snapshot(rpc.SnapshotRequest(), timeout=timeout, metadata=metadata)
        except grpc.aio.AioRpcError as err:
            raise EtcdError(self.endpoint, classify(err), err.details() or "") from None
        try:
            async for resp in call:
                yield resp.blob
        except grpc.aio.AioRpcError as err:
            raise EtcdError(self.endpoint, classify(err), err.details() or "") from None
        finally:
            call.cancel()

    async def close(self) -> None:
        channel, self._channel = self._channel, None
        self._token = None
        self._auth_not_enabled = False
        if channel is not None:
            with contextlib.suppress(Exception):
                await channel.close(grace=0)


async def _forever() -> None:
    await asyncio.Event().wait()
