"""Sharding the configured clusters across replicas (sharding.py, the run flags):
pure logic, no etcd."""

from __future__ import annotations

import argparse
from dataclasses import dataclass

import pytest

from etcd_inspector.cli import build_parser
from etcd_inspector.errors import UsageError
from etcd_inspector.flags import shard_from_args
from etcd_inspector.sharding import (
    Shard,
    ShardError,
    clusters_of_shard,
    moved,
    ordinal_of,
    shard_of,
)


@dataclass(frozen=True)
class Named:
    name: str


NINE = [f"tenant-{i}" for i in range(1, 10)]


def shares(names: list[str], total: int) -> list[tuple[str, ...]]:
    clusters = [Named(n) for n in names]
    return [tuple(c.name for c in clusters_of_shard(clusters, i, total)) for i in range(total)]


def test_three_shards_cover_nine_clusters_exactly_once_in_config_order() -> None:
    parts = shares(NINE, 3)
    flat = [n for part in parts for n in part]
    assert sorted(flat) == sorted(NINE)
    assert len(flat) == len(set(flat)) == 9
    for part in parts:
        assert list(part) == [n for n in NINE if n in part]  # configured order kept
    # The assignment is a fixed function of the name: these are the shares every replica
    # computes on its own, in any process (no randomised hash()).
    assert parts == [tuple(n for n in NINE if shard_of(n, 3) == i) for i in range(3)]
    # Fixed values: a change of hash would move every replica's share on upgrade.
    assert [shard_of(n, 3) for n in NINE] == [2, 0, 2, 1, 2, 0, 1, 0, 1]


def test_one_shard_is_every_cluster() -> None:
    clusters = [Named(n) for n in NINE]
    assert clusters_of_shard(clusters, 0, 1) == tuple(clusters)


def test_adding_a_cluster_moves_no_other_cluster() -> None:
    before = shares(NINE, 3)
    after = shares([*NINE, "tenant-10"], 3)
    assert [tuple(n for n in part if n != "tenant-10") for part in after] == before


def test_adding_a_replica_moves_only_what_the_new_replica_takes() -> None:
    names = [f"cluster-{i}" for i in range(1000)]
    moves = moved(names, 3, 4)
    assert all(shard_of(n, 4) == 3 for n in moves)  # nothing moves between old replicas
    # About 1/4 move (hash mod n would move about 3/4).
    assert 200 <= len(moves) <= 300, len(moves)


def test_shares_are_roughly_even_over_many_clusters() -> None:
    names = [f"cluster-{i}" for i in range(3000)]
    sizes = [len(part) for part in shares(names, 3)]
    assert sum(sizes) == 3000
    assert all(900 <= size <= 1100 for size in sizes), sizes


@pytest.mark.parametrize(
    ("pod", "ordinal"),
    [("etcd-inspector-0", 0), ("etcd-inspector-12", 12), ("release-etcd-inspector-2\n", 2)],
)
def test_ordinal_from_a_statefulset_pod_name(pod: str, ordinal: int) -> None:
    assert ordinal_of(pod) == ordinal


@pytest.mark.parametrize("pod", ["etcd-inspector", "etcd-inspector-7d9f8-xk2p1", ""])
def test_a_pod_name_without_an_ordinal_is_one_line(pod: str) -> None:
    with pytest.raises(ShardError, match="does not end in -<ordinal>"):
        ordinal_of(pod)


def test_shard_out_of_range_is_rejected() -> None:
    with pytest.raises(
        ShardError, match="--shard must be from 0 to 2 with --total-shards=3, not 3"
    ):
        Shard(3, 3)
    with pytest.raises(ShardError, match="--total-shards must be at least 1, not 0"):
        Shard(0, 0)


def run_args(*flags: str) -> argparse.Namespace:
    return build_parser().parse_args(["run", "--etcd.endpoints=http://127.0.0.1:2379", *flags])


def test_flags_give_the_shard() -> None:
    assert shard_from_args(run_args(), {}) == Shard(0, 1)
    assert shard_from_args(run_args("--shard=2", "--total-shards=3"), {}) == Shard(2, 3)
    assert shard_from_args(run_args("--total-shards=3"), {}) == Shard(0, 3)


def test_shard_from_pod_name_reads_pod_name() -> None:
    args = run_args("--shard.from-pod-name", "--total-shards=3")
    assert shard_from_args(args, {"POD_NAME": "etcd-inspector-1"}) == Shard(1, 3)
    with pytest.raises(UsageError, match="not 5"):
        shard_from_args(args, {"POD_NAME": "etcd-inspector-5"})


@pytest.mark.parametrize(
    ("flags", "message"),
    [
        (["--shard=1"], "--shard needs --total-shards"),
        (["--shard.from-pod-name"], "--shard.from-pod-name needs --total-shards"),
        (["--shard=1", "--shard.from-pod-name", "--total-shards=2"], "not both"),
        (["--shard=-1", "--total-shards=2"], "not -1"),
    ],
)
def test_bad_shard_flags_are_one_line(flags: list[str], message: str) -> None:
    with pytest.raises(UsageError, match=message):
        shard_from_args(run_args(*flags), {"POD_NAME": "x-0"})


def test_inspect_is_never_sharded() -> None:
    args = build_parser().parse_args(["inspect", "--etcd.endpoints=http://127.0.0.1:2379"])
    assert shard_from_args(args, {"POD_NAME": "x-1"}) == Shard(0, 1)
