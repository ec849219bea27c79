"""etcd/client.py: the gRPC adapter, against real etcd members (plus its pure helpers)."""

from __future__ import annotations

import asyncio
import time
from collections.abc import AsyncIterator

import grpc
import pytest

from conftest import etcdctl
from etcd_inspector.cluster.state import ClusterState
from etcd_inspector.demo.localcluster import LocalCluster
from etcd_inspector.etcd.client import (
    Credentials,
    EtcdError,
    MemberClient,
    call_timeout,
    grpc_target,
    prefix_range_end,
)
from etcd_inspector.etcd.errors import classify
from etcd_inspector.ports import free_ports
from etcd_inspector.probes.base import NoOptions, Probe, ProbeContext, ProbeSpec
from etcd_inspector.runtime.scheduler import ScheduledProbe, run_probe_once
from harness import enable_auth_with_read_only_user, member_ids

# --------------------------------------------------------------------------- pure helpers


@pytest.mark.parametrize(
    ("prefix", "end"),
    [
        (b"", b"\0"),
        (b"/a", b"/b"),
        (b"a\xff", b"b"),
        (b"\xff\xff", b"\0"),
        (b"/registry/pods/", b"/registry/pods0"),
    ],
)
def test_prefix_range_end(prefix: bytes, end: bytes) -> None:
    assert prefix_range_end(prefix) == end


def test_grpc_target() -> None:
    assert grpc_target("https://10.0.0.1:2379") == ("10.0.0.1:2379", True)
    assert grpc_target("http://127.0.0.1:12379") == ("127.0.0.1:12379", False)


def _rpc_error(code: grpc.StatusCode, details: str) -> grpc.aio.AioRpcError:
    return grpc.aio.AioRpcError(code, grpc.aio.Metadata(), grpc.aio.Metadata(), details=details)


# The (code, text) pairs real etcd 3.4/3.5 members send (api/v3rpc/rpctypes).
@pytest.mark.parametrize(
    ("code", "details", "kind"),
    [
        (grpc.StatusCode.DEADLINE_EXCEEDED, "Deadline Exceeded", "timeout"),
        (grpc.StatusCode.UNAVAILABLE, "failed to connect to all addresses", "unavailable"),
        (grpc.StatusCode.RESOURCE_EXHAUSTED, "grpc: received message larger", "too_large"),
        (
            grpc.StatusCode.OUT_OF_RANGE,
            "etcdserver: mvcc: required revision has been compacted",
            "compacted",
        ),
        (
            grpc.StatusCode.OUT_OF_RANGE,
            "etcdserver: mvcc: required revision is a future revision",
            "future_revision",
        ),
        (grpc.StatusCode.UNAUTHENTICATED, "etcdserver: invalid auth token", "invalid_token"),
        (grpc.StatusCode.INVALID_ARGUMENT, "etcdserver: invalid auth token", "invalid_token"),
        (grpc.StatusCode.INVALID_ARGUMENT, "etcdserver: user name is empty", "invalid_token"),
        # A JWT older than the last auth change (clientv3 logs in again too).
        (
            grpc.StatusCode.INVALID_ARGUMENT,
            "etcdserver: revision of auth store is old",
            "invalid_token",
        ),
        (
            grpc.StatusCode.INVALID_ARGUMENT,
            "etcdserver: authentication failed, invalid user ID or password",
            "auth_failed",
        ),
        (grpc.StatusCode.PERMISSION_DENIED, "etcdserver: permission denied", "permission_denied"),
        (grpc.StatusCode.UNKNOWN, "auth: permission denied", "permission_denied"),
        (grpc.StatusCode.CANCELLED, "Cancelled", "cancelled"),
        (grpc.StatusCode.UNKNOWN, "etcdserver: request timed out", "error"),
    ],
)
def test_error_kinds(code: grpc.StatusCode, details: str, kind: str) -> None:
    assert classify(_rpc_error(code, details)) == kind


class _BudgetProbe(Probe):
    """Records what call_timeout() gives inside a scheduled run."""

    async def run(self, ctx: ProbeContext) -> tuple[float, float, float]:
        loop = asyncio.get_running_loop()
        started = loop.time()
        first = call_timeout(5.0, 0.5)
        await asyncio.sleep(0.2)
        return first, call_timeout(5.0), loop.time() - started

    def metrics(self, cluster, result):
        return ()


async def test_call_timeout_is_capped_by_the_run_deadline() -> None:
    assert call_timeout(5.0, 0.5) == 5.0  # outside a probe run: the default
    spec = ProbeSpec(name="budget", probe_type=_BudgetProbe, description="test")
    scheduled = ScheduledProbe(spec=spec, probe=_BudgetProbe(NoOptions()), interval=1, timeout=1)
    state = ClusterState("c", ("http://127.0.0.1:1",))
    outcome = await run_probe_once(scheduled, ProbeContext("c", [], state), state)
    assert outcome.success
    first, after_sleep, slept = outcome.result
    assert 0.4 < first <= 0.5  # half of a 1 s run
    # what is left of the run after the sleep; measured, as a loaded machine sleeps longer
    assert 1.0 - slept - 0.1 < after_sleep <= 1.0 - slept
    assert call_timeout(5.0) == 5.0  # and the deadline does not leak out of the run


# --------------------------------------------------------------------------- real etcd


@pytest.fixture
async def clients(shared_cluster: LocalCluster) -> AsyncIterator[list[MemberClient]]:
    made = [MemberClient(url, request_timeout=5) for url in shared_cluster.endpoints]
    yield made
    for c in made:
        await c.close()


@pytest.mark.etcd
async def test_status_member_list_and_alarms_of_a_real_cluster(
    shared_cluster: LocalCluster, clients: list[MemberClient]
) -> None:
    ids = {int(v, 16): k for k, v in member_ids(shared_cluster).items()}
    statuses = [await c.status() for c in clients]
    assert [ids[s.member_id] for s in statuses] == ["m1", "m2", "m3"]
    assert {s.leader_id for s in statuses} <= set(ids)
    assert len({s.leader_id for s in statuses}) == 1
    assert len({s.cluster_id for s in statuses}) == 1
    assert all(s.version == shared_cluster.version for s in statuses)
    assert all(s.db_size > 0 and s.raft_index > 0 and s.revision >= 1 for s in statuses)

    members = await clients[0].member_list()
    assert members.cluster_id == statuses[0].cluster_id
    assert {m.name: m.client_urls for m in members.members} == {
        m.name: (m.client_url,) for m in shared_cluster.members
    }
    assert statuses[1].alarms == ()  # alarms come with Status (no raft proposal to list them)


async def test_unreachable_member_fails_fast_as_unavailable() -> None:
    client = MemberClient(f"http://127.0.0.1:{free_ports(1)[0]}", request_timeout=5)
    try:
        start = time.monotonic()
        with pytest.raises(EtcdError) as err:
            await client.status()
        assert err.value.kind == "unavailable"
        assert time.monotonic() - start < 2
    finally:
        await client.close()


@pytest.mark.etcd
async def test_frozen_member_call_ends_at_its_deadline(etcd_cluster: LocalCluster) -> None:
    client = MemberClient(etcd_cluster.member("m3").client_url, request_timeout=5)
    try:
        await client.status()  # connected before the freeze, like a running exporter
        etcd_cluster.member("m3").freeze()
        try:
            start = time.monotonic()
            with pytest.raises(EtcdError) as err:
                await client.status(timeout=0.3)
            assert err.value.kind == "timeout"
            assert time.monotonic() - start < 1.0
        finally:
            etcd_cluster.member("m3").thaw()
        assert (await client.status()).version == etcd_cluster.version
    finally:
        await client.close()


@pytest.mark.etcd
async def test_credentials_before_auth_then_read_only_user_through_a_member_restart(
    etcd_cluster: LocalCluster,
) -> None:
    for i in range(5):
        etcdctl(etcd_cluster, "put", f"/app/k{i}", "v")
    creds = Credentials("inspector", "pw")
    client = MemberClient(etcd_cluster.member("m2").client_url, credentials=creds)
    try:
        # Auth still off: like etcdctl, carry on without a token.
        assert (await client.count_keys(key=b"/app/", range_end=b"/app0"))[0] == 5
        enable_auth_with_read_only_user(etcd_cluster, "inspector", "pw")
        # Auth now on: the next call logs in.
        assert (await client.count_keys(key=b"/app/", range_end=b"/app0"))[0] == 5
        page = await client.range_page(b"/app/", b"/app0", limit=2, keys_only=True)
        assert [kv.key for kv in page.kvs] == [b"/app/k0", b"/app/k1"]
        assert page.more and page.count == 5
        assert len((await client.member_list()).members) == 3
        assert (await client.status()).alarms == ()
        # What a read-only user cannot do: HashKV needs root.
        with pytest.raises(EtcdError) as err:
            await client.hash_kv(0)
        assert err.value.kind == "permission_denied"
        # A restarted member has forgotten our token: log in again, transparently.
        etcd_cluster.restart_member("m2")
        assert (await client.count_keys(key=b"/app/", range_end=b"/app0"))[0] == 5
    finally:
        await client.close()

    wrong = MemberClient(etcd_cluster.member("m1").client_url, credentials=Credentials("x", "y"))
    try:
        with pytest.raises(EtcdError) as err:
            await wrong.count_keys()
        assert err.value.kind == "auth_failed"
    finally:
        await wrong.close()
