"""Drills: a real fault on a real 3-member cluster, and the alerts a real Prometheus and a real
Alertmanager deliver because of it.

One `DrillStack` per drill group (tests/test_drills_*.py): the fault harness's cluster
(etcd_inspector.demo.faults), the exporter scraping it (`etcd-inspector run`), Debian's
Prometheus evaluating a test copy of the GENERATED rules (rules/prometheus-rules.yaml: every
`for:` cut to DRILL_FOR and every range window to DRILL_WINDOW, nothing else changed), Debian's
Alertmanager (group_wait 1 s) delivering to a webhook receiver (aiohttp, in this process), and a
writer subprocess (tests/drillwriter.py, 50 puts/s round-robin over the members).

What a drill measures (time to fire from the injection, time to resolve from the heal, both as
Alertmanager delivered them) is appended to DRILL_RESULTS; scripts/drills-table turns the
results and tests/drill_catalog.py into docs/drills.md.
"""

from __future__ import annotations

import asyncio
import contextlib
import json
import os
import re
import ssl
import subprocess
import sys
import threading
import time
import urllib.request
from collections.abc import Callable, Iterator, Mapping, Sequence
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import yaml
from aiohttp import web

from etcd_inspector.demo.faults import FaultCluster
from etcd_inspector.ports import free_ports
from harness import ExporterProcess, exporter_command, run_exporter
from promserver import PrometheusServer, stop_process

REPO = Path(__file__).resolve().parents[1]
RULES_FILE = REPO / "rules" / "prometheus-rules.yaml"
# Where the drills write what they measured (one JSON object per line; the table reads it).
DRILL_RESULTS = Path(os.environ.get("DRILL_RESULTS", REPO / ".drills" / "results.jsonl"))
CLUSTER_NAME = "drill"
JOB = "etcd-inspector"

# The test copy of the rules: `for:` and range windows shortened so a fault of a minute fires
# and a heal resolves within a minute. Thresholds and expressions are the product's.
DRILL_FOR = "10s"
DRILL_WINDOW = "20s"
# Series observed only every few seconds get a longer window, or the alert would flap with the
# gaps: etcd's rafthttp prober records a peer round trip every ~5 s while a link is unhealthy.
SPARSE_WINDOWS = {"etcd_network_peer_round_trip_time_seconds": "30s"}
# Subqueries ([15m:1m]): the window shortened the same way, a step of one evaluation.
DRILL_SUBQUERY = "[40s:2s]"
SCRAPE_INTERVAL = "1s"
WRITES_PER_SECOND = 50
FIRE_TIMEOUT = 120.0
RESOLVE_TIMEOUT = 120.0

# Windows longer than this are the product's growth windows (predict_linear over 4h, offset 1h):
# they are left alone, and their alerts are listed with a reason in tests/drill_catalog.py.
_RANGE = re.compile(r"\[(\d+)([smh])\]")
_SUBQUERY = re.compile(r"\[(\d+)([smh]):(\d+)([smh])\]")
_SECONDS = {"s": 1, "m": 60, "h": 3600}


def _shorten_expr(expr: str) -> str:
    short = next((w for name, w in SPARSE_WINDOWS.items() if name in expr), DRILL_WINDOW)

    def window(m: re.Match[str]) -> str:
        seconds = int(m.group(1)) * _SECONDS[m.group(2)]
        return f"[{short}]" if seconds <= 30 * 60 else m.group(0)

    return _RANGE.sub(window, _SUBQUERY.sub(DRILL_SUBQUERY, expr))


def drill_rules(source: Path = RULES_FILE) -> dict[str, Any]:
    """The rendered rule file with every `for:` and short range window cut (see above)."""
    doc = yaml.safe_load(source.read_text())
    for group in doc["groups"]:
        group["interval"] = "1s"
        for rule in group["rules"]:
            rule["expr"] = _shorten_expr(rule["expr"])
            if "alert" in rule and "for" in rule:
                rule["for"] = DRILL_FOR
    return dict(doc)


def rendered_alerts(source: Path = RULES_FILE) -> list[tuple[str, str]]:
    """(alertname, severity) of every alert in the rendered rules, in file order."""
    doc = yaml.safe_load(source.read_text())
    return [
        (r["alert"], r["labels"]["severity"])
        for g in doc["groups"]
        for r in g["rules"]
        if "alert" in r
    ]


# --------------------------------------------------------------------------- webhook receiver


@dataclass(frozen=True)
class Delivery:
    """One alert in one Alertmanager webhook notification."""

    at: float  # time.monotonic() when it arrived
    status: str  # firing | resolved
    labels: Mapping[str, str]

    @property
    def name(self) -> str:
        return self.labels.get("alertname", "")


class WebhookReceiver:
    """A tiny aiohttp server on its own loop thread; keeps every alert Alertmanager delivers."""

    def __init__(self) -> None:
        self.port = free_ports(1)[0]
        self.deliveries: list[Delivery] = []
        self._lock = threading.Lock()
        self._loop = asyncio.new_event_loop()
        self._runner: web.AppRunner | None = None
        self._thread = threading.Thread(target=self._loop.run_forever, daemon=True)

    @property
    def url(self) -> str:
        return f"http://127.0.0.1:{self.port}/alerts"

    async def _handle(self, request: web.Request) -> web.Response:
        body = await request.json()
        now = time.monotonic()
        with self._lock:
            for alert in body.get("alerts", []):
                self.deliveries.append(Delivery(now, alert["status"], dict(alert["labels"])))
        return web.Response(text="ok")

    async def _start(self) -> None:
        app = web.Application()
        app.router.add_post("/alerts", self._handle)
        self._runner = web.AppRunner(app)
        await self._runner.setup()
        await web.TCPSite(self._runner, "127.0.0.1", self.port).start()

    def start(self) -> None:
        self._thread.start()
        asyncio.run_coroutine_threadsafe(self._start(), self._loop).result(timeout=10)

    def stop(self) -> None:
        if self._runner is not None:
            asyncio.run_coroutine_threadsafe(self._runner.cleanup(), self._loop).result(10)
        self._loop.call_soon_threadsafe(self._loop.stop)
        self._thread.join(timeout=10)
        self._loop.close()

    def since(self, start: float) -> list[Delivery]:
        with self._lock:
            return [d for d in self.deliveries if d.at >= start]


# --------------------------------------------------------------------------- alertmanager


def alertmanager_binary() -> str:
    for name in ("prometheus-alertmanager", "alertmanager"):
        for directory in os.environ.get("PATH", "").split(os.pathsep):
            candidate = Path(directory) / name
            if candidate.exists():
                return str(candidate)
    raise AssertionError("alertmanager not found: install Debian's prometheus-alertmanager")


class AlertmanagerServer:
    """One Alertmanager (no gossip). With `webhook`, every alert group goes there within ~1 s;
    with None, nowhere (its API is what a test reads). `web` is its --web.config.file (basic
    auth, TLS); `ca` the CA to trust when that serves TLS, `headers` what the readiness check
    sends (its credentials)."""

    def __init__(
        self,
        webhook: str | None,
        workdir: Path,
        *,
        web: Mapping[str, Any] | None = None,
        ca: Path | None = None,
        headers: Mapping[str, str] | None = None,
    ) -> None:
        self.port = free_ports(1)[0]
        workdir.mkdir(parents=True, exist_ok=True)
        self.log_path = workdir / "alertmanager.log"
        receiver: dict[str, Any] = {"name": "drill"}
        if webhook is not None:
            receiver["webhook_configs"] = [{"url": webhook, "send_resolved": True}]
        config = {
            "route": {
                "receiver": "drill",
                "group_by": ["..."],  # every alert its own group: one delivery per alert
                "group_wait": "1s",
                "group_interval": "1s",
                "repeat_interval": "1h",
            },
            "receivers": [receiver],
        }
        config_path = workdir / "alertmanager.yml"
        config_path.write_text(yaml.safe_dump(config))
        self.args = [
            alertmanager_binary(),
            f"--config.file={config_path}",
            f"--storage.path={workdir / 'data'}",
            f"--web.listen-address=127.0.0.1:{self.port}",
            "--cluster.listen-address=",
            "--log.level=warn",
        ]
        if web is not None:
            (workdir / "web.yml").write_text(yaml.safe_dump(dict(web)))
            self.args.append(f"--web.config.file={workdir / 'web.yml'}")
        tls = web is not None and "tls_server_config" in web
        self.url = f"{'https' if tls else 'http'}://127.0.0.1:{self.port}"
        self._context = ssl.create_default_context(cafile=str(ca)) if ca is not None else None
        self._headers = dict(headers or {})
        self.process: subprocess.Popen[bytes] | None = None

    def start(self, timeout: float = 30.0) -> None:
        with open(self.log_path, "ab") as log:
            self.process = subprocess.Popen(
                self.args, stdout=log, stderr=subprocess.STDOUT, stdin=subprocess.DEVNULL
            )
        deadline = time.monotonic() + timeout
        while time.monotonic() < deadline:
            if self.process.poll() is not None:
                raise AssertionError(f"alertmanager exited: {self.log_path.read_text()}")
            with contextlib.suppress(OSError):
                request = urllib.request.Request(self.url + "/-/ready", headers=self._headers)
                with urllib.request.urlopen(request, timeout=1, context=self._context) as resp:
                    if resp.status == 200:
                        return
            time.sleep(0.1)
        raise AssertionError(f"alertmanager not ready after {timeout}s")

    def stop(self) -> None:
        if self.process is not None:
            stop_process(self.process)


# --------------------------------------------------------------------------- writer


def start_writer(
    endpoints: Sequence[str], log_path: Path, *extra: str
) -> subprocess.Popen[bytes]:
    with open(log_path, "ab") as log:
        return subprocess.Popen(
            [sys.executable, str(Path(__file__).with_name("drillwriter.py")),
             f"--rate={WRITES_PER_SECOND}", *extra, *endpoints],
            stdout=log, stderr=subprocess.STDOUT, stdin=subprocess.DEVNULL,
        )  # fmt: skip


# --------------------------------------------------------------------------- the stack


@dataclass(frozen=True)
class Expect:
    """An alert a drill must see fire; with `member`, for that member."""

    alert: str
    severity: str
    member: str | None = None

    def matches(self, d: Delivery) -> bool:
        return (
            d.name == self.alert
            and d.labels.get("severity") == self.severity
            and (self.member is None or d.labels.get("member") == self.member)
        )

    def describe(self) -> str:
        return f"{self.alert}/{self.severity}{{member={self.member}}}"


@dataclass
class Outcome:
    """What one drill saw: when each expected alert fired and resolved (seconds)."""

    group: str
    drill: str
    fired: dict[Expect, float] = field(default_factory=dict)
    members: dict[Expect, list[str]] = field(default_factory=dict)  # members it fired for
    resolved: dict[Expect, float | None] = field(default_factory=dict)
    flapped: list[Expect] = field(default_factory=list)  # resolved while the fault was on
    others: list[Delivery] = field(default_factory=list)  # what else fired meanwhile
    fault_on: float = 0.0  # seconds from the injection to the heal


@dataclass
class DrillStack:
    fc: FaultCluster
    exporter: ExporterProcess
    prometheus: PrometheusServer
    receiver: WebhookReceiver
    writer: subprocess.Popen[bytes]
    workdir: Path
    group: str

    # ---- during a drill

    def wait_fired(self, expects: Sequence[Expect], since: float, outcome: Outcome,
                   timeout: float = FIRE_TIMEOUT) -> None:  # fmt: skip
        deadline = time.monotonic() + timeout
        while True:
            deliveries = self.receiver.since(since)
            for e in expects:
                if e in outcome.fired:
                    continue
                hit = [d for d in deliveries if d.status == "firing" and e.matches(d)]
                if hit:
                    outcome.fired[e] = round(hit[0].at - since, 1)
            for e in expects:
                outcome.members[e] = sorted({
                    d.labels.get("member", "") for d in deliveries
                    if d.status == "firing" and e.matches(d)
                } - {""})  # fmt: skip
            missing = [e for e in expects if e not in outcome.fired]
            if not missing:
                return
            if time.monotonic() > deadline:
                raise AssertionError(
                    f"not fired within {timeout}s: {[e.describe() for e in missing]}\n"
                    f"delivered: {self._summary(deliveries)}\n{self.diagnostics()}"
                )
            time.sleep(0.5)

    def wait_resolved(self, expects: Sequence[Expect], since: float, outcome: Outcome,
                      injected: float, timeout: float = RESOLVE_TIMEOUT) -> None:  # fmt: skip
        """Each expected alert delivered resolved after the heal (`since`). One that already
        resolved during the fault (its last delivery is `resolved` and Prometheus no longer
        has it firing) is recorded as flapped: resolved before the heal, time None."""
        deadline = time.monotonic() + timeout
        while True:
            deliveries = self.receiver.since(since)
            firing = self.firing_now()
            for e in expects:
                if e in outcome.resolved:
                    continue
                hit = [d for d in deliveries if d.status == "resolved" and e.matches(d)]
                if hit:
                    outcome.resolved[e] = round(hit[0].at - since, 1)
                    continue
                mine = [d for d in self.receiver.since(injected) if e.matches(d)]
                still = any(
                    a.get("alertname") == e.alert and a.get("severity") == e.severity
                    and (e.member is None or a.get("member") == e.member)
                    for a in firing
                )  # fmt: skip
                if mine and mine[-1].status == "resolved" and not still:
                    outcome.resolved[e] = None
                    outcome.flapped.append(e)
            missing = [e for e in expects if e not in outcome.resolved]
            if not missing:
                return
            if time.monotonic() > deadline:
                raise AssertionError(
                    f"not resolved within {timeout}s: {[e.describe() for e in missing]}\n"
                    f"delivered: {self._summary(deliveries)}\n{self.diagnostics()}"
                )
            time.sleep(0.5)

    def firing_now(self) -> list[dict[str, Any]]:
        """Prometheus's firing alerts right now (labels)."""
        return [
            a["labels"]
            for a in self.prometheus.api("alerts")["alerts"]
            if a["state"] == "firing"
        ]

    def critical_for_healthy(self, since: float, faulted: set[str]) -> list[Delivery]:
        """Critical alerts delivered since `since` that name a member other than `faulted`."""
        return [
            d for d in self.receiver.since(since)
            if d.status == "firing" and d.labels.get("severity") == "critical"
            and d.labels.get("member") not in (None, *faulted)
        ]  # fmt: skip

    def inspect(self, *probes: str, timeout: float = 60.0) -> tuple[int, dict[str, Any]]:
        """`etcd-inspector inspect --output json` against the cluster: (exit code, report)."""
        members = self.fc.cluster.members
        args = [
            *exporter_command(), "inspect", "--output=json", "--no-progress",
            "--etcd.endpoints=" + ",".join(m.client_url for m in members),
            "--etcd.metrics-urls=" + ",".join(m.metrics_url for m in members),
            f"--etcd.cluster-name={CLUSTER_NAME}",
            *([f"--probes={','.join(probes)}"] if probes else []),
            # The drills' slow members show in a window of several fsyncs (the default: 1 s).
            *(["--performance.inspect-window=5s"] if "performance" in probes else []),
        ]  # fmt: skip
        out = subprocess.run(args, capture_output=True, timeout=timeout, check=False)
        try:
            doc = json.loads(out.stdout or b"{}")
        except json.JSONDecodeError as err:
            raise AssertionError(f"inspect printed no JSON: {out.stdout!r} {out.stderr!r}") from err
        return out.returncode, doc

    def status_findings(self) -> list[dict[str, Any]]:
        """The exporter's /api/v1/status findings."""
        status, body, _ = self.exporter.get("/api/v1/status")
        assert status == 200, body
        return list(findings_of(json.loads(body)))

    def diagnostics(self) -> str:
        tail = self.exporter.log()[-1500:]
        return f"firing in Prometheus: {self.firing_now()}\nexporter log tail:\n{tail}"

    @staticmethod
    def _summary(deliveries: Sequence[Delivery]) -> list[str]:
        return sorted({
            f"{d.status}:{d.name}/{d.labels.get('severity')}{{member={d.labels.get('member')}}}"
            for d in deliveries
        })  # fmt: skip


def findings_of(doc: Any) -> Iterator[dict[str, Any]]:
    """Every finding in a report document (inspect JSON or /api/v1/status), wherever it sits."""
    if isinstance(doc, dict):
        for key, value in doc.items():
            if key == "findings" and isinstance(value, list):
                yield from (f for f in value if isinstance(f, dict))
            else:
                yield from findings_of(value)
    elif isinstance(doc, list):
        for item in doc:
            yield from findings_of(item)


def wait_for(condition: Callable[[], bool], what: str, timeout: float = 30.0) -> None:
    deadline = time.monotonic() + timeout
    while True:
        with contextlib.suppress(OSError):
            if condition():
                return
        if time.monotonic() > deadline:
            raise AssertionError(f"not within {timeout}s: {what}")
        time.sleep(0.25)


def prometheus_config(exporter_port: int, alertmanager_port: int, rules: Path) -> dict[str, Any]:
    return {
        "global": {"scrape_interval": SCRAPE_INTERVAL, "evaluation_interval": "1s"},
        "rule_files": [str(rules)],
        "alerting": {
            "alertmanagers": [{"static_configs": [{"targets": [f"127.0.0.1:{alertmanager_port}"]}]}]
        },
        "scrape_configs": [
            {
                "job_name": JOB,
                "honor_labels": True,
                "scrape_timeout": "1s",
                "static_configs": [{"targets": [f"127.0.0.1:{exporter_port}"]}],
            }
        ],
    }


@contextlib.contextmanager
def drill_stack(
    group: str,
    workdir: Path,
    binary: str,
    *,
    quota_backend_bytes: int | None = None,
    exporter_config: str = "",
    writer_args: Sequence[str] = (),
    etcd_args: Sequence[str] = (),
) -> Iterator[DrillStack]:
    """Start the whole stack for one drill group and wait until it is quiet (no alert firing)."""
    started = time.monotonic()
    workdir.mkdir(parents=True, exist_ok=True)
    fc = FaultCluster.build(
        3, base_dir=workdir / "etcd", binary=binary, quota_backend_bytes=quota_backend_bytes,
        extra_args=tuple(etcd_args),
    )
    receiver = WebhookReceiver()
    alertmanager = AlertmanagerServer(receiver.url, workdir / "alertmanager")
    writer: subprocess.Popen[bytes] | None = None
    rules = workdir / "drill-rules.yaml"
    rules.write_text(yaml.safe_dump(drill_rules(), sort_keys=False))
    config_file = workdir / "exporter.yml"
    config_file.write_text(exporter_config or "{}\n")
    try:
        fc.start()
        receiver.start()
        alertmanager.start()
        writer = start_writer(
            [m.client_url for m in fc.cluster.members], workdir / "writer.log", *writer_args
        )
        members = fc.cluster.members
        with run_exporter(
            workdir,
            f"--config.file={config_file}",
            "--etcd.endpoints=" + ",".join(m.client_url for m in members),
            "--etcd.metrics-urls=" + ",".join(m.metrics_url for m in members),
            f"--etcd.cluster-name={CLUSTER_NAME}",
            "--inspection.interval=2s",
        ) as exporter:
            (workdir / "prometheus").mkdir()
            prom = PrometheusServer(
                prometheus_config(exporter.port, alertmanager.port, rules), workdir / "prometheus"
            )
            # Resend firing alerts every few seconds (default 1m), so Alertmanager's view of
            # an alert ends within seconds of Prometheus's.
            prom.args.append("--rules.alert.resend-delay=2s")
            with _running(prom) as prometheus:
                stack = DrillStack(fc, exporter, prometheus, receiver, writer, workdir, group)
                wait_for(
                    lambda: bool(prometheus.query(f'up{{job="{JOB}"}} == 1'))
                    and bool(prometheus.query("etcd_server_has_leader == 1")),
                    "Prometheus scrapes the exporter and every member has a leader",
                    60,
                )
                record_setup(group, time.monotonic() - started)
                yield stack
    finally:
        if writer is not None:
            stop_process(writer)
        alertmanager.stop()
        receiver.stop()
        fc.stop()


@contextlib.contextmanager
def _running(server: PrometheusServer) -> Iterator[PrometheusServer]:
    server.workdir.mkdir(parents=True, exist_ok=True)
    try:
        server.start()
        yield server
    finally:
        server.stop()


# --------------------------------------------------------------------------- results


def _append(record: Mapping[str, Any]) -> None:
    DRILL_RESULTS.parent.mkdir(parents=True, exist_ok=True)
    with open(DRILL_RESULTS, "a") as out:
        out.write(json.dumps(record, sort_keys=True) + "\n")


def record_setup(group: str, seconds: float) -> None:
    _append({"kind": "setup", "group": group, "seconds": round(seconds, 1)})


def record_outcome(outcome: Outcome) -> None:
    for e, fired in outcome.fired.items():
        _append({
            "kind": "alert", "group": outcome.group, "drill": outcome.drill,
            "alert": e.alert, "severity": e.severity,
            "fire_seconds": fired, "resolve_seconds": outcome.resolved.get(e),
            "members": outcome.members.get(e, []),
            "flapped": e in outcome.flapped,
        })  # fmt: skip
    _append({
        "kind": "drill", "group": outcome.group, "drill": outcome.drill,
        "also_fired": sorted({
            f"{d.name}/{d.labels.get('severity')}"
            + (f" ({d.labels['member']})" if "member" in d.labels else "")
            for d in outcome.others
        }),
    })  # fmt: skip


def record_group(group: str, seconds: float) -> None:
    _append({"kind": "group", "group": group, "seconds": round(seconds, 1)})



# --------------------------------------------------------------------------- drill command


class DrillCommand:
    """`etcd-inspector drill --output=json` watching the stack's Prometheus, as a user runs it
    next to a chaos experiment: start() right before the injection, report() after the heal.
    `launched` is when it was started (its clock begins at its first poll, a little later)."""

    def __init__(self, stack: DrillStack, *flags: str) -> None:
        self.args = [
            *exporter_command(), "drill", f"--prometheus.url={stack.prometheus.base_url}",
            "--output=json", *flags,
        ]  # fmt: skip
        self.process: subprocess.Popen[bytes] | None = None
        self.launched = 0.0
        self.saved = stack.workdir / "drill-command.json"  # its report, for a failed test

    def start(self) -> None:
        self.launched = time.monotonic()
        self.process = subprocess.Popen(
            self.args, stdout=subprocess.PIPE, stderr=subprocess.PIPE, stdin=subprocess.DEVNULL
        )

    def report(self, timeout: float) -> tuple[int, dict[str, Any]]:
        """Wait for it to end: (exit code, JSON report)."""
        assert self.process is not None, "drill command not started"
        out, err = self.process.communicate(timeout=timeout)
        self.saved.write_bytes(out)
        try:
            doc = json.loads(out or b"{}")
        except json.JSONDecodeError as error:
            raise AssertionError(f"drill printed no JSON: {out!r} {err!r}") from error
        return self.process.returncode, doc

    def stop(self) -> None:
        if self.process is not None:
            stop_process(self.process)


# --------------------------------------------------------------------------- one drill


def assert_findings(
    findings: Sequence[Mapping[str, Any]], kinds: Sequence[str], never: Sequence[str],
    faulted: set[str], where: str,
) -> None:  # fmt: skip
    """One finding of a kind in `kinds` names a faulted member (or no member: cluster-wide);
    none of a kind in `never` names a faulted member."""
    if kinds:
        named = [
            f for f in findings
            if f.get("check") in kinds and (f.get("member") in faulted or f.get("member") is None)
        ]  # fmt: skip
        assert named, f"{where}: no {kinds} finding for {sorted(faulted)}: {findings}"
    wrong = [f for f in findings if f.get("check") in never and f.get("member") in faulted]
    assert not wrong, f"{where}: {never} for {sorted(faulted)}: {wrong}"


def run_drill(
    stack: DrillStack,
    drill: str,
    inject: Callable[[], None],
    heal: Callable[[], None],
    expects: Sequence[Expect],
    faulted: set[str],
    findings: Sequence[str] = (),
    never: Sequence[str] = (),
    inspect_probes: Sequence[str] = ("status",),
    allow_critical: Sequence[str] = (),
    hold: float = 0.0,
) -> Outcome:
    """Inject, wait for every expected alert to arrive at the webhook, check inspect and the
    status page while the fault is on, heal, wait for every one to resolve; record the times.
    With `hold`, the fault stays on at least that long after the injection (the --duration a
    DrillCommand watching it was given); a failed check heals at once."""
    outcome = Outcome(stack.group, drill)
    injected = time.monotonic()
    inject()
    try:
        stack.wait_fired(expects, injected, outcome)
        if findings or never:
            code, report = stack.inspect(*inspect_probes)
            assert_findings(list(findings_of(report)), findings, never, faulted, "inspect")
            if findings:
                assert code == 1, f"inspect exited {code} during {drill}: {report}"
            wait_for(
                lambda: _status_agrees(stack, findings, never, faulted),
                f"/api/v1/status names {findings} for {sorted(faulted)}", 20,
            )  # fmt: skip
        wrong = [
            d for d in stack.critical_for_healthy(injected, faulted) if d.name not in allow_critical
        ]
        assert not wrong, f"critical alerts for healthy members during {drill}: {wrong}"
        time.sleep(max(0.0, injected + hold - time.monotonic()))
    finally:
        healed = time.monotonic()
        outcome.fault_on = round(healed - injected, 1)
        heal()
    stack.wait_resolved(expects, healed, outcome, injected)
    outcome.others = [
        d for d in stack.receiver.since(injected)
        if d.status == "firing" and not any(e.matches(d) for e in expects)
    ]  # fmt: skip
    record_outcome(outcome)
    return outcome


def _status_agrees(
    stack: DrillStack, kinds: Sequence[str], never: Sequence[str], faulted: set[str]
) -> bool:
    try:
        assert_findings(stack.status_findings(), kinds, never, faulted, "/api/v1/status")
    except AssertionError:
        return False
    return True
