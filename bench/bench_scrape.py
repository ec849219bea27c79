"""Benchmark 4 (and the exporter half of 2): scrape latency of `etcd-inspector run` while a
bigvalue scan runs vs idle, and the exporter's RSS during the scan.

Two exporters on the same cluster, one after the other: "idle" has bigvalue disabled, "scanning"
runs it back to back (interval 1s, default pace). Each gets ~50 scrapes of /metrics, 0.1 s
apart; a scrape also proxies the three members' /metrics, as in production. The scanning run
records etcd_inspector_scan_keys from each scrape, to show the scrapes did land mid-scan.

Standalone: .venv/bin/python bench/bench_scrape.py --keys 100000
"""

from __future__ import annotations

import argparse
import asyncio
import itertools
import os
import tempfile
import time
from pathlib import Path

from common import (
    Exporter,
    Row,
    load_keys,
    log,
    markdown,
    mib,
    percentile,
    ratio,
    sample_value,
    start_bench_cluster,
)

SCRAPES = 50


def _scrapes(exp: Exporter, n: int) -> tuple[list[float], list[float | None]]:
    latencies, scan_keys = [], []
    for _ in range(n):
        seconds, text = exp.scrape()
        latencies.append(seconds)
        scan_keys.append(sample_value(text, "etcd_inspector_scan_keys"))
        time.sleep(0.1)
    return latencies, scan_keys


def _wait_for_scan(exp: Exporter, timeout: float = 60) -> None:
    """Until a scan is under way (its progress shows in the scrape)."""
    deadline = time.monotonic() + timeout
    while time.monotonic() < deadline:
        _, text = exp.scrape()
        if (sample_value(text, "etcd_inspector_scan_keys") or 0) > 0:
            return
        time.sleep(0.1)
    raise SystemExit("the exporter's bigvalue scan did not start")


def run(cluster, workdir: Path, n: int = SCRAPES) -> list[Row]:
    probes_idle = {"bigvalue": {"enabled": False}}
    with Exporter(cluster.endpoints, probes_idle, workdir) as idle:
        time.sleep(1.0)  # let the first probe round settle
        idle_lat, _ = _scrapes(idle, n)
        idle_rss = idle.peak_rss()
    probes_scan = {"bigvalue": {"interval": "1s", "timeout": "10m"}}
    with Exporter(cluster.endpoints, probes_scan, workdir) as scanning:
        _wait_for_scan(scanning)
        rss_samples: list[int] = []
        scan_lat, scan_keys = [], []
        for _ in range(n):
            lat, keys = _scrapes(scanning, 1)
            scan_lat += lat
            scan_keys += keys
            rss_samples.append(scanning.rss())
        scan_peak = scanning.peak_rss()
    # The gauge shows the running scan's progress, then its total: a change means mid-scan.
    mid_scan = sum(1 for a, b in itertools.pairwise(scan_keys) if a != b)
    p50 = (percentile(scan_lat, 0.5), percentile(idle_lat, 0.5))
    p99 = (percentile(scan_lat, 0.99), percentile(idle_lat, 0.99))
    log(
        f"scrape p50 {p50[0] * 1000:.1f} ms scanning vs {p50[1] * 1000:.1f} ms idle; "
        f"p99 {p99[0] * 1000:.1f} vs {p99[1] * 1000:.1f}; exporter peak {mib(scan_peak)}"
    )
    bench = "4. scrape latency"
    return [
        Row(bench, f"p50 over {n} scrapes (scanning vs idle)", f"{p50[0] * 1000:.1f} ms",
            f"{p50[1] * 1000:.1f} ms", ratio(*p50),
            f"scan_keys changed between {mid_scan} of {n - 1} consecutive scrapes"),
        Row(bench, f"p99 over {n} scrapes (scanning vs idle)", f"{p99[0] * 1000:.1f} ms",
            f"{p99[1] * 1000:.1f} ms", ratio(*p99), "includes proxying 3 members' /metrics"),
        Row("2. exporter memory", "exporter RSS during a scan (max sampled / VmHWM)",
            f"{mib(max(rss_samples))} / {mib(scan_peak)}", f"{mib(idle_rss)} idle",
            ratio(scan_peak, idle_rss), "peer: the same exporter with bigvalue off"),
    ]  # fmt: skip


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--keys", type=int, default=100_000)
    args = parser.parse_args()
    with tempfile.TemporaryDirectory(prefix="bench-scrape-") as tmp:
        workdir = Path(tmp)
        cluster = start_bench_cluster(workdir / "etcd", binary=os.environ.get("ETCD_BIN"))
        try:
            asyncio.run(load_keys(cluster.endpoints, 0, args.keys))
            rows = run(cluster, workdir)
        finally:
            cluster.stop()
    print(markdown(rows))


if __name__ == "__main__":
    main()
