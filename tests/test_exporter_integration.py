"""The real `etcd-inspector run` against real 3-member etcd clusters on 127.0.0.1.

The exporter runs as a subprocess of the installed CLI on a free port, exactly as an operator
starts it; the helpers here (ExporterProcess, run_exporter) are shared with test_faults.py and
test_promtool_metrics.py.
"""

from __future__ import annotations

import contextlib
import json
import os
import signal
import subprocess
import sys
import time
import urllib.error
import urllib.request
from collections.abc import Callable, Iterator
from dataclasses import dataclass
from pathlib import Path

from prometheus_client.metrics_core import Metric
from prometheus_client.parser import text_string_to_metric_families

from conftest import etcdctl
from etcd_inspector.localcluster import LocalCluster, free_ports

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
    families = {f.name: f for f in text_string_to_metric_families(body)} if status == 200 else {}
    return Scrape(status, body, elapsed, families)


class ExporterProcess:
    """One `etcd-inspector run` subprocess on a free port; its stderr goes to a log file."""

    def __init__(self, args: list[str], log_path: Path, env: dict[str, str] | None = None):
        self.port = free_ports(1)[0]
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
        return f"http://127.0.0.1:{self.port}"

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
        req = urllib.request.Request(self.base_url + path, headers=headers or {})
        start = time.monotonic()
        try:
            with urllib.request.urlopen(req, timeout=timeout) as resp:
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
    tmp_path: Path, *args: str, env: dict[str, str] | None = None
) -> Iterator[ExporterProcess]:
    """Start the exporter, wait for /-/healthy, always stop it."""
    exporter = ExporterProcess(list(args), tmp_path / f"exporter-{time.monotonic_ns()}.log", env)
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


def test_run_serves_every_member_with_cluster_and_member_labels(
    shared_cluster: LocalCluster, tmp_path: Path
) -> None:
    metrics_urls = ",".join(m.metrics_url for m in shared_cluster.members)
    with run_exporter(
        tmp_path,
        endpoints_flag(shared_cluster),
        f"--etcd.metrics-urls={metrics_urls}",
        "--etcd.cluster-name=itest",
        "--inspection.interval=1s",
    ) as exporter:
        scrape = exporter.wait_for(all_members_up, "all three members up")

        assert scrape.by_member("etcd_server_has_leader", cluster="itest") == dict.fromkeys(
            MEMBERS, 1.0
        )
        assert scrape.by_member("etcd_inspector_member_up", cluster="itest") == dict.fromkeys(
            MEMBERS, 1.0
        )
        assert scrape.value("etcd_inspector_probe_success", cluster="itest", probe="status") == 1
        # The member label is etcd's own name for the member, matched by its real ID.
        ids = member_ids(shared_cluster)
        info = {s.labels["member"]: s.labels for s in scrape.samples("etcd_inspector_member_info")}
        assert {name: labels["member_id"] for name, labels in info.items()} == ids
        assert {name: labels["endpoint"] for name, labels in info.items()} == {
            m.name: m.client_url for m in shared_cluster.members
        }
        # Exactly one leader, and etcd's own metric agrees on which.
        leaders = scrape.by_member("etcd_inspector_member_is_leader")
        assert sorted(leaders.values()) == [0, 0, 1]
        assert leaders == scrape.by_member("etcd_server_is_leader")

        # --etcd.metrics-urls is used: the exporter holds HTTP connections to every member's
        # separate metrics listener (aiohttp keeps them alive between scrapes).
        for m in shared_cluster.members:
            assert established_connections(exporter.pid, m.metrics_port) >= 1, m.name

        status, body, _ = exporter.get("/")
        assert status == 200
        assert '<a href="/metrics">' in body
        for m in shared_cluster.members:
            assert f"<td>{m.name}</td><td>{m.client_url}</td><td>up</td>" in body
        assert exporter.get("/-/healthy")[:2] == (200, "Healthy.\n")
        assert exporter.get("/-/ready")[:2] == (200, "Ready.\n")
        assert exporter.get("/no-such-page")[0] == 404


def test_without_metrics_urls_the_client_urls_serve_metrics(
    shared_cluster: LocalCluster, tmp_path: Path
) -> None:
    with run_exporter(
        tmp_path, endpoints_flag(shared_cluster), "--inspection.interval=1s"
    ) as exporter:
        scrape = exporter.wait_for(all_members_up, "all three members up")
        assert scrape.by_member("etcd_server_has_leader", cluster="default") == dict.fromkeys(
            MEMBERS, 1.0
        )
        for m in shared_cluster.members:
            assert established_connections(exporter.pid, m.metrics_port) == 0, m.name


def test_openmetrics_negotiation_gives_a_strictly_valid_exposition(
    shared_cluster: LocalCluster, tmp_path: Path
) -> None:
    # Prometheus asks for OpenMetrics first; its parser is strict, as is prometheus_client's.
    from prometheus_client.openmetrics.parser import (
        text_string_to_metric_families as parse_openmetrics,
    )

    accept = (
        "application/openmetrics-text;version=1.0.0,application/openmetrics-text;"
        "version=0.0.1;q=0.75,text/plain;version=0.0.4;q=0.5,*/*;q=0.1"
    )
    with run_exporter(
        tmp_path, endpoints_flag(shared_cluster), "--inspection.interval=1s"
    ) as exporter:
        exporter.wait_for(all_members_up, "all three members up")
        status, body, _ = exporter.get("/metrics", headers={"Accept": accept})
    assert status == 200
    assert body.endswith("# EOF\n")
    families = {f.name: f for f in parse_openmetrics(body)}
    has_leader = families["etcd_server_has_leader"]
    assert sorted(s.labels["member"] for s in has_leader.samples) == list(MEMBERS)
    assert families["etcd_inspector_member_scrape_errors"].type == "counter"


def test_read_only_user_is_enough_for_the_status_probe(
    etcd_cluster: LocalCluster, tmp_path: Path
) -> None:
    enable_auth_with_read_only_user(etcd_cluster, "inspector", "s3cret-pw")
    password_file = tmp_path / "password"
    password_file.write_text("s3cret-pw\n")  # the trailing newline is the editor's
    with run_exporter(
        tmp_path,
        endpoints_flag(etcd_cluster),
        "--etcd.username=inspector",
        f"--etcd.password-file={password_file}",
        "--inspection.interval=1s",
    ) as exporter:
        scrape = exporter.wait_for(
            lambda s: (
                all_members_up(s) and s.value("etcd_inspector_probe_success", probe="status") == 1
            ),
            "status probe succeeds with the read-only user",
        )
        assert set(scrape.by_member("etcd_inspector_member_revision")) == set(MEMBERS)
        assert set(scrape.by_member("etcd_inspector_member_info")) == set(MEMBERS)
        # Alarms need only read access too.
        assert len(scrape.samples("etcd_inspector_member_alarm")) == 2 * len(MEMBERS)


def test_wrong_password_fails_the_status_probe_but_not_the_exporter(
    etcd_cluster: LocalCluster, tmp_path: Path
) -> None:
    enable_auth_with_read_only_user(etcd_cluster, "inspector", "right-pw")
    password_file = tmp_path / "password"
    password_file.write_text("wrong-pw")
    with run_exporter(
        tmp_path,
        endpoints_flag(etcd_cluster),
        "--etcd.username=inspector",
        f"--etcd.password-file={password_file}",
        "--inspection.interval=1s",
    ) as exporter:
        scrape = exporter.wait_for(
            lambda s: s.value("etcd_inspector_probe_success", probe="status") == 0,
            "status probe fails with a wrong password",
        )
        # Never identified: the members are labeled host:port.
        assert scrape.by_member("etcd_inspector_member_up") == dict.fromkeys(
            (f"127.0.0.1:{m.client_port}" for m in etcd_cluster.members), 0.0
        )
        # /metrics of the members needs no etcd auth: the proxied part is still there.
        assert len(scrape.samples("etcd_server_has_leader")) == 3
        assert exporter.get("/-/ready")[0] == 200
        # The operator is told why, not just "error".
        assert 'err="NoMemberAnswered: no member answered Status (auth_failed)"' in exporter.log()


def enable_auth_with_read_only_user(cluster: LocalCluster, user: str, password: str) -> None:
    """What an operator does: root user, a read-only role on every key, auth on."""
    etcdctl(cluster, "user", "add", "root", "--new-user-password=root-pw")
    etcdctl(cluster, "user", "grant-role", "root", "root")
    etcdctl(cluster, "role", "add", "ro")
    etcdctl(cluster, "role", "grant-permission", "ro", "--prefix=true", "read", "")
    etcdctl(cluster, "user", "add", user, f"--new-user-password={password}")
    etcdctl(cluster, "user", "grant-role", user, "ro")
    etcdctl(cluster, "auth", "enable")


def test_sigterm_stops_the_exporter_promptly(shared_cluster: LocalCluster, tmp_path: Path) -> None:
    with run_exporter(
        tmp_path, endpoints_flag(shared_cluster), "--inspection.interval=1s"
    ) as exporter:
        exporter.wait_for(all_members_up, "all three members up")
        start = time.monotonic()
        exporter.signal(signal.SIGTERM)
        assert exporter.process is not None
        assert exporter.process.wait(timeout=10) == 0
        assert time.monotonic() - start < 5
