"""No-op writes (issue 19): the hot-key probe's noop_writes option asks the watch for prev_kv
and counts rewrites that left a value unchanged (etcd_inspector_noop_writes_per_second). Real
etcd: one probe with the option and one without watch the same writes."""

from __future__ import annotations

import asyncio
import time
from collections.abc import AsyncIterator
from pathlib import Path

import pytest

from etcd_inspector.cluster.state import ClusterState
from etcd_inspector.demo.localcluster import LocalCluster, start_cluster
from etcd_inspector.etcd.client import MemberClient
from etcd_inspector.etcd.types import WatchEvent
from etcd_inspector.keyspace.keys import hashed_key
from etcd_inspector.keyspace.prefixes import PrefixRules
from etcd_inspector.probes.base import ProbeContext, ReportContext
from etcd_inspector.probes.hotkeys import HotKeysOptions, HotKeysProbe, HotKeysResult
from etcd_inspector.probes.hotkeys.counters import WriteCounters
from exposition import assert_promtool_clean, render
from memory_etcd import MemoryCluster
from test_probe_hotkeys import Writer


def test_the_counters_count_unchanged_puts_only_with_the_option() -> None:
    events = [WatchEvent(b"/a", False, 2, unchanged=True), WatchEvent(b"/a", False, 3, True),
              WatchEvent(b"/b", False, 4), WatchEvent(b"/a", True, 5)]  # fmt: skip
    on = WriteCounters(HotKeysOptions(noop_writes=True), PrefixRules(depth=2), 0.0)
    on.count(events, 1.0)
    assert on.noop_total == 2 and on.noop_key_writes("full") == (("/a", 2),)
    (a,) = on.noop_writes(1.0, "full") or ()
    assert a.key == "/a" and a.writes_per_second > 0
    off = WriteCounters(HotKeysOptions(), PrefixRules(depth=2), 0.0)
    off.count(events, 1.0)
    assert off.noop_total == 0 and off.noop_writes(1.0, "full") is None
    assert off.noop_key_writes("full") == ()


async def test_the_memory_fake_marks_unchanged_puts_only_when_asked() -> None:
    mc = MemoryCluster(("m1",))
    mc.store.put(b"/k", b"v")
    mc.store.put(b"/k", b"v")
    mc.store.put(b"/k", b"w")
    member = mc.members[0]
    with_prev = [ev.unchanged async for b in member.watch(b"/k", b"", 1, prev_kv=True)
                 for ev in b.events]  # fmt: skip
    without = [ev.unchanged async for b in member.watch(b"/k", b"", 1) for ev in b.events]
    assert with_prev == [False, True, False] and without == [False, False, False]


@pytest.fixture
async def one_member(etcd_binary: str, tmp_path: Path) -> AsyncIterator[LocalCluster]:
    cluster = start_cluster(1, base_dir=tmp_path / "etcd", binary=etcd_binary)
    yield cluster
    cluster.stop()


def _ctx(cluster: LocalCluster) -> ProbeContext:
    return ProbeContext(
        cluster="test",
        members=[MemberClient(u, request_timeout=2.0) for u in cluster.endpoints],
        state=ClusterState("test", tuple(cluster.endpoints)),
        key_labels="full",
    )


async def _until(probe: HotKeysProbe, ctx: ProbeContext, events: int) -> HotKeysResult:
    deadline = time.monotonic() + 15
    while True:
        result = await probe.run(ctx)
        if result.events_total >= events:
            return result
        assert time.monotonic() < deadline, result
        await asyncio.sleep(0.05)


@pytest.mark.etcd
@pytest.mark.promtool
async def test_a_key_rewritten_unchanged_shows_with_the_option_and_not_without(
    one_member: LocalCluster,
) -> None:
    on, off = HotKeysProbe(HotKeysOptions(noop_writes=True)), HotKeysProbe(HotKeysOptions())
    ctx_on, ctx_off = _ctx(one_member), _ctx(one_member)
    writer = Writer(one_member.endpoints[0])
    try:
        await on.run(ctx_on)
        await off.run(ctx_off)
        for i in range(20):
            await writer.put(b"/cfg/same", b"unchanged")  # the first creates it: 19 no-ops
            await writer.put(b"/cfg/changing", b"v%d" % i)
        for _ in range(5):
            await writer.put(b"/registry/secrets/ns/token", b"same")  # 4 no-ops, key hashed
        got_on, got_off = await _until(on, ctx_on, 45), await _until(off, ctx_off, 45)

        assert got_on.noop_writes_total == 23
        secret = hashed_key(b"/registry/secrets/ns/token")
        assert dict(got_on.noop_key_writes) == {"/cfg/same": 19, secret: 4}
        rates = {hk.key: hk.writes_per_second for hk in got_on.noop_writes or ()}
        assert set(rates) == {"/cfg/same", secret} and rates["/cfg/same"] > rates[secret] > 0
        text = render(on.metrics("test", got_on))
        assert 'etcd_inspector_noop_writes_per_second{cluster="test",key="/cfg/same"}' in text
        assert "secrets/ns/token" not in text
        assert_promtool_clean(text)
        rc = ReportContext("test", tuple(one_member.endpoints), {}, watch_seconds=10.0)
        doc = on.report_json(got_on, rc)["hot_keys"]["noop_writes"]
        assert doc["total"] == 23
        assert doc["keys"][0] == {"key": "/cfg/same", "writes_per_second": 1.9}
        assert "No-op rewrites (value unchanged): 23" in "\n".join(on.report_text(got_on, rc))

        assert got_off.noop_writes is None and got_off.noop_writes_total is None
        assert "noop_writes" not in render(off.metrics("test", got_off))
        assert off.report_json(got_off, rc)["hot_keys"]["noop_writes"] is None
        # the same writes reached both watches
        assert got_off.events_total == got_on.events_total == 45
    finally:
        await writer.close()
        for probe, ctx in ((on, ctx_on), (off, ctx_off)):
            await probe.close()
            for m in ctx.members:
                await m.close()
