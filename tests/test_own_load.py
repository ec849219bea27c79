"""Our own heavy requests (cluster/own_load.py): when a page overlapped one, pure; and the
consistency probe's HashKV marking the concurrent scan's pages, against a real cluster."""

from __future__ import annotations

import asyncio

import grpc
import pytest
from aetcd import rpc

from etcd_inspector.cluster.own_load import OwnLoad
from etcd_inspector.config import parse_config
from etcd_inspector.demo.localcluster import LocalCluster
from etcd_inspector.etcd import client as client_module
from etcd_inspector.probes import REGISTRY
from etcd_inspector.probes.bigvalue import BigValueProbe, ScanProgress
from etcd_inspector.probes.consistency import ConsistencyProbe
from etcd_inspector.runtime.runtime import build_runtime
from etcd_inspector.runtime.scheduler import run_probe_once

KEYS = 3000


class Clock:
    def __init__(self) -> None:
        self.now = 0.0

    def __call__(self) -> float:
        return self.now


def test_a_page_overlaps_our_load_if_any_ran_between_its_ask_and_now() -> None:
    clock = Clock()
    own = OwnLoad(clock)
    assert not own.overlapped(0.0)  # nothing ever ran
    clock.now = 1.0
    with own.running():
        assert own.in_flight == 1 and own.overlapped(5.0)  # in flight now
        with own.running():
            assert own.in_flight == 2
        clock.now = 2.0
    assert own.in_flight == 0
    assert own.overlapped(1.5)  # asked at 1.5: the load ended at 2.0, after
    assert own.overlapped(2.0)
    assert not own.overlapped(2.1)  # asked after it ended
    with pytest.raises(RuntimeError), own.running():  # a failed request ends too
        clock.now = 3.0
        raise RuntimeError("boom")
    assert own.in_flight == 0 and own.overlapped(2.5) and not own.overlapped(3.1)


async def load(endpoint: str, n: int) -> None:
    async with grpc.aio.insecure_channel(endpoint.removeprefix("http://")) as channel:
        kv = rpc.KVStub(channel)
        for start in range(0, n, 100):
            puts = [
                rpc.RequestOp(request_put=rpc.PutRequest(key=b"/own/%05d" % i, value=b"v" * 100))
                for i in range(start, min(n, start + 100))
            ]
            await kv.Txn(rpc.TxnRequest(success=puts), timeout=10)


@pytest.mark.etcd
async def test_pages_read_while_consistency_hashes_are_not_judged(
    etcd_cluster: LocalCluster, monkeypatch: pytest.MonkeyPatch
) -> None:
    """The consistency probe and the scan share the runtime's OwnLoad: the scan's pages read
    while the members hash are marked, the pages after the hash are judged again."""
    await load(etcd_cluster.endpoints[0], KEYS)
    raw = {
        "clusters": [{"name": "own", "endpoints": etcd_cluster.endpoints}],
        "inspection": {"probes": {"bigvalue": {"page_size": 100}}},
    }
    config = parse_config(raw, REGISTRY)
    rt = build_runtime(config.clusters[0], config, only={"status", "consistency", "bigvalue"})
    hash_kv = client_module.MemberClient.hash_kv

    async def hash_until_a_third_is_read(self, revision, timeout=None):  # type: ignore[no-untyped-def]
        """A HashKV as slow as a large backend's: it ends once the scan read a third."""
        result = await hash_kv(self, revision, timeout=timeout)
        for _ in range(2000):
            progress = rt.state.progress.get("bigvalue")
            if isinstance(progress, ScanProgress) and progress.keys_done >= KEYS // 3:
                break
            await asyncio.sleep(0.005)
        return result

    monkeypatch.setattr(client_module.MemberClient, "hash_kv", hash_until_a_third_is_read)
    try:
        scan_ctx, hash_ctx = (rt.scheduler.context_for(n) for n in ("bigvalue", "consistency"))
        assert scan_ctx.own_load is hash_ctx.own_load
        status = await run_probe_once(rt.probes["status"], rt.scheduler.context_for("status"),
                                      rt.state)  # fmt: skip
        assert status.success
        consistency, scanner = rt.probes["consistency"].probe, rt.probes["bigvalue"].probe
        assert isinstance(consistency, ConsistencyProbe) and isinstance(scanner, BigValueProbe)
        hashing = asyncio.create_task(consistency.run(hash_ctx))
        for _ in range(2000):  # the scan starts once our own load is on the members
            if hash_ctx.own_load.in_flight:
                break
            await asyncio.sleep(0.001)
        assert hash_ctx.own_load.in_flight
        result = await scanner.run(scan_ctx)
        verdict = (await hashing).verdict
    finally:
        await rt.close()
    assert verdict.consistent and verdict.hash_check_available
    assert result.keys == KEYS
    # a third of 3000 keys in pages of at most 100 were read under the hash; the rest not
    assert 10 <= result.shadowed_pages <= result.requests - 10, (
        result.shadowed_pages, result.requests,
    )  # fmt: skip
