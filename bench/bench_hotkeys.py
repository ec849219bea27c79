"""Benchmark 3: can the hotkeys watch keep up with the fastest writes the cluster sustains?

The writer puts as fast as it can: 8 streams of Txns with 100 puts each over a set of 1000 hot
keys, and records (time, revision) after every Txn. The watcher is the real HotKeysProbe in its
own process (`bench_hotkeys.py --watcher`, built with runtime.build_runtime like the exporter),
snapshotting every 0.25 s and printing (time, revision seen up to, events counted). Lag at time
t is the writer's revision at t minus the watcher's; it must not grow while the writes go on,
and the watcher must reach the final revision soon after they stop.

The write rate is measured twice: alone first (what the cluster sustains), then with the
watcher running (the watch costs etcd too: every event is sent to it).

Standalone: .venv/bin/python bench/bench_hotkeys.py --seconds 20
"""

from __future__ import annotations

import argparse
import asyncio
import bisect
import json
import os
import signal
import statistics
import subprocess
import sys
import tempfile
import time
from pathlib import Path

from common import Row, channel, log, markdown, ratio, rpc, start_bench_cluster

HOT_KEYS = 1000
PUTS_PER_TXN = 100
STREAMS = 8
SNAPSHOT_SECONDS = 0.25


# --------------------------------------------------------------------------- the writer


async def write_hot(endpoints: list[str], seconds: float) -> list[tuple[float, int]]:
    """Txns of PUTS_PER_TXN distinct hot keys for `seconds`; (wall time, revision) per Txn."""
    channels = [channel(u) for u in endpoints]
    stubs = [rpc.KVStub(c) for c in channels]
    marks: list[tuple[float, int]] = []
    deadline = time.monotonic() + seconds
    value = b"h" * 100

    async def stream(s: int) -> None:
        kv = stubs[s % len(stubs)]
        n = s
        while time.monotonic() < deadline:
            base = (n * PUTS_PER_TXN) % HOT_KEYS
            ops = [
                rpc.RequestOp(
                    request_put=rpc.PutRequest(key=b"/hot/k%04d" % ((base + i) % HOT_KEYS),
                                               value=value)
                )
                for i in range(PUTS_PER_TXN)
            ]  # fmt: skip
            resp = await kv.Txn(rpc.TxnRequest(success=ops), timeout=30)
            marks.append((time.time(), resp.header.revision))
            n += STREAMS

    try:
        await asyncio.gather(*(stream(s) for s in range(STREAMS)))
    finally:
        for c in channels:
            await c.close()
    marks.sort()
    return marks


# --------------------------------------------------------------------------- the watcher


async def watcher(endpoints: list[str]) -> None:
    """Child process: the real hotkeys probe; one JSON line per snapshot on stdout."""
    from etcd_inspector.config import parse_config
    from etcd_inspector.probes import REGISTRY
    from etcd_inspector.runtime.runtime import build_runtime
    from etcd_inspector.runtime.scheduler import run_probe_once

    config = parse_config({"clusters": [{"name": "bench", "endpoints": endpoints}]}, REGISTRY)
    rt = build_runtime(config.clusters[0], config, only={"status", "hotkeys"})
    stop = asyncio.Event()
    loop = asyncio.get_running_loop()
    loop.add_signal_handler(signal.SIGTERM, stop.set)
    ctx = {n: rt.scheduler.context_for(n) for n in rt.probes}
    try:
        await run_probe_once(rt.probes["status"], ctx["status"], rt.state)
        last_status = time.monotonic()
        while not stop.is_set():
            outcome = await run_probe_once(rt.probes["hotkeys"], ctx["hotkeys"], rt.state)
            r = outcome.result
            line = {"t": time.time(), "ok": outcome.success}
            if r is not None:
                line |= {
                    "rev": r.revision,
                    "events": r.events_total,
                    "lag": r.lag_revisions,
                    "restarts": r.restarts_total,
                    "missed": r.missed_windows_total,
                }
            print(json.dumps(line), flush=True)
            if time.monotonic() - last_status > 2:
                await run_probe_once(rt.probes["status"], ctx["status"], rt.state)
                last_status = time.monotonic()
            try:
                await asyncio.wait_for(stop.wait(), SNAPSHOT_SECONDS)
            except TimeoutError:
                pass
    finally:
        await rt.close()


def _read_lines(
    proc: subprocess.Popen[str], until: float, want_first: bool, lines: list[dict] | None = None
) -> list[dict]:
    lines = [] if lines is None else lines
    assert proc.stdout is not None
    while time.monotonic() < until:
        line = proc.stdout.readline()
        if not line:
            break
        lines.append(json.loads(line))
        if want_first and lines[-1].get("rev"):
            break
    return lines


# --------------------------------------------------------------------------- the benchmark


def writer_revision_at(marks: list[tuple[float, int]], t: float) -> int | None:
    i = bisect.bisect_right(marks, (t, sys.maxsize))
    return marks[i - 1][1] if i else None


def run(cluster, seconds: float = 20.0) -> list[Row]:
    alone = asyncio.run(write_hot(cluster.endpoints, seconds))
    alone_rate = _txn_rate(alone) * PUTS_PER_TXN
    log(f"hot writes alone: {alone_rate:,.0f} puts/s")
    proc = subprocess.Popen(
        [sys.executable, __file__, "--watcher", ",".join(cluster.endpoints)],
        stdout=subprocess.PIPE, text=True,
    )  # fmt: skip
    try:
        samples = _read_lines(proc, time.monotonic() + 30, want_first=True)
        if not samples:
            raise SystemExit("the watcher did not start")
        # Read snapshots in a thread while the writer runs in this one.
        import threading

        collected: list[dict] = []
        reader = threading.Thread(
            target=_read_lines, args=(proc, time.monotonic() + 600, False, collected)
        )
        reader.start()
        started = time.time()
        marks = asyncio.run(write_hot(cluster.endpoints, seconds))
        stopped = time.time()
        final = marks[-1][1]
        deadline = time.monotonic() + 60
        while time.monotonic() < deadline:
            if collected and (collected[-1].get("rev") or 0) >= final:
                break
            time.sleep(0.05)
    finally:
        proc.send_signal(signal.SIGTERM)
        try:
            proc.wait(timeout=15)
        except subprocess.TimeoutExpired:
            proc.kill()
            proc.wait()
    reader.join(timeout=10)
    return _figures(alone_rate, marks, collected, started, stopped, final)


def _txn_rate(marks: list[tuple[float, int]]) -> float:
    return len(marks) / (marks[-1][0] - marks[0][0]) if len(marks) > 1 else 0.0


def _figures(alone_rate, marks, samples, started, stopped, final) -> list[Row]:
    during = [s for s in samples if started <= s["t"] <= stopped and s.get("rev")]
    lags = []
    for s in during:
        written = writer_revision_at(marks, s["t"])
        if written is not None:
            lags.append((s["t"] - started, max(0, written - s["rev"])))
    rev_rate = _txn_rate(marks)  # revisions/s (one Txn = one revision)
    write_rate = rev_rate * PUTS_PER_TXN
    caught = next((s for s in samples if (s.get("rev") or 0) >= final), None)
    catch_up = max(0.0, caught["t"] - stopped) if caught else float("nan")
    events = (caught or samples[-1]).get("events", 0) if samples else 0
    third = max(1, len(lags) // 3)
    first = statistics.mean(lag for _, lag in lags[:third]) if lags else float("nan")
    last = statistics.mean(lag for _, lag in lags[-third:]) if lags else float("nan")
    worst = max((lag for _, lag in lags), default=float("nan"))
    watched_rate = events / (caught["t"] - started) if caught else float("nan")
    growing = last > max(2 * first, rev_rate)  # more than twice, and over a second's worth
    log(f"hot writes with watcher: {write_rate:,.0f} puts/s; watcher {watched_rate:,.0f} events/s;"
        f" lag first third {first:.1f}, last third {last:.1f}, max {worst} revisions;"
        f" caught up {catch_up:.2f}s after the writes stopped")  # fmt: skip
    b = "3. hotkeys watch throughput"
    return [
        Row(b, "fastest sustained write rate (Txns of 100 puts, 8 streams)",
            f"{write_rate:,.0f} puts/s with the watch", f"{alone_rate:,.0f} puts/s alone",
            ratio(write_rate, alone_rate), f"{rev_rate:,.0f} revisions/s"),
        Row(b, "watcher throughput (events counted / s until caught up)",
            f"{watched_rate:,.0f} events/s", f"{write_rate:,.0f} puts/s written",
            ratio(watched_rate, write_rate), f"{events} events in all"),
        Row(b, "lag behind the writer, mean of first vs last third (revisions)",
            f"{last:.1f} (last)", f"{first:.1f} (first)", ratio(last, first) if first else "n/a",
            "growing" if growing else f"not growing; max {worst} revisions "
            f"({worst / rev_rate:.2f} s of writes)" if rev_rate else ""),
        Row(b, "catch-up after the writes stop", f"{catch_up:.2f} s", "", "",
            f"snapshots every {SNAPSHOT_SECONDS:g} s bound the resolution"),
    ]  # fmt: skip


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--seconds", type=float, default=20.0)
    parser.add_argument("--watcher", metavar="ENDPOINTS", help=argparse.SUPPRESS)
    args = parser.parse_args()
    if args.watcher:
        asyncio.run(watcher(args.watcher.split(",")))
        return
    with tempfile.TemporaryDirectory(prefix="bench-hotkeys-") as tmp:
        cluster = start_bench_cluster(Path(tmp) / "etcd", binary=os.environ.get("ETCD_BIN"))
        try:
            rows = run(cluster, args.seconds)
        finally:
            cluster.stop()
    print(markdown(rows))


if __name__ == "__main__":
    main()
