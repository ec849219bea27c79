"""The rendered rules with the real promtool: `check rules`, and `test rules` for every alert.

rules/tests/*.test.yaml run against the default rendering (members scraped through the
exporter); rules/tests/direct/*.test.yaml against a rendering with rules/tests/direct/values.yaml
(members scraped directly, as with the upstream etcd mixin). Every alert must have a test where
it fires and one where it does not. promtool missing is a failure, never a skip.
"""

from __future__ import annotations

import re
import shutil
import subprocess
from pathlib import Path

import pytest
import yaml

import heavy
from etcd_inspector import mixin

REPO = Path(__file__).resolve().parents[1]
TESTS = REPO / "rules" / "tests"
DEFAULT_TESTS = sorted(TESTS.glob("*.test.yaml"))
DIRECT_TESTS = sorted((TESTS / "direct").glob("*.test.yaml"))

RULE_FILES = re.compile(r"^rule_files:.*$", re.MULTILINE)

pytestmark = pytest.mark.promtool


def promtool() -> str:
    heavy.require("promtool", "runs promtool")
    found = shutil.which("promtool")
    if not found:
        pytest.fail("promtool not found: install Debian's prometheus package (scripts/bootstrap)")
    return found


def run_promtool(*args: str, cwd: Path) -> str:
    out = subprocess.run(
        [promtool(), *args], cwd=cwd, capture_output=True, text=True, timeout=120, check=False
    )
    output = out.stdout + out.stderr
    assert out.returncode == 0, f"promtool {' '.join(args)} failed:\n{output}"
    return output


def render_into(directory: Path, values_file: Path | None) -> Path:
    mixin.generate(directory, values_file)
    return directory / "prometheus-rules.yaml"


@pytest.fixture(scope="module")
def default_dir(tmp_path_factory: pytest.TempPathFactory) -> Path:
    directory = tmp_path_factory.mktemp("default")
    render_into(directory, None)
    return directory


@pytest.fixture(scope="module")
def direct_dir(tmp_path_factory: pytest.TempPathFactory) -> Path:
    directory = tmp_path_factory.mktemp("direct")
    render_into(directory, TESTS / "direct" / "values.yaml")
    return directory


def stage(test_file: Path, rendering: Path) -> Path:
    """Copy a test beside a fresh rendering, pointing rule_files at it. The text is edited,
    not re-dumped: YAML 1.1 would turn series values such as `0x5` into numbers."""
    text, count = RULE_FILES.subn("rule_files: [prometheus-rules.yaml]", test_file.read_text())
    assert count == 1, f"{test_file}: expected one `rule_files:` line"
    staged = rendering / test_file.name
    staged.write_text(text)
    return staged


def alert_names(rule_file: Path) -> set[str]:
    groups = yaml.safe_load(rule_file.read_text())["groups"]
    return {rule["alert"] for group in groups for rule in group["rules"] if "alert" in rule}


def covered(test_files: list[Path]) -> tuple[set[str], set[str]]:
    """Alert names with a firing case, and with a case where they do not fire."""
    fires, quiet = set(), set()
    for test_file in test_files:
        for case in yaml.safe_load(test_file.read_text())["tests"]:
            for check in case.get("alert_rule_test", []):
                (fires if check.get("exp_alerts") else quiet).add(check["alertname"])
    return fires, quiet


def test_default_rules_pass_check_rules(default_dir: Path) -> None:
    output = run_promtool("check", "rules", "prometheus-rules.yaml", cwd=default_dir)
    assert "SUCCESS" in output


def test_direct_rules_pass_check_rules(direct_dir: Path) -> None:
    output = run_promtool("check", "rules", "prometheus-rules.yaml", cwd=direct_dir)
    assert "SUCCESS" in output


def test_committed_rule_file_passes_check_rules() -> None:
    run_promtool("check", "rules", "prometheus-rules.yaml", cwd=REPO / "rules")


@pytest.mark.parametrize("test_file", DEFAULT_TESTS, ids=lambda p: p.name)
def test_promtool_unit_tests_default(test_file: Path, default_dir: Path) -> None:
    staged = stage(test_file, default_dir)
    run_promtool("test", "rules", staged.name, cwd=default_dir)


@pytest.mark.parametrize("test_file", DIRECT_TESTS, ids=lambda p: p.name)
def test_promtool_unit_tests_direct(test_file: Path, direct_dir: Path) -> None:
    staged = stage(test_file, direct_dir)
    run_promtool("test", "rules", staged.name, cwd=direct_dir)


def test_committed_tests_point_at_the_committed_rendering() -> None:
    """`promtool test rules rules/tests/*.test.yaml` works by hand: the tests name the
    committed rule file, which test_mixin_render keeps equal to the rendering run above."""
    for test_file in DEFAULT_TESTS:
        assert RULE_FILES.findall(test_file.read_text()) == [
            "rule_files: [../prometheus-rules.yaml]"
        ], test_file.name


def test_every_alert_fires_and_stays_quiet_in_a_test(default_dir: Path) -> None:
    names = alert_names(default_dir / "prometheus-rules.yaml")
    fires, quiet = covered(DEFAULT_TESTS)
    assert not names - fires, f"no test where these fire: {sorted(names - fires)}"
    assert not names - quiet, f"no test where these do not fire: {sorted(names - quiet)}"
    unknown = (fires | quiet) - names
    assert not unknown, f"tests of alerts that do not exist: {sorted(unknown)}"


def test_every_etcd_alert_is_tested_with_members_scraped_directly(direct_dir: Path) -> None:
    names = {n for n in alert_names(direct_dir / "prometheus-rules.yaml") if n.startswith("etcd")}
    fires, quiet = covered(DIRECT_TESTS)
    assert not names - fires, f"no direct test where these fire: {sorted(names - fires)}"
    assert not names - quiet, f"no direct test where these stay quiet: {sorted(names - quiet)}"


def test_every_dashboard_query_is_valid_promql(tmp_path: Path) -> None:
    """Each panel query (variables substituted as mixin.dashboard_queries does) parses."""
    queries = mixin.dashboard_queries(mixin.render())
    rules = [
        {"record": f"dashboard:query:{i}", "expr": expr} for i, (_, _, expr) in enumerate(queries)
    ]
    (tmp_path / "queries.yaml").write_text(
        yaml.safe_dump({"groups": [{"name": "dashboard-queries", "rules": rules}]})
    )
    output = run_promtool("check", "rules", "queries.yaml", cwd=tmp_path)
    assert f"SUCCESS: {len(queries)} rules found" in output
