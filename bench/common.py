"""What every benchmark shares: a real cluster, a fast loader, a latency writer, RSS readings.

Only benchmarks (and tests) write to etcd; they do it here, with their own grpc.aio channels and
aetcd's generated stubs, never through the exporter's client (which is read-only by design).
"""

from __future__ import annotations

import asyncio
import os
import platform
import resource
import shutil
import statistics
import subprocess
import sys
import threading
import time
import urllib.request
from collections.abc import Sequence
from dataclasses import dataclass
from pathlib import Path

import grpc
from aetcd import rpc

# What Prometheus sends when it scrapes (and what the raw peer fetch of a member sends).
ACCEPT = (
    "application/openmetrics-text;version=1.0.0,application/openmetrics-text;"
    "version=0.0.1;q=0.75,text/plain;version=0.0.4;q=0.5,*/*;q=0.1"
)
SCRAPE_HEADERS = {
    "Accept": ACCEPT,
    "Accept-Encoding": "gzip",
    "X-Prometheus-Scrape-Timeout-Seconds": "10.5",  # a 10 s budget after the 0.5 s offset
}
MEMBER_HEADERS = {"Accept": "text/plain;version=0.0.4", "Accept-Encoding": "gzip"}


def terminate(proc: subprocess.Popen[bytes], timeout: float) -> None:
    """SIGTERM, then SIGKILL after `timeout` seconds: a benchmark leaves no process behind."""
    proc.terminate()
    try:
        proc.wait(timeout=timeout)
    except subprocess.TimeoutExpired:
        proc.kill()
        proc.wait(timeout=10)


def wait_ready(proc: subprocess.Popen[bytes], url: str, log_path: Path, timeout: float) -> None:
    """Until the exporter at `url` answers /-/ready with 200; SystemExit with its log's tail
    when it exits first or is not ready in `timeout` seconds."""
    deadline = time.monotonic() + timeout
    while time.monotonic() < deadline:
        if proc.poll() is not None:
            raise SystemExit(f"exporter exited: {log_path.read_text()[-2000:]}")
        try:
            with urllib.request.urlopen(url + "/-/ready", timeout=2) as r:
                if r.status == 200:
                    return
        except OSError:
            pass
        time.sleep(0.1)
    raise SystemExit("exporter not ready in time")


REPO = Path(__file__).resolve().parents[1]
VENV_BIN = REPO / ".venv" / "bin"
INSPECTOR = str(VENV_BIN / "etcd-inspector")
if not Path(INSPECTOR).exists():  # run outside the repo's venv: use the one on PATH
    INSPECTOR = shutil.which("etcd-inspector") or INSPECTOR



def precompile() -> None:
    """Byte-compile the package as `pip install` of a wheel does: an editable install run with
    PYTHONDONTWRITEBYTECODE=1 (as on these machines) compiles every module at every start,
    ~0.06 s of each `inspect` that an installed etcd-inspector does not pay."""
    import compileall

    compileall.compile_dir(REPO / "exporter" / "etcd_inspector", quiet=1)


# etcd's default --max-txn-ops: the most puts one Txn may carry.
MAX_TXN_OPS = 128
KEYS_PER_DIRECTORY = 1000


def tree_key(i: int) -> bytes:
    """A Kubernetes-like layout: 1000 objects per "namespace" directory."""
    return b"/bench/ns%05d/obj%06d" % (i // KEYS_PER_DIRECTORY, i)


def flat_key(i: int) -> bytes:
    """Every key in one directory, sequential ids: no '/' structure for the pages to follow."""
    return b"/flat/k%09d" % i


LAYOUTS = {"tree": tree_key, "flat": flat_key}


def etcdctl_binary(etcd_binary: str) -> str:
    sibling = Path(etcd_binary).with_name("etcdctl")
    found = str(sibling) if sibling.exists() else shutil.which("etcdctl")
    if not found:
        raise SystemExit("etcdctl not found next to etcd or on PATH")
    return found


def target(url: str) -> str:
    return url.split("://", 1)[-1]


def channel(url: str) -> grpc.aio.Channel:
    return grpc.aio.insecure_channel(
        target(url), options=[("grpc.max_receive_message_length", 64 * 1024 * 1024)]
    )


# --------------------------------------------------------------------------- loading


@dataclass(frozen=True)
class LoadResult:
    keys: int
    seconds: float
    revision: int

    @property
    def keys_per_second(self) -> float:
        return self.keys / self.seconds if self.seconds else 0.0


async def load_keys(
    endpoints: Sequence[str],
    start: int,
    stop: int,
    *,
    value_size: int = 100,
    batch: int = MAX_TXN_OPS,
    streams: int = 8,
    key=tree_key,
) -> LoadResult:
    """Put keys key(start..stop-1) with ~value_size-byte values, `batch` puts per Txn and
    `streams` Txns in flight, spread over every member's channel (followers forward to the
    leader, which batches concurrent proposals into one raft round)."""
    channels = [channel(u) for u in endpoints]
    stubs = [rpc.KVStub(c) for c in channels]
    # Values differ per key (so nothing deduplicates them) but cost nothing to build.
    filler = os.urandom(value_size).hex().encode()[:value_size]
    next_batch = start
    revision = 0
    started = time.monotonic()

    async def worker(i: int) -> None:
        nonlocal next_batch, revision
        kv = stubs[i % len(stubs)]
        while next_batch < stop:
            lo = next_batch
            hi = min(stop, lo + batch)
            next_batch = hi
            ops = [
                rpc.RequestOp(
                    request_put=rpc.PutRequest(key=key(n), value=b"%09d" % n + filler[9:])
                )
                for n in range(lo, hi)
            ]
            resp = await kv.Txn(rpc.TxnRequest(success=ops), timeout=60)
            revision = max(revision, resp.header.revision)

    try:
        await asyncio.gather(*(worker(i) for i in range(streams)))
    finally:
        for c in channels:
            await c.close()
    return LoadResult(stop - start, time.monotonic() - started, revision)


async def cluster_revision(endpoint: str) -> int:
    ch = channel(endpoint)
    try:
        resp = await rpc.MaintenanceStub(ch).Status(rpc.StatusRequest(), timeout=10)
        return resp.header.revision
    finally:
        await ch.close()


# --------------------------------------------------------------------------- write latency


@dataclass(frozen=True)
class Latencies:
    seconds: tuple[float, ...]
    wall: float

    @property
    def count(self) -> int:
        return len(self.seconds)

    def pct(self, p: float) -> float:
        return percentile(self.seconds, p)

    @property
    def rate(self) -> float:
        return self.count / self.wall if self.wall else 0.0


def percentile(values: Sequence[float], p: float) -> float:
    if not values:
        return float("nan")
    if len(values) == 1:
        return values[0]
    return statistics.quantiles(values, n=1000, method="inclusive")[round(p * 1000) - 1]


async def timed_single_puts(
    endpoint: str, duration: float, *, concurrency: int = 4, key_space: int = 1000
) -> Latencies:
    """Single Put requests for `duration` seconds from `concurrency` writers, each latency kept.
    Keys cycle over a small /bench-lat/ range so the keyspace does not grow."""
    ch = channel(endpoint)
    kv = rpc.KVStub(ch)
    out: list[float] = []
    deadline = time.monotonic() + duration
    value = b"v" * 100

    async def writer(w: int) -> None:
        n = w
        while time.monotonic() < deadline:
            t0 = time.perf_counter()
            await kv.Put(
                rpc.PutRequest(key=b"/bench-lat/%06d" % (n % key_space), value=value), timeout=10
            )
            out.append(time.perf_counter() - t0)
            n += concurrency

    started = time.monotonic()
    try:
        await asyncio.gather(*(writer(w) for w in range(concurrency)))
    finally:
        await ch.close()
    return Latencies(tuple(out), time.monotonic() - started)


async def steady_puts(
    endpoint: str,
    duration: float,
    *,
    rate: float = 1000.0,
    clients: int = 4,
    key_space: int = 1000,
) -> Latencies:
    """A steady writer: `clients` writers (a channel each) sending single Puts on a fixed
    schedule, `rate` puts/s in all, for `duration` seconds; each latency kept. Open loop: a put
    is sent when due whether the previous one has answered or not, so a slow cluster shows as
    latency, not as fewer puts."""
    channels = [channel(endpoint) for _ in range(clients)]
    stubs = [rpc.KVStub(c) for c in channels]
    out: list[float] = []
    value = b"v" * 100
    inflight: set[asyncio.Task[None]] = set()

    async def put(n: int) -> None:
        t0 = time.perf_counter()
        await stubs[n % clients].Put(
            rpc.PutRequest(key=b"/bench-lat/%06d" % (n % key_space), value=value), timeout=10
        )
        out.append(time.perf_counter() - t0)

    started = time.perf_counter()
    n = 0
    try:
        while True:
            due = started + n / rate
            if due > started + duration:
                break
            now = time.perf_counter()
            if due > now:
                await asyncio.sleep(due - now)
            task = asyncio.create_task(put(n))
            inflight.add(task)
            task.add_done_callback(inflight.discard)
            n += 1
        await asyncio.gather(*inflight)
    finally:
        for c in channels:
            await c.close()
    return Latencies(tuple(out), time.perf_counter() - started)


# --------------------------------------------------------------------------- processes


@dataclass(frozen=True)
class ChildRun:
    returncode: int
    seconds: float
    max_rss_bytes: int
    stdout: bytes
    stderr: bytes


def run_child(argv: Sequence[str], *, stdout=subprocess.PIPE, timeout: float = 900) -> ChildRun:
    """Run a command and measure its peak RSS from /proc/<pid>/status VmHWM, read every few
    milliseconds until it exits.

    Not wait4's ru_maxrss: Linux carries the high-water mark across exec, and Python spawns
    children with vfork, so ru_maxrss would start at this (large) benchmark process's own peak.
    VmHWM belongs to the exec'd program's memory alone."""
    started = time.monotonic()
    proc = subprocess.Popen(list(argv), stdout=stdout, stderr=subprocess.PIPE)
    chunks: dict[str, bytes] = {"out": b"", "err": b""}

    def drain(name: str, pipe) -> None:
        if pipe is not None:
            chunks[name] = pipe.read()

    # Read the pipes in threads so a large report cannot block the child.
    threads = [
        threading.Thread(target=drain, args=("out", proc.stdout)),
        threading.Thread(target=drain, args=("err", proc.stderr)),
    ]
    for t in threads:
        t.start()
    deadline = started + timeout
    peak = 0
    while proc.poll() is None:
        peak = max(peak, proc_status_bytes(proc.pid, "VmHWM"))
        if time.monotonic() > deadline:
            proc.kill()
            proc.wait()
            break
        time.sleep(0.003)
    seconds = time.monotonic() - started
    for t in threads:
        t.join()
    return ChildRun(proc.returncode, seconds, peak, chunks["out"], chunks["err"])


def proc_status_bytes(pid: int, field: str) -> int:
    """A /proc/<pid>/status memory field (VmRSS, VmHWM) in bytes; 0 when gone."""
    try:
        with open(f"/proc/{pid}/status") as f:
            for line in f:
                if line.startswith(field + ":"):
                    return int(line.split()[1]) * 1024
    except OSError:
        pass
    return 0


def machine() -> dict[str, str]:
    cpu = "unknown"
    try:
        with open("/proc/cpuinfo") as f:
            cpu = next(ln.split(":", 1)[1].strip() for ln in f if ln.startswith("model name"))
    except (OSError, StopIteration):
        pass
    mem = os.sysconf("SC_PAGE_SIZE") * os.sysconf("SC_PHYS_PAGES")
    return {
        "cpu": f"{cpu}, {os.cpu_count()} cores",
        "memory": f"{mem / 2**30:.1f} GiB",
        "os": f"{platform.system()} {platform.release()}",
        "python": platform.python_version(),
    }


def mib(n: float) -> str:
    return f"{n / 2**20:.1f} MiB"


def own_max_rss() -> int:
    return resource.getrusage(resource.RUSAGE_SELF).ru_maxrss * 1024


def log(msg: str) -> None:
    print(f"[bench {time.strftime('%H:%M:%S')}] {msg}", file=sys.stderr, flush=True)


# --------------------------------------------------------------------------- cluster


def start_bench_cluster(base_dir: Path | None = None, binary: str | None = None):
    """A real 3-member cluster on 127.0.0.1 (localcluster), quota raised so 1M keys fit."""
    from etcd_inspector.demo.localcluster import start_cluster

    return start_cluster(3, base_dir=base_dir, binary=binary, quota_backend_bytes=8 * 2**30)


def config_yaml(
    endpoints: Sequence[str], probes: dict[str, dict], listen: str | None = None
) -> str:
    """An etcd-inspector config: one cluster `bench`, the given probe settings."""
    lines = ["log:", "  level: warn", "clusters:", "  - name: bench", "    endpoints:"]
    lines += [f"      - {e}" for e in endpoints]
    if listen:
        lines += ["web:", f"  listen_address: {listen}"]
    lines += ["inspection:", "  probes:"]
    for name, settings in probes.items():
        lines.append(f"    {name}:")
        lines += [f"      {k}: {_yaml_scalar(v)}" for k, v in settings.items()]
    return "\n".join(lines) + "\n"


def _yaml_scalar(v: object) -> str:
    if isinstance(v, bool):
        return "true" if v else "false"
    return str(v)


class Exporter:
    """`etcd-inspector run` as a subprocess on a free port, stopped by its PID."""

    def __init__(self, endpoints: Sequence[str], probes: dict[str, dict], workdir: Path) -> None:
        from etcd_inspector.ports import free_ports

        self.port = free_ports(1)[0]
        workdir.mkdir(parents=True, exist_ok=True)
        self.config = workdir / f"exporter-{self.port}.yml"
        self.config.write_text(config_yaml(endpoints, probes, f"127.0.0.1:{self.port}"))
        self.log_path = workdir / f"exporter-{self.port}.log"
        self.proc: subprocess.Popen[bytes] | None = None

    @property
    def url(self) -> str:
        return f"http://127.0.0.1:{self.port}"

    def start(self, timeout: float = 30) -> Exporter:
        with open(self.log_path, "ab") as logf:
            self.proc = subprocess.Popen(
                [INSPECTOR, "run", "--config.file", str(self.config)],
                stdout=logf, stderr=subprocess.STDOUT, stdin=subprocess.DEVNULL,
            )  # fmt: skip
        wait_ready(self.proc, self.url, self.log_path, timeout)
        return self

    def scrape(self, timeout: float = 30) -> tuple[float, str]:
        t0 = time.perf_counter()
        with urllib.request.urlopen(self.url + "/metrics", timeout=timeout) as r:
            body = r.read().decode()
        return time.perf_counter() - t0, body

    def rss(self) -> int:
        return proc_status_bytes(self.proc.pid, "VmRSS") if self.proc else 0

    def peak_rss(self) -> int:
        return proc_status_bytes(self.proc.pid, "VmHWM") if self.proc else 0

    def stop(self) -> None:
        if self.proc is not None:
            terminate(self.proc, 15)
        self.proc = None

    def __enter__(self) -> Exporter:
        return self.start()

    def __exit__(self, *exc: object) -> None:
        self.stop()


def sample_value(text: str, name: str) -> float | None:
    """The first sample called `name` in an exposition text (labels ignored)."""
    for line in text.splitlines():
        if line.startswith(name + "{") or line.startswith(name + " "):
            return float(line.rsplit(" ", 1)[1])
    return None


# --------------------------------------------------------------------------- results


@dataclass(frozen=True)
class Row:
    """One line of the results table: our figure, the peer's, and ours/peer."""

    benchmark: str
    metric: str
    value: str
    peer: str = ""
    ratio: str = ""
    note: str = ""


def ratio(ours: float, peer: float) -> str:
    return f"{ours / peer:.2f}x" if peer else "n/a"


def markdown(rows: Sequence[Row]) -> str:
    head = (
        "| benchmark | metric | etcd-inspector | peer | ratio | note |\n|---|---|---|---|---|---|\n"
    )
    return head + "".join(
        f"| {r.benchmark} | {r.metric} | {r.value} | {r.peer} | {r.ratio} | {r.note} |\n"
        for r in rows
    )
