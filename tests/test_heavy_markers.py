"""The fast lane's guarantee: a test that starts etcd, Prometheus, promtool or Chromium without
its marker fails (tests/heavy.py, conftest.py), so `-m "not etcd ..."` never starts one."""

from __future__ import annotations

import shutil
from pathlib import Path

import pytest

pytest_plugins = ("pytester",)

TESTS = Path(__file__).resolve().parent

INNER = '''
import pytest

import heavy
from etcd_inspector.demo.localcluster import LocalMember


def test_unmarked_cluster_fixture(etcd_binary):
    pass


def test_unmarked_member_start(tmp_path):
    member = LocalMember("m1", 1, 2, 3, tmp_path, tmp_path / "log", args=["/no/such/etcd"])
    member.start()


def test_unmarked_prometheus():
    heavy.require("prometheus", "starts a Prometheus server")


@pytest.mark.prometheus
def test_marked_prometheus():
    heavy.require("prometheus", "starts a Prometheus server")
'''


def test_an_unmarked_test_that_starts_something_heavy_fails_in_one_line(
    pytester: pytest.Pytester,
) -> None:
    for helper in ("conftest.py", "heavy.py"):
        shutil.copy(TESTS / helper, pytester.path / helper)
    pytester.makeini(
        "[pytest]\nmarkers =\n    etcd: x\n    prometheus: x\n    promtool: x\n    browser: x\n"
    )
    pytester.makepyfile(test_inner=INNER)
    result = pytester.runpytest_subprocess("-p", "no:cacheprovider", "-q", "--strict-markers")
    result.assert_outcomes(passed=1, failed=2, errors=1)
    result.stdout.fnmatch_lines_random([
        "*test_unmarked_cluster_fixture uses the fixture etcd_binary but is not marked: "
        "add @pytest.mark.etcd*",
        "*test_unmarked_member_start starts etcd member m1 but is not marked: "
        "add @pytest.mark.etcd*",
        "*test_unmarked_prometheus starts a Prometheus server but is not marked: "
        "add @pytest.mark.prometheus*",
    ])  # fmt: skip
