"""The hotkeys probe: pure parts, then real 3-member etcd clusters that the tests write to."""

from __future__ import annotations

import asyncio
import math
import time
from collections.abc import AsyncIterator, Callable

import grpc
import pytest
from aetcd import rpc

from conftest import etcdctl
from etcd_inspector.cluster.state import ClusterState
from etcd_inspector.config import parse_config
from etcd_inspector.demo.localcluster import LocalCluster
from etcd_inspector.etcd.client import MemberClient, MemberStatus, WatchEvent
from etcd_inspector.keyspace.prefixes import PrefixRules
from etcd_inspector.ports import free_ports
from etcd_inspector.probes import REGISTRY
from etcd_inspector.probes.base import CACHED, ProbeContext
from etcd_inspector.probes.hotkeys import (
    PROGRESS_NOTIFY_SECONDS,
    HotKey,
    HotKeysOptions,
    HotKeysProbe,
    HotKeysResult,
    PrefixWrites,
    WatchBehind,
    WatchUnavailable,
    WriteCounters,
    is_stalled,
    watch_order,
)
from exposition import assert_promtool_clean, render

# --------------------------------------------------------------------------- pure


def _status(endpoint: str, member_id: int, leader_id: int, learner: bool = False) -> MemberStatus:
    return MemberStatus(
        endpoint=endpoint, member_id=member_id, cluster_id=1, leader_id=leader_id, raft_term=2,
        raft_index=10, raft_applied_index=10, revision=5, db_size=1, db_size_in_use=1,
        version="3.4.0", is_learner=learner, errors=(),
    )  # fmt: skip


def test_watch_order_prefers_answering_followers_and_puts_the_failed_member_last() -> None:
    eps = ["a", "b", "c", "d", "e"]
    statuses = {
        "a": _status("a", 1, leader_id=1),  # leader
        "b": None,  # did not answer
        "c": _status("c", 3, leader_id=1),
        "d": _status("d", 4, leader_id=1, learner=True),
        "e": _status("e", 5, leader_id=1),
    }
    assert watch_order(eps, statuses, last_failed=None) == ["c", "e", "a", "b", "d"]
    assert watch_order(eps, statuses, last_failed="c") == ["e", "a", "b", "d", "c"]
    # No information at all: the configured order.
    assert watch_order(eps, {}, last_failed=None) == eps


def test_is_stalled_tells_a_quiet_cluster_from_a_stuck_watch() -> None:
    base = dict(whole_keyspace=True, silent_seconds=61.0, stall_seconds=60.0)
    # Nothing written since: quiet, not stuck.
    assert not is_stalled(member_revision=100, known_revision=100, last_seen=100, **base)
    # The member (or another one, via the status probe) moved on: stuck.
    assert is_stalled(member_revision=101, known_revision=0, last_seen=100, **base)
    assert is_stalled(member_revision=100, known_revision=105, last_seen=100, **base)
    # The member does not answer Status at all: stuck.
    assert is_stalled(member_revision=None, known_revision=0, last_seen=100, **base)
    # A narrow watch: writes elsewhere move the revision; only a missing progress notification
    # (etcd sends one every 10 minutes) proves it stuck.
    narrow = dict(base, whole_keyspace=False)
    assert not is_stalled(member_revision=500, known_revision=0, last_seen=100, **narrow)
    narrow["silent_seconds"] = PROGRESS_NOTIFY_SECONDS + 60.0
    assert is_stalled(member_revision=500, known_revision=0, last_seen=100, **narrow)


@pytest.mark.parametrize(
    "options, message",
    [
        (dict(top_n=0), "top_n"),
        (dict(capacity=5, top_n=10), "capacity"),
        (dict(rate_window_seconds=0.0), "rate_window_seconds"),
        (dict(min_rate=-1.0), "min_rate"),
        (dict(prefix_depth=0), "prefix_depth"),
        (dict(max_prefixes=0), "max_prefixes"),
        (dict(stall_seconds=0.0), "stall_seconds"),
        (dict(prefixes=("",)), "empty"),
        (dict(prefixes=("/a/", "/a/b/")), "overlap"),
        (dict(prefixes=("/a/", "/a/")), "duplicates"),
    ],
)
def test_invalid_options_are_rejected(options: dict, message: str) -> None:
    with pytest.raises(ValueError, match=message):
        HotKeysOptions(**options)


def test_options_come_from_the_config_file() -> None:
    raw = {
        "inspection": {
            "probes": {
                "hotkeys": {
                    "prefixes": ["/registry/", "/app/"],
                    "top_n": 5,
                    "rate_window_seconds": "2m",
                    "stall_seconds": "30s",
                    "min_rate": 0.5,
                }
            }
        },
        "clusters": [{"name": "c", "endpoints": ["http://127.0.0.1:2379"]}],
    }
    config = parse_config(raw, REGISTRY)
    pc = config.probes["hotkeys"]
    assert pc.enabled and pc.interval == 15.0 and pc.timeout == 10.0
    assert pc.options == HotKeysOptions(
        prefixes=("/registry/", "/app/"), top_n=5, rate_window_seconds=120.0,
        stall_seconds=30.0, min_rate=0.5,
    )  # fmt: skip
    assert REGISTRY["hotkeys"].cluster_wide


def _events(*pairs: tuple[bytes, bool], rev: int = 1) -> list[WatchEvent]:
    return [WatchEvent(key=k, is_delete=d, mod_revision=rev + i) for i, (k, d) in enumerate(pairs)]


def test_prefix_counters_are_bounded_and_stay_monotonic() -> None:
    options = HotKeysOptions(max_prefixes=3)
    counters = WriteCounters(options, PrefixRules(depth=2), now=0.0)
    counters.count(_events((b"/a/x/1", False), (b"/b/y/1", False), (b"/a/x/2", True)), now=0.0)
    counters.count(_events((b"/c/z/1", False), (b"/d/w/1", False), (b"/e/v/1", True)), now=1.0)
    counters.count(_events((b"/a/x/3", False), (b"nodir", False)), now=2.0)
    got = {(p.prefix, p.op): p.count for p in counters.prefix_writes()}
    assert got == {
        ("/a/x/", "put"): 2, ("/a/x/", "delete"): 1,
        ("/b/y/", "put"): 1, ("/b/y/", "delete"): 0,
        ("/c/z/", "put"): 1, ("/c/z/", "delete"): 0,
        # the fourth and later groups (and the root group, new too) share one series
        ("<other>", "put"): 2, ("<other>", "delete"): 1,
    }  # fmt: skip
    assert counters.events_total == 8


def test_kubernetes_keys_group_by_resource() -> None:
    counters = WriteCounters(HotKeysOptions(), PrefixRules(depth=2), now=0.0)
    counters.count(
        _events(
            (b"/registry/pods/default/web-1", False),
            (b"/registry/pods/kube-system/dns", False),
            (b"/registry/apps.example.com/widgets/ns/w", False),
        ),
        now=0.0,
    )
    assert [(p.prefix, p.op, p.count) for p in counters.prefix_writes() if p.op == "put"] == [
        ("/registry/apps.example.com/widgets/", "put", 1),
        ("/registry/pods/", "put", 2),
    ]


def test_hot_keys_respect_min_rate_and_merge_shared_labels() -> None:
    options = HotKeysOptions(rate_window_seconds=10.0, min_rate=1.0, top_n=5)
    counters = WriteCounters(options, PrefixRules(depth=2), now=0.0)
    counters.count(_events(*[(b"/app/a/hot", False)] * 100), now=0.0)  # 10/s
    counters.count(_events(*[(b"/app/a/warm", False)] * 30), now=0.0)  # 3/s
    counters.count(_events(*[(b"/app/b/cold", False)] * 5), now=0.0)  # 0.5/s: below min_rate
    counters.count(_events((b"/app/b/\xff\xfe", False)), now=0.0)
    full = counters.hot_keys(now=0.0, key_labels="full")
    assert full == (HotKey("/app/a/hot", pytest.approx(10.0)), HotKey("/app/a/warm", 3.0))
    # In prefix mode both keys show as their group: one series with the sum, not two.
    assert counters.hot_keys(now=0.0, key_labels="prefix") == (
        HotKey("/app/a/", pytest.approx(13.0)),
    )
    hashed = counters.hot_keys(now=0.0, key_labels="hash")
    assert [h.key[:7] for h in hashed] == ["sha256:", "sha256:"]


def _render(probe: HotKeysProbe, result: HotKeysResult) -> str:
    return render(probe.metrics("prod", result))


@pytest.mark.promtool
def test_metrics_exposition_passes_promtool() -> None:
    probe = HotKeysProbe(HotKeysOptions())
    result = HotKeysResult(
        prefix_writes=(
            PrefixWrites("/registry/pods/", "put", 7),
            PrefixWrites("<other>", "delete", 2),
        ),
        hot_keys=(HotKey('/a/"quoted"\\x00\\xff', 12.5),),
        events_total=9, revision=1234, lag_revisions=3, missed_windows_total=1,
        restarts_total=2, watched_endpoints=("http://127.0.0.1:2379",), sketch_entries=1,
    )  # fmt: skip
    text = _render(probe, result)
    assert (
        'etcd_inspector_prefix_writes_total{cluster="prod",op="put",prefix="/registry/pods/"} 7.0'
        in text
    )
    assert 'etcd_inspector_hot_key_writes_per_second{cluster="prod",key="/a/\\"quoted\\"' in text
    assert 'etcd_inspector_watch_events_total{cluster="prod"} 9.0' in text
    assert 'etcd_inspector_watch_revision{cluster="prod"} 1234.0' in text
    assert 'etcd_inspector_watch_missed_windows_total{cluster="prod"} 1.0' in text
    assert 'etcd_inspector_watch_restarts_total{cluster="prod"} 2.0' in text
    assert 'etcd_inspector_watch_lag_revisions{cluster="prod"} 3.0' in text
    helps = [line for line in text.splitlines() if line.startswith("# HELP")]
    assert len(helps) == 7 and all(line.endswith(CACHED) for line in helps)
    assert_promtool_clean(text)


# --------------------------------------------------------------------------- real etcd


def make_ctx(cluster: LocalCluster, key_labels: str = "full") -> ProbeContext:
    return ProbeContext(
        cluster="test",
        members=[MemberClient(u, request_timeout=2.0) for u in cluster.endpoints],
        state=ClusterState("test", tuple(cluster.endpoints)),
        key_labels=key_labels,
    )


class Writer:
    """Test-only writes over gRPC: etcdctl costs a process per put, far too slow for 1000s."""

    def __init__(self, endpoint: str) -> None:
        self.channel = grpc.aio.insecure_channel(endpoint.split("://", 1)[1])
        self.kv = rpc.KVStub(self.channel)

    async def put(self, key: bytes, value: bytes = b"v") -> int:
        r = await self.kv.Put(rpc.PutRequest(key=key, value=value), timeout=5)
        return r.header.revision

    async def put_many(self, keys: list[bytes], value: bytes = b"v") -> int:
        ops = [rpc.RequestOp(request_put=rpc.PutRequest(key=k, value=value)) for k in keys]
        r = await self.kv.Txn(rpc.TxnRequest(success=ops), timeout=5)
        return r.header.revision

    async def close(self) -> None:
        await self.channel.close()


@pytest.fixture
async def probe_env(etcd_cluster: LocalCluster) -> AsyncIterator[Callable[..., tuple]]:
    made: list[tuple[HotKeysProbe, ProbeContext]] = []
    writers: list[Writer] = []

    def make(options: HotKeysOptions | None = None, key_labels: str = "full"):
        probe, ctx = HotKeysProbe(options or HotKeysOptions()), make_ctx(etcd_cluster, key_labels)
        made.append((probe, ctx))
        return probe, ctx

    def writer(endpoint: str) -> Writer:
        w = Writer(endpoint)
        writers.append(w)
        return w

    make.writer = writer  # type: ignore[attr-defined]
    yield make
    for probe, ctx in made:
        await probe.close()
        for m in ctx.members:
            await m.close()
    for w in writers:
        await w.close()


async def wait_for(
    probe: HotKeysProbe, ctx: ProbeContext, done: Callable[[HotKeysResult], bool], timeout=10.0
) -> HotKeysResult:
    deadline = time.monotonic() + timeout
    while True:
        try:
            result = await probe.run(ctx)
        except WatchBehind as err:  # replaying a backlog: its snapshot is the result so far
            result = err.partial
        if done(result):
            return result
        if time.monotonic() > deadline:
            raise AssertionError(f"not reached in {timeout}s: {result}")
        await asyncio.sleep(0.05)


def counts_of(result: HotKeysResult) -> dict[tuple[str, str], int]:
    return {(p.prefix, p.op): p.count for p in result.prefix_writes}


async def leader_endpoint(ctx: ProbeContext) -> str:
    for m in ctx.members:
        st = await m.status()
        if st.leader_id == st.member_id:
            return m.endpoint
    raise AssertionError("no leader")


@pytest.mark.etcd
async def test_hot_key_and_exact_prefix_counts(etcd_cluster: LocalCluster, probe_env) -> None:
    started = time.monotonic()
    probe, ctx = probe_env()
    first = await probe.run(ctx)
    assert first.events_total == 0 and first.revision is not None
    # A follower carries the watch, not the leader.
    leader = await leader_endpoint(ctx)
    assert len(first.watched_endpoints) == 1 and first.watched_endpoints[0] != leader

    writer = probe_env.writer(leader)
    for _ in range(500):
        await writer.put(b"/hot/app/key")
    for i in range(200):
        await writer.put(f"/cold/a/{i}".encode())
    # /cold/a/1, /cold/a/10..19, /cold/a/100..199: 111 keys in one delete
    out = etcdctl(etcd_cluster, "del", "--prefix", "/cold/a/1")
    assert out.strip() == "111"
    last = await writer.put(b"/other/x/1")

    result = await wait_for(probe, ctx, lambda r: r.revision == last)
    assert result.events_total == 500 + 200 + 111 + 1
    assert counts_of(result) == {
        ("/hot/app/", "put"): 500, ("/hot/app/", "delete"): 0,
        ("/cold/a/", "put"): 200, ("/cold/a/", "delete"): 111,
        ("/other/x/", "put"): 1, ("/other/x/", "delete"): 0,
    }  # fmt: skip
    # Only the hot key is above min_rate (1/s): the others were written once or twice.
    assert [h.key for h in result.hot_keys] == ["/hot/app/key"]
    # 500 writes since the probe started `age` seconds ago: the decayed sum over the time
    # observed, which counts as at least 10 s.
    age = time.monotonic() - started
    observed = max(10.0, 60 * -math.expm1(-age / 60))
    assert 500 * math.exp(-age / 60) / observed <= result.hot_keys[0].writes_per_second <= 50
    assert result.hot_keys[0].writes_per_second > 1.0
    assert result.missed_windows_total == 0 and result.restarts_total == 0
    assert result.sketch_entries == 1 + 200 + 1
    text = _render(probe, result)
    assert 'etcd_inspector_hot_key_writes_per_second{cluster="prod",key="/hot/app/key"}' in text


@pytest.mark.etcd
async def test_killed_member_watch_moves_on_without_losing_events(
    etcd_cluster: LocalCluster, probe_env
) -> None:
    probe, ctx = probe_env(HotKeysOptions(prefixes=("/kill/",)))
    first = await probe.run(ctx)
    watched = first.watched_endpoints[0]
    leader = await leader_endpoint(ctx)
    assert watched != leader
    writer = probe_env.writer(leader)
    victim = next(m for m in etcd_cluster.members if m.client_url == watched)

    total = 1200
    killed_at = 0
    for i in range(total):
        last = await writer.put(f"/kill/k/{i}".encode())
        if i == 400:
            # Let the watch see part of the stream, then crash its member mid-stream.
            await wait_for(probe, ctx, lambda r: r.events_total > 0)
            killed_at = (await probe.run(ctx)).events_total
            await asyncio.to_thread(victim.kill)
    assert 0 < killed_at < total

    # Wait for the last write itself: a count alone could be reached early by a double count.
    result = await wait_for(probe, ctx, lambda r: r.revision == last)
    # Exact: resumed from last seen + 1 on another member, nothing lost, nothing twice.
    assert result.events_total == total
    assert counts_of(result)[("/kill/k/", "put")] == total
    assert result.restarts_total >= 1
    assert result.missed_windows_total == 0
    assert result.watched_endpoints and result.watched_endpoints[0] != watched


@pytest.mark.etcd
async def test_compacted_resume_counts_a_missed_window(
    etcd_cluster: LocalCluster, probe_env
) -> None:
    probe, ctx = probe_env()
    await probe.run(ctx)
    writer = probe_env.writer(etcd_cluster.endpoints[0])
    for i in range(10):
        last = await writer.put(f"/c/a/{i}".encode())
    before = await wait_for(probe, ctx, lambda r: r.revision == last)
    assert before.events_total == 10

    await probe.close()  # the watch stops; its counters and last seen revision stay
    for i in range(20):
        rev = await writer.put(f"/c/b/{i}".encode())
        if i == 9:
            compact_at = rev
    etcdctl(etcd_cluster, "compact", str(compact_at))
    for i in range(5):
        last = await writer.put(f"/c/c/{i}".encode())

    after = await wait_for(probe, ctx, lambda r: r.revision == last)
    assert after.missed_windows_total == 1
    # Resumed from the compaction revision, the oldest one left: only what is gone is missed.
    assert after.events_total == 10 + (last - compact_at + 1)
    got = counts_of(after)
    assert got[("/c/a/", "put")] == 10
    assert got[("/c/b/", "put")] == 11  # the ones written from compact_at on
    assert got[("/c/c/", "put")] == 5

    # Counting goes on as usual.
    last = await writer.put(b"/c/c/more")
    resumed = await wait_for(probe, ctx, lambda r: r.revision == last)
    assert resumed.events_total == after.events_total + 1
    assert resumed.missed_windows_total == 1 and resumed.restarts_total == 0


@pytest.mark.etcd
async def test_memory_stays_bounded_and_the_heavy_hitter_is_found(
    etcd_cluster: LocalCluster, probe_env
) -> None:
    probe, ctx = probe_env(HotKeysOptions(capacity=100, max_prefixes=50))
    await probe.run(ctx)
    writer = probe_env.writer(etcd_cluster.endpoints[0])
    heavy = b"/heavy/one/key"
    # 20,000 distinct keys over 500 groups, and one key written 3 times per 100 of them: 600
    # writes, above the (20,000 + 600) / 100 that Space-Saving guarantees to catch.
    for batch in range(200):
        await writer.put_many(
            [f"/many/{(batch * 100 + j) % 500}/{batch}-{j}".encode() for j in range(100)]
        )
        for _ in range(3):
            last = await writer.put(heavy)
    result = await wait_for(probe, ctx, lambda r: r.revision == last, timeout=20)
    assert result.events_total == 20_600
    assert result.sketch_entries == 100 and len(probe.counters.sketch) == 100
    assert result.hot_keys[0].key == heavy.decode()
    assert result.hot_keys[0].writes_per_second > 1.0
    counts = counts_of(result)
    # 50 groups of their own (one of them /heavy/one/ or a /many/ group) plus <other>.
    assert len({prefix for prefix, _ in counts}) == 51
    assert sum(n for (_, op), n in counts.items() if op == "put") == 20_600
    assert counts[("<other>", "put")] > 0


@pytest.mark.etcd
async def test_quiet_cluster_is_not_a_stall_but_a_frozen_member_is(
    etcd_cluster: LocalCluster, probe_env
) -> None:
    probe, ctx = probe_env(HotKeysOptions(stall_seconds=0.5))
    first = await probe.run(ctx)
    await asyncio.sleep(1.6)  # three stall periods without a single write
    quiet = await probe.run(ctx)
    assert quiet.restarts_total == 0 and quiet.watched_endpoints == first.watched_endpoints

    watched = first.watched_endpoints[0]
    victim = next(m for m in etcd_cluster.members if m.client_url == watched)
    writer = probe_env.writer(await leader_endpoint(ctx))
    # SIGSTOP: the connection stays open and silent (keepalive would need ~15 s to notice).
    victim.freeze()
    try:
        for i in range(50):
            last = await writer.put(f"/frozen/k/{i}".encode())
        result = await wait_for(probe, ctx, lambda r: r.revision == last, timeout=8)
        assert result.events_total == 50
        assert result.restarts_total == 1
        assert result.watched_endpoints[0] != watched
    finally:
        # A thawed member can take etcd's whole stop timeout to exit; it has served its purpose.
        victim.kill()


@pytest.mark.etcd
async def test_a_dead_watcher_task_is_restarted_without_losing_events(
    etcd_cluster: LocalCluster, probe_env
) -> None:
    probe, ctx = probe_env()
    await probe.run(ctx)
    real_count = probe.counters.count
    calls = 0

    def count_with_a_bug_once(events, now):
        nonlocal calls
        calls += 1
        if calls == 1:
            raise RuntimeError("a bug in counting")
        real_count(events, now)

    probe.counters.count = count_with_a_bug_once  # type: ignore[method-assign]
    writer = probe_env.writer(etcd_cluster.endpoints[0])
    for i in range(10):
        last = await writer.put(f"/bug/k/{i}".encode())
    result = await wait_for(probe, ctx, lambda r: r.revision == last)
    # The batch that hit the bug was not applied, so the restarted watch got it again.
    assert result.events_total == 10
    assert counts_of(result)[("/bug/k/", "put")] == 10
    assert result.restarts_total == 1 and calls >= 2


async def test_no_member_answering_fails_the_run() -> None:
    urls = [f"http://127.0.0.1:{p}" for p in free_ports(3)]  # nothing listens there
    ctx = ProbeContext(
        cluster="down",
        members=[MemberClient(u, request_timeout=1.0) for u in urls],
        state=ClusterState("down", tuple(urls)),
    )
    probe = HotKeysProbe(HotKeysOptions())
    try:
        with pytest.raises(WatchUnavailable, match=r"watch down for .*unavailable"):
            async with asyncio.timeout(8):
                await probe.run(ctx)
    finally:
        await probe.close()
        for m in ctx.members:
            await m.close()
