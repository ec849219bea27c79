"""The consistency probe: pure comparison tests, and the real stack against real etcd clusters."""

from __future__ import annotations

import asyncio
import contextlib
import json
import time
from dataclasses import replace
from pathlib import Path

import grpc
import pytest
from aetcd import rpc
from prometheus_client.parser import text_string_to_metric_families

from conftest import etcdctl
from etcd_inspector.cluster.state import ClusterState
from etcd_inspector.config import parse_config
from etcd_inspector.demo.localcluster import LocalCluster, start_cluster
from etcd_inspector.errors import ErrorKind
from etcd_inspector.etcd.client import HashKV, MemberInfo, MemberList, MemberStatus
from etcd_inspector.probes import REGISTRY
from etcd_inspector.probes.base import ProbeContext
from etcd_inspector.probes.consistency import (
    FUTURE_REVISION,
    ConsistencyOptions,
    ConsistencyProbe,
    ConsistencyResult,
    MemberFacts,
    NotComparable,
    compare,
    pinned_revision,
    reference_cluster_id,
)
from etcd_inspector.runtime.runtime import ClusterRuntime, build_runtime
from etcd_inspector.runtime.scheduler import run_probe_once
from exposition import assert_promtool_clean, exposed, render

CLUSTER = "c1"

# --------------------------------------------------------------------------- helpers


def status(
    endpoint: str = "http://m1:2379",
    *,
    member_id: int = 1,
    cluster_id: int = 0xC1,
    leader_id: int = 1,
    revision: int = 100,
    applied: int = 50,
) -> MemberStatus:
    return MemberStatus(
        endpoint=endpoint, member_id=member_id, cluster_id=cluster_id, leader_id=leader_id,
        raft_term=2, raft_index=applied, raft_applied_index=applied, revision=revision,
        db_size=20480, db_size_in_use=16384, version="3.4.23", is_learner=False, errors=(),
    )  # fmt: skip


def facts(
    name: str,
    *,
    keys: int | None = 10,
    hash_: int | None = 0xABC,
    compact: int = -1,
    hash_error: str | None = None,
    count_error: str | None = None,
    members: frozenset[int] | None = frozenset({1, 2, 3}),
    **status_kw,
) -> MemberFacts:
    n = int(name[-1])
    st = status(f"http://{name}:2379", member_id=n, **status_kw)
    return MemberFacts(
        endpoint=st.endpoint, member=name, status=st, member_ids=members, keys=keys,
        count_error=count_error, hash=hash_, hash_error=hash_error,
        hash_compact_revision=None if hash_ is None else compact,
    )  # fmt: skip


def three(**kw) -> list[MemberFacts]:
    return [facts(n, **kw) for n in ("m1", "m2", "m3")]


def render_runtime(runtime: ClusterRuntime) -> str:
    return exposed([runtime])


def samples(text: str) -> dict[tuple[str, tuple[tuple[str, str], ...]], float]:
    return {
        (s.name, tuple(sorted(s.labels.items()))): s.value
        for fam in text_string_to_metric_families(text)
        for s in fam.samples
    }


def value(scraped, name: str, **labels: str) -> float | None:
    return scraped.get((name, tuple(sorted({"cluster": CLUSTER, **labels}.items()))))


def make_runtime(
    endpoints: list[str],
    *,
    request_timeout: str = "1s",
    cluster_extra: dict | None = None,
    **options,
) -> ClusterRuntime:
    raw = {
        "clusters": [
            {
                "name": CLUSTER,
                "endpoints": endpoints,
                "request_timeout": request_timeout,
                **(cluster_extra or {}),
            }
        ],
        "inspection": {"probes": {"consistency": {"timeout": "10s", **options}}},
    }
    config = parse_config(raw, REGISTRY)
    return build_runtime(config.clusters[0], config, only={"status", "consistency"})


async def run_consistency(runtime: ClusterRuntime) -> ConsistencyResult:
    """status first (it resolves member names), then consistency; both must succeed."""
    for name in ("status", "consistency"):
        ctx = runtime.scheduler.context_for(name)
        outcome = await run_probe_once(runtime.probes[name], ctx, runtime.state)
        assert outcome.success, outcome.error
    result = runtime.state.outcomes["consistency"].result
    assert isinstance(result, ConsistencyResult)
    return result


def put_keys(
    cluster: LocalCluster, prefix: str, count: int, start: int = 0, per_txn: int = 100
) -> None:
    """Puts in etcdctl txns of `per_txn` operations; each txn is ONE revision."""
    for first in range(start, start + count, per_txn):
        last = min(first + per_txn, start + count)
        ops = "".join(f"put {prefix}{i} value-{i}\n" for i in range(first, last))
        etcdctl(cluster, "txn", input=f"\n{ops}\n\n".encode())


def real_key_count(cluster: LocalCluster, revision: int = 0) -> int:
    out = etcdctl(
        cluster, "get", "", "--from-key", "--keys-only", "--limit=1", f"--rev={revision}", "-w=json"
    )
    return int(json.loads(out).get("count", 0))


def current_revision(cluster: LocalCluster) -> int:
    out = json.loads(etcdctl(cluster, "endpoint", "status", "-w=json"))
    return max(int(e["Status"]["header"]["revision"]) for e in out)


# --------------------------------------------------------------------------- pure: compare


def test_equal_members_are_consistent():
    v = compare(three(), revision=100)
    assert v.consistent is True
    assert v.reasons == ()
    assert (v.key_count_diff, v.revision_diff, v.raft_applied_index_diff) == (0, 0, 0)
    assert (v.hash_check_available, v.hash_mismatch) == (True, False)
    assert (v.cluster_id_distinct, v.leader_distinct, v.member_list_distinct) == (1, 1, 1)


def test_hash_mismatch_with_equal_counts_is_inconsistent():
    members = three()
    members[2] = replace(members[2], hash=0xDEF)
    v = compare(members, revision=100)
    assert v.hash_mismatch is True
    assert v.key_count_diff == 0
    assert v.consistent is False
    assert any("hashes at revision 100 differ" in r and "m3=def" in r for r in v.reasons)


def test_key_count_difference_is_inconsistent():
    members = three()
    members[1] = replace(members[1], keys=7, hash=0x123)
    v = compare(members, revision=100)
    assert v.key_count_diff == 3
    assert v.consistent is False
    assert any("m2=7" in r for r in v.reasons)


def test_hash_unavailable_without_root_decides_on_counts_and_cluster_ids():
    members = three(hash_=None, hash_error="permission_denied")
    v = compare(members, revision=100)
    assert (v.hash_check_available, v.hash_unavailable_reason) == (False, "permission_denied")
    assert v.hash_mismatch is None
    assert v.consistent is True

    members[0] = replace(members[0], keys=11)
    v = compare(members, revision=100)
    assert v.hash_check_available is False
    assert v.consistent is False
    assert v.key_count_diff == 1


def test_one_permission_denied_hash_makes_the_whole_check_unavailable():
    members = three()
    members[0] = replace(members[0], hash=None, hash_compact_revision=None,
                         hash_error="permission_denied")  # fmt: skip
    v = compare(members, revision=100)
    assert v.hash_check_available is False
    assert v.hash_mismatch is None


def test_hash_check_disabled_by_option():
    v = compare(three(hash_=None), revision=100, hash_enabled=False)
    assert (v.hash_check_available, v.hash_unavailable_reason) == (False, "disabled")
    assert v.consistent is True


def test_different_compact_revisions_make_hashes_incomparable():
    members = three()
    members[0] = replace(members[0], hash=0x999, hash_compact_revision=42)
    v = compare(members, revision=100)
    assert (v.hash_check_available, v.hash_unavailable_reason) == (
        False,
        "compact_revision_differs",
    )
    assert v.hash_mismatch is None
    assert v.consistent is True


def test_member_of_another_cluster_is_inconsistent():
    members = three()
    members[2] = replace(
        members[2],
        status=replace(members[2].status, cluster_id=0xF0, leader_id=3, revision=5),
        member_ids=frozenset({3}),
        keys=None,
        hash=None,
        count_error=FUTURE_REVISION,
    )
    v = compare(members, revision=100)
    assert v.cluster_id_distinct == 2
    assert v.leader_distinct == 2
    assert v.member_list_distinct == 2
    assert v.revision_diff == 95
    assert v.consistent is False
    assert any("2 clusters" in r for r in v.reasons)
    assert any("not comparable: m3" in r for r in v.reasons)


def test_future_revision_is_not_comparable_even_with_one_count():
    members = three()[:2]
    members[1] = replace(members[1], keys=None, hash=None, count_error=FUTURE_REVISION)
    v = compare(members, revision=100)
    assert v.consistent is False
    assert v.key_count_diff is None


def test_silent_member_is_left_out():
    members = three()
    members[2] = MemberFacts(
        endpoint=members[2].endpoint, member="m3", status=None, status_error="timeout"
    )
    members[1] = replace(members[1], status=replace(members[1].status, revision=120))
    v = compare(members, revision=100)
    assert v.consistent is True
    assert v.revision_diff == 20


def test_fewer_than_two_answers_cannot_be_compared():
    members = three()
    for i in (1, 2):
        members[i] = MemberFacts(endpoint=members[i].endpoint, member=members[i].member,
                                 status=None, status_error="unavailable")  # fmt: skip
    with pytest.raises(NotComparable, match="1 member"):
        compare(members, revision=100)
    timeouts = [replace(f, keys=None, hash=None, count_error="timeout") for f in three()]
    timeouts[0] = three()[0]
    with pytest.raises(NotComparable, match="key count"):
        compare(timeouts, revision=100)


def test_unknown_applied_index_is_ignored_and_leaders_counted():
    members = three()
    members[0] = replace(members[0], status=replace(members[0].status, raft_applied_index=0))
    members[1] = replace(members[1], status=replace(members[1].status, raft_applied_index=58))
    members[2] = replace(members[2], status=replace(members[2].status, leader_id=2))
    v = compare(members, revision=100)
    assert v.raft_applied_index_diff == 8
    assert v.leader_distinct == 2
    assert v.consistent is True  # who leads is not about the data


def test_pinned_revision_ignores_members_of_another_cluster():
    ours = [status(revision=r) for r in (120, 100, 130)]
    foreign = status(cluster_id=0xF0, revision=3)
    assert pinned_revision([*ours, foreign]) == 100
    assert reference_cluster_id([foreign, *ours]) == 0xC1
    # a tie goes to the first configured member's cluster
    assert reference_cluster_id([foreign, ours[0]]) == 0xF0
    with pytest.raises(NotComparable):
        pinned_revision([])


def test_metrics_without_hash_check():
    members = three(hash_=None, hash_error="permission_denied")
    result = ConsistencyResult(revision=100, members=tuple(members), verdict=compare(members, 100))
    text = render(ConsistencyProbe(ConsistencyOptions()).metrics(CLUSTER, result))
    scraped = samples(text)
    assert value(scraped, "etcd_inspector_hash_check_available") == 0
    assert value(scraped, "etcd_inspector_hash_mismatch") is None
    assert value(scraped, "etcd_inspector_consistent") == 1
    assert value(scraped, "etcd_inspector_consistency_revision") == 100
    assert value(scraped, "etcd_inspector_member_keys", member="m2") == 10


# --------------------------------------------------------------------------- gathering, faked


class FakeMember:
    """Duck-typed MemberClient: a member whose store was compacted at `compact_at` after the
    first Status, the way a compaction can land between Status and the reads."""

    def __init__(self, n: int, revisions: list[int], compact_at: int) -> None:
        self.endpoint = f"http://m{n}:2379"
        self.request_timeout = 1.0
        self.n = n
        self.revisions = revisions
        self.compact_at = compact_at
        self.asked: list[tuple[str, int]] = []

    async def status(self, timeout=None) -> MemberStatus:
        rev = self.revisions.pop(0) if len(self.revisions) > 1 else self.revisions[0]
        return status(self.endpoint, member_id=self.n, revision=rev)

    async def member_list(self, timeout=None) -> MemberList:
        return MemberList(0xC1, tuple(MemberInfo(i, f"m{i}", (), (), False) for i in (1, 2, 3)))

    async def count_keys(self, revision, *, serializable=True, timeout=None):
        from etcd_inspector.etcd.client import EtcdError

        self.asked.append(("count", revision))
        if revision <= self.compact_at:
            raise EtcdError(self.endpoint, "compacted", "mvcc: required revision is compacted")
        return 5, revision

    async def hash_kv(self, revision, timeout=None) -> HashKV:
        self.asked.append(("hash", revision))
        return HashKV(hash=0x77, compact_revision=self.compact_at, revision=revision)


async def test_compacted_revision_is_retried_once_with_a_fresh_one():
    members = [FakeMember(1, [100, 210], 150), FakeMember(2, [105, 200], 150)]
    ctx = ProbeContext(
        cluster=CLUSTER,
        members=members,  # type: ignore[arg-type]
        state=ClusterState(CLUSTER, tuple(m.endpoint for m in members)),
    )
    result = await ConsistencyProbe(ConsistencyOptions()).run(ctx)
    assert result.revision == 200
    assert members[0].asked == [("count", 100), ("count", 200), ("hash", 200)]
    assert result.verdict.consistent is True
    assert [f.keys for f in result.members] == [5, 5]


async def test_compacted_twice_gives_up_with_not_comparable():
    members = [FakeMember(1, [100, 110], 150), FakeMember(2, [105, 120], 150)]
    ctx = ProbeContext(
        cluster=CLUSTER,
        members=members,  # type: ignore[arg-type]
        state=ClusterState(CLUSTER, tuple(m.endpoint for m in members)),
    )
    with pytest.raises(NotComparable):
        await ConsistencyProbe(ConsistencyOptions()).run(ctx)
    assert [a for a in members[0].asked if a[0] == "count"] == [("count", 100), ("count", 110)]


# --------------------------------------------------------------------------- real etcd


@pytest.mark.etcd
async def test_equal_cluster_is_consistent(etcd_cluster: LocalCluster):
    put_keys(etcd_cluster, "/app/", 40)
    put_keys(etcd_cluster, "/app/", 5)  # overwrites: more revisions, not more keys
    etcdctl(etcd_cluster, "del", "/app/0")
    expected = real_key_count(etcd_cluster)
    assert expected == 39
    runtime = make_runtime(etcd_cluster.endpoints)
    try:
        result = await run_consistency(runtime)
        text = render_runtime(runtime)
    finally:
        await runtime.close()

    assert result.revision == current_revision(etcd_cluster)
    assert result.verdict.consistent, result.verdict.reasons
    assert [f.keys for f in result.members] == [expected] * 3
    assert len({f.hash for f in result.members}) == 1
    scraped = samples(text)
    assert value(scraped, "etcd_inspector_probe_success", probe="consistency") == 1
    for name in ("m1", "m2", "m3"):
        assert value(scraped, "etcd_inspector_member_keys", member=name) == expected
    assert value(scraped, "etcd_inspector_consistent") == 1
    assert value(scraped, "etcd_inspector_key_count_diff") == 0
    assert value(scraped, "etcd_inspector_revision_diff") == 0
    assert value(scraped, "etcd_inspector_hash_mismatch") == 0
    assert value(scraped, "etcd_inspector_hash_check_available") == 1
    assert value(scraped, "etcd_inspector_leader_distinct") == 1
    assert value(scraped, "etcd_inspector_cluster_id_distinct") == 1
    assert value(scraped, "etcd_inspector_member_list_distinct") == 1
    assert value(scraped, "etcd_inspector_consistency_revision") == result.revision
    assert value(scraped, "etcd_inspector_raft_applied_index_diff") is not None


@pytest.mark.etcd
@pytest.mark.promtool
async def test_rendered_metrics_pass_promtool(shared_cluster: LocalCluster):
    runtime = make_runtime(shared_cluster.endpoints)
    try:
        await run_consistency(runtime)
        text = render_runtime(runtime)
    finally:
        await runtime.close()
    assert "etcd_inspector_consistent{" in text
    await asyncio.to_thread(assert_promtool_clean, text)


async def _write_forever(
    endpoint: str, prefix: str, written: list[int], loaded: asyncio.Event
) -> None:
    """The test's own writer (the exporter never writes): new keys, as fast as etcd takes them."""
    channel = grpc.aio.insecure_channel(endpoint.removeprefix("http://"))
    kv = rpc.KVStub(channel)
    try:
        i = 0
        while True:
            await kv.Put(rpc.PutRequest(key=f"{prefix}{i}".encode(), value=b"x" * 64), timeout=5)
            i += 1
            written[0] += 1
            if written[0] >= 50:
                loaded.set()
    finally:
        await channel.close()


@pytest.mark.etcd
async def test_consistent_under_continuous_writes(etcd_cluster: LocalCluster):
    put_keys(etcd_cluster, "/seed/", 20)
    written = [0]
    loaded = asyncio.Event()
    writers = [
        asyncio.create_task(_write_forever(endpoint, f"/load/{n}/", written, loaded))
        for n, endpoint in enumerate(etcd_cluster.endpoints)
    ]
    runtime = make_runtime(etcd_cluster.endpoints)
    try:
        async with asyncio.timeout(10):
            await loaded.wait()  # the load is really on before the first run
        for _ in range(3):
            before = written[0]
            result = await run_consistency(runtime)
            scraped = samples(render_runtime(runtime))
            assert written[0] > before, "no write landed during the run"
            assert result.verdict.consistent, result.verdict.reasons
            assert value(scraped, "etcd_inspector_consistent") == 1
            assert value(scraped, "etcd_inspector_key_count_diff") == 0
            assert value(scraped, "etcd_inspector_hash_mismatch") == 0
            # the pinned revision is really in the past, and the count is the one at it
            at_r = await asyncio.to_thread(real_key_count, etcd_cluster, result.revision)
            assert await asyncio.to_thread(current_revision, etcd_cluster) > result.revision
            assert [f.keys for f in result.members] == [at_r] * 3
            assert value(scraped, "etcd_inspector_member_keys", member="m1") == at_r
    finally:
        for task in writers:
            task.cancel()
        for task in writers:
            with contextlib.suppress(asyncio.CancelledError):
                await task
        await runtime.close()


@pytest.mark.etcd
async def test_member_of_a_second_cluster_is_caught(
    etcd_cluster: LocalCluster, etcd_binary: str, tmp_path: Path
):
    put_keys(etcd_cluster, "/main/", 30, per_txn=3)  # revision 11
    foreign = start_cluster(1, name_prefix="x", base_dir=tmp_path / "x", binary=etcd_binary)
    runtime = make_runtime([*etcd_cluster.endpoints, *foreign.endpoints])
    try:
        put_keys(foreign, "/other/", 3)  # revision 2
        result = await run_consistency(runtime)
        x1 = runtime.state.member_name(foreign.endpoints[0])
        scraped = samples(render_runtime(runtime))
        assert value(scraped, "etcd_inspector_cluster_id_distinct") == 2
        assert value(scraped, "etcd_inspector_member_list_distinct") == 2
        assert value(scraped, "etcd_inspector_consistent") == 0
        # R is the main cluster's: the stray member is not dragged in nor asked for it
        assert result.revision == current_revision(etcd_cluster)
        assert value(scraped, "etcd_inspector_consistency_revision") == result.revision
        assert value(scraped, "etcd_inspector_member_keys", member=x1) is None
        assert value(scraped, "etcd_inspector_member_keys", member="m1") == 30
        assert any("not comparable" in r for r in result.verdict.reasons)

        # Once the stray cluster has passed R, its count at R is compared (and differs).
        put_keys(foreign, "/other/", 60, start=3, per_txn=5)  # revision 14
        assert current_revision(foreign) > result.revision
        result = await run_consistency(runtime)
        scraped = samples(render_runtime(runtime))
        foreign_keys = value(scraped, "etcd_inspector_member_keys", member=x1)
        assert foreign_keys == real_key_count(foreign, result.revision)
        assert foreign_keys != 30
        assert value(scraped, "etcd_inspector_key_count_diff") == abs(30 - foreign_keys)
        assert value(scraped, "etcd_inspector_cluster_id_distinct") == 2
        assert value(scraped, "etcd_inspector_consistent") == 0
    finally:
        await runtime.close()
        foreign.stop()


@pytest.mark.etcd
async def test_frozen_member_is_left_out_within_the_timeout(etcd_cluster: LocalCluster):
    put_keys(etcd_cluster, "/k/", 12)
    runtime = make_runtime(etcd_cluster.endpoints)
    frozen = etcd_cluster.member("m3")
    try:
        await run_consistency(runtime)  # names resolved while everybody answers
        frozen.freeze()
        started = time.monotonic()
        outcome = await run_probe_once(
            runtime.probes["consistency"], runtime.scheduler.context_for("consistency"),
            runtime.state,
        )  # fmt: skip
        elapsed = time.monotonic() - started
        assert outcome.success, outcome.error
        assert elapsed < runtime.probes["consistency"].timeout
        assert elapsed < 3.5  # one 1s request timeout for the frozen member, not one per call
        result = outcome.result
        by_name = {f.member: f for f in result.members}
        assert by_name["m3"].status is None
        assert by_name["m3"].status_error == "timeout"
        assert by_name["m1"].keys == by_name["m2"].keys == 12
        scraped = samples(render_runtime(runtime))
        assert value(scraped, "etcd_inspector_consistent") == 1
        assert value(scraped, "etcd_inspector_member_keys", member="m3") is None
        assert value(scraped, "etcd_inspector_member_keys", member="m2") == 12
    finally:
        frozen.thaw()
        await runtime.close()


@pytest.mark.etcd
async def test_two_silent_members_fail_the_probe(etcd_cluster: LocalCluster):
    runtime = make_runtime(etcd_cluster.endpoints)
    try:
        await run_consistency(runtime)
        etcd_cluster.member("m2").stop()
        etcd_cluster.member("m3").stop()
        outcome = await run_probe_once(
            runtime.probes["consistency"], runtime.scheduler.context_for("consistency"),
            runtime.state,
        )  # fmt: skip
        assert not outcome.success
        assert outcome.error_kind is ErrorKind.NOT_COMPARABLE
        scraped = samples(render_runtime(runtime))
        assert value(scraped, "etcd_inspector_probe_success", probe="consistency") == 0
        assert value(scraped, "etcd_inspector_consistent") is None
    finally:
        await runtime.close()


@pytest.mark.etcd
async def test_without_root_role_hash_is_unavailable_and_counts_decide(
    etcd_cluster: LocalCluster, tmp_path: Path
):
    put_keys(etcd_cluster, "/a/", 8)
    for args in (
        ("user", "add", "root:rootpw"),
        ("role", "add", "reader"),
        ("role", "grant-permission", "reader", "read", "", "--from-key"),
        ("user", "add", "reader:readpw"),
        ("user", "grant-role", "reader", "reader"),
        ("auth", "enable"),
    ):
        etcdctl(etcd_cluster, *args)
    for user, password in (("reader", "readpw"), ("root", "rootpw")):
        secret = tmp_path / f"{user}.pw"
        secret.write_text(password + "\n")
        runtime = make_runtime(
            etcd_cluster.endpoints,
            cluster_extra={"username": user, "password_file": str(secret)},
        )
        try:
            result = await run_consistency(runtime)
            scraped = samples(render_runtime(runtime))
        finally:
            await runtime.close()
        assert [f.keys for f in result.members] == [8, 8, 8]
        assert value(scraped, "etcd_inspector_consistent") == 1
        if user == "reader":
            assert {f.hash_error for f in result.members} == {"permission_denied"}
            assert value(scraped, "etcd_inspector_hash_check_available") == 0
            assert value(scraped, "etcd_inspector_hash_mismatch") is None
        else:
            assert value(scraped, "etcd_inspector_hash_check_available") == 1
            assert value(scraped, "etcd_inspector_hash_mismatch") == 0
