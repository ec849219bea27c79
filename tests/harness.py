"""The exporter as an operator runs it: the installed CLI as a subprocess on a free port,
scraped over HTTP. Shared by the integration, fault, CLI, promtool and dashboard tests."""

from __future__ import annotations

import contextlib
import json
import os
import ssl
import subprocess
import sys
import time
import urllib.error
import urllib.request
from collections import Counter
from collections.abc import Callable, Iterator
from dataclasses import dataclass
from pathlib import Path

from prometheus_client.metrics_core import Metric
from prometheus_client.parser import text_string_to_metric_families

from conftest import etcdctl
from etcd_inspector.demo.localcluster import LocalCluster
from etcd_inspector.ports import free_ports

MEMBERS = ("m1", "m2", "m3")
START_TIMEOUT_SECONDS = 20.0


def exporter_command() -> list[str]:
    """The installed console script next to this interpreter, else `python -m`."""
    script = Path(sys.executable).with_name("etcd-inspector")
    return [str(script)] if script.exists() else [sys.executable, "-m", "etcd_inspector"]


@dataclass(frozen=True)
class Scrape:
    status: int
    text: str
    elapsed: float
    families: dict[str, Metric]

    def value(self, sample: str, **labels: str) -> float | None:
        """The value of the one sample with this name whose labels include `labels`."""
        found = [s.value for s in self.samples(sample) if labels.items() <= s.labels.items()]
        assert len(found) <= 1, f"{sample}{labels} is ambiguous: {found}"
        return found[0] if found else None

    def samples(self, sample: str):
        return [s for fam in self.families.values() for s in fam.samples if s.name == sample]

    def by_member(self, sample: str, **labels: str) -> dict[str, float]:
        return {
            s.labels["member"]: s.value
            for s in self.samples(sample)
            if labels.items() <= s.labels.items()
        }


def parse_scrape(status: int, body: str, elapsed: float) -> Scrape:
    """Every scrape a test takes is also checked for a series exposed twice (Prometheus keeps
    one and counts the rest as duplicates; nothing else in a test would notice)."""
    parsed = list(text_string_to_metric_families(body)) if status == 200 else []
    series = Counter((s.name, tuple(sorted(s.labels.items()))) for f in parsed for s in f.samples)
    repeated = [key for key, n in series.items() if n > 1]
    assert not repeated, f"series exposed more than once: {repeated[:5]}"
    return Scrape(status, body, elapsed, {f.name: f for f in parsed})


class ExporterProcess:
    """One `etcd-inspector run` subprocess on a free port; its stderr goes to a log file."""

    def __init__(
        self,
        args: list[str],
        log_path: Path,
        env: dict[str, str] | None = None,
        tls: ssl.SSLContext | None = None,
        headers: dict[str, str] | None = None,
    ):
        self.port = free_ports(1)[0]
        # With --web.config.file: the client side of its TLS, and e.g. an Authorization header.
        self.tls = tls
        self.headers = headers or {}
        self.args = [
            *exporter_command(),
            "run",
            f"--web.listen-address=127.0.0.1:{self.port}",
            *args,
        ]
        self.log_path = log_path
        self.env = {**os.environ, **(env or {})}
        self.process: subprocess.Popen[bytes] | None = None

    @property
    def base_url(self) -> str:
        return f"{'https' if self.tls else 'http'}://127.0.0.1:{self.port}"

    @property
    def pid(self) -> int:
        assert self.process is not None
        return self.process.pid

    def start(self, timeout: float = START_TIMEOUT_SECONDS) -> None:
        with open(self.log_path, "ab") as log:
            self.process = subprocess.Popen(
                self.args, stdout=log, stderr=subprocess.STDOUT, stdin=subprocess.DEVNULL,
                env=self.env,
            )  # fmt: skip
        deadline = time.monotonic() + timeout
        while time.monotonic() < deadline:
            if self.process.poll() is not None:
                raise AssertionError(
                    f"exporter exited with {self.process.returncode}:\n{self.log()}"
                )
            with contextlib.suppress(OSError):
                if self.get("/-/healthy", timeout=1)[0] == 200:
                    return
            time.sleep(0.05)
        raise AssertionError(f"exporter not healthy after {timeout}s:\n{self.log()}")

    def get(
        self, path: str, headers: dict[str, str] | None = None, timeout: float = 10.0
    ) -> tuple[int, str, float]:
        """(HTTP status, body, seconds taken)."""
        req = urllib.request.Request(
            self.base_url + path, headers={**self.headers, **(headers or {})}
        )
        start = time.monotonic()
        try:
            with urllib.request.urlopen(req, timeout=timeout, context=self.tls) as resp:
                body = resp.read().decode()
                return resp.status, body, time.monotonic() - start
        except urllib.error.HTTPError as err:
            return err.code, err.read().decode(), time.monotonic() - start

    def scrape(self, scrape_timeout: float | None = None) -> Scrape:
        headers = {}
        if scrape_timeout is not None:
            headers["X-Prometheus-Scrape-Timeout-Seconds"] = f"{scrape_timeout:g}"
        return parse_scrape(*self.get("/metrics", headers=headers))

    def wait_for(
        self,
        condition: Callable[[Scrape], bool],
        what: str,
        timeout: float = 15.0,
        scrape_timeout: float | None = None,
    ) -> Scrape:
        """Scrape until `condition` holds; fail with the last scrape's relevant lines."""
        deadline = time.monotonic() + timeout
        while True:
            scrape = self.scrape(scrape_timeout)
            if condition(scrape):
                return scrape
            if time.monotonic() > deadline:
                lines = [
                    line
                    for line in scrape.text.splitlines()
                    if line.startswith(("etcd_inspector_member_up", "etcd_inspector_probe_success"))
                ]
                raise AssertionError(
                    f"not within {timeout}s: {what}\n"
                    + "\n".join(lines)
                    + "\n"
                    + self.log()[-3000:]
                )
            time.sleep(0.2)

    def signal(self, sig: int) -> None:
        assert self.process is not None
        os.kill(self.process.pid, sig)

    def stop(self, timeout: float = 10.0) -> int | None:
        """SIGTERM, then SIGKILL after `timeout`; returns the exit code."""
        if self.process is None:
            return None
        if self.process.poll() is None:
            self.process.terminate()
            try:
                self.process.wait(timeout=timeout)
            except subprocess.TimeoutExpired:
                self.process.kill()
                self.process.wait(timeout=10)
        return self.process.returncode

    def log(self) -> str:
        try:
            return self.log_path.read_text(errors="replace")
        except OSError:
            return ""


@contextlib.contextmanager
def run_exporter(
    tmp_path: Path,
    *args: str,
    env: dict[str, str] | None = None,
    tls: ssl.SSLContext | None = None,
    headers: dict[str, str] | None = None,
) -> Iterator[ExporterProcess]:
    """Start the exporter, wait for /-/healthy, always stop it."""
    log_path = tmp_path / f"exporter-{time.monotonic_ns()}.log"
    exporter = ExporterProcess(list(args), log_path, env, tls=tls, headers=headers)
    try:
        exporter.start()
        yield exporter
    finally:
        exporter.stop()


def endpoints_flag(cluster: LocalCluster) -> str:
    return "--etcd.endpoints=" + ",".join(cluster.endpoints)


def all_members_up(scrape: Scrape, members=MEMBERS) -> bool:
    return scrape.by_member("etcd_inspector_member_up") == dict.fromkeys(members, 1.0)


def established_connections(pid: int, port: int) -> int:
    """ESTABLISHED TCP connections of process `pid` to 127.0.0.1:`port` (no psutil: /proc)."""
    inodes = set()
    for fd in Path(f"/proc/{pid}/fd").iterdir():
        with contextlib.suppress(OSError):
            target = os.readlink(fd)
            if target.startswith("socket:["):
                inodes.add(target[8:-1])
    count = 0
    for table in ("tcp", "tcp6"):
        with contextlib.suppress(OSError), open(f"/proc/{pid}/net/{table}") as f:
            next(f)
            for line in f:
                fields = line.split()
                remote_port = int(fields[2].rsplit(":", 1)[1], 16)
                if fields[3] == "01" and remote_port == port and fields[9] in inodes:
                    count += 1
    return count


def member_ids(cluster: LocalCluster) -> dict[str, str]:
    """name -> hex member ID, as the real etcdctl reports them."""
    listing = json.loads(etcdctl(cluster, "member", "list", "-w", "json"))
    return {m["name"]: f"{m['ID']:x}" for m in listing["members"]}


def enable_auth_with_read_only_user(cluster: LocalCluster, user: str, password: str) -> None:
    """What an operator does: root user, a read-only role on every key, auth on."""
    etcdctl(cluster, "user", "add", "root", "--new-user-password=root-pw")
    etcdctl(cluster, "user", "grant-role", "root", "root")
    etcdctl(cluster, "role", "add", "ro")
    etcdctl(cluster, "role", "grant-permission", "ro", "--prefix=true", "read", "")
    etcdctl(cluster, "user", "add", user, f"--new-user-password={password}")
    etcdctl(cluster, "user", "grant-role", user, "ro")
    etcdctl(cluster, "auth", "enable")
