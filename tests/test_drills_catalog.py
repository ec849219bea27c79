"""The drill catalog covers every rendered alert, and docs/drills.md lists each one (fast: no
cluster). A new alert fails here until it has a drill group or a reason with a promtool case."""

from __future__ import annotations

import re

import yaml

from drill_catalog import CATALOG, FINDINGS, Drill, Reason
from drillkit import REPO, RULES_FILE, drill_rules, rendered_alerts
from drilltable import DOC

DRILL_FILES = {
    p.stem.removeprefix("test_drills_") for p in (REPO / "tests").glob("test_drills_*.py")
}


def test_every_rendered_alert_has_a_drill_or_a_reason() -> None:
    rendered = set(rendered_alerts())
    assert rendered - CATALOG.keys() == set(), "alerts with neither a drill nor a reason"
    assert CATALOG.keys() - rendered == set(), "catalog entries for alerts that do not exist"


def test_every_drill_group_has_its_test_file_and_its_findings_row() -> None:
    groups = {e.group for e in CATALOG.values() if isinstance(e, Drill)}
    assert groups <= DRILL_FILES, groups - DRILL_FILES
    assert groups == set(FINDINGS), groups ^ set(FINDINGS)


def test_every_reason_names_a_promtool_case_for_its_alert() -> None:
    for (alert, _), entry in CATALOG.items():
        if isinstance(entry, Reason):
            text = (REPO / "rules" / "tests" / entry.promtool).read_text()
            assert re.search(rf"alertname:\s*{alert}\b", text), (alert, entry.promtool)


def test_docs_table_lists_every_alert_with_its_catalog_entry() -> None:
    doc = DOC.read_text()
    for alert, severity in rendered_alerts():
        prefix = f"| {alert} | {severity} |"
        row = next((line for line in doc.splitlines() if line.startswith(prefix)), None)
        assert row is not None, f"docs/drills.md has no row for {alert}/{severity}: make drills"
        entry = CATALOG[(alert, severity)]
        expected = f"`{entry.group}`" if isinstance(entry, Drill) else entry.promtool
        assert expected in row, (row, expected)


def test_drill_rules_shorten_for_and_windows_only() -> None:
    original = yaml.safe_load(RULES_FILE.read_text())
    short = drill_rules()
    pairs = [
        (a, b) for ga, gb in zip(original["groups"], short["groups"], strict=True)
        for a, b in zip(ga["rules"], gb["rules"], strict=True)
    ]  # fmt: skip
    for a, b in pairs:
        assert a.get("labels") == b.get("labels") and a.get("annotations") == b.get("annotations")
        if "alert" in a and "for" in a:
            assert b["for"] == "10s"
        # Same expression once the windows are normalised; hour-long windows are kept.
        norm = re.compile(r"\[\d+[smh](:\d+[smh])?\]")
        assert norm.sub("[w]", a["expr"]) == norm.sub("[w]", b["expr"])
    growth = next(b for a, b in pairs if a.get("alert") == "etcdExcessiveDatabaseGrowth")
    assert "[4h]" in growth["expr"]
