"""Benchmark 5: what a scan costs etcd, seen as write latency.

Single Put requests (4 writers, each latency recorded) for a fixed window: first with nothing
else running, then while an exporter runs bigvalue scans back to back at the default pace
(20000 keys/s), then unpaced, and last while bench_paging.py's prefix-bounded reference reader
reads at the same pace. The scanner is a separate `etcd-inspector run` process, as in
production, with only status and bigvalue enabled; the writers use their own grpc.aio channel
to one member.

Standalone: .venv/bin/python bench/bench_write_cost.py --keys 100000
"""

from __future__ import annotations

import argparse
import asyncio
import os
import subprocess
import sys
import tempfile
import time
from pathlib import Path

from bench_scrape import _wait_for_scan
from common import (
    Exporter,
    Latencies,
    Row,
    load_keys,
    log,
    markdown,
    ratio,
    start_bench_cluster,
    timed_single_puts,
)


def _puts(endpoint: str, seconds: float) -> Latencies:
    return asyncio.run(timed_single_puts(endpoint, seconds))


def run(cluster, workdir: Path, seconds: float = 10.0) -> list[Row]:
    # Writes go to a member the scan avoids when it can (the scan prefers a follower; the
    # writes reach the leader either way).
    endpoint = cluster.endpoints[0]
    results = {"no scan": _puts(endpoint, seconds)}
    for label, pace in (
        ("default (adaptive) scan", {}),
        ("scan capped at 20000 keys/s", {"keys_per_second": 20000}),
    ):
        # Only the scan: the hotkeys watch would add its own cost to every write.
        probes = {
            "bigvalue": {"interval": "1s", "timeout": "10m", **pace},
            **{name: {"enabled": False} for name in ("consistency", "quota", "hotkeys")},
        }
        with Exporter(cluster.endpoints, probes, workdir) as exp:
            _wait_for_scan(exp)
            results[label] = _puts(endpoint, seconds)
    # The same pace with the prefix-bounded reference reader (bench_paging.py) instead: what
    # the scan would cost if its pages did not make etcd count the rest of the keyspace.
    reader = subprocess.Popen(
        [sys.executable, str(Path(__file__).with_name("bench_paging.py")),
         "--read-forever", cluster.endpoints[1], "--keys-per-second", "20000"],
    )  # fmt: skip
    try:
        time.sleep(1.0)
        results["prefix-bounded reader, paced"] = _puts(endpoint, seconds)
    finally:
        reader.terminate()
        reader.wait(timeout=10)
    base = results["no scan"]
    rows = []
    for label, lat in results.items():
        log(f"puts, {label}: {lat.count} in {lat.wall:.1f}s, p50 {lat.pct(0.5) * 1000:.2f} ms, "
            f"p99 {lat.pct(0.99) * 1000:.2f} ms")  # fmt: skip
        if label == "no scan":
            continue
        rows += [
            Row("5. write latency under a scan", f"put p99, {label} vs none",
                f"{lat.pct(0.99) * 1000:.2f} ms", f"{base.pct(0.99) * 1000:.2f} ms",
                ratio(lat.pct(0.99), base.pct(0.99)),
                f"{lat.count} puts in {seconds:g} s (none: {base.count})"),
            Row("5. write latency under a scan", f"put p50, {label} vs none",
                f"{lat.pct(0.5) * 1000:.2f} ms", f"{base.pct(0.5) * 1000:.2f} ms",
                ratio(lat.pct(0.5), base.pct(0.5)),
                f"throughput {lat.rate:,.0f}/s vs {base.rate:,.0f}/s"),
        ]  # fmt: skip
    return rows


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--keys", type=int, default=100_000)
    parser.add_argument("--seconds", type=float, default=10.0)
    args = parser.parse_args()
    with tempfile.TemporaryDirectory(prefix="bench-write-") as tmp:
        workdir = Path(tmp)
        cluster = start_bench_cluster(workdir / "etcd", binary=os.environ.get("ETCD_BIN"))
        try:
            asyncio.run(load_keys(cluster.endpoints, 0, args.keys))
            rows = run(cluster, workdir, args.seconds)
        finally:
            cluster.stop()
    print(markdown(rows))


if __name__ == "__main__":
    main()
