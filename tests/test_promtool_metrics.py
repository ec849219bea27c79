"""A real scrape linted by the real `promtool check metrics`."""

from __future__ import annotations

import urllib.request

import pytest

from etcd_inspector.cluster.topology import MemberView, Topology
from etcd_inspector.demo.localcluster import LocalCluster
from etcd_inspector.etcd.client import MemberList, MemberStatus
from etcd_inspector.probes.base import CACHED, NoOptions
from etcd_inspector.probes.status import StatusProbe
from exposition import only_families, promtool_check
from harness import all_members_up, endpoints_flag, run_exporter

pytestmark = [pytest.mark.promtool, pytest.mark.etcd]

def status_probe_family_names() -> set[str]:
    """Every family the status probe's metrics() can produce, from a one-member result."""
    st = MemberStatus("http://h:2379", 1, 2, 1, 3, 4, 4, 5, 6, 7, "3.5.1", False, ())
    result = Topology(
        members=(MemberView("http://h:2379", "m1", st, None),),
        member_list=MemberList(2, ()),
        alarms=(("m1", "NOSPACE"),),
    )
    return {f.name for f in StatusProbe(NoOptions()).metrics("c", result)}


@pytest.fixture(scope="module")
def scrape_text(shared_cluster: LocalCluster, tmp_path_factory) -> str:
    tmp = tmp_path_factory.mktemp("promtool")
    with run_exporter(tmp, endpoints_flag(shared_cluster), "--inspection.interval=1s") as exporter:
        exporter.wait_for(
            lambda s: (
                all_members_up(s) and s.value("etcd_inspector_probe_success", probe="status") == 1
            ),
            "all members up, status probe done",
        )
        return exporter.scrape().text


def test_promtool_is_clean_on_the_exporters_own_metrics(scrape_text: str) -> None:
    own = only_families(scrape_text, "etcd_inspector_")
    assert "etcd_inspector_member_up{" in own and "etcd_inspector_member_info{" in own
    assert "etcd_server_has_leader" not in own
    assert promtool_check(own) == (0, [])


def test_status_probe_metrics_say_they_are_cached(scrape_text: str) -> None:
    names = status_probe_family_names()
    assert "etcd_inspector_member_db_size_bytes" in names and len(names) >= 10
    helps = dict(
        line[len("# HELP ") :].split(" ", 1)
        for line in scrape_text.splitlines()
        if line.startswith("# HELP etcd_inspector_")
    )
    assert names <= helps.keys(), names - helps.keys()
    for name in names:
        assert helps[name].endswith(CACHED), (name, helps[name])
    # Computed during the scrape itself: no Cached sentence.
    assert CACHED not in helps["etcd_inspector_member_scrape_duration_seconds"]


def test_proxying_adds_no_lint_problem_to_etcds_own(
    scrape_text: str, shared_cluster: LocalCluster
) -> None:
    """etcd's own /metrics has lint findings (gauges named *_total, milliseconds); the proxied
    output may have those, and nothing else: no parse error, no duplicate, no missing HELP."""
    with urllib.request.urlopen(shared_cluster.member("m1").metrics_url, timeout=5) as resp:
        raw = resp.read().decode()
    raw_rc, raw_problems = promtool_check(raw)
    rc, problems = promtool_check(scrape_text)
    assert rc in (0, 3)  # 3: lint findings only; 1 would be a parse error
    assert not [p for p in problems if "error" in p.lower()]
    assert set(problems) <= set(raw_problems), sorted(set(problems) - set(raw_problems))
    assert (rc == 0) == (raw_rc == 0)
