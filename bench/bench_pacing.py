"""Benchmark 6: the adaptive pace, on an idle and on a busy cluster, in one run.

Idle: the default `inspect` (no config file, every probe: status, HashKV on every member then
the scan, quota, certs) against `etcdctl get "" --prefix` on the same keyspace, interleaved,
median of `reps`; inspect's peak RSS; the rate its scan ran at; and `inspect --probes
status,bigvalue` (the scan without HashKV); the CPU seconds each command and the members spent
(on a machine whose cores the members share, CPU seconds / cores bounds inspect's wall time).

Busy: a steady writer (1,000 single Puts/s from 4 clients, open loop, bench/common.py
steady_puts) for `seconds`: with nothing else, while an exporter scans with the defaults back to
back (only bigvalue enabled), and while etcdctl reads the whole keyspace back to back. Put
p50/p99 of each; the rate the scan settled at (its etcd_inspector_scan_keys gauge over the
window).

Standalone: .venv/bin/python bench/bench_pacing.py --keys 500000 [--only idle|busy]
"""

from __future__ import annotations

import argparse
import asyncio
import json
import os
import resource
import statistics
import subprocess
import tempfile
import time
from pathlib import Path

from bench_scan import run_etcdctl, scan_facts
from common import (
    INSPECTOR,
    Exporter,
    Latencies,
    Row,
    etcdctl_binary,
    load_keys,
    log,
    markdown,
    mib,
    precompile,
    ratio,
    run_child,
    sample_value,
    start_bench_cluster,
    steady_puts,
)

BENCH = "7. adaptive pace"


def inspect_default(endpoints: list[str], *extra: str) -> tuple[float, int, dict]:
    run = run_child(
        [INSPECTOR, "inspect", "--etcd.endpoints", ",".join(endpoints), "--output", "json",
         "--no-progress", *extra],
    )  # fmt: skip
    if run.returncode not in (0, 1):
        raise SystemExit(f"inspect failed ({run.returncode}): {run.stderr.decode()[-2000:]}")
    return run.seconds, run.max_rss_bytes, json.loads(run.stdout)


def cpu_seconds(cluster) -> tuple[float, list[float]]:
    """CPU seconds so far: this process's children (the command just run) and each member."""
    children = resource.getrusage(resource.RUSAGE_CHILDREN)
    members = []
    for m in cluster.members:
        with open(f"/proc/{m.process.pid}/stat") as f:
            fields = f.read().rsplit(")", 1)[1].split()
        members.append((int(fields[11]) + int(fields[12])) / os.sysconf("SC_CLK_TCK"))
    return children.ru_utime + children.ru_stime, members


def cpu_used(cluster, before: tuple[float, list[float]]) -> tuple[float, list[float]]:
    own, members = cpu_seconds(cluster)
    return own - before[0], [b - a for a, b in zip(before[1], members, strict=True)]


def cpu_text(own: float, members: list[float]) -> str:
    each = " / ".join(f"{m:.2f}" for m in members)
    return f"{own + sum(members):.2f} s (ours {own:.2f} + members {each})"


def idle(cluster, reps: int) -> list[Row]:
    etcdctl = etcdctl_binary(cluster.binary)
    ours, rss, peer, scan_only, rates = [], [], [], [], []
    ours_cpu, peer_cpu = [], []
    keys = 0
    for _ in range(reps):
        before = cpu_seconds(cluster)
        seconds, peak, doc = inspect_default(cluster.endpoints)
        ours_cpu.append(cpu_used(cluster, before))
        keys, scan_seconds, endpoint = scan_facts(doc)
        ours.append(seconds)
        rss.append(peak)
        rates.append(keys / scan_seconds)
        before = cpu_seconds(cluster)
        peer.append(run_etcdctl(etcdctl, endpoint).seconds)
        peer_cpu.append(cpu_used(cluster, before))
        scan_only.append(inspect_default(cluster.endpoints, "--probes", "status,bigvalue")[0])
    o, p, s = (statistics.median(x) for x in (ours, peer, scan_only))
    log(f"idle: inspect {o:.2f}s (scan only {s:.2f}s), etcdctl {p:.2f}s, RSS {mib(max(rss))}")
    oc = statistics.median(own + sum(m) for own, m in ours_cpu)
    pc = statistics.median(own + sum(m) for own, m in peer_cpu)
    cores = os.cpu_count() or 1
    log(f"idle: CPU inspect {oc:.2f}s, etcdctl {pc:.2f}s on {cores} cores")
    mid_o = sorted(ours_cpu, key=lambda x: x[0] + sum(x[1]))[len(ours_cpu) // 2]
    mid_p = sorted(peer_cpu, key=lambda x: x[0] + sum(x[1]))[len(peer_cpu) // 2]
    cpu_rows = [
        Row(BENCH, "idle: CPU seconds of one default inspect vs etcdctl (ours + members)",
            cpu_text(*mid_o), cpu_text(*mid_p), ratio(oc, pc),
            "median of the runs above; getrusage of the command, /proc of each etcd"),
        Row(BENCH, f"idle: the least wall time {cores} cores allow (CPU seconds / {cores})",
            f"{oc / cores:.2f} s", f"{p:.2f} s", ratio(oc / cores, p),
            "peer: etcdctl's measured wall time; inspect cannot beat this ratio here"),
    ]  # fmt: skip
    return [
        Row(BENCH, f"idle: default inspect, {keys:,} keys (median of {reps})", f"{o:.2f} s",
            f"{p:.2f} s", ratio(o, p), "target <= 1.2x; peer: etcdctl get \"\" --prefix, same "
            "member; runs: " + ", ".join(f"{x:.2f}" for x in ours) + " vs "
            + ", ".join(f"{x:.2f}" for x in peer)),
        Row(BENCH, "idle: inspect --probes status,bigvalue (no HashKV)", f"{s:.2f} s",
            f"{p:.2f} s", ratio(s, p), "the scan without consistency's HashKV of every member"),
        Row(BENCH, "idle: the rate the scan settled at", f"{statistics.median(rates):,.0f} keys/s",
            "", "", "keys / the scan's own duration inside the default inspect"),
        Row(BENCH, "idle: inspect peak RSS", mib(max(rss)), "", "", "target < 150 MB"),
        *cpu_rows,
    ]  # fmt: skip


def _puts(endpoint: str, seconds: float) -> Latencies:
    return asyncio.run(steady_puts(endpoint, seconds))


def busy(cluster, workdir: Path, seconds: float) -> list[Row]:
    endpoint = cluster.endpoints[0]
    results = {"no scan": _puts(endpoint, seconds)}
    probes = {
        "bigvalue": {"interval": "1s", "timeout": "10m"},
        **{name: {"enabled": False} for name in ("consistency", "quota", "hotkeys", "certs")},
    }
    with Exporter(cluster.endpoints, probes, workdir) as exp:
        deadline = time.monotonic() + 30
        while not (sample_value(exp.scrape()[1], "etcd_inspector_scan_keys") or 0):
            if time.monotonic() > deadline:
                raise SystemExit("the exporter's scan did not start")
            time.sleep(0.1)
        before = sample_value(exp.scrape()[1], "etcd_inspector_scan_keys") or 0.0
        t0 = time.monotonic()
        results["default scan"] = _puts(endpoint, seconds)
        after = sample_value(exp.scrape()[1], "etcd_inspector_scan_keys") or 0.0
        settled = (after - before) / (time.monotonic() - t0)
    etcdctl = etcdctl_binary(cluster.binary)
    loop = subprocess.Popen(
        ["bash", "-c", f"while true; do {etcdctl} --endpoints {cluster.endpoints[1]} "
         "--command-timeout=120s get '' --prefix > /dev/null; done"],
        start_new_session=True,
    )  # fmt: skip
    try:
        time.sleep(0.5)
        results["etcdctl reading"] = _puts(endpoint, seconds)
    finally:
        os.killpg(loop.pid, 15)
        loop.wait(timeout=10)
    base = results["no scan"]
    rows = [
        Row(BENCH, f"busy: put p50 / p99, {label}",
            f"{lat.pct(0.5) * 1000:.2f} / {lat.pct(0.99) * 1000:.2f} ms",
            f"{base.pct(0.5) * 1000:.2f} / {base.pct(0.99) * 1000:.2f} ms",
            ratio(lat.pct(0.99), base.pct(0.99)),
            f"p99 ratio vs no scan; {lat.count} puts in {lat.wall:.1f} s")
        for label, lat in results.items()
    ]  # fmt: skip
    for label, lat in results.items():
        log(f"busy, {label}: p50 {lat.pct(0.5) * 1000:.2f} ms, p99 {lat.pct(0.99) * 1000:.2f} ms")
    scan, peer = results["default scan"], results["etcdctl reading"]
    rows.append(
        Row(BENCH, "busy: put p99, default scan vs etcdctl reading",
            f"{scan.pct(0.99) * 1000:.2f} ms", f"{peer.pct(0.99) * 1000:.2f} ms",
            ratio(scan.pct(0.99), peer.pct(0.99)), "target < 1 (and <= 1.3x no scan)")
    )  # fmt: skip
    rows.append(
        Row(BENCH, "busy: the rate the scan settled at", f"{settled:,.0f} keys/s", "", "",
            "etcd_inspector_scan_keys over the writer's window")
    )  # fmt: skip
    log(f"busy: the scan settled at {settled:,.0f} keys/s")
    return rows


def run(
    cluster, workdir: Path, reps: int = 3, seconds: float = 10.0, only: str | None = None
) -> list[Row]:
    rows = idle(cluster, reps) if only in (None, "idle") else []
    return rows + (busy(cluster, workdir, seconds) if only in (None, "busy") else [])


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--keys", type=int, default=500_000)
    parser.add_argument("--reps", type=int, default=3)
    parser.add_argument("--seconds", type=float, default=10.0)
    parser.add_argument(
        "--only", choices=("idle", "busy"), help="run one half (default: both, as recorded)"
    )
    args = parser.parse_args()
    precompile()
    load_before = os.getloadavg()
    with tempfile.TemporaryDirectory(prefix="bench-pacing-") as tmp:
        workdir = Path(tmp)
        cluster = start_bench_cluster(workdir / "etcd", binary=os.environ.get("ETCD_BIN"))
        try:
            load = asyncio.run(load_keys(cluster.endpoints, 0, args.keys))
            log(f"loaded {args.keys} keys at {load.keys_per_second:,.0f} keys/s")
            rows = run(cluster, workdir, args.reps, args.seconds, args.only)
        finally:
            cluster.stop()
    print(f"load average (1/5/15 min): {'/'.join(f'{x:.1f}' for x in load_before)} before, "
          f"{'/'.join(f'{x:.1f}' for x in os.getloadavg())} after\n")  # fmt: skip
    print(markdown(rows))


if __name__ == "__main__":
    main()
