"""Benchmarks 1 and 2: `inspect` against `etcdctl get "" --prefix` on the same keyspace, and the
peak memory of `inspect` as the key count grows.

Both read every key with its value from the same member (the one inspect's scan chose, a
follower), etcdctl in one Range, inspect in directory-bounded pages; etcdctl writes to
/dev/null. inspect's wall time is the whole command: start-up, status, consistency (HashKV on
every member), quota and the scan. Peak RSS is the child's own ru_maxrss (wait4).

Standalone: .venv/bin/python bench/bench_scan.py --keys 100000
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

UNPACED = {"bigvalue": {"keys_per_second": 0}}


def write_config(workdir: Path, name: str, text: str) -> Path:
    path = workdir / name
    path.write_text(text)
    return path


def bigvalue_config(workdir: Path, *, paced: bool, prefixes: tuple[str, ...] = ()) -> Path:
    lines = ["inspection:", "  probes:", "    bigvalue:", "      timeout: 15m"]
    if not paced:
        lines.append("      keys_per_second: 0")
    if prefixes:
        lines.append(f"      prefixes: [{', '.join(json.dumps(p) for p in prefixes)}]")
    name = f"inspect-{'paced' if paced else 'unpaced'}{'-prefixed' if prefixes else ''}.yml"
    return write_config(workdir, name, "\n".join(lines) + "\n")


def run_inspect(endpoints: list[str], config: Path) -> tuple[ChildRun, dict]:
    run = run_child(
        [INSPECTOR, "inspect", "--config.file", str(config), "--etcd.endpoints",
         ",".join(endpoints), "--output", "json", "--no-progress"],
    )  # fmt: skip
    if run.returncode not in (0, 1):
        raise SystemExit(f"inspect failed ({run.returncode}): {run.stderr.decode()[-2000:]}")
    return run, json.loads(run.stdout)


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
        Row(bench, "keys/s (scan probe alone)", f"{keys / ours_scan:,.0f}",
            f"{keys / theirs:,.0f}", ratio(keys / ours_scan, keys / theirs),
            "bigvalue's own duration"),
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


def memory_point(cluster, workdir: Path, keys: int) -> tuple[Row, int]:
    run, doc = run_inspect(cluster.endpoints, bigvalue_config(workdir, paced=False))
    scanned, _, _ = scan_facts(doc)
    log(f"memory at {scanned} keys: {mib(run.max_rss_bytes)} in {run.seconds:.1f}s")
    return (
        Row("2. inspect peak memory", f"max RSS at {scanned} keys", mib(run.max_rss_bytes),
            "", "", f"target < 150 MiB, flat; inspect took {run.seconds:.1f} s"),
        run.max_rss_bytes,
    )  # fmt: skip


def flat_worst_case(cluster, workdir: Path, keys: int) -> list[Row]:
    """The same read when every key sits in one directory (see BENCHMARKS.md)."""
    load = asyncio.run(load_keys(cluster.endpoints, 0, keys, key=flat_key))
    log(f"flat: loaded {keys} keys at {load.keys_per_second:,.0f} keys/s")
    return compare_with_etcdctl(
        cluster, workdir, 1, label="flat layout (one directory)", prefix="/flat/", paced_run=False
    )


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--keys", type=int, default=100_000)
    parser.add_argument("--reps", type=int, default=3)
    parser.add_argument("--flat", action="store_true", help="also the one-directory worst case")
    args = parser.parse_args()
    with tempfile.TemporaryDirectory(prefix="bench-scan-") as tmp:
        workdir = Path(tmp)
        cluster = start_bench_cluster(workdir / "etcd", binary=os.environ.get("ETCD_BIN"))
        try:
            load = asyncio.run(load_keys(cluster.endpoints, 0, args.keys))
            log(f"loaded {args.keys} keys at {load.keys_per_second:,.0f} keys/s")
            rows = compare_with_etcdctl(cluster, workdir, args.reps, label="tree layout")
            rows.append(memory_point(cluster, workdir, args.keys)[0])
            if args.flat:
                rows += flat_worst_case(cluster, workdir, args.keys)
        finally:
            cluster.stop()
    print(markdown(rows))


if __name__ == "__main__":
    main()
