"""Benchmarks 1, 1c, 1d and 2: `inspect` against `etcdctl get "" --prefix` on the same keyspace,
what a larger page_size buys, how the scan time grows with the key count (tree and flat
layouts), and the peak memory of `inspect` as the key count grows.

Both read every key with its value from the same member (the one inspect's scan chose, a
follower), etcdctl in one Range, inspect in pages whose ranges the bigvalue Pager bounds;
etcdctl writes to /dev/null. inspect's wall time is the whole command: start-up, status,
consistency (HashKV on every member), quota and the scan, all but status concurrently (inspect
runs its own set of probes whatever `enabled` says); "scan" is the bigvalue probe's own
duration. 1c and 1d time the real BigValueProbe alone instead, in this process (scan_alone):
inside inspect it shares the two cores with HashKV of the whole database. Peak RSS is VmHWM
(see common.run_child).

Standalone: .venv/bin/python bench/bench_scan.py --keys 100000
            .venv/bin/python bench/bench_scan.py --scaling      # 100k, 500k, 1M; both layouts
"""

from __future__ import annotations

import argparse
import asyncio
import json
import os
import statistics
import subprocess
import tempfile
from pathlib import Path

from common import (
    INSPECTOR,
    ChildRun,
    Row,
    etcdctl_binary,
    flat_key,
    load_keys,
    log,
    markdown,
    mib,
    ratio,
    run_child,
    start_bench_cluster,
)
from etcd_inspector.config import parse_config
from etcd_inspector.probes import REGISTRY
from etcd_inspector.runtime.runtime import build_runtime
from etcd_inspector.runtime.scheduler import run_probe_once

UNPACED = {"bigvalue": {"keys_per_second": 0}}


def write_config(workdir: Path, name: str, text: str) -> Path:
    path = workdir / name
    path.write_text(text)
    return path


def bigvalue_config(
    workdir: Path, *, paced: bool, prefixes: tuple[str, ...] = (), page_size: int | None = None
) -> Path:
    lines = ["inspection:", "  probes:", "    bigvalue:", "      timeout: 15m"]
    if not paced:
        lines.append("      keys_per_second: 0")
    if prefixes:
        lines.append(f"      prefixes: [{', '.join(json.dumps(p) for p in prefixes)}]")
    if page_size:
        lines.append(f"      page_size: {page_size}")
    name = (
        f"inspect-{'paced' if paced else 'unpaced'}{'-prefixed' if prefixes else ''}"
        f"{f'-pages{page_size}' if page_size else ''}.yml"
    )
    return write_config(workdir, name, "\n".join(lines) + "\n")


def run_inspect(endpoints: list[str], config: Path) -> tuple[ChildRun, dict]:
    run = run_child(
        [INSPECTOR, "inspect", "--config.file", str(config), "--etcd.endpoints",
         ",".join(endpoints), "--output", "json", "--no-progress"],
    )  # fmt: skip
    if run.returncode not in (0, 1):
        raise SystemExit(f"inspect failed ({run.returncode}): {run.stderr.decode()[-2000:]}")
    return run, json.loads(run.stdout)


async def _scan_alone(endpoints: list[str], options: dict) -> tuple[int, float]:
    raw = {
        "clusters": [{"name": "bench", "endpoints": endpoints}],
        "inspection": {"probes": {"bigvalue": {"timeout": "15m", "keys_per_second": 0,
                                               **options}}},
    }  # fmt: skip
    config = parse_config(raw, REGISTRY)
    rt = build_runtime(config.clusters[0], config, only={"status", "bigvalue"})
    try:
        # status first, as inspect does, so the scan reads from a follower
        await run_probe_once(rt.probes["status"], rt.scheduler.context_for("status"), rt.state)
        probe = rt.probes["bigvalue"].probe
        result = await probe.run(rt.scheduler.context_for("bigvalue"))
        return result.keys, result.duration_seconds
    finally:
        await rt.close()


def scan_alone(endpoints: list[str], reps: int = 3, **options) -> tuple[int, float]:
    """(keys, median scan seconds) of the real BigValueProbe, unpaced, run `reps` times in this
    process with nothing else reading: a fresh probe each time, as in a one-shot inspect."""
    runs = [asyncio.run(_scan_alone(endpoints, options)) for _ in range(reps)]
    return runs[0][0], statistics.median(seconds for _, seconds in runs)


def scan_facts(doc: dict) -> tuple[int, float, str]:
    """(keys scanned, scan seconds, endpoint that served it) from an inspect JSON document."""
    cluster = doc["clusters"][0]
    ks = cluster["keyspace"]
    if ks is None:
        raise SystemExit(f"inspect did not scan: {cluster['probes'].get('bigvalue')}")
    endpoint = next(m["endpoint"] for m in cluster["members"] if m["name"] == ks["member"])
    return ks["keys"], ks["duration_seconds"], endpoint


def run_etcdctl(etcdctl: str, endpoint: str, prefix: str = "") -> ChildRun:
    run = run_child(
        [etcdctl, "--endpoints", endpoint, "--command-timeout=120s", "get", prefix, "--prefix"],
        stdout=subprocess.DEVNULL,
    )
    if run.returncode != 0:
        raise SystemExit(f"etcdctl failed: {run.stderr.decode()[-2000:]}")
    return run


def compare_with_etcdctl(
    cluster, workdir: Path, reps: int, *, label: str, prefix: str = "", paced_run: bool = True
) -> list[Row]:
    """inspect (unpaced, `reps` times; and once paced at the default rate) vs etcdctl."""
    etcdctl = etcdctl_binary(cluster.binary)
    prefixes = (prefix,) if prefix else ()
    unpaced = bigvalue_config(workdir, paced=False, prefixes=prefixes)
    runs = [run_inspect(cluster.endpoints, unpaced) for _ in range(reps)]
    keys, _, endpoint = scan_facts(runs[0][1])
    peer = [run_etcdctl(etcdctl, endpoint, prefix) for _ in range(reps)]
    ours_wall = statistics.median(r.seconds for r, _ in runs)
    ours_scan = statistics.median(scan_facts(d)[1] for _, d in runs)
    theirs = statistics.median(r.seconds for r in peer)
    rss = max(r.max_rss_bytes for r, _ in runs)
    log(f"{label}: inspect {ours_wall:.2f}s (scan {ours_scan:.2f}s), etcdctl {theirs:.2f}s")
    bench = f"1. full read, {label}"
    rows = [
        Row(bench, f"wall time, {keys} keys (median of {reps})", f"{ours_wall:.2f} s",
            f"{theirs:.2f} s", ratio(ours_wall, theirs),
            "whole inspect (start-up, status, HashKV, quota, scan) vs etcdctl"),
        Row(bench, "keys/s (whole command)", f"{keys / ours_wall:,.0f}",
            f"{keys / theirs:,.0f}", ratio(keys / ours_wall, keys / theirs), "higher is better"),
        Row(bench, "keys/s (the scan's own duration)", f"{keys / ours_scan:,.0f}",
            f"{keys / theirs:,.0f}", ratio(keys / ours_scan, keys / theirs),
            "bigvalue's duration inside inspect (HashKV runs meanwhile)"),
        Row(bench, "peak RSS", mib(rss), mib(max(r.max_rss_bytes for r in peer)),
            ratio(rss, max(r.max_rss_bytes for r in peer)), "etcdctl holds the whole answer"),
    ]  # fmt: skip
    if paced_run:
        paced = bigvalue_config(workdir, paced=True, prefixes=prefixes)
        run, doc = run_inspect(cluster.endpoints, paced)
        _, scan_seconds, _ = scan_facts(doc)
        rows.append(
            Row(bench, "wall time at the default pace (keys_per_second 20000)",
                f"{run.seconds:.2f} s", f"{theirs:.2f} s", ratio(run.seconds, theirs),
                f"paced on purpose: {keys / scan_seconds:,.0f} keys/s")
        )  # fmt: skip
    return rows


def memory_point(cluster, workdir: Path, keys: int, reps: int = 3) -> tuple[Row, Row]:
    """inspect over the whole keyspace: its peak memory; and the scan alone (the median of
    `reps` runs), one point of the tree layout's scaling."""
    run, doc = run_inspect(cluster.endpoints, bigvalue_config(workdir, paced=False))
    scanned, scan_seconds = scan_alone(cluster.endpoints, reps)
    log(f"{scanned} keys: scan alone {scan_seconds:.2f}s; inspect {run.seconds:.1f}s, "
        f"RSS {mib(run.max_rss_bytes)}")  # fmt: skip
    return (
        Row("2. inspect peak memory", f"max RSS at {scan_facts(doc)[0]} keys",
            mib(run.max_rss_bytes), "", "", f"target < 150 MiB, flat; inspect took "
            f"{run.seconds:.1f} s"),
        Row("1d. scan time vs key count", f"tree layout, {scanned:,} keys (median of {reps})",
            f"{scan_seconds:.2f} s", "", "", f"{scanned / scan_seconds:,.0f} keys/s"),
    )  # fmt: skip


def flat_point(cluster, reps: int = 3) -> list[Row]:
    """The scan alone and etcdctl over /flat/, every key in one directory, `reps` times each
    (medians): one point of the flat layout's scaling."""
    scanned, scan_seconds = scan_alone(cluster.endpoints, reps, prefixes=["/flat/"])
    endpoint = cluster.endpoints[0]  # any member: etcdctl reads serializably from a follower too
    etcdctl = etcdctl_binary(cluster.binary)
    peer = statistics.median(run_etcdctl(etcdctl, endpoint, "/flat/").seconds
                             for _ in range(reps))  # fmt: skip
    log(f"flat: {scanned} keys scanned in {scan_seconds:.2f}s (etcdctl {peer:.2f}s)")
    return [
        Row("1d. scan time vs key count",
            f"flat layout (/flat/kNNNNNNNNN), {scanned:,} keys (median of {reps})",
            f"{scan_seconds:.2f} s", f"{peer:.2f} s", ratio(scan_seconds, peer),
            f"{scanned / scan_seconds:,.0f} keys/s; peer: etcdctl get /flat/ --prefix"),
    ]  # fmt: skip


def flat_scaling(cluster, points: tuple[int, ...]) -> list[Row]:
    """Load /flat/ keys up to each point and scan them (prefixes: [/flat/])."""
    rows, have = [], 0
    for point in points:
        load = asyncio.run(load_keys(cluster.endpoints, have, point, key=flat_key))
        log(f"flat: loaded keys {have}..{point} at {load.keys_per_second:,.0f} keys/s")
        have = point
        rows += flat_point(cluster)
    return rows


def page_size_sweep(cluster, workdir: Path, sizes: tuple[int, ...], reps: int = 3) -> list[Row]:
    """The scan alone with each page_size (median of `reps`), and one whole inspect with it:
    wall time and peak RSS."""
    rows = []
    for size in sizes:
        keys, scan = scan_alone(cluster.endpoints, reps, page_size=size)
        run, _ = run_inspect(cluster.endpoints, bigvalue_config(workdir, paced=False,
                                                                page_size=size))  # fmt: skip
        log(f"page_size {size}: scan alone {scan:.2f}s; inspect {run.seconds:.2f}s, "
            f"RSS {mib(run.max_rss_bytes)}")  # fmt: skip
        rows.append(
            Row("1c. page size", f"page_size {size}, {keys:,} keys (median of {reps})",
                f"{scan:.2f} s", "", "",
                f"{keys / scan:,.0f} keys/s; whole inspect {run.seconds:.2f} s, peak RSS "
                f"{mib(run.max_rss_bytes)}")
        )  # fmt: skip
    return rows


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--keys", type=int, default=100_000)
    parser.add_argument("--reps", type=int, default=3)
    parser.add_argument("--flat", action="store_true", help="also the one-directory layout")
    parser.add_argument(
        "--scaling",
        action="store_true",
        help="scan time at 100k, 500k and 1M keys, tree and flat layouts",
    )
    parser.add_argument(
        "--page-sizes",
        default="",
        help="comma-separated page_size values to compare, e.g. 1000,2000,5000",
    )
    args = parser.parse_args()  # fmt: skip
    with tempfile.TemporaryDirectory(prefix="bench-scan-") as tmp:
        workdir = Path(tmp)
        cluster = start_bench_cluster(workdir / "etcd", binary=os.environ.get("ETCD_BIN"))
        try:
            if args.scaling:
                rows, have = [], 0
                for point in (100_000, 500_000, 1_000_000):
                    asyncio.run(load_keys(cluster.endpoints, have, point))
                    have = point
                    rows.append(memory_point(cluster, workdir, point)[1])
                rows += flat_scaling(cluster, (100_000, 500_000, 1_000_000))
            else:
                load = asyncio.run(load_keys(cluster.endpoints, 0, args.keys))
                log(f"loaded {args.keys} keys at {load.keys_per_second:,.0f} keys/s")
                rows = compare_with_etcdctl(cluster, workdir, args.reps, label="tree layout")
                rows += memory_point(cluster, workdir, args.keys)
                if args.page_sizes:
                    sizes = tuple(int(x) for x in args.page_sizes.split(","))
                    rows += page_size_sweep(cluster, workdir, sizes)
                if args.flat:
                    rows += flat_scaling(cluster, (args.keys,))
        finally:
            cluster.stop()
    print(markdown(rows))


if __name__ == "__main__":
    main()
