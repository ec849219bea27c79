"""`etcd-inspector drill` against a real Prometheus and a real Alertmanager.

The fault is one the test controls: a file_sd target (Prometheus itself, labelled member="m2")
that the test adds and removes. The rules alert on it: DrillFault (for: 2s) fires while the
target is there, DrillSideEffect fires with it (an alert nobody expected), DrillAlwaysFiring is
firing before any drill starts, DrillNeverFires never fires. Prometheus notifies an
Alertmanager that requires basic auth, so the Alertmanager API and --http.config.file are
proved on the same alerts. The full fault drills on etcd clusters are elsewhere; these prove
the command's report (fired, not fired, resolved, unexpected, with timings) and its errors.
"""

from __future__ import annotations

import contextlib
import functools
import http.server
import json
import subprocess
import sys
import threading
import time
import urllib.request
from collections.abc import Iterator
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import bcrypt
import pytest
import yaml

from certs import Pki, make_pki
from drillkit import AlertmanagerServer
from etcd_inspector import cli, mixin
from etcd_inspector.exitcodes import (
    EXIT_API_REFUSED,
    EXIT_API_UNREACHABLE,
    EXIT_ERROR,
    EXIT_FINDINGS,
    EXIT_OK,
)
from etcd_inspector.ports import free_ports
from promserver import PrometheusServer

pytestmark = pytest.mark.prometheus

AM_USER = "drill"
AM_PASSWORD = "s3cret-am-password"  # must never appear in the drill's output
RULES = {
    "groups": [
        {
            "name": "drill",
            "interval": "1s",
            "rules": [
                {"alert": "DrillFault", "expr": 'up{job="fault"} == 1', "for": "2s",
                 "labels": {"severity": "warning"}},
                {"alert": "DrillSideEffect", "expr": 'count(up{job="fault"}) > 0',
                 "labels": {"severity": "info"}},
                {"alert": "DrillNeverFires", "expr": "vector(0) > 1"},
                {"alert": "DrillAlwaysFiring", "expr": "vector(1)"},
            ],
        }
    ]
}  # fmt: skip


def basic_auth_header() -> dict[str, str]:
    import base64

    token = base64.b64encode(f"{AM_USER}:{AM_PASSWORD}".encode()).decode()
    return {"Authorization": f"Basic {token}"}


@contextlib.contextmanager
def run_alertmanager(workdir: Path, tls: Pki | None = None) -> Iterator[AlertmanagerServer]:
    """An Alertmanager that delivers nowhere and requires basic auth (and serves TLS)."""
    hashed = bcrypt.hashpw(AM_PASSWORD.encode(), bcrypt.gensalt(rounds=4)).decode()
    web: dict[str, Any] = {"basic_auth_users": {AM_USER: hashed}}
    if tls is not None:
        web["tls_server_config"] = {"cert_file": str(tls.server_cert),
                                    "key_file": str(tls.server_key)}  # fmt: skip
    am = AlertmanagerServer(None, workdir, web=web, ca=tls.ca if tls else None,
                            headers=basic_auth_header())  # fmt: skip
    try:
        am.start()
        yield am
    finally:
        am.stop()


@dataclass
class Lab:
    prometheus: PrometheusServer
    alertmanager: AlertmanagerServer
    targets: Path
    http_config: Path

    def inject(self) -> None:
        self._write([{"targets": [f"127.0.0.1:{self.prometheus.port}"],
                      "labels": {"member": "m2"}}])  # fmt: skip

    def heal(self) -> None:
        self._write([])

    def _write(self, groups: list[dict[str, Any]]) -> None:
        tmp = self.targets.with_suffix(".tmp")
        tmp.write_text(json.dumps(groups))
        tmp.replace(self.targets)

    def firing(self) -> set[str]:
        alerts = self.prometheus.api("alerts")["alerts"]
        return {a["labels"]["alertname"] for a in alerts if a["state"] == "firing"}

    def am_firing(self) -> set[str]:
        request = urllib.request.Request(
            self.alertmanager.url + "/api/v2/alerts", headers=basic_auth_header()
        )
        with urllib.request.urlopen(request, timeout=5) as response:
            return {a["labels"]["alertname"] for a in json.loads(response.read())}

    def wait_until(self, condition: Any, what: str, timeout: float = 30) -> None:
        deadline = time.monotonic() + timeout
        while not condition():
            if time.monotonic() > deadline:
                raise AssertionError(f"timed out waiting for {what}")
            time.sleep(0.2)


@pytest.fixture(scope="module")
def lab(tmp_path_factory: pytest.TempPathFactory) -> Iterator[Lab]:
    workdir = tmp_path_factory.mktemp("drill")
    (workdir / "prom").mkdir()
    (workdir / "prom" / "rules.yml").write_text(yaml.safe_dump(RULES))
    targets = workdir / "prom" / "targets.json"
    targets.write_text("[]")
    (workdir / "password").write_text(AM_PASSWORD + "\n")
    http_config = workdir / "http.yml"
    http_config.write_text(yaml.safe_dump(
        {"basic_auth": {"username": AM_USER, "password_file": "password"}}
    ))  # fmt: skip
    with run_alertmanager(workdir / "am") as am:
        config = {
            "global": {"scrape_interval": "1s", "evaluation_interval": "1s"},
            "rule_files": ["rules.yml"],
            "alerting": {"alertmanagers": [{
                "basic_auth": {"username": AM_USER, "password": AM_PASSWORD},
                "static_configs": [{"targets": [am.url.removeprefix("http://")]}],
            }]},
            "scrape_configs": [{
                "job_name": "fault",
                "scrape_interval": "1s",
                "file_sd_configs": [{"files": [str(targets)], "refresh_interval": "1s"}],
            }],
        }  # fmt: skip
        prometheus = PrometheusServer(config, workdir / "prom")
        # Resend every second: the first notification goes out before the Alertmanager is
        # discovered (and is dropped); the default would resend it a minute later.
        prometheus.args.append("--rules.alert.resend-delay=1s")
        try:
            prometheus.start()
            lab = Lab(prometheus, am, targets, http_config)
            lab.wait_until(lambda: "DrillAlwaysFiring" in lab.firing(), "DrillAlwaysFiring")
            lab.wait_until(lambda: "DrillAlwaysFiring" in lab.am_firing(), "Alertmanager")
            yield lab
        finally:
            prometheus.stop()


@pytest.fixture
def healed(lab: Lab) -> Lab:
    """Every test starts with the fault off and its alerts resolved in both APIs."""
    lab.heal()
    quiet = {"DrillFault", "DrillSideEffect"}
    lab.wait_until(lambda: not (quiet & lab.firing()), "the fault's alerts to resolve")
    lab.wait_until(lambda: not (quiet & lab.am_firing()), "Alertmanager to resolve them")
    return lab


def drill_in_thread(argv: list[str]) -> tuple[threading.Thread, list[int]]:
    code: list[int] = []
    thread = threading.Thread(target=lambda: code.append(cli.main(["drill", *argv])))
    thread.start()
    return thread, code


def run_fault(lab: Lab, argv: list[str], inject_at: float, heal_at: float | None) -> int:
    """Start the drill, inject and heal the fault at those seconds, return its exit code."""
    start = time.monotonic()
    thread, code = drill_in_thread(argv)
    time.sleep(max(0.0, start + inject_at - time.monotonic()))
    lab.inject()
    if heal_at is not None:
        time.sleep(max(0.0, start + heal_at - time.monotonic()))
        lab.heal()
    thread.join(timeout=90)
    assert not thread.is_alive(), "drill did not finish"
    (result,) = code
    return result


def test_fired_resolved_unexpected_and_preexisting_with_timings(
    healed: Lab, capsys: pytest.CaptureFixture[str]
) -> None:
    code = run_fault(
        healed,
        ["--prometheus.url", healed.prometheus.base_url, "--expect", "DrillFault",
         "--duration", "14s", "--resolve-timeout", "20s", "--interval", "500ms",
         "--output", "json"],
        inject_at=1.0, heal_at=15.0,
    )  # fmt: skip
    out = capsys.readouterr()
    report = json.loads(out.out)
    assert code == EXIT_OK, out
    assert report["passed"] is True and report["problems"] == []
    assert report["api"] == "Prometheus" and report["fault_seconds"] == 14.0
    (fault,) = report["expected"]
    assert fault["alert"] == "DrillFault" and fault["fired"] and fault["resolved"]
    # Injected at 1s; fires after file_sd (Prometheus passes on discovery changes every 5s),
    # a scrape, an evaluation and for: 2s.
    assert 3.0 <= fault["fired_after_seconds"] <= 12.0, fault
    # Healed at 15s, one second after the fault's end: the target goes (within 5s), its
    # series is marked stale, and the next evaluation resolves the alert.
    assert 15.0 <= fault["resolved_after_seconds"] <= 24.0, fault
    (instance,) = fault["instances"]
    assert instance["labels"] == {
        "instance": f"127.0.0.1:{healed.prometheus.port}",
        "job": "fault",
        "member": "m2",
        "severity": "warning",
    }
    (side,) = report["unexpected"]
    assert side["alert"] == "DrillSideEffect" and side["labels"] == {"severity": "info"}
    # No for: it fires before DrillFault, and resolves with it.
    assert 1.0 <= side["fired_after_seconds"] < fault["fired_after_seconds"]
    assert 15.0 <= side["resolved_after_seconds"] <= 24.0
    (always,) = report["firing_at_start"]
    assert always["alert"] == "DrillAlwaysFiring" and always["resolved_after_seconds"] is None
    assert report["failed_polls"] == 0
    # Resolved within a couple of polls after it did; the drill did not wait the 20s out.
    assert report["watched_seconds"] < fault["resolved_after_seconds"] + 2.0
    assert out.err == ""  # JSON: no progress lines


def test_an_alert_that_does_not_fire_fails_the_drill(
    healed: Lab, capsys: pytest.CaptureFixture[str]
) -> None:
    code = run_fault(
        healed,
        ["--prometheus.url", healed.prometheus.base_url,
         "--expect", "DrillFault,DrillNeverFires", "--duration", "13s",
         "--resolve-timeout", "20s", "--interval", "500ms"],
        inject_at=0.5, heal_at=13.5,
    )  # fmt: skip
    out = capsys.readouterr()
    assert code == EXIT_FINDINGS, out
    lines = out.out.splitlines()
    assert lines[0].startswith(f"drill against Prometheus at {healed.prometheus.base_url}: ")
    fault = next(line for line in lines if line.strip().startswith("DrillFault "))
    assert 'member="m2"' in fault and "(fault end +" in fault
    never = next(line for line in lines if line.strip().startswith("DrillNeverFires "))
    assert never.split()[1:3] == ["NOT", "FIRED"]
    assert lines[-1] == "FAIL: DrillNeverFires did not fire"
    assert any(line.strip().startswith("DrillSideEffect ") for line in lines)
    # Progress on stderr while it ran: when the expected alert fired and resolved.
    assert "firing   DrillFault" in out.err and "resolved DrillFault" in out.err


def test_an_alert_that_does_not_resolve_fails_the_drill(
    healed: Lab, capsys: pytest.CaptureFixture[str]
) -> None:
    code = run_fault(
        healed,
        ["--prometheus.url", healed.prometheus.base_url, "--expect", "DrillFault",
         "--duration", "12s", "--resolve-timeout", "3s", "--interval", "500ms",
         "--output", "json"],
        inject_at=0.5, heal_at=None,
    )  # fmt: skip
    report = json.loads(capsys.readouterr().out)
    healed.heal()
    assert code == EXIT_FINDINGS
    (fault,) = report["expected"]
    assert fault["fired"] is True and fault["resolved"] is False
    assert fault["resolved_after_seconds"] is None
    assert report["problems"] == ["DrillFault did not resolve within 3s of the fault's end"]
    assert 15.0 <= report["watched_seconds"] <= 16.5


def test_an_alert_already_firing_at_the_start_proves_nothing(
    healed: Lab, capsys: pytest.CaptureFixture[str]
) -> None:
    code = cli.main(["drill", "--prometheus.url", healed.prometheus.base_url,
                     "--expect", "DrillAlwaysFiring", "--duration", "1s", "--resolve-timeout",
                     "1s", "--interval", "500ms", "--output", "json"])  # fmt: skip
    report = json.loads(capsys.readouterr().out)
    assert code == EXIT_FINDINGS
    assert report["problems"] == [
        "DrillAlwaysFiring did not fire (it was already firing at the start)"
    ]
    assert report["expected"][0]["firing_at_start"] is True


def test_alertmanager_with_basic_auth_and_an_experiment_file(
    healed: Lab, tmp_path: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    """The expected alerts and the fault's duration come from a rendered experiment."""
    experiment = yaml.safe_load(mixin.render()["chaos/etcd-network-partition.yaml"])
    experiment["metadata"]["annotations"]["etcd-inspector.io/expected-alerts"] = "DrillFault"
    experiment["spec"]["duration"] = "14s"
    path = tmp_path / "experiment.yaml"
    path.write_text(yaml.safe_dump(experiment))
    code = run_fault(
        healed,
        ["--alertmanager.url", healed.alertmanager.url, "--experiment", str(path),
         "--http.config.file", str(healed.http_config), "--resolve-timeout", "20s",
         "--interval", "500ms"],
        inject_at=0.5, heal_at=14.5,
    )  # fmt: skip
    out = capsys.readouterr()
    assert code == EXIT_OK, out
    assert AM_PASSWORD not in out.out + out.err
    lines = out.out.splitlines()
    assert lines[0].startswith(
        f"drill against Alertmanager at {healed.alertmanager.url}: fault 14s"
    )
    fault = next(line for line in lines if line.strip().startswith("DrillFault "))
    assert 'member="m2"' in fault and "(fault end +" in fault
    assert lines[-1] == "PASS: all 1 expected alerts fired and resolved"


def cli_run(*argv: str, timeout: float = 60) -> subprocess.CompletedProcess[str]:
    return subprocess.run(
        [sys.executable, "-m", "etcd_inspector", "drill", *argv],
        capture_output=True, text=True, timeout=timeout, check=False,
    )  # fmt: skip


@pytest.fixture(scope="module")
def html_server(tmp_path_factory: pytest.TempPathFactory) -> Iterator[str]:
    """A web server that answers 200 with HTML where the alerts API should be."""
    root = tmp_path_factory.mktemp("html")
    (root / "api" / "v1").mkdir(parents=True)
    (root / "api" / "v1" / "alerts").write_text("<html>not an API</html>")
    handler = functools.partial(http.server.SimpleHTTPRequestHandler, directory=str(root))
    server = http.server.ThreadingHTTPServer(("127.0.0.1", 0), handler)
    thread = threading.Thread(target=server.serve_forever, daemon=True)
    thread.start()
    try:
        yield f"http://127.0.0.1:{server.server_address[1]}"
    finally:
        server.shutdown()
        server.server_close()


def test_api_errors_are_one_line_with_distinct_codes(lab: Lab, html_server: str) -> None:
    closed = free_ports(1)[0]
    common = ("--expect", "DrillFault", "--duration", "5s")
    cases = [
        (("--prometheus.url", f"http://127.0.0.1:{closed}", "--timeout", "2s"),
         EXIT_API_UNREACHABLE, f"cannot reach Prometheus at http://127.0.0.1:{closed}: "
         "Connection refused"),
        (("--prometheus.url", lab.prometheus.base_url + "/nothing"), EXIT_API_REFUSED,
         "no alerts API at /api/v1/alerts (HTTP 404); is it the Prometheus base URL?"),
        (("--prometheus.url", html_server), EXIT_API_REFUSED,
         "/api/v1/alerts did not answer JSON; is it the Prometheus base URL?"),
        (("--alertmanager.url", lab.alertmanager.url), EXIT_API_REFUSED,
         "refused the request (HTTP 401): check the credentials of --http.config.file"),
    ]  # fmt: skip
    for flags, exit_code, message in cases:
        out = cli_run(*flags, *common)
        assert out.returncode == exit_code, (flags, out.stderr)
        assert out.stdout == "", flags
        (line,) = out.stderr.splitlines()
        assert line.startswith("etcd-inspector drill: ") and line.endswith(message), line


def test_a_request_that_hangs_times_out(tmp_path: Path) -> None:
    """A server that accepts and never answers: the request's timeout ends it."""
    import socket

    listener = socket.socket()
    listener.bind(("127.0.0.1", 0))
    listener.listen(1)
    try:
        port = listener.getsockname()[1]
        started = time.monotonic()
        out = cli_run("--prometheus.url", f"http://127.0.0.1:{port}", "--timeout", "1s",
                      "--expect", "X", "--duration", "5s")  # fmt: skip
        assert out.returncode == EXIT_API_UNREACHABLE
        assert out.stderr.strip().endswith("no answer within 1s"), out.stderr
        assert time.monotonic() - started < 15
    finally:
        listener.close()


@pytest.mark.parametrize(
    ("argv", "message"),
    [
        (["--expect", "X", "--duration", "5s"],
         "drill: give one of --prometheus.url=URL or --alertmanager.url=URL"),
        (["--prometheus.url", "http://a:9090", "--alertmanager.url", "http://b:9093",
          "--expect", "X", "--duration", "5s"],
         "drill: give one of --prometheus.url=URL or --alertmanager.url=URL, not both"),
        (["--prometheus.url", "http://a:9090", "--duration", "5s"],
         "drill: no alert to expect: give --expect=ALERT[,ALERT...] or --experiment=FILE"),
        (["--prometheus.url", "http://a:9090", "--expect", "X"],
         "drill: give --duration (how long the fault is on), or an --experiment with "
         "spec.duration"),
        (["--prometheus.url", "http://a:9090", "--expect", "X", "--duration", "fifteen"],
         "--duration: 'fifteen' is not a duration (use e.g. '500ms', '15s', '1m30s', '2h', "
         "'1d')"),
        (["--prometheus.url", "http://a:9090", "--expect", "X", "--duration", "15"],
         "--duration: '15' has no unit; write e.g. '15s'"),
        (["--prometheus.url", "ftp://a:9090", "--expect", "X", "--duration", "5s"],
         "--prometheus.url must be an http:// or https:// URL, got 'ftp://a:9090'"),
        (["--prometheus.url", "http://admin:hunter2@a:9090", "--expect", "X",
          "--duration", "5s"],
         "--prometheus.url must not carry credentials; put them in --http.config.file "
         "(basic_auth)"),
        (["--prometheus.url", "http://a:9090", "--experiment", "/nonexistent.yaml"],
         "--experiment /nonexistent.yaml: cannot read: No such file or directory"),
    ],
)  # fmt: skip
def test_bad_flags_are_one_line_and_exit_2(argv: list[str], message: str) -> None:
    out = cli_run(*argv)
    assert out.returncode == EXIT_ERROR
    assert out.stdout == ""
    assert out.stderr.splitlines() == [f"etcd-inspector: {message}"]
    assert "hunter2" not in out.stderr


def test_a_bad_http_config_file_is_one_line(tmp_path: Path) -> None:
    path = tmp_path / "http.yml"
    path.write_text("basic_auth: {username: u, pasword: p}\n")
    out = cli_run("--prometheus.url", "http://a:9090", "--expect", "X", "--duration", "5s",
                  "--http.config.file", str(path))  # fmt: skip
    assert out.returncode == EXIT_ERROR
    assert out.stderr.splitlines() == [
        f"etcd-inspector: --http.config.file: {path}: unknown key in basic_auth: pasword "
        "(known: password, password_file, username)"
    ]


def test_an_unknown_flag_exits_2() -> None:
    out = cli_run("--prometheus.url", "http://a:9090", "--expect", "X", "--bogus")
    assert out.returncode == EXIT_ERROR
    assert out.stderr.splitlines()[-1].endswith("unrecognized arguments: --bogus")


def test_tls_with_the_ca_of_the_http_config_file(tmp_path: Path) -> None:
    """An Alertmanager serving TLS: verified with tls_config.ca_file; without it, the
    certificate check fails and the API counts as unreachable."""
    pki = make_pki(tmp_path / "pki")
    (tmp_path / "password").write_text(AM_PASSWORD)
    with_ca = tmp_path / "with-ca.yml"
    with_ca.write_text(yaml.safe_dump({
        "basic_auth": {"username": AM_USER, "password_file": "password"},
        "tls_config": {"ca_file": str(pki.ca)},
    }))  # fmt: skip
    without_ca = tmp_path / "without-ca.yml"
    basic = {"username": AM_USER, "password_file": "password"}
    without_ca.write_text(yaml.safe_dump({"basic_auth": basic}))
    with run_alertmanager(tmp_path / "am", tls=pki) as am:
        assert am.url.startswith("https://")
        flags = ("--alertmanager.url", am.url, "--expect", "DrillFault", "--duration", "1s",
                 "--resolve-timeout", "1s", "--interval", "500ms")  # fmt: skip
        out = cli_run(*flags, "--http.config.file", str(with_ca), "--output", "json")
        assert out.returncode == EXIT_FINDINGS, out.stderr  # answered; nothing fired there
        report = json.loads(out.stdout)
        assert report["polls"] >= 2 and report["failed_polls"] == 0
        assert report["problems"] == ["DrillFault did not fire"]
        out = cli_run(*flags, "--http.config.file", str(without_ca))
        assert out.returncode == EXIT_API_UNREACHABLE
        (line,) = out.stderr.splitlines()
        assert line.startswith(f"etcd-inspector drill: cannot reach Alertmanager at {am.url}: ")
        assert "CERTIFICATE_VERIFY_FAILED" in line or "certificate verify failed" in line, line
        assert AM_PASSWORD not in out.stdout + out.stderr
