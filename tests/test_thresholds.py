"""One source for the numbers a finding and its alert share: config.libsonnet.

report/thresholds.py copies the mixin's defaults (evaluating the jsonnet at every start would
cost a second); these tests render the mixin and fail when the two disagree, when a probe's
default is not the alert's, or when a finding links a runbook no alert has.
"""

from __future__ import annotations

import re
from pathlib import Path

import pytest
import yaml

from etcd_inspector import mixin
from etcd_inspector.config.durations import parse_duration
from etcd_inspector.probes.bigvalue import BigValueOptions
from etcd_inspector.probes.certs import CertsOptions
from etcd_inspector.probes.quota import QUOTA_USED_RATIO_LIMIT
from etcd_inspector.report import thresholds
from etcd_inspector.report.findings import Finding

REPO = Path(__file__).resolve().parents[1]


@pytest.fixture(scope="module")
def defaults() -> dict:
    return mixin.config_defaults()


@pytest.fixture(scope="module")
def alerts() -> dict[str, dict]:
    rendered = yaml.safe_load(mixin.render()["prometheus-rules.yaml"])
    return {r["alert"]: r for g in rendered["groups"] for r in g["rules"] if "alert" in r}


def test_every_copied_default_equals_config_libsonnet(defaults: dict) -> None:
    for name, value in thresholds.MIXIN_DEFAULTS.items():
        assert defaults[name] == value, name
    window = parse_duration(defaults["prefix_key_growth_window"])
    assert window == thresholds.PREFIX_KEY_GROWTH_WINDOW_SECONDS


def test_the_probes_defaults_are_the_alerts_thresholds(defaults: dict) -> None:
    assert QUOTA_USED_RATIO_LIMIT == defaults["quota_used_ratio_warning"]
    assert BigValueOptions().threshold_bytes == defaults["big_value_threshold_bytes"]
    assert CertsOptions().warning_days == defaults["certificate_expiry_warning_days"]
    assert CertsOptions().critical_days == defaults["certificate_expiry_critical_days"]


def test_every_finding_kind_links_an_alert_that_exists(alerts: dict[str, dict]) -> None:
    docs = (REPO / "docs" / "mixin.md").read_text()
    headings = {h.lower() for h in re.findall(r"^### (\S+)", docs, re.MULTILINE)}
    for check, alert in thresholds.ALERT_OF_CHECK.items():
        assert alert in alerts, (check, alert)
        finding = Finding("c", check, "m")
        assert finding.runbook_anchor in headings, check
        assert finding.runbook_url == alerts[alert]["annotations"]["runbook_url"], check


@pytest.mark.parametrize(
    ("alert", "name"),
    [
        ("EtcdInspectorQuotaHeadroomLow", "quota_used_ratio_warning"),
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
    assert thresholds.MIXIN_DEFAULTS[name] == defaults[name]
