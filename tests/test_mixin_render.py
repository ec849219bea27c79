"""The jsonnet mixin renders, the committed rendering is current, values override config.

These run the real jsonnet (the PyPI binding) on the real sources; no promtool needed.
"""

from __future__ import annotations

import json
import re
import shutil
from pathlib import Path

import pytest
import yaml

from etcd_inspector import mixin
from mixin_overrides import OVERRIDES

REPO = Path(__file__).resolve().parents[1]

ALERT_NAME = re.compile(r"^(etcd|EtcdInspector)[A-Z][A-Za-z]+$")
RECORD_NAME = re.compile(r"^[a-z_]+:[a-z0-9_]+:[a-z0-9_]+$")
UPSTREAM_ALERTS = {
    "etcdMembersDown",
    "etcdInsufficientMembers",
    "etcdNoLeader",
    "etcdHighNumberOfLeaderChanges",
    "etcdHighNumberOfFailedGRPCRequests",
    "etcdGRPCRequestsSlow",
    "etcdMemberCommunicationSlow",
    "etcdHighNumberOfFailedProposals",
    "etcdHighFsyncDurations",
    "etcdHighCommitDurations",
    "etcdDatabaseQuotaLowSpace",
    "etcdExcessiveDatabaseGrowth",
    "etcdDatabaseHighFragmentationRatio",
}
INSPECTOR_ALERTS = {
    "EtcdInspectorDataInconsistent",
    "EtcdInspectorMemberRevisionLag",
    "EtcdInspectorMemberAppliedIndexLag",
    "EtcdInspectorLeaderDisagreement",
    "EtcdInspectorClusterIDMismatch",
    "EtcdInspectorAlarmActive",
    "EtcdInspectorQuotaHeadroomLow",
    "EtcdInspectorQuotaExhaustionProjected",
    "EtcdInspectorBigValues",
    "EtcdInspectorHotKey",
    "EtcdInspectorPrefixKeyGrowth",
    "EtcdInspectorProbeFailing",
    "EtcdInspectorProbeStale",
    "EtcdInspectorMemberUnreachable",
    "EtcdInspectorBackupMissing",
    "EtcdInspectorBackupTooOld",
    "EtcdInspectorBackupNotWhole",
    "EtcdInspectorBackupDataMismatch",
    "EtcdInspectorBackupRestoreFailed",
}
OUTPUTS = {
    "prometheus-rules.yaml",
    "prometheusrule.yaml",
    "servicemonitor.yaml",
    "podmonitor.yaml",
    "kubeadm-podmonitor.yaml",
    "scrape-config.yaml",
    "deployment.yaml",
    "statefulset-sidecar-patch.yaml",
    "kubeadm-static-pod.yaml",
    "backup-cronjob.yaml",
    "dashboards/etcd-inspector-overview.json",
    "dashboards/etcd-inspector-inspections.json",
    "chaos/etcd-io-latency.yaml",
    "chaos/etcd-network-partition.yaml",
    "chaos/etcd-network-delay.yaml",
    "chaos/etcd-pod-failure.yaml",
    "chaos/etcd-cpu-stress.yaml",
}
DIRECT = {"etcd_selector": 'job="etcd"', "etcd_instance_labels": "instance"}


@pytest.fixture(scope="module")
def rendered() -> dict[str, str | dict]:
    return mixin.render()


def rules_of(files: dict) -> list[dict]:
    text = files["prometheus-rules.yaml"]
    assert isinstance(text, str)
    return [rule for group in yaml.safe_load(text)["groups"] for rule in group["rules"]]


def alerts_of(files: dict) -> list[dict]:
    return [rule for rule in rules_of(files) if "alert" in rule]


def test_renders_every_output(rendered: dict) -> None:
    assert set(rendered) == OUTPUTS


def test_every_alert_of_the_issue_is_there(rendered: dict) -> None:
    names = {alert["alert"] for alert in alerts_of(rendered)}
    assert UPSTREAM_ALERTS <= names
    assert INSPECTOR_ALERTS <= names


def test_alerts_follow_the_mixin_conventions(rendered: dict) -> None:
    for alert in alerts_of(rendered):
        name, annotations = alert["alert"], alert["annotations"]
        assert ALERT_NAME.match(name), name
        assert alert["labels"]["severity"] in {"critical", "warning", "info"}, name
        assert set(annotations) == {"summary", "description", "runbook_url"}, name
        assert annotations["summary"].endswith("."), name
        assert "{{" not in annotations["summary"], f"{name}: summary must be static"
        assert "{{" in annotations["description"], f"{name}: description must be templated"
        assert annotations["runbook_url"] == (
            "https://github.com/etcd-inspector/etcd-inspector/blob/main/docs/mixin.md#"
            + name.lower()
        )


def test_every_runbook_anchor_exists_in_the_docs(rendered: dict) -> None:
    headings = {
        line.lstrip("#").strip().lower()
        for line in (REPO / "docs" / "mixin.md").read_text().splitlines()
        if line.startswith("### ")
    }
    missing = {a["alert"] for a in alerts_of(rendered) if a["alert"].lower() not in headings}
    assert not missing, f"docs/mixin.md has no runbook heading for {sorted(missing)}"


def test_recording_rules_are_named_level_metric_operation(rendered: dict) -> None:
    records = [rule["record"] for rule in rules_of(rendered) if "record" in rule]
    assert records
    for name in records:
        assert RECORD_NAME.match(name), name


def test_expressions_use_the_configured_selectors(rendered: dict) -> None:
    for alert in alerts_of(rendered):
        if alert["alert"].startswith("etcd"):
            assert 'job="etcd-inspector"' in alert["expr"], alert["alert"]


def test_committed_rendering_is_current(rendered: dict) -> None:
    stale = mixin.write_committed(root=REPO, check=True)
    assert not stale, (
        f"out of date: {stale}; run `.venv/bin/python -m etcd_inspector.mixin` and commit"
    )


def test_values_override_config(tmp_path: Path) -> None:
    files = mixin.render(DIRECT)
    members_down = next(a for a in alerts_of(files) if a["alert"] == "etcdMembersDown")
    # Directly scraped members are alive when Prometheus' `up` says so.
    assert (
        'up{job="etcd"} unless on (job, instance) up{job="etcd-inspector"}'
        in (members_down["expr"])
    )
    assert "sum without (instance) (" in members_down["expr"]
    no_leader = next(a for a in alerts_of(files) if a["alert"] == "etcdNoLeader")
    assert no_leader["expr"].strip() == 'etcd_server_has_leader{job="etcd"} == 0'
    assert "member {{ $labels.instance }} has no leader" in no_leader["annotations"]["description"]
    overview = files["dashboards/etcd-inspector-overview.json"]
    assert isinstance(overview, dict)
    member_var = next(v for v in overview["templating"]["list"] if v["name"] == "member")
    assert member_var["query"]["query"].endswith(", instance)")


def test_generate_writes_every_file(tmp_path: Path) -> None:
    values = tmp_path / "values.yaml"
    values.write_text(yaml.safe_dump(OVERRIDES))  # exporter_port: 9100 among them
    written = mixin.generate(tmp_path / "out", values)
    assert {p.relative_to(tmp_path / "out").as_posix() for p in written} == OUTPUTS
    for path in written:
        text = path.read_text()
        if path.suffix == ".json":
            assert json.loads(text)["uid"].startswith("etcd-inspector-")
        else:
            assert list(yaml.safe_load_all(text))
    for name in ("deployment.yaml", "statefulset-sidecar-patch.yaml", "kubeadm-static-pod.yaml"):
        assert "--web.listen-address=:9100" in (tmp_path / "out" / name).read_text(), name


def test_generate_without_values_matches_the_committed_files(tmp_path: Path) -> None:
    for path in mixin.generate(tmp_path):
        name = path.relative_to(tmp_path).as_posix()
        committed = REPO / mixin.committed_path(name)
        assert path.read_text() == committed.read_text(), name


def test_unknown_value_name_is_an_error_naming_it(tmp_path: Path) -> None:
    values = tmp_path / "values.yaml"
    values.write_text("etcd_selector: 'job=\"etcd\"'\netcd_selektor: x\nbogus: 1\n")
    with pytest.raises(mixin.MixinError) as err:
        mixin.generate(tmp_path / "out", values)
    message = str(err.value)
    assert "unknown value names: bogus, etcd_selektor" in message
    assert str(values) in message
    assert not (tmp_path / "out").exists()


def test_value_of_the_wrong_type_is_an_error(tmp_path: Path) -> None:
    message = "scrape_interval_seconds must be a number, got a string"
    with pytest.raises(mixin.MixinError, match=message):
        mixin.render({"scrape_interval_seconds": "30"})


@pytest.mark.parametrize(
    ("text", "message"),
    [
        ("etcd_selector: [unclosed\n", "not valid YAML"),
        ("- a list\n", "expected a mapping of config names to values, got a list"),
    ],
)
def test_bad_values_file_is_an_error(tmp_path: Path, text: str, message: str) -> None:
    values = tmp_path / "values.yaml"
    values.write_text(text)
    with pytest.raises(mixin.MixinError, match=re.escape(message)):
        mixin.generate(tmp_path / "out", values)


def test_missing_values_file_is_an_error(tmp_path: Path) -> None:
    with pytest.raises(mixin.MixinError, match="cannot read values"):
        mixin.generate(tmp_path / "out", tmp_path / "nope.yaml")


def test_empty_values_file_renders_the_defaults(tmp_path: Path) -> None:
    values = tmp_path / "values.yaml"
    values.write_text("# nothing to override\n")
    written = mixin.generate(tmp_path / "out", values)
    rules = next(p for p in written if p.name == "prometheus-rules.yaml")
    assert rules.read_text() == (REPO / "rules" / "prometheus-rules.yaml").read_text()


def test_every_config_name_has_a_comment() -> None:
    lines = (REPO / "config.libsonnet").read_text().splitlines()
    for name in mixin.config_defaults():
        index = next(i for i, line in enumerate(lines) if re.match(rf"\s+{name}:", line))
        above = lines[index - 1].strip()
        # A comment right above, or the field continues a commented block of related names.
        block = [line.strip() for line in lines[max(0, index - 3) : index]]
        assert above.startswith("//") or any(b.startswith("//") for b in block), name


def test_renders_from_packaged_sources(tmp_path: Path, rendered: dict) -> None:
    """What a wheel ships (etcd_inspector/mixin_data) renders the same as the checkout."""
    packaged = tmp_path / "mixin_data"
    copied = mixin.copy_sources(packaged)
    assert packaged / "mixin.libsonnet" in copied
    assert mixin.render(source_dir=packaged) == rendered


def test_find_sources_prefers_the_checkout() -> None:
    assert mixin.find_sources() == REPO


def test_jsonnet_error_is_a_mixin_error(tmp_path: Path) -> None:
    broken = tmp_path / "broken"
    shutil.copytree(REPO / "rules", broken / "rules")
    mixin.copy_sources(broken)
    (broken / "rules" / "alerts.libsonnet").write_text("{ prometheusAlerts+:: error 'boom' }")
    with pytest.raises(mixin.MixinError, match=r"rendering the mixin failed: .*boom"):
        mixin.render(source_dir=broken)


def test_dashboards_have_stable_uids_and_variables(rendered: dict) -> None:
    uids = {}
    for name in OUTPUTS:
        if not name.startswith("dashboards/"):
            continue
        dashboard = rendered[name]
        uids[name] = dashboard["uid"]
        variables = [v["name"] for v in dashboard["templating"]["list"]]
        assert variables == ["datasource", "cluster", "member"], name
        ids = [panel["id"] for panel in dashboard["panels"]]
        assert ids == list(range(1, len(ids) + 1)), name
        for panel in dashboard["panels"]:
            grid = panel["gridPos"]
            assert 0 <= grid["x"] and grid["x"] + grid["w"] <= 24, panel["title"]
            if panel["type"] != "row":
                assert panel["targets"], panel["title"]
                assert panel["datasource"] == {"type": "prometheus", "uid": "${datasource}"}
    assert uids == {
        "dashboards/etcd-inspector-overview.json": "etcd-inspector-overview",
        "dashboards/etcd-inspector-inspections.json": "etcd-inspector-inspections",
    }


def test_overview_has_the_required_panels(rendered: dict) -> None:
    overview = rendered["dashboards/etcd-inspector-overview.json"]
    titles = {panel["title"] for panel in overview["panels"]}
    assert {
        "Has leader", "Total keys", "Total watchers", "Client traffic out", "WAL fsync latency",
        "RPC rate", "Active streams", "DB size", "Disk sync duration", "Memory",
        "Client traffic in", "Peer traffic in", "Peer traffic out", "Raft proposals",
        "Total leader elections per day", "Peer round trip time",
    } <= titles  # fmt: skip
    exprs = " ".join(expr for _, _, expr in mixin.dashboard_queries({"o": overview}))
    assert "etcd_debugging_mvcc_keys_total" in exprs
    assert "etcd_debugging_mvcc_watcher_total" in exprs
    raft = next(p for p in overview["panels"] if p["title"] == "Raft proposals")
    # Upstream's "Raft proposals" panel plots leader changes; this one plots proposals.
    assert all("proposals" in t["expr"] for t in raft["targets"])


def test_dashboard_queries_substitute_grafana_variables(rendered: dict) -> None:
    queries = mixin.dashboard_queries(rendered)
    assert len(queries) > 40
    uids = {uid for uid, _, _ in queries}
    assert uids == {"etcd-inspector-overview", "etcd-inspector-inspections"}
    for uid, title, expr in queries:
        # label_replace's replacement ("$1") is a regex reference, not a Grafana variable
        assert "$" not in re.sub(r'"\$\d+"', "", expr), (uid, title, expr)
    by_title = {(uid, title): expr for uid, title, expr in queries}
    rpc = by_title[("etcd-inspector-overview", "RPC rate")]
    assert 'cluster=~".*", member=~".+"' in rpc
    assert "[1m]" in rpc
