"""What the hot-key probe's noop_writes option costs: the watch with prev_kv vs without.

A 1-member cluster takes WRITES puts of VALUE_BYTES over KEYS keys (Txns of 100 puts, half of
them rewriting the value a key already has). A watch then replays the whole history from
revision 1, once with prev_kv (what noop_writes asks for) and once without, alternating,
ROUNDS times each; per variant the median of: bytes received (the responses' protobuf size),
seconds to replay, etcd's CPU seconds (utime + stime from /proc) and the client's CPU seconds.

Standalone: .venv/bin/python bench/bench_noop_writes.py
"""

from __future__ import annotations

import asyncio
import json
import os
import statistics
import sys
import tempfile
import time
from pathlib import Path

from common import channel, rpc
from etcd_inspector.demo.localcluster import start_cluster

WRITES = 20_000
KEYS = 200
VALUE_BYTES = 1024
PUTS_PER_TXN = 100
ROUNDS = 3


def etcd_cpu_seconds(pid: int) -> float:
    fields = Path(f"/proc/{pid}/stat").read_text().rpartition(")")[2].split()
    return (int(fields[11]) + int(fields[12])) / os.sysconf("SC_CLK_TCK")


async def write(endpoint: str) -> int:
    async with channel(endpoint) as ch:
        kv = rpc.KVStub(ch)
        revision = 0
        for t in range(WRITES // PUTS_PER_TXN):
            ops = []
            for i in range(PUTS_PER_TXN):
                n = t * PUTS_PER_TXN + i
                # even txns rewrite every key with the value it had; odd ones change it
                value = (b"%08d" % (n % KEYS if t % 2 == 0 else n)).ljust(VALUE_BYTES, b"v")
                ops.append(rpc.RequestOp(request_put=rpc.PutRequest(
                    key=b"/noop/k%04d" % (n % KEYS), value=value)))  # fmt: skip
            r = await kv.Txn(rpc.TxnRequest(success=ops), timeout=10)
            revision = r.header.revision
        return revision


async def replay(endpoint: str, last: int, prev_kv: bool) -> tuple[int, int, float]:
    """(bytes received, events, seconds) of a watch from revision 1 up to `last` (all
    WRITES events)."""
    async with channel(endpoint) as ch:
        stub = rpc.WatchStub(ch)
        done = asyncio.Event()

        async def requests():  # type: ignore[no-untyped-def]
            create = rpc.WatchCreateRequest(key=b"\0", range_end=b"\0", start_revision=1,
                                            prev_kv=prev_kv, fragment=True)  # fmt: skip
            yield rpc.WatchRequest(create_request=create)
            await done.wait()

        size = events = 0
        started = time.perf_counter()
        call = stub.Watch(requests())
        async for resp in call:
            size += resp.ByteSize()
            events += len(resp.events)
            if events >= WRITES:  # the last Txn may come in fragments: count them all
                break
        elapsed = time.perf_counter() - started
        done.set()
        call.cancel()
        return size, events, elapsed


async def main() -> dict[str, dict[str, float]]:
    with tempfile.TemporaryDirectory(prefix="bench-noop-") as tmp:
        cluster = start_cluster(1, base_dir=Path(tmp) / "etcd", binary=os.environ.get("ETCD_BIN"))
        try:
            endpoint = cluster.endpoints[0]
            last = await write(endpoint)
            pid = cluster.members[0].process.pid  # type: ignore[union-attr]
            samples: dict[str, list[tuple[float, ...]]] = {"without prev_kv": [],
                                                           "with prev_kv": []}  # fmt: skip
            for _ in range(ROUNDS):
                for name, prev in (("without prev_kv", False), ("with prev_kv", True)):
                    cpu0, own0 = etcd_cpu_seconds(pid), time.process_time()
                    size, events, seconds = await replay(endpoint, last, prev)
                    cpu = etcd_cpu_seconds(pid) - cpu0
                    own = time.process_time() - own0
                    assert events == WRITES, events
                    samples[name].append((size, seconds, cpu, own))
        finally:
            cluster.stop()
    out = {}
    for name, rows in samples.items():
        size, seconds, cpu, own = (statistics.median(col) for col in zip(*rows, strict=True))
        out[name] = {"events": WRITES, "mib": round(size / 2**20, 2),
                     "seconds": round(seconds, 3), "etcd_cpu_seconds": round(cpu, 2),
                     "client_cpu_seconds": round(own, 2)}  # fmt: skip
    return out


if __name__ == "__main__":
    result = asyncio.run(main())
    json.dump(result, sys.stdout, indent=2)
    print()
