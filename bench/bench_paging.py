"""Benchmark 1b: how fast can a paged reader in Python go, and what does the page bound cost?

etcd computes `count` on every limited Range by walking the index over the whole requested
[key, range_end), so a page costs as much as the range it asks for, not the keys it returns.
Three bare readers (no tally: they only touch each value's length) read the keyspace in pages of
1000 at one revision, from the same member etcdctl reads:

  pager   the bigvalue probe's own Pager (probes/bigvalue.py): ranges whose count is known,
          the previous page's density, guesses where keys went on after a range ran dry
  prefix  range_end bounded by the common byte prefix of the previous page's first and last
          keys; when that range is done, widened one byte at a time (the reference the Pager
          replaced the '/'-directory bound with)
  open    range_end = end of the keyspace on every page: O(n^2) over a scan

Each row says how many keys etcd counted over the scan (the sum of every page's `count`), the
cost the bound decides.

Standalone: .venv/bin/python bench/bench_paging.py --keys 100000
"""

from __future__ import annotations

import argparse
import asyncio
import os
import tempfile
import time
from dataclasses import dataclass
from pathlib import Path

from bench_scan import run_etcdctl
from common import (
    Row,
    channel,
    etcdctl_binary,
    load_keys,
    log,
    markdown,
    ratio,
    rpc,
    start_bench_cluster,
)
from etcd_inspector.probes.bigvalue import Pager

NO_END = b"\0"


def prefix_range_end(prefix: bytes) -> bytes:
    end = bytearray(prefix)
    for i in range(len(end) - 1, -1, -1):
        if end[i] < 0xFF:
            end[i] += 1
            return bytes(end[: i + 1])
    return NO_END


def earlier_end(a: bytes, b: bytes) -> bytes:
    if a == NO_END:
        return b
    if b == NO_END:
        return a
    return min(a, b)


@dataclass(frozen=True)
class PagedRead:
    keys: int
    pages: int
    counted: int  # keys etcd counted to answer the pages: the sum of their `count`
    seconds: float


async def paged_read(
    endpoint: str, strategy: str, limit: int = 1000, keys_per_second: int = 0
) -> PagedRead:
    """A serializable read of the whole keyspace at one revision, paced like bigvalue when
    keys_per_second > 0."""
    ch = channel(endpoint)
    kv = rpc.KVStub(ch)
    pager = Pager(NO_END, NO_END)
    key, bound, prefix, revision = NO_END, NO_END, b"", 0
    keys = pages = counted = 0
    started = time.monotonic()
    try:
        while True:
            if strategy == "pager":
                key, bound = pager.key, pager.range_end
            req = rpc.RangeRequest(
                key=key, range_end=bound, limit=limit, revision=revision, serializable=True
            )
            asked_at = time.monotonic()
            page = await kv.Range(req, timeout=120)
            pages += 1
            counted += page.count
            revision = revision or page.header.revision
            for item in page.kvs:
                len(item.value)
            keys += len(page.kvs)
            if keys_per_second:
                pause = asked_at + len(page.kvs) / keys_per_second - time.monotonic()
                await asyncio.sleep(max(0.0, pause))
            if strategy == "pager":
                pager.advance(page.kvs, page.more, page.count, limit)
                if pager.done:
                    break
                continue
            if page.more:
                key = page.kvs[-1].key + b"\0"
                # byte by byte on purpose: the bound is a byte prefix, not a path
                prefix = os.path.commonprefix([page.kvs[0].key, page.kvs[-1].key])  # noqa: RUF071
            elif bound == NO_END:
                break
            else:
                key, prefix = bound, prefix[:-1]  # this range is done: widen by one byte
            if strategy == "prefix" and prefix:
                bound = earlier_end(prefix_range_end(prefix), NO_END)
            else:
                bound = NO_END
    finally:
        await ch.close()
    return PagedRead(keys, pages, counted, time.monotonic() - started)


def run(cluster, endpoint: str | None = None) -> list[Row]:
    endpoint = endpoint or cluster.endpoints[1]
    peer = run_etcdctl(etcdctl_binary(cluster.binary), endpoint).seconds
    rows = []
    for strategy in ("pager", "prefix", "open"):
        r = asyncio.run(paged_read(endpoint, strategy))
        log(f"paged read, {strategy} bound: {r.keys} keys, {r.pages} pages, counted "
            f"{r.counted / r.keys:.1f}x, {r.seconds:.2f}s")  # fmt: skip
        rows.append(
            Row("1b. bare paged read", f"{strategy}-bounded pages of 1000, {r.keys} keys",
                f"{r.seconds:.2f} s", f"{peer:.2f} s", ratio(r.seconds, peer),
                f"{r.pages} pages, etcd counted {r.counted / r.keys:.1f}x the keys; "
                f"{r.keys / r.seconds:,.0f} keys/s; peer: etcdctl get --prefix")
        )  # fmt: skip
    return rows


async def read_forever(endpoint: str, keys_per_second: int) -> None:
    """Prefix-bounded scans back to back (the reference scanner for bench_write_cost)."""
    while True:
        await paged_read(endpoint, "prefix", keys_per_second=keys_per_second)


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--keys", type=int, default=100_000)
    parser.add_argument("--read-forever", metavar="ENDPOINT", help=argparse.SUPPRESS)
    parser.add_argument("--keys-per-second", type=int, default=20000, help=argparse.SUPPRESS)
    args = parser.parse_args()
    if args.read_forever:
        asyncio.run(read_forever(args.read_forever, args.keys_per_second))
        return
    with tempfile.TemporaryDirectory(prefix="bench-paging-") as tmp:
        cluster = start_bench_cluster(Path(tmp) / "etcd", binary=os.environ.get("ETCD_BIN"))
        try:
            asyncio.run(load_keys(cluster.endpoints, 0, args.keys))
            rows = run(cluster)
        finally:
            cluster.stop()
    print(markdown(rows))


if __name__ == "__main__":
    main()
