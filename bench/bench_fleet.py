"""Benchmark 8: one exporter watching a fleet of single-member clusters, what each cluster costs.

For each fleet size N (1, 10, 30, 60, 100 by default), ONE `etcd-inspector run` watches N
single-member etcd clusters (each seeded with 10k keys, and one put per second each from a
writer process) at the default probe intervals, every probe that is on by default left on:

- warm-up: until every (cluster, probe) pair has run once (`etcd_inspector_probe_success`
  present) and every member is up;
- a steady window with a Prometheus-like scrape every 15 s (OpenMetrics + gzip, a 10 s budget):
  the exporter's CPU share (utime+stime from /proc/<pid>/stat over the window), VmRSS and VmHWM,
  open fds, established TCP connections to the members' gRPC and metrics ports, threads, and
  asyncio tasks (bench/fleet_exporter.py answers SIGUSR1 with its task count);
- a latency phase: scrapes alternating with the raw concurrent fetch of all N members' /metrics
  (the peer: what the exporter has to do at least), p50/p99 and the ratio;
- at 60 clusters (`--frozen-at`), the same with one member frozen (SIGSTOP): the scrape's p99
  against the unfrozen p99 and the member deadline ("auto": at least 1 s).

Clusters are started once and reused as N grows (only the exporter and the writer restart per
size); everything is stopped and the data dirs removed at the end, on failure or Ctrl-C too.

Standalone: .venv/bin/python bench/bench_fleet.py [--sizes 1,10,30,60,100] [--quick]
            [--window 90] [--latency-scrapes 40] [--profile DIR]
The Row table goes to stdout, then the curve per cluster count; progress to stderr.
"""

from __future__ import annotations

import argparse
import asyncio
import contextlib
import json
import os
import signal
import statistics
import subprocess
import sys
import tempfile
import time
import urllib.request
from collections.abc import Iterator, Sequence
from dataclasses import dataclass, field
from pathlib import Path

import aiohttp
from aetcd import rpc

from common import (
    MEMBER_HEADERS,
    SCRAPE_HEADERS,
    Row,
    channel,
    load_keys,
    log,
    machine,
    markdown,
    mib,
    percentile,
    proc_status_bytes,
    ratio,
    terminate,
    wait_ready,
)

BENCH = "8. fleet"
HERE = Path(__file__).resolve().parent
WRAPPER = HERE / "fleet_exporter.py"
SEED_KEYS = 10_000
SCRAPE_INTERVAL = 15.0
# etcd's defaults (localcluster's own are faster, for elections in tests): 100 idle members
# ticking every 50 ms would take a share of the two cores for nothing the exporter does.
ETCD_ARGS = ("--heartbeat-interval", "100", "--election-timeout", "1000")


# --------------------------------------------------------------------------- the fleet


@dataclass
class Fleet:
    """Single-member clusters under one directory, started in batches, reused as N grows."""

    base: Path
    binary: str | None
    clusters: list = field(default_factory=list)  # LocalCluster

    def grow(self, n: int, batch: int = 10) -> None:
        from etcd_inspector.demo.localcluster import build_cluster

        while len(self.clusters) < n:
            new = []
            for _ in range(min(batch, n - len(self.clusters))):
                i = len(self.clusters) + 1
                c = build_cluster(
                    1, base_dir=self.base / f"c{i:03d}", binary=self.binary, extra_args=ETCD_ARGS
                )
                self.clusters.append(c)  # before start: stop() reaches it whatever happens
                new.append(c)
                for m in c.members:
                    m.start()
            for c in new:
                c.wait_healthy()
            asyncio.run(seed([c.endpoints[0] for c in new]))
            log(f"fleet: {len(self.clusters)} clusters up and seeded")

    def stop(self) -> None:
        for c in self.clusters:
            with contextlib.suppress(Exception):
                c.stop()

    def name(self, i: int) -> str:
        return f"fleet-{i + 1:03d}"

    def members(self, n: int) -> list:
        return [c.members[0] for c in self.clusters[:n]]


async def seed(endpoints: Sequence[str]) -> None:
    """SEED_KEYS keys (Txns of 128 puts) in each cluster, four clusters at a time."""
    gate = asyncio.Semaphore(4)

    async def one(ep: str) -> None:
        async with gate:
            await load_keys([ep], 0, SEED_KEYS, streams=2)

    await asyncio.gather(*(one(ep) for ep in endpoints))


def config_yaml(fleet: Fleet, n: int, port: int, disabled: Sequence[str] = ()) -> str:
    lines = ["log: {level: warn}", f"web: {{listen_address: '127.0.0.1:{port}'}}"]
    if disabled:
        lines += ["inspection:", "  probes:"] + [f"    {p}: {{enabled: false}}" for p in disabled]
    lines.append("clusters:")
    for i, m in enumerate(fleet.members(n)):
        lines += [f"  - name: {fleet.name(i)}", "    endpoints:",
                  f"      - {{url: '{m.client_url}', metrics_url: '{m.metrics_url}'}}"]  # fmt: skip
    return "\n".join(lines) + "\n"


# --------------------------------------------------------------------------- writer


async def write_loop(endpoints: Sequence[str]) -> None:
    """One put per second per cluster, spread over the second, until killed; errors (a frozen
    member) are counted, never waited for beyond 2 s."""
    channels = [channel(ep) for ep in endpoints]
    stubs = [rpc.KVStub(c) for c in channels]
    value = b"w" * 100
    pending: set[asyncio.Task[None]] = set()
    errors = 0

    async def put(i: int, n: int) -> None:
        nonlocal errors
        try:
            await stubs[i].Put(
                rpc.PutRequest(key=b"/fleet-writes/%03d" % (n % 100), value=value), timeout=2
            )
        except Exception:
            errors += 1

    started = time.monotonic()
    step = 1.0 / len(stubs)
    n = 0
    while True:
        for i in range(len(stubs)):
            due = started + n + i * step
            delay = due - time.monotonic()
            if delay > 0:
                await asyncio.sleep(delay)
            task = asyncio.create_task(put(i, n))
            pending.add(task)
            task.add_done_callback(pending.discard)
        n += 1


class Writer:
    def __init__(self, endpoints: Sequence[str]) -> None:
        self.proc = subprocess.Popen(
            [sys.executable, __file__, "--writer", ",".join(endpoints)],
            stdin=subprocess.DEVNULL,
        )

    def stop(self) -> None:
        self.proc.terminate()
        try:
            self.proc.wait(timeout=10)
        except subprocess.TimeoutExpired:
            self.proc.kill()
            self.proc.wait()


# --------------------------------------------------------------------------- the exporter


class FleetExporter:
    """`etcd-inspector run` (through bench/fleet_exporter.py) on a free port."""

    def __init__(
        self,
        fleet: Fleet,
        n: int,
        workdir: Path,
        profile: Path | None,
        tracemalloc: bool = False,
        disabled: Sequence[str] = (),
    ) -> None:
        from etcd_inspector.ports import free_ports

        self.port = free_ports(1)[0]
        self.config = workdir / f"fleet-{n}.yml"
        self.config.write_text(config_yaml(fleet, n, self.port, disabled))
        self.log_path = workdir / f"exporter-{n}.log"
        self.tasks_file = workdir / f"tasks-{n}.json"
        self.profile = profile / f"exporter-{n}.prof" if profile else None
        self.tracemalloc = tracemalloc
        self.proc: subprocess.Popen[bytes] | None = None

    @property
    def url(self) -> str:
        return f"http://127.0.0.1:{self.port}"

    @property
    def pid(self) -> int:
        assert self.proc is not None
        return self.proc.pid

    def start(self, timeout: float = 120) -> None:
        env = {**os.environ, "FLEET_TASKS_FILE": str(self.tasks_file)}
        if self.profile:
            env["FLEET_PROFILE"] = str(self.profile)
        if self.tracemalloc:
            env["FLEET_TRACEMALLOC"] = "1"
        with open(self.log_path, "ab") as logf:
            self.proc = subprocess.Popen(
                [sys.executable, str(WRAPPER), "run", "--config.file", str(self.config)],
                stdout=logf, stderr=subprocess.STDOUT, stdin=subprocess.DEVNULL, env=env,
            )  # fmt: skip
        wait_ready(self.proc, self.url, self.log_path, timeout)

    def text(self) -> str:
        with urllib.request.urlopen(self.url + "/metrics", timeout=30) as r:
            body: bytes = r.read()
        return body.decode()

    def tasks(self) -> dict:
        """The exporter's asyncio tasks (count and by name), asked by SIGUSR1."""
        self.tasks_file.unlink(missing_ok=True)
        os.kill(self.pid, signal.SIGUSR1)
        deadline = time.monotonic() + 5
        while time.monotonic() < deadline:
            with contextlib.suppress(OSError, ValueError):
                found: dict = json.loads(self.tasks_file.read_text())
                return found
            time.sleep(0.05)
        return {"tasks": -1, "by_name": {}}

    def stop(self) -> None:
        if self.proc is not None:
            terminate(self.proc, 30)
        self.proc = None


def cpu_seconds(pid: int) -> float:
    with open(f"/proc/{pid}/stat") as f:
        fields = f.read().rsplit(")", 1)[1].split()
    return (int(fields[11]) + int(fields[12])) / os.sysconf("SC_CLK_TCK")


def threads(pid: int) -> int:
    with open(f"/proc/{pid}/status") as f:
        return next(int(ln.split()[1]) for ln in f if ln.startswith("Threads:"))


@dataclass(frozen=True)
class Descriptors:
    fds: int
    grpc: int  # established TCP connections to the members' client (gRPC) ports
    http: int  # ... to their metrics ports
    other_tcp: int  # every other TCP socket (the listener, scrapers' connections)


def descriptors(pid: int, grpc_ports: set[int], http_ports: set[int]) -> Descriptors:
    inodes: set[str] = set()
    fds = 0
    for fd in os.listdir(f"/proc/{pid}/fd"):
        fds += 1
        with contextlib.suppress(OSError):
            target = os.readlink(f"/proc/{pid}/fd/{fd}")
            if target.startswith("socket:["):
                inodes.add(target[8:-1])
    grpc = http = other = 0
    for table in ("tcp", "tcp6"):
        with open(f"/proc/{pid}/net/{table}") as f:
            next(f)
            for line in f:
                cols = line.split()
                if cols[9] not in inodes:
                    continue
                port = int(cols[2].rsplit(":", 1)[1], 16)
                if cols[3] == "01" and port in grpc_ports:
                    grpc += 1
                elif cols[3] == "01" and port in http_ports:
                    http += 1
                else:
                    other += 1
    return Descriptors(fds, grpc, http, other)


# --------------------------------------------------------------------------- one size


@dataclass
class SizeResult:
    n: int
    load: tuple[float, float, float]
    warmup_seconds: float
    window_seconds: float
    cpu_share: float  # of one core, over the steady window
    rss: int
    hwm: int
    fds: Descriptors
    threads: int
    tasks: dict
    body_bytes: int  # the scrape's OpenMetrics body, uncompressed
    body_gzip_bytes: int
    scrape_cpu: float  # the exporter's CPU seconds while a scrape is answered
    steady: list[float]  # the window's scrape times
    ours: list[float]
    raw: list[float]
    disabled: tuple[str, ...] = ()  # probes turned off for a comparison (never in the main run)
    frozen: list[float] = field(default_factory=list)
    frozen_raw: list[float] = field(default_factory=list)

    @property
    def ratio_p50(self) -> float:
        return percentile(self.ours, 0.5) / percentile(self.raw, 0.5)


def probe_pairs(text: str) -> tuple[set[tuple[str, str]], int]:
    """(cluster, probe) pairs that have run, and how many members are up."""
    pairs: set[tuple[str, str]] = set()
    up = 0
    for line in text.splitlines():
        if line.startswith("etcd_inspector_probe_success{"):
            labels = dict(
                kv.split("=", 1) for kv in line[line.index("{") + 1 : line.index("}")].split(",")
            )
            pairs.add((labels["cluster"].strip('"'), labels["probe"].strip('"')))
        elif line.startswith("etcd_inspector_member_up{") and float(line.rsplit(" ", 1)[1]) == 1:
            up += 1
    return pairs, up


def warm_up(exp: FleetExporter, n: int, timeout: float, disabled: Sequence[str] = ()) -> float:
    """Until every cluster has run every probe on by default once, and all members are up."""
    from etcd_inspector.probes import REGISTRY

    probes = {s.name for s in REGISTRY.values() if s.default_enabled and s.name not in disabled}
    started = time.monotonic()
    want = n * len(probes)
    have, up = 0, 0
    while time.monotonic() - started < timeout:
        pairs, up = probe_pairs(exp.text())
        have = len(pairs)
        if have >= want and up >= n:
            return time.monotonic() - started
        time.sleep(2.0)
    log(f"warm-up: {have}/{want} probe runs, {up}/{n} members up after {timeout:.0f} s")
    if up < n:
        # The raw fetch would fail (or time) a dead member: nothing left to compare with.
        down = sorted(
            line[line.index('cluster="') + 9 :].split('"', 1)[0]
            for line in exp.text().splitlines()
            if line.startswith("etcd_inspector_member_up{") and line.endswith(" 0.0")
        )
        raise SystemExit(f"warm-up: members down after {timeout:.0f} s: {', '.join(down)}")
    return time.monotonic() - started


async def get(session: aiohttp.ClientSession, url: str, headers: dict[str, str]) -> int:
    async with session.get(url, headers=headers) as resp:
        await resp.read()
        return resp.status


async def timed_scrape(session: aiohttp.ClientSession, exp: FleetExporter) -> float:
    t0 = time.perf_counter()
    status = await get(session, exp.url + "/metrics", SCRAPE_HEADERS)
    if status != 200:
        raise SystemExit(f"scrape answered {status}")
    return time.perf_counter() - t0


async def timed_raw(session: aiohttp.ClientSession, urls: Sequence[str]) -> float:
    t0 = time.perf_counter()
    statuses = await asyncio.gather(*(get(session, u, MEMBER_HEADERS) for u in urls))
    if any(s != 200 for s in statuses):
        raise SystemExit(f"a member answered {statuses}")
    return time.perf_counter() - t0


async def steady_window(exp: FleetExporter, seconds: float) -> tuple[list[float], float, float]:
    """A scrape every SCRAPE_INTERVAL for `seconds`: scrape times, CPU seconds, wall."""
    times: list[float] = []
    async with aiohttp.ClientSession() as session:
        cpu0, t0 = cpu_seconds(exp.pid), time.monotonic()
        k = 0
        while True:
            due = t0 + k * SCRAPE_INTERVAL
            if due >= t0 + seconds:
                break
            await asyncio.sleep(max(0.0, due - time.monotonic()))
            times.append(await timed_scrape(session, exp))
            k += 1
        await asyncio.sleep(max(0.0, t0 + seconds - time.monotonic()))
        return times, cpu_seconds(exp.pid) - cpu0, time.monotonic() - t0


async def latency(
    exp: FleetExporter, urls: Sequence[str], scrapes: int, keep_first: bool = False
) -> tuple[list[float], list[float], float]:
    """`scrapes` scrapes alternating with the raw concurrent fetch of `urls`, 0.5 s apart (a
    fleet's scrape is not back to back; the probes keep running meanwhile); and the exporter's
    CPU seconds per scrape (its CPU while a scrape is answered: background work included).
    The first scrape warms the connections and is not counted, unless `keep_first` (a member
    just frozen: the first scrape is the one that waits the member's whole deadline)."""
    ours: list[float] = []
    raw: list[float] = []
    cpu = 0.0
    connector = aiohttp.TCPConnector(limit=0)
    async with aiohttp.ClientSession() as s1, aiohttp.ClientSession(connector=connector) as s2:
        first = await timed_scrape(s1, exp)  # warm: connections
        if keep_first:
            ours.append(first)
        await timed_raw(s2, urls)
        for _ in range(scrapes):
            cpu0 = cpu_seconds(exp.pid)
            ours.append(await timed_scrape(s1, exp))
            cpu += cpu_seconds(exp.pid) - cpu0
            await asyncio.sleep(0.25)
            raw.append(await timed_raw(s2, urls))
            await asyncio.sleep(0.25)
    return ours, raw, cpu / scrapes


async def body_sizes(exp: FleetExporter) -> tuple[int, int]:
    async with aiohttp.ClientSession(auto_decompress=False) as session:
        async with session.get(exp.url + "/metrics", headers=SCRAPE_HEADERS) as resp:
            gz = await resp.read()
    import gzip

    return len(gzip.decompress(gz)), len(gz)


def measure(
    fleet: Fleet, n: int, workdir: Path, args: argparse.Namespace, disabled: Sequence[str] = ()
) -> SizeResult:
    load = os.getloadavg()
    members = fleet.members(n)
    urls = [m.metrics_url for m in members]
    writer = Writer([m.client_url for m in members])
    exp = FleetExporter(fleet, n, workdir, args.profile, args.tracemalloc, disabled)
    try:
        exp.start()
        warm = warm_up(exp, n, args.warmup_timeout, disabled)
        log(f"N={n}: warm after {warm:.1f} s; steady window {args.window:.0f} s")
        steady, cpu, wall = asyncio.run(steady_window(exp, args.window))
        rss, hwm = proc_status_bytes(exp.pid, "VmRSS"), proc_status_bytes(exp.pid, "VmHWM")
        grpc_ports = {int(m.client_url.rsplit(":", 1)[1]) for m in members}
        http_ports = {m.metrics_port for m in members}
        fds = descriptors(exp.pid, grpc_ports, http_ports)
        nthreads, tasks = threads(exp.pid), exp.tasks()
        body, body_gz = asyncio.run(body_sizes(exp))
        log(f"N={n}: CPU {cpu / wall:.2%} of a core, RSS {mib(rss)} (peak {mib(hwm)}), "
            f"{fds.fds} fds ({fds.grpc} gRPC, {fds.http} metrics conns), {nthreads} threads, "
            f"{tasks['tasks']} tasks, body {body / 1024:.0f} KiB")  # fmt: skip
        ours, raw, scrape_cpu = asyncio.run(latency(exp, urls, args.latency_scrapes))
        result = SizeResult(n, load, warm, wall, cpu / wall, rss, hwm, fds, nthreads, tasks, body,
                            body_gz, scrape_cpu, steady, ours, raw, tuple(disabled))  # fmt: skip
        log(f"N={n}: scrape p50/p99 {ms(percentile(ours, 0.5))} / {ms(percentile(ours, 0.99))}"
            f" vs raw {ms(percentile(raw, 0.5))} / {ms(percentile(raw, 0.99))}")  # fmt: skip
        if n == args.frozen_at and n > 1 and not disabled:
            frozen = members[n // 2]
            frozen.freeze()
            try:
                others = [u for u in urls if u != frozen.metrics_url]
                result.frozen, result.frozen_raw, _ = asyncio.run(
                    latency(exp, others, args.latency_scrapes, keep_first=True)
                )
            finally:
                frozen.thaw()
            log(f"N={n}, one frozen: scrape p50/p99 {ms(percentile(result.frozen, 0.5))} / "
                f"{ms(percentile(result.frozen, 0.99))}, max {ms(max(result.frozen))}")  # fmt: skip
        return result
    finally:
        exp.stop()
        writer.stop()


# --------------------------------------------------------------------------- report


def ms(x: float) -> str:
    return f"{x * 1000:.1f} ms"


def fit(xs: Sequence[float], ys: Sequence[float]) -> tuple[float, float]:
    """Least squares: (slope, intercept)."""
    if len(xs) < 2:
        return float("nan"), float("nan")
    slope, intercept = statistics.linear_regression(xs, ys)
    return slope, intercept


def rows(results: Sequence[SizeResult]) -> list[Row]:
    from etcd_inspector.etcd.metrics_fetch import AUTO_FLOOR_SECONDS

    out: list[Row] = []
    for r in results:
        p50, p99 = percentile(r.ours, 0.5), percentile(r.ours, 0.99)
        if r.disabled:
            base = next(b for b in results if b.n == r.n and not b.disabled)
            off = ", ".join(r.disabled)
            out += [
                Row(BENCH, f"N={r.n} without {off}: CPU share / per cluster",
                    f"{r.cpu_share:.2%} / {r.cpu_share / r.n:.3%}",
                    f"{base.cpu_share:.2%} / {base.cpu_share / r.n:.3%}",
                    ratio(r.cpu_share, base.cpu_share), f"peer: the same {r.n} with every probe"),
                Row(BENCH, f"N={r.n} without {off}: scrape p50 / p99",
                    f"{ms(p50)} / {ms(p99)}",
                    f"{ms(percentile(r.raw, 0.5))} / {ms(percentile(r.raw, 0.99))}",
                    ratio(p50, percentile(r.raw, 0.5)),
                    f"peer: the raw fetch; CPU per scrape {ms(r.scrape_cpu)}, RSS {mib(r.rss)}"),
            ]  # fmt: skip
            continue
        raw50, raw99 = percentile(r.raw, 0.5), percentile(r.raw, 0.99)
        out += [
            Row(BENCH, f"N={r.n}: scrape p50, {len(r.ours)} scrapes (OpenMetrics, gzip)",
                ms(p50), ms(raw50), ratio(p50, raw50),
                f"peer: the {r.n} members' /metrics fetched concurrently; target (60) 1.3x"),
            Row(BENCH, f"N={r.n}: scrape p99", ms(p99), ms(raw99), ratio(p99, raw99),
                "target (60) < 250 ms"),
            Row(BENCH, f"N={r.n}: exporter CPU per scrape", ms(r.scrape_cpu), "", "",
                f"{ms(r.scrape_cpu / r.n)} per cluster (its CPU while the scrape was answered)"),
            Row(BENCH, f"N={r.n}: CPU share of one core ({r.window_seconds:.0f} s window)",
                f"{r.cpu_share:.2%}", "", "",
                f"{r.cpu_share / r.n:.3%} per cluster; target < 0.5% per cluster"),
            Row(BENCH, f"N={r.n}: RSS (peak)", f"{mib(r.rss)} ({mib(r.hwm)})", "", "",
                f"{mib(r.rss / r.n)} per cluster incl. the base"),
            Row(BENCH, f"N={r.n}: fds / TCP to gRPC / to metrics / threads / tasks",
                f"{r.fds.fds} / {r.fds.grpc} / {r.fds.http} / {r.threads} / {r.tasks['tasks']}",
                "", "", f"scrape body {r.body_bytes / 1024:.0f} KiB "
                f"({r.body_gzip_bytes / 1024:.0f} KiB gzip); load {r.load[0]:.1f} at start"),
        ]  # fmt: skip
        if r.frozen:
            f99 = percentile(r.frozen, 0.99)
            out.append(
                Row(BENCH, f"N={r.n}, one member frozen: scrape p50 / p99 / max",
                    f"{ms(percentile(r.frozen, 0.5))} / {ms(f99)} / {ms(max(r.frozen))}",
                    f"{ms(p99)} (p99 unfrozen)", ratio(f99, p99),
                    f"p99 - unfrozen p99 = {ms(f99 - p99)}; target <= one member deadline "
                    f"(auto: >= {AUTO_FLOOR_SECONDS:.0f} s); raw fetch of the other "
                    f"{r.n - 1}: p99 {ms(percentile(r.frozen_raw, 0.99))}")
            )  # fmt: skip
    results = [r for r in results if not r.disabled]
    if len(results) >= 2:
        ns = [float(r.n) for r in results]
        rss_slope, rss_base = fit(ns, [float(r.rss) for r in results])
        cpu_slope, cpu_base = fit(ns, [r.cpu_share for r in results])
        p50_slope, _ = fit(ns, [percentile(r.ours, 0.5) for r in results])
        out += [
            Row(BENCH, "fit over N: RSS per added cluster", mib(rss_slope), "", "",
                f"base {mib(rss_base)}; target < 2 MB per cluster"),
            Row(BENCH, "fit over N: CPU per added cluster", f"{cpu_slope:.3%}", "", "",
                f"of one core; base {cpu_base:.2%}; target < 0.5%"),
            Row(BENCH, "fit over N: scrape p50 per added cluster", ms(p50_slope), "", "", ""),
        ]  # fmt: skip
    return out


def curve(results: Sequence[SizeResult]) -> str:
    """One line per N, with the increments per added cluster since the previous N."""
    head = ("| clusters | RSS (peak) | +RSS/cluster | CPU (% of a core) | per cluster | "
            "+CPU/cluster | fds | gRPC / metrics conns | threads | tasks | body (gzip) | "
            "scrape p50 / p99 | raw p50 / p99 | p50 ratio | CPU per scrape | load |\n"
            "|---|---|---|---|---|---|---|---|---|---|---|---|---|---|---|---|\n")  # fmt: skip
    lines = []
    prev: SizeResult | None = None
    for r in (r for r in results if not r.disabled):
        if prev is None:
            drss = dcpu = "—"
        else:
            d = r.n - prev.n
            drss = mib((r.rss - prev.rss) / d)
            dcpu = f"{(r.cpu_share - prev.cpu_share) / d:.3%}"
        lines.append(
            f"| {r.n} | {mib(r.rss)} ({mib(r.hwm)}) | {drss} | {r.cpu_share:.2%} | "
            f"{r.cpu_share / r.n:.3%} | {dcpu} | {r.fds.fds} | {r.fds.grpc} / {r.fds.http} | "
            f"{r.threads} | {r.tasks['tasks']} | {r.body_bytes / 1024:.0f} KiB "
            f"({r.body_gzip_bytes / 1024:.0f} KiB) | "
            f"{ms(percentile(r.ours, 0.5))} / {ms(percentile(r.ours, 0.99))} | "
            f"{ms(percentile(r.raw, 0.5))} / {ms(percentile(r.raw, 0.99))} | "
            f"{ratio(percentile(r.ours, 0.5), percentile(r.raw, 0.5))} | {ms(r.scrape_cpu)} | "
            f"{r.load[0]:.1f} |"
        )
        prev = r
    return head + "\n".join(lines) + "\n"


def task_names(results: Sequence[SizeResult]) -> str:
    """The largest task groups at the largest N: what grows with the clusters."""
    r = [r for r in results if not r.disabled][-1]
    top = list(r.tasks.get("by_name", {}).items())[:8]
    out = f"tasks at N={r.n} by name: " + ", ".join(f"{k} x{v}" for k, v in top)
    if "memory_by_file" in r.tasks:
        out += f"\n\ntracemalloc at N={r.n}: " + ", ".join(
            f"{k} {v / 2**20:.1f} MiB" for k, v in r.tasks["memory_by_file"].items()
        )
    return out


# --------------------------------------------------------------------------- main


@contextlib.contextmanager
def terminated_as_interrupt() -> Iterator[None]:
    """SIGTERM unwinds like Ctrl-C, so the `finally`s stop every process."""
    previous = signal.signal(signal.SIGTERM, signal.default_int_handler)
    try:
        yield
    finally:
        signal.signal(signal.SIGTERM, previous)


def run(args: argparse.Namespace) -> tuple[list[Row], list[SizeResult]]:
    results: list[SizeResult] = []
    with tempfile.TemporaryDirectory(prefix="bench-fleet-") as tmp, terminated_as_interrupt():
        workdir = Path(tmp)
        fleet = Fleet(workdir / "etcd", os.environ.get("ETCD_BIN"))
        try:
            for n in args.sizes:
                fleet.grow(n)
                results.append(measure(fleet, n, workdir, args))
                if n == args.frozen_at and args.also_without:
                    results.append(measure(fleet, n, workdir, args, args.also_without))
        finally:
            fleet.stop()
    return rows(results), results


def main() -> int:
    parser = argparse.ArgumentParser(description=(__doc__ or "").splitlines()[0])
    parser.add_argument(
        "--sizes",
        default="1,10,30,60,100",
        help="fleet sizes, comma-separated, ascending (default 1,10,30,60,100)",
    )
    parser.add_argument(
        "--window",
        type=float,
        default=90.0,
        help="steady window per size, seconds (scrapes every 15 s)",
    )
    parser.add_argument("--latency-scrapes", type=int, default=40)
    parser.add_argument("--warmup-timeout", type=float, default=180.0)
    parser.add_argument(
        "--frozen-at",
        type=int,
        default=60,
        help="the size at which one member is frozen for a latency phase",
    )
    parser.add_argument(
        "--quick",
        action="store_true",
        help="sizes 1,10, a 30 s window, 15 latency scrapes, frozen at 10",
    )
    parser.add_argument(
        "--profile",
        type=Path,
        default=None,
        help="a directory: the exporter runs under cProfile, one .prof per size",
    )
    parser.add_argument(
        "--also-without",
        default="",
        help="probes (comma-separated) to turn off in one more exporter at the --frozen-at "
        "size, to measure what they cost (the main run keeps every default probe on)",
    )
    parser.add_argument(
        "--tracemalloc",
        action="store_true",
        help="investigation: the exporter traces its allocations (slower, bigger) and the "
        "report lists the largest holders",
    )
    parser.add_argument("--writer", help=argparse.SUPPRESS)  # the writer process's own mode
    args = parser.parse_args()
    if args.writer:
        # Killed by its parent when a size is done: nothing of its state is worth unwinding.
        signal.signal(signal.SIGTERM, lambda *_: os._exit(0))
        asyncio.run(write_loop(args.writer.split(",")))
        return 0
    if args.quick:
        args.sizes, args.window, args.latency_scrapes, args.frozen_at = "1,10", 30.0, 15, 10
    args.sizes = sorted(int(s) for s in str(args.sizes).split(","))
    args.also_without = [p for p in args.also_without.split(",") if p]
    if args.profile:
        args.profile.mkdir(parents=True, exist_ok=True)
    started = time.time()
    load_before = os.getloadavg()
    table, results = run(args)
    m = machine()
    print(f"## Fleet ({'quick' if args.quick else 'full'} run)\n")
    print(f"- date: {time.strftime('%Y-%m-%d %H:%M UTC', time.gmtime(started))}, "
          f"took {(time.time() - started) / 60:.1f} min")  # fmt: skip
    print(f"- machine: {m['cpu']}, {m['memory']}, {m['os']}, Python {m['python']}")
    print(f"- load average (1/5/15 min) before: {'/'.join(f'{x:.1f}' for x in load_before)}")
    print(f"- command: {' '.join([Path(sys.executable).name, *sys.argv])}\n")
    print(markdown(table))
    print(curve(results))
    if results:
        print(task_names(results))
    return 0


if __name__ == "__main__":
    sys.exit(main())
