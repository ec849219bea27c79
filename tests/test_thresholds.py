"""One source for the numbers a finding and its alert share: config.libsonnet.

report/thresholds.py copies the mixin's defaults (evaluating the jsonnet at every start would
cost a second); these tests render the mixin and fail when the two disagree, when a probe's
default is not the alert's, or when a finding links a runbook no alert has. The probes declare
(probes/base.py ProbeSpec) the alert of each kind of finding, the thresholds it shares with it
and their staleness: the mixin is self-contained jsonnet, so these tests check it against the
registry rather than generate it.
"""

from __future__ import annotations

import dataclasses
import re
from pathlib import Path

import pytest
import yaml

from etcd_inspector import mixin
from etcd_inspector.config.durations import parse_duration
from etcd_inspector.probes import REGISTRY
from etcd_inspector.probes.bigvalue import BigValueOptions
from etcd_inspector.probes.certs import DAY, CertExpiry, CertsOptions, CertsProbe, CertsResult
from etcd_inspector.probes.quota import QUOTA_USED_RATIO_LIMIT
from etcd_inspector.render.inspection import _as_declared, alert_of_check, declared_checks, findings
from etcd_inspector.render.jsondoc import to_json
from etcd_inspector.report import thresholds
from etcd_inspector.report.findings import Finding
from etcd_inspector.report.thresholds import runbook_anchor
from etcd_inspector.report.view import no_view
from test_report import T0, inspection, quota_result

REPO = Path(__file__).resolve().parents[1]


@pytest.fixture(scope="module")
def defaults() -> dict:
    return mixin.config_defaults()


@pytest.fixture(scope="module")
def alerts() -> dict[str, dict]:
    rendered = yaml.safe_load(mixin.render()["prometheus-rules.yaml"])
    return {r["alert"]: r for g in rendered["groups"] for r in g["rules"] if "alert" in r}


def test_the_packaged_defaults_are_config_libsonnets(defaults: dict) -> None:
    """mixin_defaults.json (read at start instead of running jsonnet) is the rendering of
    config.libsonnet; `python -m etcd_inspector.mixin` rewrites it."""
    assert thresholds.packaged_defaults() == defaults
    t = thresholds.DEFAULT
    assert [(q.severity, q.ratio) for q in t.quota_used_ratio_tiers] == [
        (q["severity"], q["ratio"]) for q in defaults["quota_used_ratio_tiers"]
    ] == [("info", 0.65), ("warning", 0.75), ("critical", 0.85)]
    assert t.hot_key_writes_per_second == defaults["hot_key_writes_per_second"]
    assert t.big_values_max == defaults["big_values_max"]
    assert t.prefix_key_growth_max == defaults["prefix_key_growth_max"]
    window = parse_duration(defaults["prefix_key_growth_window"])
    assert (
        window == t.prefix_key_growth_window_seconds == thresholds.PREFIX_KEY_GROWTH_WINDOW_SECONDS
    )
    assert thresholds.RUNBOOK_URL_BASE == defaults["runbook_url_base"]


def test_the_probes_defaults_are_the_alerts_thresholds(defaults: dict) -> None:
    assert QUOTA_USED_RATIO_LIMIT == defaults["quota_used_ratio_tiers"][0]["ratio"]
    assert BigValueOptions().threshold_bytes == defaults["big_value_threshold_bytes"]
    # unset: the mixin's values (with --mixin.values), read when the findings are made
    assert CertsOptions().warning_days is None and CertsOptions().critical_days is None


def test_a_values_override_moves_the_alert_and_the_finding_together(tmp_path: Path) -> None:
    """One values file, as `generate --values` and `inspect --mixin.values` take it: the
    rendered alert compares with 0.5 and a member at 60% of its quota is a finding too."""
    values = tmp_path / "values.yaml"
    values.write_text("quota_used_ratio_tiers: [{severity: warning, ratio: 0.5}]\n")
    rendered = yaml.safe_load(mixin.render(mixin.load_values(values))["prometheus-rules.yaml"])
    (alert,) = [
        r for g in rendered["groups"] for r in g["rules"]
        if r.get("alert") == "EtcdInspectorQuotaHeadroomLow"
    ]  # fmt: skip
    assert float(alert["expr"].strip().rsplit(">", 1)[1]) == 0.5

    at_60_percent = quota_result(db_size=int(0.6 * 2**30), quota=2**30)
    assert findings(inspection(quota=at_60_percent)) == []  # the default tiers: 0.65 and up
    insp = dataclasses.replace(
        inspection(quota=at_60_percent), thresholds=thresholds.load_thresholds(str(values))
    )
    found = findings(insp)
    assert [(f.check, f.threshold, f.unit) for f in found] == [("quota", 0.5, "ratio")] * 3
    assert "limit 50%" in found[0].message
    doc = to_json([insp], started_at=T0, finished_at=T0)["clusters"][0]
    assert doc["quota"]["used_ratio_limit"] == 0.5


@pytest.mark.parametrize(
    ("text", "message"),
    [
        ("quota_used_ratio_warnin: 0.5\n", "unknown value name: quota_used_ratio_warnin"),
        ("quota_used_ratio_tiers: high\n", "quota_used_ratio_tiers must be a list"),
        (
            "quota_used_ratio_tiers: [{severity: page, ratio: 0.5}]\n",
            "severity must be one of info, warning, critical, got 'page'",
        ),
        (
            "quota_used_ratio_tiers: [{severity: info, ratio: 0.9},"
            " {severity: critical, ratio: 0.8}]\n",
            "ratios must rise from tier to tier",
        ),
        ("- 1\n", "expected a mapping"),
    ],
)
def test_a_bad_values_file_is_one_clear_error(tmp_path: Path, text: str, message: str) -> None:
    values = tmp_path / "values.yaml"
    values.write_text(text)
    with pytest.raises(thresholds.ThresholdsError, match=message):
        thresholds.load_thresholds(str(values))


def runbook_headings() -> set[str]:
    docs = (REPO / "docs" / "mixin.md").read_text()
    return {h.lower() for h in re.findall(r"^### (\S+)", docs, re.MULTILINE)}


def test_every_declared_check_has_its_alert_and_runbook(alerts: dict[str, dict]) -> None:
    """Each kind of finding a registered probe (or the report) declares maps to an alert the
    rendered rules have, with a runbook heading in docs/mixin.md that the finding links."""
    headings = runbook_headings()
    declared = declared_checks(REGISTRY)
    assert {c.kind for spec in REGISTRY.values() for c in spec.checks} <= set(declared)
    for kind, check in declared.items():
        assert check.alert in alerts, (kind, check.alert)
        assert runbook_anchor(check.alert) in headings, (kind, check.alert)
        (finding,) = _as_declared_findings([Finding("c", kind, "m")])
        assert finding.runbook_url == alerts[check.alert]["annotations"]["runbook_url"], kind
    assert alert_of_check()["certificate_expiry"] == "EtcdInspectorCertificateExpiry"
    assert alert_of_check()["backup_too_old"] == "EtcdInspectorBackupTooOld"


def _as_declared_findings(found: list[Finding]) -> list[Finding]:
    checks = declared_checks(REGISTRY)
    return [_as_declared(f, checks) for f in found]


def test_every_declared_threshold_is_a_mixin_name_the_mixin_uses(defaults: dict) -> None:
    sources = "".join(
        p.read_text()
        for d in ("rules", "dashboards")
        for p in sorted((REPO / d).glob("*.libsonnet"))
    )
    for spec in REGISTRY.values():
        for check in spec.checks:
            for name in check.thresholds:
                assert name in defaults, (spec.name, check.kind, name)
                assert re.search(rf"\b{name}\b", sources), (spec.name, check.kind, name)


def test_every_probe_has_its_staleness_entry_in_config_libsonnet(
    defaults: dict, alerts: dict[str, dict]
) -> None:
    """probe_stale_seconds lists exactly the registered probes, each with its spec's value, so
    a stuck probe (certs once had no entry) always alerts."""
    declared = {spec.name: spec.stale_seconds for spec in REGISTRY.values()}
    assert all(v > 0 for v in declared.values()), declared
    assert defaults["probe_stale_seconds"] == declared
    expr = alerts["EtcdInspectorProbeStale"]["expr"]
    for name, seconds in declared.items():
        assert f'probe="{name}"}} > {seconds:g}' in expr, name


def test_every_probe_declares_its_status_page_view() -> None:
    assert all(spec.view is not no_view for spec in REGISTRY.values())


@pytest.mark.parametrize(
    ("alert", "name"),
    [
        ("EtcdInspectorCompactionStalled", "revisions_since_compaction_max"),
        ("EtcdInspectorLeasesHigh", "leases_max"),
        ("EtcdInspectorBigValues", "big_values_max"),
        ("EtcdInspectorHotKey", "hot_key_writes_per_second"),
        ("EtcdInspectorPrefixKeyGrowth", "prefix_key_growth_max"),
    ],
)
def test_each_inspection_alert_compares_with_the_findings_number(
    alerts: dict[str, dict], defaults: dict, alert: str, name: str
) -> None:
    expr = alerts[alert]["expr"].strip()
    assert float(expr.rsplit(">", 1)[1]) == defaults[name], expr  # jsonnet prints 0.8 in full
    assert getattr(thresholds.DEFAULT, name) == defaults[name]


def test_certificate_findings_use_the_mixins_days_unless_the_probe_sets_its_own() -> None:
    in_90_days = CertsResult((CertExpiry("serving", "m1", "https://m1:2379", T0 + 90 * DAY),), T0)
    rc = inspection().context
    probe = CertsProbe(CertsOptions())
    assert list(probe.findings(in_90_days, rc)) == []  # the default: 21 days
    longer = dataclasses.replace(
        rc, thresholds=thresholds.with_overrides({"certificate_expiry_warning_days": 100})
    )
    (f,) = probe.findings(in_90_days, longer)
    assert (f.check, f.severity, f.threshold) == ("certificate_expiry", "warning", T0 + 100 * DAY)
    assert list(CertsProbe(CertsOptions(warning_days=30)).findings(in_90_days, longer)) == []
