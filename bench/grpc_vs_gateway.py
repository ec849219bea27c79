"""Why gRPC (aetcd stubs) and not the JSON gateway: a paged full scan, both ways, same run.

    .venv/bin/python bench/grpc_vs_gateway.py --keys 200000 --page 10000
Prints keys/s for each and the ratio. Recorded in docs/decisions.md.
"""

from __future__ import annotations

import argparse
import asyncio
import base64
import time

import aiohttp

from etcd_inspector.demo.localcluster import start_cluster
from etcd_inspector.demo.sample_writer import SampleWriter
from etcd_inspector.etcd.client import MemberClient


async def load(endpoint: str, keys: int) -> None:
    w = SampleWriter(endpoint)
    try:
        value = b"v" * 100
        await w.put_many((f"/bench/{i:09d}".encode(), value) for i in range(keys))
    finally:
        await w.close()


async def scan_grpc(endpoint: str, page: int) -> int:
    client = MemberClient(endpoint, request_timeout=30)
    seen, key = 0, b"\0"
    try:
        first = await client.range_page(key, b"\0", limit=1)
        rev = first.revision
        while True:
            p = await client.range_page(key, b"\0", limit=page, revision=rev)
            seen += len(p.kvs)
            if not p.more:
                return seen
            key = p.kvs[-1].key + b"\0"
    finally:
        await client.close()


async def scan_gateway(endpoint: str, page: int) -> int:
    seen, key = 0, b"\0"
    b64 = lambda b: base64.b64encode(b).decode()  # noqa: E731
    async with aiohttp.ClientSession(timeout=aiohttp.ClientTimeout(total=60)) as s:
        rev = 0
        while True:
            body = {"key": b64(key), "range_end": b64(b"\0"), "limit": page, "revision": rev}
            async with s.post(f"{endpoint}/v3/kv/range", json=body) as r:
                data = await r.json()
            rev = rev or int(data["header"]["revision"])
            kvs = data.get("kvs", [])
            seen += sum(len(base64.b64decode(kv.get("value", ""))) >= 0 for kv in kvs)
            if not data.get("more"):
                return seen
            key = base64.b64decode(kvs[-1]["key"]) + b"\0"


async def main(keys: int, page: int) -> None:
    cluster = start_cluster(3)
    try:
        ep = cluster.endpoints[0]
        await load(ep, keys)
        for name, fn in (("grpc", scan_grpc), ("gateway", scan_gateway), ("grpc", scan_grpc)):
            t = time.perf_counter()
            n = await fn(ep, page)
            dt = time.perf_counter() - t
            print(f"{name:8s} {n} keys in {dt:.2f}s = {n / dt:,.0f} keys/s")
    finally:
        cluster.stop()


if __name__ == "__main__":
    ap = argparse.ArgumentParser()
    ap.add_argument("--keys", type=int, default=200_000)
    ap.add_argument("--page", type=int, default=10_000)
    a = ap.parse_args()
    asyncio.run(main(a.keys, a.page))
