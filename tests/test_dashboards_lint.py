"""The committed dashboards checked the way the monitoring mixins check theirs.

* parsed by Grafana's own models (`grafana-foundation-sdk`, a Grafana 11 build): every panel
  is a known panel type whose options and targets parse into that plugin's typed models, and
  a round trip through the models loses nothing but what the schema leaves out;
* the dashboard-linter rules the mixins keep: a datasource variable that every panel and
  target uses, a unit on every panel, `$__rate_interval` in every rate/irate/increase (fixed
  windows are listed below with the reason, as a `.lint` exclusion would), every raw selector
  matching the exporter's job and `$cluster`, stable `uid`s named after their files.

Each query's PromQL is checked by promtool in tests/test_rules_promtool.py, and returns data
against a real cluster in tests/test_dashboards_prometheus.py.
"""

from __future__ import annotations

import json
import re
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import pytest
from grafana_foundation_sdk.cog import runtime
from grafana_foundation_sdk.cog.encoder import JSONEncoder
from grafana_foundation_sdk.cog.plugins import register_default_plugins
from grafana_foundation_sdk.models import prometheus
from grafana_foundation_sdk.models.dashboard import Dashboard, Panel, RowPanel

from etcd_inspector.mixin import config_defaults

REPO = Path(__file__).resolve().parents[1]
DASHBOARDS = sorted((REPO / "dashboards").glob("*.json"))
DATASOURCE = {"type": "prometheus", "uid": "${datasource}"}

# A query variable's `definition` is what Grafana's editor shows; the schema leaves it out.
NOT_IN_THE_SCHEMA = {"definition"}

# "uid:title" -> why the panel shows a fixed window rather than $__rate_interval.
FIXED_WINDOWS = {
    "etcd-inspector-overview:Leader changes (1h)": "the title names the window: the last hour",
    "etcd-inspector-overview:Total leader elections per day": "the title names the window: a day",
}

_RANGE_FUNCTION = re.compile(r"\b(rate|irate|increase)\s*\((?P<arg>[^\[]*)\[(?P<range>[^\]]+)\]")
# A selector: a metric name followed by its matchers.
_SELECTOR = re.compile(r"(?P<metric>[A-Za-z_:][A-Za-z0-9_:]*)\{(?P<matchers>[^}]*)\}")

register_default_plugins()


def load(path: Path) -> dict[str, Any]:
    data: dict[str, Any] = json.loads(path.read_text())
    return data


def panels(dashboard: dict[str, Any]) -> Iterator[dict[str, Any]]:
    for panel in dashboard["panels"]:
        yield panel
        yield from panel.get("panels", [])


def query_panels(dashboard: dict[str, Any]) -> Iterator[dict[str, Any]]:
    return (p for p in panels(dashboard) if p["type"] != "row")


def lost_in_round_trip(before: Any, after: Any, path: str = "") -> list[str]:
    """Paths of what `before` has and `after` lacks or holds differently."""
    if isinstance(before, dict):
        if not isinstance(after, dict):
            return [path]
        lost = []
        for key, value in before.items():
            if key not in after:
                if key not in NOT_IN_THE_SCHEMA:
                    lost.append(f"{path}/{key}")
            else:
                lost += lost_in_round_trip(value, after[key], f"{path}/{key}")
        return lost
    if isinstance(before, list):
        if not isinstance(after, list) or len(before) != len(after):
            return [path]
        return [p for i, (b, a) in enumerate(zip(before, after, strict=True)) for p in
                lost_in_round_trip(b, a, f"{path}[{i}]")]  # fmt: skip
    return [] if before == after else [f"{path}: {before!r} -> {after!r}"]


@pytest.mark.parametrize("path", DASHBOARDS, ids=[p.stem for p in DASHBOARDS])
def test_grafana_models_parse_the_dashboard_and_lose_nothing(path: Path) -> None:
    data = load(path)
    dashboard = Dashboard.from_json(data)
    assert dashboard.uid == data["uid"] and dashboard.title == data["title"]
    assert data["schemaVersion"] >= 39  # Grafana 11's schema (10.3 and later write 39)
    again = json.loads(json.dumps(dashboard, cls=JSONEncoder))
    assert lost_in_round_trip(data, again) == []


@pytest.mark.parametrize("path", DASHBOARDS, ids=[p.stem for p in DASHBOARDS])
def test_every_panel_is_a_known_type_with_typed_options_and_prometheus_targets(
    path: Path,
) -> None:
    dashboard = Dashboard.from_json(load(path))
    found = 0
    stack: list[Panel | RowPanel] = list(dashboard.panels or [])
    while stack:
        panel = stack.pop()
        if isinstance(panel, RowPanel):
            stack.extend(panel.panels or [])
            continue
        assert runtime.panelcfg_config(panel.type_val) is not None, panel.type_val
        assert panel.options is not None and not isinstance(panel.options, dict), panel.title
        assert panel.targets, panel.title
        for target in panel.targets:
            assert isinstance(target, prometheus.Dataquery), (panel.title, target)
            assert target.expr and target.ref_id, panel.title
        found += 1
    assert found == len(list(query_panels(load(path))))


@pytest.mark.parametrize("path", DASHBOARDS, ids=[p.stem for p in DASHBOARDS])
def test_a_datasource_variable_that_every_panel_uses(path: Path) -> None:
    dashboard = load(path)
    variables = {v["name"]: v for v in dashboard["templating"]["list"]}
    assert variables["datasource"]["type"] == "datasource"
    assert variables["datasource"]["query"] == "prometheus"
    for var in variables.values():
        if var["type"] == "query":
            assert var["datasource"] == DATASOURCE, var["name"]
    for panel in query_panels(dashboard):
        assert panel["datasource"] == DATASOURCE, panel["title"]
        for target in panel["targets"]:
            assert target.get("datasource", DATASOURCE) == DATASOURCE, panel["title"]


@pytest.mark.parametrize("path", DASHBOARDS, ids=[p.stem for p in DASHBOARDS])
def test_every_panel_has_a_unit(path: Path) -> None:
    for panel in query_panels(load(path)):
        unit = panel.get("fieldConfig", {}).get("defaults", {}).get("unit")
        assert unit, f"{panel['title']}: no fieldConfig.defaults.unit"


def rate_ranges(dashboard: dict[str, Any]) -> list[tuple[str, str]]:
    """("uid:title", range) of every rate/irate/increase in the dashboard's queries."""
    return [
        (f"{dashboard['uid']}:{panel['title']}", m["range"])
        for panel in query_panels(dashboard)
        for target in panel["targets"]
        for m in _RANGE_FUNCTION.finditer(target["expr"])
    ]


@pytest.mark.parametrize("path", DASHBOARDS, ids=[p.stem for p in DASHBOARDS])
def test_rates_use_the_rate_interval(path: Path) -> None:
    found = rate_ranges(load(path))
    wrong = [(i, r) for i, r in found if r != "$__rate_interval" and i not in FIXED_WINDOWS]
    assert wrong == []
    fixed = {i for i, r in found if r != "$__rate_interval"}
    uid = load(path)["uid"]
    assert fixed == {i for i in FIXED_WINDOWS if i.startswith(uid + ":")}, "stale exclusions"


def test_the_rate_rule_catches_a_fixed_range() -> None:
    panel = {"type": "timeseries", "title": "t", "targets": [{"expr": "sum(rate(x{a='b'}[5m]))"}]}
    assert rate_ranges({"uid": "u", "panels": [panel]}) == [("u:t", "5m")]


@pytest.mark.parametrize("path", DASHBOARDS, ids=[p.stem for p in DASHBOARDS])
def test_every_selector_matches_the_job_and_the_cluster_variable(path: Path) -> None:
    job = config_defaults()["exporter_selector"]
    for panel in query_panels(load(path)):
        for target in panel["targets"]:
            selectors = list(_SELECTOR.finditer(target["expr"]))
            assert selectors, (panel["title"], target["expr"])
            for s in selectors:
                assert 'cluster=~"$cluster"' in s["matchers"], (panel["title"], s[0])
                if ":" not in s["metric"]:  # recording rules carry no job label
                    assert job in s["matchers"], (panel["title"], s[0])


def test_uids_are_stable_unique_and_named_after_their_files() -> None:
    uids = [load(p)["uid"] for p in DASHBOARDS]
    assert uids == [p.stem for p in DASHBOARDS]
    assert len(set(uids)) == len(uids)
    for uid in uids:
        assert re.fullmatch(r"[a-z0-9-]{1,40}", uid), uid  # Grafana's limit is 40
    chart = REPO / "charts" / "etcd-inspector" / "files" / "dashboards"
    assert sorted(p.name for p in chart.glob("*.json")) == [p.name for p in DASHBOARDS]


def test_the_round_trip_catches_a_misspelt_field() -> None:
    data = load(DASHBOARDS[0])
    panel = next(query_panels(data))
    panel["fieldconfig"] = panel.pop("fieldConfig")  # Grafana would ignore it silently
    again = json.loads(json.dumps(Dashboard.from_json(data), cls=JSONEncoder))
    where = data["panels"].index(panel)
    assert lost_in_round_trip(data, again) == [f"/panels[{where}]/fieldconfig"]
