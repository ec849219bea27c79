"""Tiered quota findings: each member's finding has the severity of the highest tier it is over
(config.libsonnet's quota_used_ratio_tiers, the same list the alert rules are rendered from)."""

from __future__ import annotations

import pytest
import yaml

from etcd_inspector import mixin
from etcd_inspector.probes.base import ReportContext
from etcd_inspector.probes.quota import MemberQuota, QuotaOptions, QuotaProbe, QuotaResult
from etcd_inspector.report import thresholds

QUOTA = 1000


def result(*used: float) -> QuotaResult:
    return QuotaResult(tuple(
        MemberQuota(f"http://m{i}:2379", f"m{i}", round(u * QUOTA), round(u * QUOTA), QUOTA,
                    "option", None)
        for i, u in enumerate(used, 1)
    ))  # fmt: skip


def rc(t: thresholds.Thresholds = thresholds.DEFAULT) -> ReportContext:
    return ReportContext("prod", (), {}, thresholds=t)


def test_each_member_gets_the_severity_of_the_highest_tier_it_crossed() -> None:
    found = list(QuotaProbe(QuotaOptions()).findings(result(0.6, 0.7, 0.8, 0.9), rc()))
    assert [(f.member, str(f.severity), f.threshold) for f in found] == [
        ("m2", "info", 0.65), ("m3", "warning", 0.75), ("m4", "critical", 0.85)
    ]  # fmt: skip
    assert found[1].message == (
        "member m3 uses 80% of its quota (800 B of 1000 B; warning tier: limit 75%)"
    )


def test_operator_tiers_move_the_findings_and_the_rendered_rules_together() -> None:
    tiers = [{"severity": "warning", "ratio": 0.5}, {"severity": "critical", "ratio": 0.95}]
    t = thresholds.with_overrides({"quota_used_ratio_tiers": tiers})
    found = list(QuotaProbe(QuotaOptions()).findings(result(0.6, 0.96), rc(t)))
    assert [(str(f.severity), f.threshold) for f in found] == [("warning", 0.5), ("critical", 0.95)]
    rules = yaml.safe_load(
        mixin.render({"quota_used_ratio_tiers": tiers})["prometheus-rules.yaml"]
    )
    quota = [r for g in rules["groups"] for r in g["rules"]
             if r.get("alert") == "EtcdInspectorQuotaHeadroomLow"]  # fmt: skip
    assert [(r["labels"]["severity"], float(r["expr"].rsplit(">", 1)[1])) for r in quota] == [
        ("warning", 0.5), ("critical", 0.95)
    ]  # fmt: skip


@pytest.mark.parametrize(
    ("tiers", "message"),
    [
        ([], "must be a non-empty list"),
        ([{"severity": "info"}], "each tier is {severity: ..., ratio: ...}"),
        ([{"severity": "info", "ratio": 1.5}], r"ratio must be a number in \(0, 1\], got 1.5"),
    ],
)
def test_bad_tiers_are_one_clear_error(tiers: list[object], message: str) -> None:
    with pytest.raises(thresholds.ThresholdsError, match=message):
        thresholds.with_overrides({"quota_used_ratio_tiers": tiers})
