"""Sharding with real clusters: 3 exporter processes (shards 0, 1, 2 of 3) over 9 single-member
etcd clusters cover each cluster exactly once, and a replica's restart touches only its share."""

from __future__ import annotations

import contextlib
from collections import Counter
from collections.abc import Iterator
from pathlib import Path

import pytest
import yaml

from etcd_inspector.demo.localcluster import LocalCluster, start_cluster
from etcd_inspector.sharding import clusters_of_shard
from exposition import only_families, promtool_check
from harness import ExporterProcess, Scrape

pytestmark = [pytest.mark.etcd, pytest.mark.promtool]

NAMES = [f"tenant-{i}" for i in range(1, 10)]
TOTAL = 3


@pytest.fixture
def nine_clusters(etcd_binary: str, tmp_path: Path) -> Iterator[dict[str, LocalCluster]]:
    clusters: dict[str, LocalCluster] = {}
    try:
        for name in NAMES:
            clusters[name] = start_cluster(1, base_dir=tmp_path / name, binary=etcd_binary)
        yield clusters
    finally:
        for cluster in clusters.values():
            cluster.stop()


def watched(scrape: Scrape) -> dict[str, float]:
    """cluster -> its member's etcd_inspector_member_up, as this replica exposes it."""
    return {s.labels["cluster"]: s.value for s in scrape.samples("etcd_inspector_member_up")}


def shard_label(scrape: Scrape) -> tuple[str, str]:
    (sample,) = scrape.samples("etcd_inspector_shard_info")
    return sample.labels["shard"], sample.labels["total_shards"]


def test_three_replicas_cover_nine_clusters_once_and_restart_alone(
    nine_clusters: dict[str, LocalCluster], tmp_path: Path
) -> None:
    config = tmp_path / "fleet.yaml"
    config.write_text(
        yaml.safe_dump(
            {
                "clusters": [
                    {"name": name, "endpoints": nine_clusters[name].endpoints} for name in NAMES
                ]
            }
        )
    )
    common = [f"--config.file={config}", f"--total-shards={TOTAL}"]
    replicas = [
        ExporterProcess([*common, "--shard=0"], tmp_path / "shard-0.log"),
        ExporterProcess([*common, "--shard=1"], tmp_path / "shard-1.log"),
        # The StatefulSet way: the ordinal from the pod name.
        ExporterProcess(
            [*common, "--shard.from-pod-name"],
            tmp_path / "shard-2.log",
            env={"POD_NAME": "etcd-inspector-2"},
        ),
    ]
    expected = [
        {c.name for c in clusters_of_shard([_Named(n) for n in NAMES], i, TOTAL)}
        for i in range(TOTAL)
    ]
    try:
        for replica in replicas:
            replica.start()
        scrapes = [
            replica.wait_for(
                lambda s, share=share: watched(s) == dict.fromkeys(share, 1.0),
                f"its share {sorted(share)} up",
                timeout=30,
            )
            for replica, share in zip(replicas, expected, strict=True)
        ]
        covered = [name for scrape in scrapes for name in watched(scrape)]
        assert sorted(covered) == sorted(NAMES)  # every cluster exactly once
        assert [shard_label(s) for s in scrapes] == [("0", "3"), ("1", "3"), ("2", "3")]
        # Several clusters' own families share one HELP and TYPE per name in either format.
        for replica, scrape in zip(replicas, scrapes, strict=True):
            # etcd's own families have lint findings of their own (gauges named *_total).
            code, lines = promtool_check(only_families(scrape.text, "etcd_inspector_"))
            assert code == 0, lines
            status, openmetrics, _ = replica.get(
                "/metrics", headers={"Accept": "application/openmetrics-text; version=1.0.0"}
            )
            assert status == 200
            types = Counter(line.split()[2] for line in openmetrics.splitlines()
                            if line.startswith("# TYPE "))  # fmt: skip
            assert types["etcd_inspector_probe_success"] == 1
            assert [name for name, n in types.items() if n > 1] == []
        # Nothing of another replica's clusters leaks into a replica's /metrics.
        for scrape, share in zip(scrapes, expected, strict=True):
            others = set(NAMES) - share
            assert not [line for line in scrape.text.splitlines()
                        if any(f'cluster="{name}"' in line for name in others)]  # fmt: skip

        # Replica 1 goes away: the other two keep serving exactly their shares, all up.
        replicas[1].stop()
        for replica, share in ((replicas[0], expected[0]), (replicas[2], expected[2])):
            assert watched(replica.scrape()) == dict.fromkeys(share, 1.0)
        with pytest.raises(OSError):
            replicas[1].get("/-/healthy", timeout=1)
        # ...and comes back with the same share, no coordination involved.
        replicas[1].start()
        replicas[1].wait_for(
            lambda s: watched(s) == dict.fromkeys(expected[1], 1.0), "share back", timeout=30
        )
        for replica, share in ((replicas[0], expected[0]), (replicas[2], expected[2])):
            assert watched(replica.scrape()) == dict.fromkeys(share, 1.0)
    finally:
        for replica in replicas:
            with contextlib.suppress(Exception):
                replica.stop()


class _Named:
    def __init__(self, name: str) -> None:
        self.name = name
