"""A watch resuming into a backlog of big values: fragmented responses vs a bigger receive limit.

The fault suite's backlog: 60 values of 1.45 MB written while the watch could not read (87 MB).
A watch resumed from before them gets them as one response unless it asks for fragments; that
one message is over gRPC's 64 MiB receive limit. Each variant reads the whole backlog in its own
process (so peak RSS is its own) and reports the time taken, the largest message and peak RSS:

  fragment     the exporter's client (fragment=True): parts of at most --max-request-bytes
  big-limit    fragment=False with the receive limit raised to 256 MiB: one message
  64MiB        fragment=False at the exporter's 64 MiB limit: fails with too_large

Standalone: .venv/bin/python bench/bench_watch_backlog.py
"""

from __future__ import annotations

import asyncio
import json
import resource
import subprocess
import sys
import time

import grpc
from aetcd import rpc

from etcd_inspector.demo.localcluster import start_cluster

VALUES = 60
VALUE_BYTES = 1_450_000


async def write_backlog(endpoint: str) -> tuple[int, int]:
    async with grpc.aio.insecure_channel(endpoint.split("://", 1)[1]) as channel:
        kv = rpc.KVStub(channel)
        first = last = 0
        for i in range(VALUES):
            r = await kv.Put(rpc.PutRequest(key=b"/big/%03d" % i, value=b"B" * VALUE_BYTES))
            first, last = first or r.header.revision, r.header.revision
    return first, last


async def read_backlog(endpoint: str, start: int, last: int, variant: str) -> dict[str, object]:
    limit = 256 * 2**20 if variant == "big-limit" else 64 * 2**20
    options = [("grpc.max_receive_message_length", limit)]
    async with grpc.aio.insecure_channel(endpoint.split("://", 1)[1], options=options) as ch:
        create = rpc.WatchRequest(
            create_request=rpc.WatchCreateRequest(
                key=b"\0", range_end=b"\0", start_revision=start, fragment=variant == "fragment"
            )
        )

        async def requests():  # type: ignore[no-untyped-def]
            yield create
            await asyncio.Event().wait()

        started = time.perf_counter()
        events = largest = messages = 0
        call = rpc.WatchStub(ch).Watch(requests())
        try:
            async for resp in call:
                messages += 1
                largest = max(largest, resp.ByteSize())
                events += len(resp.events)
                if resp.events and resp.events[-1].kv.mod_revision >= last:
                    break
        except grpc.aio.AioRpcError as err:
            return {"variant": variant, "error": f"{err.code().name}: {err.details()}"}
        finally:
            call.cancel()
        return {
            "variant": variant,
            "seconds": round(time.perf_counter() - started, 2),
            "events": events,
            "messages": messages - 1,  # without "created"
            "largest_message_mb": round(largest / 1e6, 1),
            "peak_rss_mb": round(resource.getrusage(resource.RUSAGE_SELF).ru_maxrss / 1024),
        }


def main() -> None:
    with start_cluster(1) as cluster:
        endpoint = cluster.endpoints[0]
        first, last = asyncio.run(write_backlog(endpoint))
        for variant in ("fragment", "big-limit", "64MiB"):
            out = subprocess.run(
                [sys.executable, "-c",
                 "import asyncio, json, sys; sys.path.insert(0, 'bench');"
                 "from bench_watch_backlog import read_backlog;"
                 f"print(json.dumps(asyncio.run(read_backlog({endpoint!r}, {first}, {last}, "
                 f"{variant!r}))))"],
                capture_output=True, text=True, check=True, timeout=300,
            )  # fmt: skip
            print(json.loads(out.stdout))


if __name__ == "__main__":
    main()
