"""Run every benchmark on one real 3-member cluster and print a markdown report (`make bench`).

  .venv/bin/python bench/run_all.py              500k keys of ~100 B (and a 1M memory point)
  .venv/bin/python bench/run_all.py --quick      20k keys, short windows: a smoke run
  .venv/bin/python bench/run_all.py --keys 200000 --no-1m

Order: load 100k keys, inspect's memory and scan time there; load up to --keys; inspect vs
etcdctl (1, 2); page sizes (1c); bare paged readers vs etcdctl (1b); scrape latency and
exporter memory (4, 2); write latency under a scan (5); hot-key watch throughput (3); load up
to 1M for one more memory and scan-time point (2, 1d); last, 100k, 500k and 1M keys in one
flat directory next to them, scanned alone (1d). Progress goes to stderr, the report to stdout.
Keys are laid out like Kubernetes objects (1000 per directory), except the flat ones.
"""

from __future__ import annotations

import argparse
import asyncio
import importlib.metadata
import os
import subprocess
import sys
import tempfile
import time
from pathlib import Path

import bench_hotkeys
import bench_pacing
import bench_paging
import bench_scan
import bench_scrape
import bench_scrape_path
import bench_write_cost
from common import (
    KEYS_PER_DIRECTORY,
    Row,
    etcdctl_binary,
    load_keys,
    log,
    machine,
    markdown,
    precompile,
    start_bench_cluster,
)


def _version(dist: str) -> str:
    try:
        return importlib.metadata.version(dist)
    except importlib.metadata.PackageNotFoundError:
        return "not installed"


def _etcdctl_version(binary: str) -> str:
    out = subprocess.run([binary, "version"], capture_output=True, text=True, timeout=10).stdout
    return out.splitlines()[0].split(":", 1)[-1].strip() if out else "unknown"


def load_to(cluster, have: int, want: int, rows: list[Row]) -> int:
    if want <= have:
        return have
    result = asyncio.run(load_keys(cluster.endpoints, have, want))
    log(f"loaded keys {have}..{want} at {result.keys_per_second:,.0f} keys/s")
    rows.append(
        Row("0. loader", f"keys {have:,}..{want:,} (Txns of 128 puts, 8 streams)",
            f"{result.keys_per_second:,.0f} keys/s", "", "",
            f"{result.keys:,} keys in {result.seconds:.1f} s")
    )  # fmt: skip
    return want


def main() -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--keys", type=int, default=500_000)
    parser.add_argument("--quick", action="store_true", help="20k keys, short windows")
    parser.add_argument("--no-1m", dest="one_million", action="store_false",
                        help="skip the 1M-key memory point")  # fmt: skip
    parser.add_argument(
        "--reps", type=int, default=3, help="inspect/etcdctl runs to take the median of"
    )
    args = parser.parse_args()
    precompile()
    if args.quick:
        args.keys, args.reps, args.one_million = 20_000, 2, False
    first_point = min(100_000, args.keys // 4 if args.quick else 100_000)
    windows = {"write": 3.0, "hot": 5.0, "scrapes": 20} if args.quick else {
        "write": 10.0, "hot": 20.0, "scrapes": 50}  # fmt: skip

    started = time.time()
    # The machine may be shared: say how busy it was, the figures depend on it.
    load_before = os.getloadavg()
    rows: list[Row] = []
    with tempfile.TemporaryDirectory(prefix="etcd-inspector-bench-") as tmp:
        workdir = Path(tmp)
        cluster = start_bench_cluster(workdir / "etcd", binary=os.environ.get("ETCD_BIN"))
        try:
            log(f"cluster up: etcd {cluster.version} at {', '.join(cluster.endpoints)}")
            have = load_to(cluster, 0, first_point, rows)
            memory = list(bench_scan.memory_point(cluster, workdir, have))
            have = load_to(cluster, have, args.keys, rows)
            rows += bench_scan.compare_with_etcdctl(
                cluster, workdir, args.reps, label=f"{have:,} keys"
            )
            memory += bench_scan.memory_point(cluster, workdir, have)
            rows += bench_scan.page_size_sweep(cluster, workdir, (1000, 2000, 5000))
            rows += bench_paging.run(cluster)
            rows += bench_scrape.run(cluster, workdir, windows["scrapes"])
            rows += bench_scrape_path.run(cluster, workdir, args.quick)
            rows += bench_write_cost.run(cluster, workdir, windows["write"])
            rows += bench_pacing.run(cluster, workdir, args.reps, windows["write"])
            rows += bench_hotkeys.run(cluster, windows["hot"])
            if args.one_million and have < 1_000_000:
                have = load_to(cluster, have, 1_000_000, rows)
                memory += bench_scan.memory_point(cluster, workdir, have)
            rows += memory
            flat_points = (100_000, 500_000, 1_000_000) if args.one_million else (
                first_point, args.keys)  # fmt: skip
            rows += bench_scan.flat_scaling(cluster, flat_points)
            etcdctl_version = _etcdctl_version(etcdctl_binary(cluster.binary))
            etcd_version = cluster.version
        finally:
            cluster.stop()
    order = {name: i for i, name in enumerate(sorted({r.benchmark for r in rows}))}
    rows.sort(key=lambda r: order[r.benchmark])  # stable: each benchmark's rows keep their order
    m = machine()
    print(f"## Results ({'quick' if args.quick else 'full'} run)\n")
    print(f"- date: {time.strftime('%Y-%m-%d %H:%M UTC', time.gmtime(started))}, "
          f"took {(time.time() - started) / 60:.1f} min")  # fmt: skip
    print(f"- machine: {m['cpu']}, {m['memory']}, {m['os']}")
    load_after = os.getloadavg()
    print(f"- load average (1/5/15 min): {'/'.join(f'{x:.1f}' for x in load_before)} before, "
          f"{'/'.join(f'{x:.1f}' for x in load_after)} after")  # fmt: skip
    print(f"- etcd {etcd_version} (3 members on 127.0.0.1), etcdctl {etcdctl_version}, "
          f"Python {m['python']}, etcd-inspector {_version('etcd-inspector')}, "
          f"grpcio {_version('grpcio')}, aetcd {_version('aetcd')}")  # fmt: skip
    print(f"- keyspace: {args.keys:,} keys, 100-byte values, {KEYS_PER_DIRECTORY} keys per "
          "directory (/bench/nsNNNNN/objNNNNNN)")  # fmt: skip
    print(f"- command: {' '.join([Path(sys.executable).name, *sys.argv])}\n")
    print("Ratios are etcd-inspector / peer: below 1 is better for times and memory, above 1 "
          "for rates.\n")  # fmt: skip
    print(markdown(rows))
    return 0


if __name__ == "__main__":
    sys.exit(main())
