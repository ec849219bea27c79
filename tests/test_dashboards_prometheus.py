"""Every Grafana panel's query returns data from a real Prometheus.

One stack for the module: a real 3-member etcd cluster with planted data and a client that
keeps writing, the real `etcd-inspector run`, and Debian's Prometheus scraping it every second
with the mixin's rule file loaded. Then every query of every committed dashboard (Grafana
variables substituted by `mixin.dashboard_queries`) runs as an instant query and must return
samples; so must every recording rule and every dashboard variable. A panel that has no data
on a healthy cluster must be listed in EXPECTED_EMPTY with the reason.

The writer runs as a subprocess of this file (`python test_dashboards_prometheus.py ...`), so
its gRPC event loop never shares the test process.
"""

from __future__ import annotations

import asyncio
import contextlib
import json
import os
import re
import subprocess
import sys
import time
from collections.abc import Callable, Iterator
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import pytest
import yaml

from conftest import etcdctl_binary
from etcd_inspector.demo.localcluster import start_cluster
from etcd_inspector.mixin import config_defaults, dashboard_queries
from etcd_inspector.probes import REGISTRY
from harness import ExporterProcess, run_exporter
from promserver import PrometheusServer, run_prometheus, stop_process

REPO = Path(__file__).resolve().parents[1]
RULES_FILE = REPO / "rules" / "prometheus-rules.yaml"
DASHBOARD_FILES = sorted((REPO / "dashboards").glob("*.json"))
CLUSTER_NAME = "test"

# Planted data (see _write_forever): a Kubernetes-like keyspace with one of each finding.
POD_KEYS = 2000
BIG_KEY = b"/registry/configmaps/default/big-bundle"
BIG_VALUE_BYTES = 200 * 1024  # over the bigvalue probe's default threshold (100 KiB)
REWRITTEN_KEY = b"/registry/leases/kube-system/busy-controller"
REWRITES = 300
HOT_KEY = b"/registry/leases/kube-system/runaway-controller"
# Over the EtcdInspectorHotKey threshold (50 writes/s) with a margin for a slow disk.
HOT_WRITES_PER_SECOND = 100
CHURN_KEYS = 50
CHURN_WRITES_PER_SECOND = 20
# Every write adds a revision (nothing compacts), so the database keeps growing.
WRITE_VALUE_BYTES = 512

READY_TIMEOUT_SECONDS = 100.0
QUOTA_PROJECTION_CONFIG = """
inspection:
  probes:
    quota:
      projection_window_seconds: 120
      projection_max_samples: 60
      projection_min_span_seconds: 8
"""

# "uid:title" (plus "#refId" on panels with several queries) -> why it is empty on a healthy
# cluster. Each one must still be a valid query.
EXPECTED_EMPTY: dict[str, str] = {
    "etcd-inspector-inspections:Restore drill": "the backup probe's restore_drill is off",
    "etcd-inspector-overview:Feature gates (etcd >= 3.6)": "feature gates exist from etcd 3.6 on",
}

# Alerts the planted data must raise. Every `for:` is >= 15m, so within the test they can only
# be pending, which proves their expressions match the exporter's real series.
EXPECTED_PENDING: dict[str, str] = {
    "EtcdInspectorBigValues": "a 200 KiB value is planted (threshold 100 KiB)",
    "EtcdInspectorHotKey": f"the writer rewrites one key ~{HOT_WRITES_PER_SECOND}/s (> 50/s)",
    # ~85 KB/s of new revisions reach the 2 GiB default quota in ~7 h, inside the 24 h horizon;
    # etcdExcessiveDatabaseGrowth (4 h ahead) stays below the quota at that rate.
    "EtcdInspectorQuotaExhaustionProjected": "the writer grows the database (nothing compacts)",
}


def _value(sample: dict[str, Any]) -> float:
    return float(sample["value"][1])


def _by(label: str, result: list[dict[str, Any]]) -> dict[str, float]:
    return {s["metric"].get(label, ""): _value(s) for s in result}


def _only(result: list[dict[str, Any]]) -> float:
    assert len(result) == 1, result
    return _value(result[0])


MEMBERS = {"m1", "m2", "m3"}
PROBES = set(REGISTRY)  # every probe, also one added later

# Beyond "has data": what some panels must show given the planted data (id -> predicate).
VALUE_CHECKS: dict[str, Callable[[list[dict[str, Any]]], bool]] = {
    "etcd-inspector-overview:Has leader": lambda r: _only(r) == 1,
    "etcd-inspector-overview:Members reporting": lambda r: _only(r) == 3,
    "etcd-inspector-overview:Total keys": lambda r: _only(r) >= POD_KEYS + 3 + CHURN_KEYS,
    "etcd-inspector-inspections:Consistent": lambda r: _only(r) == 1,
    "etcd-inspector-inspections:KV hash mismatch": lambda r: _only(r) == 0,
    "etcd-inspector-inspections:Distinct leaders": lambda r: _only(r) == 1,
    "etcd-inspector-inspections:Distinct cluster IDs": lambda r: _only(r) == 1,
    "etcd-inspector-inspections:Members up": lambda r: _only(r) == 3,
    "etcd-inspector-inspections:Values over threshold": lambda r: _only(r) == 1,
    "etcd-inspector-inspections:Bytes in big values": lambda r: _only(r) >= BIG_VALUE_BYTES,
    "etcd-inspector-inspections:Largest values": lambda r: (
        max(_by("key", r), key=_by("key", r).__getitem__) == BIG_KEY.decode()
    ),
    "etcd-inspector-inspections:Largest prefixes by keys": lambda r: (
        sum(v for p, v in _by("prefix", r).items() if p.startswith("/registry/pods")) >= POD_KEYS
    ),
    "etcd-inspector-inspections:Most modified keys": lambda r: (
        _by("key", r).get(REWRITTEN_KEY.decode(), 0) >= REWRITES
    ),
    "etcd-inspector-inspections:Hot keys": lambda r: (
        max(_by("key", r), key=_by("key", r).__getitem__) == HOT_KEY.decode()
        and _by("key", r)[HOT_KEY.decode()] > 50
    ),
    "etcd-inspector-inspections:Projected time until the quota is reached": lambda r: (
        set(_by("member", r)) == MEMBERS and max(_by("member", r).values()) < 86400
    ),
    "etcd-inspector-inspections:Member reachable": lambda r: (
        _by("member", r) == dict.fromkeys(MEMBERS, 1.0)
    ),
    "etcd-inspector-inspections:Probe success": lambda r: (
        _by("probe", r) == dict.fromkeys(PROBES, 1.0)
    ),
}


# --------------------------------------------------------------------------- queries


@dataclass(frozen=True)
class PanelQuery:
    id: str  # "uid:title", plus "#refId" when the panel has several queries
    expr: str


def _panels(dashboard: dict[str, Any]) -> Iterator[dict[str, Any]]:
    for panel in dashboard["panels"]:
        yield panel
        yield from panel.get("panels", [])


def panel_queries() -> list[PanelQuery]:
    """Every query of the committed dashboards, variables substituted by the mixin's own
    dashboard_queries (called per panel, so each query keeps its panel's identity)."""
    queries = []
    for path in DASHBOARD_FILES:
        dashboard = json.loads(path.read_text())
        for panel in _panels(dashboard):
            one = {path.name: {"uid": dashboard["uid"], "panels": [{**panel, "panels": []}]}}
            found = dashboard_queries(one)
            refs = [t["refId"] for t in panel.get("targets", []) if t.get("expr")]
            for (uid, title, expr), ref in zip(found, refs, strict=True):
                suffix = f"#{ref}" if len(refs) > 1 else ""
                queries.append(PanelQuery(f"{uid}:{title}{suffix}", expr))
    ids = [q.id for q in queries]
    assert len(ids) == len(set(ids)), f"panel query ids are not unique: {ids}"
    return queries


QUERIES = panel_queries()

_LABEL_VALUES = re.compile(r"^label_values\((?P<selector>.+),\s*(?P<label>\w+)\)$")


def variable_queries() -> list[tuple[str, str, str]]:
    """(id "uid:$name", series selector, label) of every label_values() variable."""
    found = []
    for path in DASHBOARD_FILES:
        dashboard = json.loads(path.read_text())
        for var in dashboard["templating"]["list"]:
            if var.get("type") != "query":
                continue
            m = _LABEL_VALUES.match(var["query"]["query"])
            assert m, f"{dashboard['uid']}: ${var['name']}: not label_values(): {var['query']}"
            selector = m["selector"].replace("$cluster", ".*")
            found.append((f"{dashboard['uid']}:${var['name']}", selector, m["label"]))
    return found


def rule_file() -> dict[str, Any]:
    return yaml.safe_load(RULES_FILE.read_text())


def recording_rules() -> list[str]:
    return [r["record"] for g in rule_file()["groups"] for r in g["rules"] if "record" in r]


# --------------------------------------------------------------------------- the stack


@dataclass
class Stack:
    prometheus: PrometheusServer
    exporter: ExporterProcess
    writer: subprocess.Popen[bytes]
    writer_log: Path

    def diagnostics(self) -> str:
        writer = self.writer_log.read_text(errors="replace")[-2000:]
        return (
            f"--- exporter log (tail)\n{self.exporter.log()[-3000:]}\n"
            f"--- prometheus log (tail)\n{self.prometheus.log()[-2000:]}\n"
            f"--- writer log (tail)\n{writer}"
        )


def _prometheus_config(exporter_port: int) -> dict[str, Any]:
    defaults = config_defaults()
    job = defaults["exporter_job"]
    # The mixin's selectors must select this job, or every query would be empty for no reason.
    assert defaults["exporter_selector"] == f'job="{job}"', defaults["exporter_selector"]
    assert defaults["etcd_selector"] == f'job="{job}"', defaults["etcd_selector"]
    return {
        "global": {"scrape_interval": "1s", "evaluation_interval": "1s"},
        "rule_files": [str(RULES_FILE)],
        "scrape_configs": [
            {
                "job_name": job,
                # The exporter's `cluster` and `member` labels win over target labels.
                "honor_labels": True,
                "static_configs": [{"targets": [f"127.0.0.1:{exporter_port}"]}],
            }
        ],
    }


def _start_writer(endpoint: str, log_path: Path, planted: Path) -> subprocess.Popen[bytes]:
    with open(log_path, "ab") as log:
        return subprocess.Popen(
            [sys.executable, __file__, endpoint, str(planted)],
            stdout=log, stderr=subprocess.STDOUT, stdin=subprocess.DEVNULL,
        )  # fmt: skip


def _wait_planted(writer: subprocess.Popen[bytes], planted: Path, log_path: Path) -> None:
    deadline = time.monotonic() + 60
    while not planted.exists():
        if writer.poll() is not None or time.monotonic() > deadline:
            raise AssertionError(f"the writer did not plant the data:\n{log_path.read_text()}")
        time.sleep(0.05)


def _missing(prometheus: PrometheusServer) -> list[str]:
    """Ids of the queries that should have data and have none yet."""
    missing = []
    for q in QUERIES:
        if q.id not in EXPECTED_EMPTY and not prometheus.query(q.expr):
            missing.append(q.id)
    for record in recording_rules():
        if not prometheus.query(record):
            missing.append(record)
    for alert in EXPECTED_PENDING:
        if not prometheus.query(f'ALERTS{{alertname="{alert}"}}'):
            missing.append(alert)
    return missing


@pytest.fixture(scope="module")
def stack(etcd_binary: str, tmp_path_factory: pytest.TempPathFactory) -> Iterator[Stack]:
    tmp = tmp_path_factory.mktemp("dashboards-prometheus")
    cluster = start_cluster(3, base_dir=tmp / "etcd", binary=etcd_binary)
    writer: subprocess.Popen[bytes] | None = None
    try:
        writer_log, planted = tmp / "writer.log", tmp / "planted"
        writer = _start_writer(cluster.endpoints[0], writer_log, planted)
        _wait_planted(writer, planted, writer_log)
        # A short projection window so the quota projection has data within seconds (the
        # defaults want an hour-scale window and a minute of samples).
        exporter_config = tmp / "exporter.yml"
        exporter_config.write_text(QUOTA_PROJECTION_CONFIG)
        # A backup location with one snapshot, for the Backups row.
        backups = tmp / "backups"
        backups.mkdir()
        subprocess.run(
            [etcdctl_binary(), "--endpoints", cluster.endpoints[0], "snapshot", "save",
             str(backups / "test.db")], env={**os.environ, "ETCDCTL_API": "3"},
            capture_output=True, check=True, timeout=60,
        )  # fmt: skip
        with (
            run_exporter(
                tmp,
                f"--config.file={exporter_config}",
                "--etcd.endpoints=" + ",".join(cluster.endpoints),
                "--etcd.metrics-urls=" + ",".join(m.metrics_url for m in cluster.members),
                f"--etcd.cluster-name={CLUSTER_NAME}",
                "--inspection.interval=2s",
                f"--backup.location={backups}",
            ) as exporter,
            run_prometheus(_prometheus_config(exporter.port), tmp / "prometheus") as prometheus,
        ):
            current = Stack(prometheus, exporter, writer, writer_log)
            # One wait for the whole module: until every query that should have data has it
            # (or the deadline passes and the tests below name what is missing).
            deadline = time.monotonic() + READY_TIMEOUT_SECONDS
            while _missing(prometheus) and time.monotonic() < deadline:
                assert writer.poll() is None, f"the writer died:\n{current.diagnostics()}"
                time.sleep(1)
            yield current
    finally:
        if writer is not None:
            stop_process(writer)
        cluster.stop()


# --------------------------------------------------------------------------- tests


def test_expected_empty_and_value_checks_name_existing_panels() -> None:
    ids = {q.id for q in QUERIES}
    assert set(EXPECTED_EMPTY) <= ids, set(EXPECTED_EMPTY) - ids
    assert set(VALUE_CHECKS) <= ids, set(VALUE_CHECKS) - ids
    assert not set(VALUE_CHECKS) & set(EXPECTED_EMPTY)


@pytest.mark.etcd
@pytest.mark.prometheus
@pytest.mark.parametrize("query", QUERIES, ids=[q.id for q in QUERIES])
def test_panel_query_returns_data(stack: Stack, query: PanelQuery) -> None:
    result = stack.prometheus.query(query.expr)  # raises unless the query is valid
    if query.id in EXPECTED_EMPTY:
        assert result == [], f"{query.id} has data now; remove it from EXPECTED_EMPTY: {result[:3]}"
        return
    assert result, f"no data for {query.id}:\n{query.expr}\n{stack.diagnostics()}"
    check = VALUE_CHECKS.get(query.id)
    if check is not None:
        assert check(result), f"{query.id}: unexpected values:\n{json.dumps(result, indent=1)}"


@pytest.mark.etcd
@pytest.mark.prometheus
@pytest.mark.parametrize("record", recording_rules())
def test_recording_rule_has_data(stack: Stack, record: str) -> None:
    assert stack.prometheus.query(record), f"recording rule {record} has no data"


@pytest.mark.parametrize(
    ("selector", "label"),
    [(s, lab) for _, s, lab in variable_queries()],
    ids=[i for i, _, _ in variable_queries()],
)
@pytest.mark.etcd
@pytest.mark.prometheus
def test_dashboard_variable_has_values(stack: Stack, selector: str, label: str) -> None:
    values = stack.prometheus.api(f"label/{label}/values", **{"match[]": selector})
    assert values, f"label_values({selector}, {label}) is empty"
    if label == "cluster":
        assert values == [CLUSTER_NAME]
    if label == "member":
        assert values == ["m1", "m2", "m3"]


@pytest.mark.etcd
@pytest.mark.prometheus
def test_rule_file_loaded_without_errors(stack: Stack) -> None:
    groups = stack.prometheus.api("rules")["groups"]
    expected = {g["name"]: len(g["rules"]) for g in rule_file()["groups"]}
    assert {g["name"]: len(g["rules"]) for g in groups} == expected
    for group in groups:
        assert group["file"] == str(RULES_FILE)
        for rule in group["rules"]:
            assert rule["health"] == "ok", f"{group['name']}/{rule['name']}: {rule}"
            assert not rule.get("lastError"), f"{group['name']}/{rule['name']}: {rule}"


@pytest.mark.etcd
@pytest.mark.prometheus
def test_alerts_on_a_healthy_cluster(stack: Stack) -> None:
    """Nothing fires; only the alerts the planted data explains are pending, and those are."""
    deadline = time.monotonic() + 15
    while True:
        alerts = stack.prometheus.api("alerts")["alerts"]
        states = {a["labels"]["alertname"]: a["state"] for a in alerts}
        if set(EXPECTED_PENDING) <= set(states) or time.monotonic() > deadline:
            break
        time.sleep(1)
    firing = [a for a in alerts if a["state"] == "firing"]
    assert not firing, json.dumps(firing, indent=1)
    unexplained = [a for a in alerts if a["labels"]["alertname"] not in EXPECTED_PENDING]
    assert not unexplained, json.dumps(unexplained, indent=1)
    assert {name: states.get(name) for name in EXPECTED_PENDING} == dict.fromkeys(
        EXPECTED_PENDING, "pending"
    )
    for alert in alerts:
        assert alert["labels"].get("cluster") == CLUSTER_NAME, alert


# --------------------------------------------------------------------------- the writer


async def _write_forever(endpoint: str, planted: Path) -> None:
    from etcd_inspector.demo.sample_writer import SampleWriter
    from etcd_inspector.demo.sampledata import NAMESPACES

    writer = SampleWriter(endpoint)
    await writer.put_many(
        (f"/registry/pods/{NAMESPACES[i % len(NAMESPACES)]}/pod-{i:05d}".encode(), b"p" * 300)
        for i in range(POD_KEYS)
    )
    await writer.put(BIG_KEY, b"B" * BIG_VALUE_BYTES)
    # One key cannot appear twice in a transaction: rewrites are single puts, 50 in flight.
    for start in range(0, REWRITES, 50):
        await asyncio.gather(
            *(writer.put(REWRITTEN_KEY, str(i).encode()) for i in range(start, start + 50))
        )
    await asyncio.to_thread(planted.touch)
    print("planted", flush=True)

    # Paced by the clock, not by the answers: a slow fsync must not lower the write rate.
    in_flight: set[asyncio.Task[int]] = set()
    value = b"v" * WRITE_VALUE_BYTES
    tick = 1 / HOT_WRITES_PER_SECOND
    churn_every = HOT_WRITES_PER_SECOND // CHURN_WRITES_PER_SECOND
    started = time.monotonic()
    n = 0
    while True:
        keys = [HOT_KEY]
        if n % churn_every == 0:
            churn = (n // churn_every) % CHURN_KEYS
            keys.append(f"/registry/events/default/churn-{churn:02d}".encode())
        for key in keys:
            if len(in_flight) < 64:
                task = asyncio.create_task(writer.put(key, value))
                in_flight.add(task)
                task.add_done_callback(_done(in_flight))
        n += 1
        await asyncio.sleep(max(0.0, started + n * tick - time.monotonic()))


def _done(in_flight: set[asyncio.Task[int]]) -> Callable[[asyncio.Task[int]], None]:
    def callback(task: asyncio.Task[int]) -> None:
        in_flight.discard(task)
        if not task.cancelled() and task.exception() is not None:
            print(f"write failed: {task.exception()!r}", flush=True)

    return callback


def _writer_main(argv: list[str]) -> int:
    endpoint, planted = argv
    with contextlib.suppress(KeyboardInterrupt):
        asyncio.run(_write_forever(endpoint, Path(planted)))
    return 0


if __name__ == "__main__":
    sys.exit(_writer_main(sys.argv[1:]))
