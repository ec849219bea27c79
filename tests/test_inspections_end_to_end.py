"""Issue 4's "done when", through the running exporter against a real cluster with a planted
1 MiB value, a key rewritten thousands of times and 5k ordinary keys."""

from __future__ import annotations

import asyncio
import threading
from pathlib import Path

import pytest

from etcd_inspector.demo.localcluster import LocalCluster, start_cluster
from etcd_inspector.demo.sample_writer import SampleWriter
from harness import all_members_up, endpoints_flag, run_exporter

pytestmark = pytest.mark.etcd

BIG_KEY = b"/big/blob"
HOT_KEY = b"/hot/counter"


async def plant(endpoint: str) -> None:
    writer = SampleWriter(endpoint)
    try:
        await writer.put_many((f"/app/item/{i:05d}".encode(), b"v" * 100) for i in range(5000))
        await writer.put(BIG_KEY, b"x" * (1024 * 1024))
        for start in range(0, 2000, 100):  # one key cannot appear twice in a txn
            await asyncio.gather(
                *(writer.put(HOT_KEY, str(i).encode()) for i in range(start, start + 100))
            )
    finally:
        await writer.close()


def keep_writing(endpoint: str, stop: threading.Event) -> None:
    async def loop() -> None:
        writer = SampleWriter(endpoint)
        try:
            i = 0
            while not stop.is_set():
                await writer.put(HOT_KEY, str(i).encode())
                i += 1
                await asyncio.sleep(0.01)
        finally:
            await writer.close()

    asyncio.run(loop())


def test_exporter_shows_consistency_quota_big_value_and_hot_key(
    etcd_cluster: LocalCluster, tmp_path: Path
) -> None:
    asyncio.run(plant(etcd_cluster.endpoints[0]))
    stop = threading.Event()
    writer = threading.Thread(target=keep_writing, args=(etcd_cluster.endpoints[0], stop))
    writer.start()
    try:
        with run_exporter(
            tmp_path, endpoints_flag(etcd_cluster), "--inspection.interval=1s",
            "--scan.keys-per-second=0",
        ) as exporter:  # fmt: skip
            scrape = exporter.wait_for(
                lambda s: (
                    all_members_up(s)
                    and s.value("etcd_inspector_consistent") == 1
                    and s.value("etcd_inspector_big_values") is not None
                    and bool(s.by_member("etcd_inspector_quota_used_ratio"))
                    and bool(s.samples("etcd_inspector_hot_key_writes_per_second"))
                ),
                "every inspection has reported",
                timeout=30,
            )
            keys = scrape.by_member("etcd_inspector_member_keys")
            assert set(keys) == {"m1", "m2", "m3"} and len(set(keys.values())) == 1
            assert next(iter(keys.values())) >= 5002  # 5000 items, the blob, the hot key
            assert scrape.value("etcd_inspector_key_count_diff") == 0
            ratios = scrape.by_member("etcd_inspector_quota_used_ratio")
            assert all(0 < r < 1 for r in ratios.values()), ratios
            assert scrape.value("etcd_inspector_big_values") == 1
            top = scrape.samples("etcd_inspector_value_size_top_bytes")
            assert max(top, key=lambda s: s.value).labels["key"] == BIG_KEY.decode()
            versions = scrape.samples("etcd_inspector_key_version_top")
            assert max(versions, key=lambda s: s.value).labels["key"] == HOT_KEY.decode()
            hot = scrape.samples("etcd_inspector_hot_key_writes_per_second")
            assert max(hot, key=lambda s: s.value).labels["key"] == HOT_KEY.decode()
    finally:
        stop.set()
        writer.join(timeout=10)


def test_a_member_of_another_cluster_among_the_endpoints_is_inconsistent(
    etcd_cluster: LocalCluster, etcd_binary: str, tmp_path: Path
) -> None:
    stranger = start_cluster(1, base_dir=tmp_path / "other", binary=etcd_binary, name_prefix="x")
    try:
        endpoints = ",".join([*etcd_cluster.endpoints, *stranger.endpoints])
        with run_exporter(
            tmp_path, f"--etcd.endpoints={endpoints}", "--inspection.interval=1s"
        ) as exporter:
            scrape = exporter.wait_for(
                lambda s: (
                    s.value("etcd_inspector_consistent") == 0
                    and s.value("etcd_inspector_cluster_id_distinct") == 2
                ),
                "the stranger is caught",
                timeout=30,
            )
            assert scrape.by_member("etcd_inspector_member_up").get("x1") == 1
    finally:
        stranger.stop()
