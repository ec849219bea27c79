"""The drills' steady writer: `--rate` puts/s round-robin over the members' grpc-gateway,
paced by the clock (a slow member must not lower the rate), at most 64 in flight, each put with
a 2 s timeout; failures are counted, never fatal (a drill kills and cuts off members).

Optionally a hot key (`--hot-key K --hot-rate N`) and a big value planted once
(`--big-key K --big-bytes N`). Run as a subprocess: `python drillwriter.py [options] URL...`.
"""

from __future__ import annotations

import argparse
import asyncio
import base64
import contextlib
import sys
import time

import aiohttp

MAX_IN_FLIGHT = 64
PUT_TIMEOUT = aiohttp.ClientTimeout(total=2)


def _body(key: str, value: bytes) -> dict[str, str]:
    return {
        "key": base64.b64encode(key.encode()).decode(),
        "value": base64.b64encode(value).decode(),
    }


async def _put(session: aiohttp.ClientSession, url: str, key: str, value: bytes) -> bool:
    try:
        async with session.post(url + "/v3/kv/put", json=_body(key, value)) as resp:
            await resp.read()
            return resp.status == 200
    except (aiohttp.ClientError, TimeoutError):
        return False


async def _run(args: argparse.Namespace) -> None:
    stats = {"ok": 0, "failed": 0}
    in_flight: set[asyncio.Task[None]] = set()

    async def one(url: str, key: str, value: bytes) -> None:
        stats["ok" if await _put(session, url, key, value) else "failed"] += 1

    async with aiohttp.ClientSession(timeout=PUT_TIMEOUT) as session:
        if args.big_key:
            for url in args.endpoints:
                if await _put(session, url, args.big_key, b"B" * args.big_bytes):
                    break
        urls = args.endpoints

        def steady(n: int) -> tuple[str, str, bytes]:
            return urls[n % len(urls)], f"/drill/steady/{n % 200:03d}", b"v" * args.value_bytes

        def hot(n: int) -> tuple[str, str, bytes]:
            return urls[n % len(urls)], args.hot_key, b"h"

        loops = [_paced(args.rate, steady, in_flight, one)]
        if args.hot_key:
            loops.append(_paced(args.hot_rate, hot, in_flight, one))
        loops.append(_report(stats))
        await asyncio.gather(*loops)


async def _paced(rate, job, in_flight, one) -> None:  # type: ignore[no-untyped-def]
    """Start job(n) at n/rate seconds, whatever the answers take."""
    started, n = time.monotonic(), 0
    while True:
        if len(in_flight) < MAX_IN_FLIGHT:
            task = asyncio.create_task(one(*job(n)))
            in_flight.add(task)
            task.add_done_callback(in_flight.discard)
        n += 1
        await asyncio.sleep(max(0.0, started + n / rate - time.monotonic()))


async def _report(stats: dict[str, int]) -> None:
    while True:
        await asyncio.sleep(5)
        print(f"ok={stats['ok']} failed={stats['failed']}", flush=True)


def main(argv: list[str]) -> int:
    parser = argparse.ArgumentParser()
    parser.add_argument("--rate", type=float, default=50)
    parser.add_argument("--value-bytes", type=int, default=256)
    parser.add_argument("--hot-key", default="")
    parser.add_argument("--hot-rate", type=float, default=0)
    parser.add_argument("--big-key", default="")
    parser.add_argument("--big-bytes", type=int, default=0)
    parser.add_argument("endpoints", nargs="+")
    args = parser.parse_args(argv)
    with contextlib.suppress(KeyboardInterrupt):
        asyncio.run(_run(args))
    return 0


if __name__ == "__main__":
    sys.exit(main(sys.argv[1:]))
