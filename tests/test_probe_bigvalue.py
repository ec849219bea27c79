"""The bigvalue probe: pure pieces, then real scans of real etcd clusters.

Data is planted with etcdctl and, where etcdctl cannot (a key with a NUL byte, thousands of keys
fast), with the test's own small gRPC writer. The exporter never writes.
"""

from __future__ import annotations

import asyncio
import itertools
import json
import os
import random
import subprocess
import time
from bisect import bisect_left
from collections import Counter
from collections.abc import AsyncIterator, Iterable, Iterator
from contextlib import asynccontextmanager
from dataclasses import replace

import grpc
import pytest
from aetcd import rpc
from prometheus_client.parser import text_string_to_metric_families
from prometheus_client.utils import floatToGoString

from conftest import etcdctl, etcdctl_binary
from etcd_inspector.cluster.topology import MemberView, Topology
from etcd_inspector.config import ConfigError, parse_config
from etcd_inspector.demo.localcluster import LocalCluster, start_cluster
from etcd_inspector.errors import ErrorKind
from etcd_inspector.etcd import client as client_module
from etcd_inspector.etcd.client import EtcdError, MemberStatus, prefix_range_end
from etcd_inspector.keyspace.prefixes import OTHER, PrefixRules, prefix_of
from etcd_inspector.probes import REGISTRY
from etcd_inspector.probes.base import CACHED, ProbeContext
from etcd_inspector.probes.bigvalue import (
    DEFAULT_BUCKETS,
    NO_END,
    BigValueOptions,
    BigValueProbe,
    BigValueResult,
    Pager,
    PrefixTally,
    PrefixUsage,
    ScanFailed,
    ScanProgress,
    ScanTally,
    earlier_end,
    key_before,
    labelled,
    scan_order,
    scan_ranges,
    sibling_bound,
)
from etcd_inspector.probes.bigvalue import paging as paging_module
from etcd_inspector.probes.bigvalue import reader as reader_module
from etcd_inspector.runtime.runtime import ClusterRuntime, build_runtime
from etcd_inspector.runtime.scheduler import run_probe_once
from etcd_inspector.web.own_text import OutcomeCache
from exposition import exposed, render

CLUSTER = "c1"

# --------------------------------------------------------------------------- planted data

BIG_KEY, BIG_SIZE = b"/big/one", 1024 * 1024
BIN_KEY, BIN_SIZE = b"/bin/\xff\xfe\x00x", 200_000
BIN_LABEL = "/bin/\\xff\\xfe\\x00x"
HOT_KEY, HOT_WRITES, HOT_SIZE = b"/hot/key", 300, 10
PODS = {f"/registry/pods/ns/pod-{i:04d}".encode(): 100 + i % 7 for i in range(2000)}
WIDGETS = {f"/registry/apps.example.com/widgets/ns/w-{i:02d}".encode(): 1000 for i in range(50)}
# Directory edge cases for the bounded paging: leaves next to directories of the same name,
# 0xff bytes (where prefix_range_end carries), keys without a trailing name.
TRICKY = [
    b"/tricky/a", b"/tricky/a/", b"/tricky/a/b", b"/tricky/a/b/c", b"/tricky/a0", b"/tricky/a\xff",
    b"/tricky/a\xff/x", b"/tricky/b/c/d", b"/tricky/b/c/e", b"/tricky/b/d", b"/tricky/\xff\xff/z",
    b"/tricky/\xff\xff\xff",
]  # fmt: skip
TRICKY_SIZE = 3

SIZES: dict[bytes, int] = {
    BIG_KEY: BIG_SIZE,
    BIN_KEY: BIN_SIZE,
    HOT_KEY: HOT_SIZE,
    **PODS,
    **WIDGETS,
    **dict.fromkeys(TRICKY, TRICKY_SIZE),
}


async def put_many(endpoint: str, items: Iterable[tuple[bytes, bytes]]) -> None:
    """The test's writer: puts in Txn batches of 128 (etcd's default --max-txn-ops)."""
    async with grpc.aio.insecure_channel(endpoint.removeprefix("http://")) as channel:
        kv = rpc.KVStub(channel)
        batch: list[rpc.RequestOp] = []
        for key, value in [*items, (None, None)]:
            if key is not None:
                batch.append(rpc.RequestOp(request_put=rpc.PutRequest(key=key, value=value)))
            if batch and (len(batch) == 128 or key is None):
                await kv.Txn(rpc.TxnRequest(success=batch), timeout=10)
                batch = []


async def put_repeatedly(endpoint: str, key: bytes, value: bytes, times: int) -> None:
    async with grpc.aio.insecure_channel(endpoint.removeprefix("http://")) as channel:
        kv = rpc.KVStub(channel)
        for _ in range(times):
            await kv.Put(rpc.PutRequest(key=key, value=value), timeout=5)


async def plant(cluster: LocalCluster) -> None:
    endpoint = cluster.endpoints[0]
    await put_many(
        endpoint,
        [
            *((k, b"p" * n) for k, n in PODS.items()),
            *((k, b"w" * n) for k, n in WIDGETS.items()),
            *((k, b"t" * TRICKY_SIZE) for k in TRICKY),
            (BIN_KEY, b"b" * BIN_SIZE),
        ],
    )
    await put_repeatedly(endpoint, HOT_KEY, b"h" * HOT_SIZE, HOT_WRITES)
    # etcdctl reads the value from stdin when none is given
    await asyncio.to_thread(etcdctl, cluster, "put", BIG_KEY.decode(), input=b"x" * BIG_SIZE)


@pytest.fixture(scope="module")
def planted(etcd_binary: str, tmp_path_factory) -> Iterator[LocalCluster]:
    """One cluster with the planted data, only read by the tests that use it."""
    cluster = start_cluster(3, base_dir=tmp_path_factory.mktemp("bigvalue"), binary=etcd_binary)
    try:
        asyncio.run(plant(cluster))
        yield cluster
    finally:
        cluster.stop()


# --------------------------------------------------------------------------- helpers


def samples(text: str) -> dict[tuple[str, tuple[tuple[str, str], ...]], float]:
    return {
        (s.name, tuple(sorted(s.labels.items()))): s.value
        for fam in text_string_to_metric_families(text)
        for s in fam.samples
    }


def make_runtime(
    endpoints: list[str], *, key_labels: str = "full", **options: object
) -> ClusterRuntime:
    """The real configuration path: YAML-shaped dict -> parse_config -> build_runtime."""
    raw = {
        "clusters": [{"name": CLUSTER, "endpoints": endpoints, "request_timeout": "2s"}],
        "inspection": {
            "key_labels": key_labels,
            "probes": {"bigvalue": {"timeout": "60s", **options}},
        },
    }
    config = parse_config(raw, REGISTRY)
    return build_runtime(config.clusters[0], config, only={"status", "bigvalue"})


@asynccontextmanager
async def bigvalue(
    endpoints: list[str], *, key_labels: str = "full", **options: object
) -> AsyncIterator[tuple[BigValueProbe, ProbeContext, ClusterRuntime]]:
    runtime = make_runtime(endpoints, key_labels=key_labels, **options)
    try:
        probe = runtime.probes["bigvalue"].probe
        assert isinstance(probe, BigValueProbe)
        yield probe, runtime.scheduler.context_for("bigvalue"), runtime
    finally:
        await runtime.close()


async def scan(endpoints: list[str], *, key_labels: str = "full", **options) -> BigValueResult:
    async with bigvalue(endpoints, key_labels=key_labels, **options) as (probe, ctx, _rt):
        return await probe.run(ctx)


def current_revision(cluster: LocalCluster) -> int:
    out = json.loads(etcdctl(cluster, "endpoint", "status", "-w", "json"))
    return max(e["Status"]["header"]["revision"] for e in out)


def is_leader(endpoint: str) -> bool:
    """What `etcdctl endpoint status` says of one member."""
    out = subprocess.run(
        [etcdctl_binary(), "--endpoints", endpoint, "endpoint", "status", "-w", "json"],
        capture_output=True, env={**os.environ, "ETCDCTL_API": "3"}, timeout=30, check=True,
    )  # fmt: skip
    status = json.loads(out.stdout)[0]["Status"]
    return status["leader"] == status["header"]["member_id"]


def expected_counts(sizes: Iterable[int]) -> list[int]:
    counts = [0] * (len(DEFAULT_BUCKETS) + 1)
    for size in sizes:
        counts[bisect_left(DEFAULT_BUCKETS, size)] += 1
    return counts


class FakeKV:
    """Only for the pure accounting tests; every scan test reads a real etcd."""

    def __init__(self, key: bytes, size: int, version: int = 1, lease: int = 0) -> None:
        self.key, self.value, self.version = key, b"v" * size, version
        self.lease = lease


# --------------------------------------------------------------------------- pure


def test_options_defaults_and_validation() -> None:
    opts = BigValueOptions()
    assert (opts.page_size, opts.keys_per_second, opts.threshold_bytes) == (10000, 0, 102400)
    assert opts.min_keys_per_second == 1000
    assert (opts.top_n, opts.prefixes, opts.prefix_depth, opts.max_prefixes) == (10, (), 2, 200)
    assert opts.kubernetes is True
    assert opts.value_size_buckets[0] == 64 and opts.value_size_buckets[-1] == 1572864
    with pytest.raises(ValueError, match="page_size"):
        BigValueOptions(page_size=0)
    with pytest.raises(ValueError, match="keys_per_second"):
        BigValueOptions(keys_per_second=-1)
    with pytest.raises(ValueError, match="min_keys_per_second"):
        BigValueOptions(min_keys_per_second=0)
    with pytest.raises(ValueError, match="strictly increasing"):
        BigValueOptions(value_size_buckets=(10, 10))


def test_options_through_the_config_loader() -> None:
    endpoints = ["http://127.0.0.1:2379"]
    runtime = make_runtime(
        endpoints, page_size=50, keys_per_second=0, prefixes=["/registry/"],
        value_size_buckets=[10, 100], kubernetes=False,
    )  # fmt: skip
    opts = runtime.probes["bigvalue"].probe.options
    assert opts == BigValueOptions(
        page_size=50, keys_per_second=0, prefixes=("/registry/",), value_size_buckets=(10, 100),
        kubernetes=False,
    )  # fmt: skip
    spec = REGISTRY["bigvalue"]
    assert (spec.default_interval, spec.default_timeout, spec.cluster_wide) == (600, 540, True)
    with pytest.raises(ConfigError, match="value_size_buckets must be positive"):
        make_runtime(endpoints, value_size_buckets=[100, 10])


def test_scan_ranges() -> None:
    assert scan_ranges(()) == ((NO_END, NO_END),)
    assert scan_ranges(("/a/", "")) == ((NO_END, NO_END),)
    # sorted, a prefix inside another one dropped (its keys would count twice)
    assert scan_ranges(("/b/", "/a/", "/a/x/")) == ((b"/a/", b"/a0"), (b"/b/", b"/b0"))


def test_range_end_helpers() -> None:
    assert earlier_end(NO_END, b"/b") == b"/b"
    assert earlier_end(b"/c", NO_END) == b"/c"
    assert earlier_end(b"/c", b"/b") == b"/b"
    assert key_before(b"/z", NO_END) and key_before(b"/a", b"/b")
    assert not key_before(b"/b", b"/b") and not key_before(b"/c", b"/b")
    # the rest of key's child at the depth, then width - 1 more children
    assert sibling_bound(b"/r/ns3/obj7", 5, 1) == b"/r/ns4"
    assert sibling_bound(b"/r/ns3/obj7", 5, 4) == b"/r/ns7"
    assert sibling_bound(b"/r/ns3/obj7", 99, 2) == b"/r/ns3/obj9"  # past the key: its last byte
    # past 0xff: the end of the whole parent subtree, carrying through 0xff bytes
    assert sibling_bound(b"/r/\xfe", 3, 2) == b"/r0"
    assert sibling_bound(b"/\xff\xff\xf0", 2, 16) == b"0"
    assert sibling_bound(b"\xff\xfe", 1, 2) == NO_END
    assert sibling_bound(b"\x00", 0, 1) == b"\x01"
    rnd = random.Random(7)
    for _ in range(2000):
        key = bytes(rnd.choices(b"\x00\x01/a\xfe\xff", k=rnd.randint(1, 6)))
        bound = sibling_bound(key, rnd.randint(0, 7), rnd.randint(1, 300))
        assert key_before(key + b"\0", bound), (key, bound)  # after key and all it prefixes


class MemoryKeyspace:
    """etcd's Range over sorted keys, only for the pure Pager tests: at most `limit` keys of
    [key, range_end), `more`, and `count`, every key in the range (what etcd walks to answer)."""

    def __init__(self, keys: Iterable[bytes]) -> None:
        self.keys = sorted(set(keys))
        self.requests: list[tuple[bytes, bytes, int]] = []  # (key, range_end, count)

    def range(self, key: bytes, range_end: bytes, limit: int) -> tuple[list[FakeKV], bool, int]:
        lo = bisect_left(self.keys, key)
        hi = len(self.keys) if range_end == NO_END else max(lo, bisect_left(self.keys, range_end))
        self.requests.append((key, range_end, hi - lo))
        kvs = [FakeKV(k, 0) for k in self.keys[lo : min(hi, lo + limit)]]
        return kvs, hi - lo > len(kvs), hi - lo

    def counted(self) -> int:
        return sum(count for _, _, count in self.requests)


def page_through(
    space: MemoryKeyspace, limit: int, start: bytes = NO_END, end: bytes = NO_END, **kw
) -> list[bytes]:
    """Every key a Pager reads from `space`, in order, checking each range it asks for."""
    pager = Pager(start, end, **kw)
    read: list[bytes] = []
    while not pager.done:
        key, range_end = pager.key, pager.range_end
        assert key_before(key, range_end), (key, range_end)
        assert end == NO_END or (range_end != NO_END and range_end <= end), (range_end, end)
        kvs, more, count = space.range(key, range_end, limit)
        read += [kv.key for kv in kvs]
        pager.advance(kvs, more, count, limit)
    return read


def tree_keys(n: int, per_directory: int = 1000) -> list[bytes]:
    return [b"/bench/ns%05d/obj%06d" % (i // per_directory, i) for i in range(n)]


def padded_ids(n: int) -> list[bytes]:
    return [b"/flat/k%09d" % i for i in range(n)]


def plain_ids(n: int) -> list[bytes]:
    return [b"/app/items/%d" % i for i in range(n)]  # 1, 10, 100, ...: ids prefix each other


def random_names(n: int) -> list[bytes]:
    rnd = random.Random(1)
    return [b"/app/names/" + bytes(rnd.choices(b"abcdefghijklmnopqrstuvwxyz0123456789", k=12))
            for _ in range(n)]  # fmt: skip


def binary_keys(n: int) -> list[bytes]:
    rnd = random.Random(2)
    return [rnd.randbytes(8) for _ in range(n)]


def edge_keys(n: int) -> list[bytes]:
    """Short keys from a few bytes: 0x00 and 0xff runs, keys that are prefixes of many others."""
    rnd = random.Random(3)
    return [bytes(rnd.choices(b"\x00\x01/a\xfe\xff", k=rnd.randint(1, 7))) for _ in range(n)]


LAYOUTS = {
    "tree": lambda n: tree_keys(n, per_directory=100),
    "padded ids": padded_ids,
    "plain ids": plain_ids,
    "random names": random_names,
    "binary": binary_keys,
    "edge bytes": edge_keys,
    "tricky": lambda n: TRICKY,
}


@pytest.mark.parametrize("layout", LAYOUTS)
@pytest.mark.parametrize("walk_budget", [0, None])
def test_pager_reads_every_key_once(layout: str, walk_budget: int | None) -> None:
    space = MemoryKeyspace(LAYOUTS[layout](1500))
    everything = space.keys
    starts = sorted({everything[len(everything) // 3][:n] for n in (1, 3, 6)})
    ranges = [(NO_END, NO_END), *((p, prefix_range_end(p)) for p in starts)]
    for start, end in ranges:
        inside = [k for k in everything if k >= start and (end == NO_END or k < end)]
        assert inside, (start, end)
        for limit in (1, 2, 3, 7, 100, 1000):
            read = page_through(space, limit, start, end, walk_budget=walk_budget)
            assert read == inside, (layout, start, limit)
    assert page_through(MemoryKeyspace([]), 10) == []
    assert page_through(MemoryKeyspace([b"\xff"]), 10, b"\xff", NO_END) == [b"\xff"]


@pytest.mark.parametrize("layout", ["tree", "padded ids", "plain ids", "random names", "binary"])
def test_pager_makes_etcd_count_each_key_a_few_times_not_n_over_page_size(layout: str) -> None:
    """The cost etcd pays per page is the count of the range asked for: summed over a scan it
    stays a few times the key count, at 50k keys as at 200k (bounding each page by the end of
    the keyspace, as before, counted n / 2 / page_size times: 25x and 100x here)."""
    make = tree_keys if layout == "tree" else LAYOUTS[layout]  # directories of 1000
    for n in (50_000, 200_000):
        space = MemoryKeyspace(make(n))
        assert len(page_through(space, 1000)) == n
        pages = len(space.requests)
        assert space.counted() <= 8 * n, (layout, n, space.counted() / n)
        assert pages <= 1.5 * n / 1000, (layout, n, pages)


@pytest.mark.parametrize("limit", [100, 1000])
def test_a_small_directory_before_a_big_one_has_the_big_one_counted_about_once(limit: int) -> None:
    """/bench-lat/ (1,000 keys) sorts before /bench/ (200k): once a guess reached into the big
    directory, the next guesses went one byte deeper per page and each counted all of it again
    (six pages of ~200k at pages of 1000: 13x in all). A crowded guess now sends the next one
    down to where the page's own keys part."""
    n = 200_000
    space = MemoryKeyspace([b"/bench-lat/%06d" % i for i in range(1000)] + tree_keys(n))
    assert len(page_through(space, limit)) == n + 1000
    huge = [count for _, _, count in space.requests if count > n // 4]
    assert len(huge) <= 3, huge  # the first page (nothing known), the first guess in, one more
    assert space.counted() <= (16 if limit == 100 else 8) * n, space.counted() / n
    assert len(space.requests) <= 1.3 * (n + 1000) / limit


def asked(keys: list[bytes], limit: int, walk_budget: int) -> list[tuple[bytes, bytes, int]]:
    space = MemoryKeyspace(keys)
    assert page_through(space, limit, walk_budget=walk_budget) == space.keys
    return space.requests


def test_pager_reuses_a_counted_range_while_it_is_small_enough() -> None:
    ids = [b"k%02d" % i for i in range(20)]
    # The first page counts the whole range (nothing is known yet); what is left of it (15)
    # fits the budget, so the next pages ask for the same range and etcd counts what is left.
    assert asked(ids, 5, walk_budget=15) == [
        (NO_END, NO_END, 20), (b"k04\0", NO_END, 15), (b"k09\0", NO_END, 10),
        (b"k14\0", NO_END, 5),
    ]  # fmt: skip
    # The budget (2 pages) is smaller: the page k00..k04 spread over 4 children after "k0", so
    # the next range takes 8 more ("4" + 8 = "<"); then the rest of the counted range fits.
    assert asked(ids, 5, walk_budget=0) == [
        (NO_END, NO_END, 20), (b"k04\0", b"k0<", 5), (b"k0<", NO_END, 10),
        (b"k14\0", NO_END, 5),
    ]  # fmt: skip


def test_pager_climbs_out_of_a_finished_directory_then_guesses_where_keys_went_on() -> None:
    dirs = [b"/d%d/k%d" % (d, k) for d in range(10) for k in range(5)]
    requests = asked(dirs, 5, walk_budget=0)
    assert requests[:6] == [
        (NO_END, NO_END, 50),
        (b"/d0/k4\0", b"/d0/k<", 0),  # the page's density: nothing more in /d0/
        (b"/d0/k<", b"/d0/m", 0),  # a guess one byte up: "k" + 2
        (b"/d0/m", b"/d01", 0),  # one more: "/" + 2
        (b"/d01", b"/d2", 5),  # one more: "0" + 2, the next directory
        (b"/d2", b"/d6", 20),  # found too few: the same depth, twice as wide (and more)
    ]
    # from then on the guesses start where keys went on (the digit), not at the leaves
    assert sum(1 for _, _, count in requests if count == 0) == 5
    assert max(count for _, _, count in requests[1:]) == 20
    assert len(requests) == 15


def test_a_later_scan_starts_where_the_first_small_range_ended() -> None:
    keys = padded_ids(20_000)
    first = MemoryKeyspace(keys)
    pager = Pager(NO_END, NO_END, walk_budget=0)
    while not pager.done:
        kvs, more, count = first.range(pager.key, pager.range_end, 100)
        pager.advance(kvs, more, count, 100)
    assert first.requests[0][2] == 20_000  # nothing known: the whole range is counted once
    # the first range that found keys without counting more than the budget (200) ended here
    assert first.requests[2] == (b"/flat/k0000000K", b"/flat/k0000002", 100)
    assert pager.opening == b"/flat/k0000002"
    # the next scan starts with that range: etcd never counts the whole keyspace again
    again = MemoryKeyspace(keys)
    assert page_through(again, 100, walk_budget=0, opening=pager.opening) == again.keys
    assert again.requests[0] == (NO_END, pager.opening, 200)
    assert max(count for _, _, count in again.requests) < 20_000
    assert again.counted() <= first.counted() - 19_000


def test_an_opening_outside_the_range_is_not_used() -> None:
    assert Pager(b"/a/", b"/a0", opening=b"/a/x").range_end == b"/a/x"
    assert Pager(b"/a/", b"/a0", opening=b"/b").range_end == b"/a0"  # past the end: the end
    assert Pager(b"/a/", b"/a0", opening=b"/a/").range_end == b"/a0"  # not after the start
    assert Pager(b"/a/", b"/a0", opening=NO_END).range_end == b"/a0"
    assert Pager(NO_END, NO_END, opening=b"/b").range_end == b"/b"


def test_pager_stops_rather_than_skip_keys_on_an_inconsistent_page() -> None:
    pager = Pager(b"/a", b"/b")
    pager.advance([FakeKV(b"/a1", 0)], True, 5, 1)  # a real answer: more keys after /a1
    assert (pager.key, pager.range_end) == (b"/a1\0", b"/b")
    # a page claiming more keys past its own range_end: no next range would be after the key
    with pytest.raises(ScanFailed, match="paging went wrong"):
        pager.advance([FakeKV(b"/c", 0)], True, 3, 1)


def _status(endpoint: str, member_id: int, leader_id: int, learner: bool = False):
    st = MemberStatus(
        endpoint=endpoint, member_id=member_id, cluster_id=1, leader_id=leader_id, raft_term=2,
        raft_index=9, raft_applied_index=9, revision=5, db_size=1, db_size_in_use=1,
        version="3.4.23", is_learner=learner, errors=(),
    )  # fmt: skip
    return MemberView(endpoint, f"m{member_id}", st, None)


def test_scan_order_spares_the_leader() -> None:
    eps = ["http://a:1", "http://b:1", "http://c:1", "http://d:1"]
    status = Topology(
        members=(
            _status(eps[0], 1, leader_id=1),
            MemberView(eps[1], "m2", None, ErrorKind.UNAVAILABLE),
            _status(eps[2], 3, leader_id=1, learner=True),
            _status(eps[3], 4, leader_id=1),
        ),
        member_list=None,
        alarms=None,
    )
    # follower, learner, leader, then the one that did not answer
    assert scan_order(eps, status) == [3, 2, 0, 1]
    assert scan_order(eps, None) == [0, 1, 2, 3]


def test_prefix_tally_keeps_the_largest_groups() -> None:
    tally = PrefixTally(max_groups=3)
    sizes = {f"/g{i:02d}/".encode(): (i * 37) % 101 for i in range(40)}
    for group, size in sizes.items():  # each group once, like a sorted scan adds closed groups
        tally.add(group, 1, size)
    assert len(tally.groups) <= 6  # never more than 2 * max in memory
    usage = tally.usage()
    top3 = sorted(sizes.items(), key=lambda g: -g[1])[:3]
    assert {u.prefix for u in usage} == {g.decode() for g, _ in top3} | {OTHER}
    other = next(u for u in usage if u.prefix == OTHER)
    assert other.keys == 37
    assert other.bytes == sum(sizes.values()) - sum(s for _, s in top3)


def test_scan_tally_accounting() -> None:
    opts = BigValueOptions(threshold_bytes=1000, top_n=2, kubernetes=False)
    tally = ScanTally(opts)
    page1 = [FakeKV(b"/a/x/1", 10, 5), FakeKV(b"/a/x/2", 2000), FakeKV(b"/a/y", 64)]
    page2 = [FakeKV(b"/a/y/1", 65, 9), FakeKV(b"/b", 1000), FakeKV(b"c", 0, 7)]
    assert tally.add(page1) == 10 + 2000 + 64 + 6 + 6 + 4
    tally.add(page2)
    tally.finish()
    assert (tally.keys, tally.total_bytes) == (6, 10 + 2000 + 64 + 65 + 1000)
    assert (tally.big_values, tally.big_values_bytes) == (1, 2000)  # 1000 is not over 1000
    assert tally.counts == expected_counts([10, 2000, 64, 65, 1000, 0])
    assert tally.top_values.items() == [(2000, b"/a/x/2"), (1000, b"/b")]
    assert tally.top_versions.items() == [(9, b"/a/y/1"), (7, b"c")]
    assert tally.prefixes.usage() == (
        PrefixUsage("/", 1, 1000),
        PrefixUsage("/a/", 1, 64),  # /a/y is a leaf of /a/ ...
        PrefixUsage("/a/x/", 2, 2010),
        PrefixUsage("/a/y/", 1, 65),  # ... and /a/y/1 is in /a/y/
        PrefixUsage("<root>", 1, 0),
    )


def test_labelled_never_repeats_a_label() -> None:
    items = [(50, b"/registry/secrets/a/x"), (40, b"/registry/secrets/b/y"), (30, b"/other/z")]
    rules = PrefixRules()
    assert labelled(items, "prefix", rules) == ((50, "/registry/secrets/"), (30, "/other/"))
    assert labelled(items, "full", rules, sensitive=())[1] == (40, "/registry/secrets/b/y")
    # By default Secrets' names never show, even with key_labels full; other keys do.
    (_, secret), _, (_, other) = labelled(items, "full", rules)
    assert secret.startswith("sha256:") and other == "/other/z"
    hashed = labelled(items, "hash", rules)
    assert all(label.startswith("sha256:") for _, label in hashed) and len(hashed) == 3


# --------------------------------------------------------------------------- real etcd


@pytest.mark.etcd
async def test_scan_reports_the_planted_data(planted: LocalCluster) -> None:
    result = await scan(planted.endpoints, keys_per_second=0)

    assert result.keys == len(SIZES)
    assert result.total_bytes == sum(SIZES.values())
    assert list(result.bucket_counts) == expected_counts(SIZES.values())
    assert result.revision == current_revision(planted)  # nothing was written since planting
    assert result.restarts == 0

    assert result.top_values[:2] == ((BIG_SIZE, BIG_KEY.decode()), (BIN_SIZE, BIN_LABEL))
    assert len(result.top_values) == 10
    assert (result.big_values, result.big_values_bytes) == (2, BIG_SIZE + BIN_SIZE)
    assert result.threshold_bytes == 102400

    assert result.top_versions[0] == (HOT_WRITES, HOT_KEY.decode())
    # every other key was written once (version 1): never modified, so not listed
    assert result.top_versions[1:] == ()

    usage = {u.prefix: u for u in result.prefixes}
    assert usage["/registry/pods/"] == PrefixUsage("/registry/pods/", 2000, sum(PODS.values()))
    widgets = "/registry/apps.example.com/widgets/"
    assert usage[widgets] == PrefixUsage(widgets, 50, 50 * 1000)
    assert usage["/bin/"] == PrefixUsage("/bin/", 1, BIN_SIZE)
    assert usage["/big/"] == PrefixUsage("/big/", 1, BIG_SIZE)
    assert sum(u.keys for u in result.prefixes) == len(SIZES)
    assert OTHER not in usage
    for label in (*usage, *(k for _, k in result.top_values)):
        label.encode("utf-8")  # valid UTF-8 whatever the key bytes


@pytest.mark.etcd
@pytest.mark.promtool
async def test_metrics_exposition(planted: LocalCluster) -> None:
    async with bigvalue(planted.endpoints, keys_per_second=0) as (probe, ctx, _rt):
        result = await probe.run(ctx)
        text = render(probe.metrics(CLUSTER, result))
    got = samples(text)

    def value(name: str, **labels: str) -> float | None:
        return got.get((name, tuple(sorted({"cluster": CLUSTER, **labels}.items()))))

    cumulative = 0
    for bound, count in zip(DEFAULT_BUCKETS, expected_counts(SIZES.values()), strict=False):
        cumulative += count
        assert (
            value("etcd_inspector_value_size_bytes_bucket", le=floatToGoString(bound)) == cumulative
        )
    assert value("etcd_inspector_value_size_bytes_bucket", le="+Inf") == len(SIZES)
    assert value("etcd_inspector_value_size_bytes_count") == len(SIZES)
    assert value("etcd_inspector_value_size_bytes_sum") == sum(SIZES.values())
    assert value("etcd_inspector_big_values") == 2
    assert value("etcd_inspector_big_values_bytes") == BIG_SIZE + BIN_SIZE
    assert value("etcd_inspector_big_value_threshold_bytes") == 102400
    assert value("etcd_inspector_value_size_top_bytes", key="/big/one") == BIG_SIZE
    assert value("etcd_inspector_value_size_top_bytes", key=BIN_LABEL) == BIN_SIZE
    assert value("etcd_inspector_key_version_top", key="/hot/key") == HOT_WRITES
    assert value("etcd_inspector_prefix_keys", prefix="/registry/pods/") == 2000
    assert value("etcd_inspector_prefix_bytes", prefix="/registry/pods/") == sum(PODS.values())
    assert value("etcd_inspector_scan_keys") == len(SIZES)
    assert value("etcd_inspector_scan_revision") == result.revision
    assert value("etcd_inspector_scan_duration_seconds") == pytest.approx(result.duration_seconds)
    for fam in text_string_to_metric_families(text):
        assert fam.documentation.endswith(CACHED), fam.name
    out = await asyncio.to_thread(
        subprocess.run,
        ["promtool", "check", "metrics"], input=text.encode(), capture_output=True, timeout=30,
    )  # fmt: skip
    assert out.returncode == 0, out.stdout.decode() + out.stderr.decode()


@pytest.mark.etcd
async def test_key_label_modes(planted: LocalCluster) -> None:
    hashed = await scan(planted.endpoints, key_labels="hash", keys_per_second=0)
    labels = [k for _, k in hashed.top_values + hashed.top_versions]
    assert labels and all(k.startswith("sha256:") and len(k) == 23 for k in labels)
    text = render(BigValueProbe(BigValueOptions()).metrics(CLUSTER, hashed))
    for secret in ("/big/one", "/hot/key", "pod-", "\\xff"):
        assert f'key="{secret}' not in text and secret not in "".join(labels)

    by_prefix = await scan(planted.endpoints, key_labels="prefix", keys_per_second=0)
    assert by_prefix.top_values[:2] == ((BIG_SIZE, "/big/"), (BIN_SIZE, "/bin/"))
    assert by_prefix.top_versions[0] == (HOT_WRITES, "/hot/")
    for top in (by_prefix.top_values, by_prefix.top_versions):
        assert len({k for _, k in top}) == len(top)  # one series per label


@pytest.mark.etcd
async def test_max_prefixes_folds_the_smaller_groups(planted: LocalCluster) -> None:
    result = await scan(planted.endpoints, keys_per_second=0, max_prefixes=2)
    usage = {u.prefix: u for u in result.prefixes}
    # the two largest groups by bytes (1 MiB, then 2000 pods of ~103 bytes > /bin/'s 200000),
    # the rest in <other>
    assert sum(PODS.values()) > BIN_SIZE
    assert usage["/big/"] == PrefixUsage("/big/", 1, BIG_SIZE)
    assert usage["/registry/pods/"] == PrefixUsage("/registry/pods/", 2000, sum(PODS.values()))
    assert set(usage) == {"/big/", "/registry/pods/", OTHER}
    assert usage[OTHER].keys == len(SIZES) - 1 - 2000
    assert usage[OTHER].bytes == sum(SIZES.values()) - BIG_SIZE - sum(PODS.values())


@pytest.mark.etcd
@pytest.mark.parametrize("walk_budget", [0, paging_module.WALK_BUDGET])
@pytest.mark.parametrize("page_size", [1, 2, 3, 1000])
async def test_bounded_paging_sees_every_key_once(
    planted: LocalCluster, page_size: int, walk_budget: int, monkeypatch
) -> None:
    # budget 0: every guess the Pager can make, against etcd's own range semantics
    monkeypatch.setattr(paging_module, "WALK_BUDGET", walk_budget)
    result = await scan(
        planted.endpoints, keys_per_second=0, page_size=page_size, prefixes=["/tricky/"],
        kubernetes=False, prefix_depth=3,
    )  # fmt: skip
    assert result.keys == len(TRICKY)
    rules = PrefixRules(depth=3, kubernetes=False)
    assert {u.prefix: u.keys for u in result.prefixes} == Counter(
        prefix_of(k, rules) for k in TRICKY
    )


@pytest.mark.etcd
async def test_scan_asks_etcd_for_small_ranges_whatever_the_layout(
    etcd_cluster: LocalCluster, monkeypatch
) -> None:
    """Flat ids, random names and binary keys (0xff bytes, keys prefixing others) in one
    keyspace: the probe reads each key once, and etcd counts each key a few times over the
    scan, not once per page. The requests are exactly what the in-memory model predicts, so the
    model the pure tests use answers like etcd."""
    keys = {*plain_ids(2000), *random_names(1000), *edge_keys(500), *binary_keys(500)}
    await put_many(etcd_cluster.endpoints[0], ((k, b"v") for k in keys))
    monkeypatch.setattr(paging_module, "WALK_BUDGET", 0)  # ranges of 2 pages: every guess
    requests: list[tuple[bytes, bytes, int]] = []
    range_page = client_module.MemberClient.range_page

    async def recording(self, key, range_end, **kw):
        page = await range_page(self, key, range_end, **kw)
        requests.append((key, range_end, page.count))
        return page

    monkeypatch.setattr(client_module.MemberClient, "range_page", recording)
    async with bigvalue(etcd_cluster.endpoints, keys_per_second=0, page_size=100) as (
        probe,
        ctx,
        _rt,
    ):
        result = await probe.run(ctx)
        first_scan, requests[:] = requests[:], []
        again = await probe.run(ctx)
    assert result.keys == again.keys == len(keys)
    assert result.total_bytes == again.total_bytes == len(keys)
    model = MemoryKeyspace(keys)
    assert page_through(model, 100, walk_budget=0) == model.keys
    assert first_scan == model.requests
    # bounded by the end of the keyspace instead, each page would count all the keys left:
    # about 19 times the key count here
    assert sum(count for _, _, count in first_scan) <= 6 * len(keys)
    assert len(first_scan) <= 2 * len(keys) / 100
    # only the first scan has etcd count every key in one request: the second starts where
    # the first one's first small range ended
    assert first_scan[0] == (NO_END, NO_END, len(keys))
    assert requests[0][1] != NO_END and requests[0][2] < 200
    assert max(count for _, _, count in requests) < len(keys)
    assert sum(count for _, _, count in requests) <= 6 * len(keys)


@pytest.mark.etcd
async def test_prefixes_option_limits_the_scan(planted: LocalCluster) -> None:
    result = await scan(
        planted.endpoints, keys_per_second=0, prefixes=["/registry/", "/registry/pods/", "/hot/"]
    )
    assert result.keys == len(PODS) + len(WIDGETS) + 1
    assert result.top_versions[0] == (HOT_WRITES, "/hot/key")
    assert result.big_values == 0


@pytest.mark.etcd
async def test_prefers_a_follower(planted: LocalCluster) -> None:
    leader = next(m for m in planted.members if is_leader(m.client_url))
    # The leader first in the configuration: config order alone would pick it.
    endpoints = [leader.client_url, *(e for e in planted.endpoints if e != leader.client_url)]
    async with bigvalue(endpoints, keys_per_second=0, prefixes=["/hot/"]) as (probe, ctx, rt):
        status = await run_probe_once(rt.probes["status"], ctx, rt.state)
        assert status.success
        assert status.result.status_of(leader.client_url).leader_id == (
            status.result.status_of(leader.client_url).member_id
        )
        result = await probe.run(ctx)
    assert result.member == ctx.member_name(endpoints[1]) != leader.name
    assert result.member in planted.member_names


@pytest.mark.etcd
async def test_pacing_slows_the_scan(planted: LocalCluster) -> None:
    t0 = time.monotonic()
    paced = await scan(planted.endpoints, keys_per_second=4000, prefixes=["/registry/pods/"])
    paced_elapsed = time.monotonic() - t0
    unpaced = await scan(planted.endpoints, keys_per_second=0, prefixes=["/registry/pods/"])
    assert paced.keys == unpaced.keys == 2000
    assert paced_elapsed >= 2000 / 4000 * 0.8
    assert paced.duration_seconds >= 0.4
    # the scan itself, without client setup: pacing is what made the difference (two pages of
    # 1000 keys, each held to 0.25 s; unpaced they take milliseconds, even on a busy machine)
    assert unpaced.duration_seconds < paced.duration_seconds - 0.2


@pytest.mark.etcd
@pytest.mark.parametrize("keys_per_second", [0, 1_000_000])
async def test_unpaced_scans_ask_for_the_next_page_before_tallying_this_one(
    planted: LocalCluster, keys_per_second: int, monkeypatch
) -> None:
    """Without a cap the next page is in flight while Python tallies this one; with any cap
    (even one never reached) one page at a time, so the cap holds."""
    events: list[str] = []
    range_page, add = client_module.MemberClient.range_page, ScanTally.add

    async def asking(self, key, range_end, **kw):
        events.append("ask")
        return await range_page(self, key, range_end, **kw)

    def tallying(self, kvs):
        events.append("tally")
        return add(self, kvs)

    monkeypatch.setattr(client_module.MemberClient, "range_page", asking)
    monkeypatch.setattr(ScanTally, "add", tallying)
    result = await scan(
        planted.endpoints, keys_per_second=keys_per_second, page_size=100,
        prefixes=["/registry/pods/"],
    )  # fmt: skip
    assert result.keys == 2000 and result.requests == events.count("ask") >= 20
    pairs = list(itertools.pairwise(events))
    if keys_per_second:
        assert ("ask", "ask") not in pairs and ("tally", "tally") not in pairs
    else:
        assert events[:3] == ["ask", "ask", "tally"]  # page 2 asked before page 1 tallied


@pytest.mark.etcd
async def test_progress_is_visible_while_scanning(planted: LocalCluster) -> None:
    async with bigvalue(
        planted.endpoints, keys_per_second=2000, page_size=250, prefixes=["/registry/pods/"]
    ) as (probe, ctx, runtime):
        scheduled = runtime.probes["bigvalue"]
        first = await run_probe_once(scheduled, ctx, runtime.state)
        assert first.success and first.result.keys == 2000
        # One cache across the scrapes, as the exporter keeps: the first outcome is encoded
        # before the scan publishes progress and served from the cache while it runs.
        outcomes = OutcomeCache()
        exposed([runtime], outcomes)
        running = asyncio.create_task(run_probe_once(scheduled, ctx, runtime.state))
        seen: list[float] = []
        while not running.done():
            text = exposed([runtime], outcomes)
            names = [f.name for f in text_string_to_metric_families(text)]
            assert len(names) == len(set(names)), "a metric family rendered twice"
            series = [(s.name, tuple(sorted(s.labels.items())))
                      for f in text_string_to_metric_families(text) for s in f.samples]  # fmt: skip
            assert len(series) == len(set(series)), "a series rendered twice"
            got = samples(text)
            # the series never disappears: the last total until the new scan publishes progress
            seen.append(got[("etcd_inspector_scan_keys", (("cluster", CLUSTER),))])
            revision = got[("etcd_inspector_scan_revision", (("cluster", CLUSTER),))]
            assert revision == first.result.revision  # nothing written: same R
            await asyncio.sleep(0.1)
        outcome = await running
        assert probe is scheduled.probe
    assert outcome.success and outcome.result.keys == 2000
    assert outcome.result.duration_seconds >= 0.9  # 2000 keys at 2000/s
    partial = [k for k in seen if 0 < k < 2000]
    assert len(partial) >= 2 and partial == sorted(partial)
    final = samples(exposed([runtime]))
    assert final[("etcd_inspector_scan_keys", (("cluster", CLUSTER),))] == 2000
    assert not runtime.state.progress


@pytest.mark.etcd
async def test_writes_during_the_scan_do_not_change_the_result(etcd_cluster: LocalCluster):
    endpoint = etcd_cluster.endpoints[0]
    await put_many(endpoint, ((f"/pin/{i:04d}".encode(), b"v" * 10) for i in range(1000)))
    revision_at_start = current_revision(etcd_cluster)
    started = asyncio.Event()
    async with bigvalue(etcd_cluster.endpoints, keys_per_second=2000, page_size=100) as (
        probe,
        ctx,
        _rt,
    ):
        ctx = replace(ctx, progress=lambda _p: started.set())
        running = asyncio.create_task(probe.run(ctx))
        await started.wait()
        await put_many(endpoint, ((f"/pin/new-{i:04d}".encode(), b"n") for i in range(500)))
        await put_many(endpoint, [(b"/pin/0999", b"x" * 500_000), (b"/pin/0000", b"y")])
        assert not running.done()  # the writes really happened during the scan
        result = await running
    assert result.revision == revision_at_start
    assert result.keys == 1000
    assert result.big_values == 0
    # /pin/0000's rewrite during the scan (version 2) is after R: no key was modified at R
    assert result.top_versions == ()
    count_now = etcdctl(etcd_cluster, "get", "/pin/", "--prefix", "--limit", "1", "-w", "json")
    assert json.loads(count_now)["count"] == 1500


@pytest.mark.etcd
async def test_compaction_restarts_once_then_fails(etcd_cluster: LocalCluster):
    await put_many(etcd_cluster.endpoints[0], ((f"/c/{i:04d}".encode(), b"v") for i in range(1000)))
    compacted_at: list[int] = []

    def compact_under_the_scan(progress: ScanProgress, every_scan: bool) -> None:
        # After the second page: write one key and compact up to it, so R is gone.
        if progress.keys_done != 200 or (compacted_at and not every_scan):
            return
        out = etcdctl(etcd_cluster, "put", f"/c/extra-{len(compacted_at)}", "x", "-w", "json")
        revision = json.loads(out)["header"]["revision"]
        etcdctl(etcd_cluster, "compact", str(revision))
        compacted_at.append(revision)

    async with bigvalue(etcd_cluster.endpoints, keys_per_second=4000, page_size=100) as (
        probe,
        ctx,
        _rt,
    ):
        once = replace(ctx, progress=lambda p: compact_under_the_scan(p, every_scan=False))
        result = await probe.run(once)
        assert result.restarts == 1
        assert result.revision == compacted_at[0]  # the fresh revision, taken after compacting
        assert result.keys == 1001

        compacted_at.clear()
        always = replace(ctx, progress=lambda p: compact_under_the_scan(p, every_scan=True))
        with pytest.raises(EtcdError) as err:
            await probe.run(always)
    assert err.value.kind == "compacted"
    assert len(compacted_at) == 2


@pytest.mark.etcd
@pytest.mark.parametrize("keys_per_second", [4000, 0], ids=["paced", "asking-ahead"])
async def test_member_failure_mid_scan_resumes_on_another(
    etcd_cluster: LocalCluster, keys_per_second: int
):
    await put_many(etcd_cluster.endpoints[0], ((f"/f/{i:04d}".encode(), b"v") for i in range(1000)))
    first_member = etcd_cluster.members[0]
    revisions: set[int] = set()

    def stop_first_member(progress: ScanProgress) -> None:
        revisions.add(progress.revision)
        if progress.keys_done == 300:
            first_member.stop()

    async with bigvalue(
        etcd_cluster.endpoints, keys_per_second=keys_per_second, page_size=100
    ) as (probe, ctx, _rt):
        # No status result yet: members are tried in configured order, so m1 serves first.
        result = await probe.run(replace(ctx, progress=stop_first_member))
    assert not first_member.running
    assert result.keys == 1000
    assert revisions == {result.revision}  # resumed at the same revision
    assert result.member == ctx.member_name(etcd_cluster.endpoints[1])


@pytest.mark.etcd
async def test_page_too_large_for_grpc_is_halved(etcd_cluster: LocalCluster, monkeypatch):
    limit = 2 * 1024 * 1024 + 512 * 1024  # room for two 1 MiB values per page
    options = [
        (name, limit if name == "grpc.max_receive_message_length" else value)
        for name, value in client_module._CHANNEL_OPTIONS
    ]
    monkeypatch.setattr(client_module, "_CHANNEL_OPTIONS", tuple(options))
    monkeypatch.setattr(reader_module, "MAX_RECEIVE_BYTES", limit)
    for i in range(4):
        etcdctl(etcd_cluster, "put", f"/large/{i}", input=b"L" * BIG_SIZE)
    await put_many(
        etcd_cluster.endpoints[0], ((f"/small/{i:02d}".encode(), b"s") for i in range(20))
    )

    async with bigvalue(etcd_cluster.endpoints, keys_per_second=0) as (probe, ctx, _rt):
        with pytest.raises(EtcdError) as err:  # the setup is real: a full page does not fit
            await ctx.members[0].range_page(b"\0", b"\0", limit=1000)
        assert err.value.kind == "too_large"
        result = await probe.run(ctx)
    assert result.keys == 24
    assert (result.big_values, result.big_values_bytes) == (4, 4 * BIG_SIZE)
    assert [size for size, _ in result.top_values[:4]] == [BIG_SIZE] * 4
