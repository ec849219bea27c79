"""The scrape path end to end: real etcd members, the real exporter subprocess, a real Prometheus.

What the text-level proxy promises: every family a member exposes comes out under its own name
in both formats, a real Prometheus ingests the OpenMetrics it negotiates without an error, a
frozen member costs a scrape about a second (measured), concurrent scrapes share one fetch per
member, and each member can be scraped as its own target.
"""

from __future__ import annotations

import concurrent.futures
import re
import time
import urllib.request
from pathlib import Path

import pytest
from prometheus_client.openmetrics.parser import (
    text_string_to_metric_families as parse_openmetrics,
)

from etcd_inspector.demo.localcluster import LocalCluster
from etcd_inspector.web import grammar
from etcd_inspector.web.relabel import relabel
from etcd_inspector.web.relabel_cache import FamilyCache, go_parts
from harness import MEMBERS, ExporterProcess, all_members_up, endpoints_flag, run_exporter
from promserver import run_prometheus

pytestmark = pytest.mark.etcd

OPENMETRICS = (
    "application/openmetrics-text;version=1.0.0,application/openmetrics-text;"
    "version=0.0.1;q=0.75,text/plain;version=0.0.4;q=0.5,*/*;q=0.1"
)
_SAMPLE_NAME = re.compile(r"[a-zA-Z_:][a-zA-Z0-9_:]*")


def raw_metrics(cluster: LocalCluster, member: str) -> str:
    with urllib.request.urlopen(cluster.member(member).metrics_url, timeout=5) as resp:
        return resp.read().decode()


def type_lines(text: str) -> dict[str, str]:
    """family name -> type, from the `# TYPE` lines of a text exposition."""
    return {
        line.split()[2]: line.split()[3] for line in text.splitlines() if line.startswith("# TYPE ")
    }


def sample_members(text: str) -> dict[str, set[str]]:
    """sample name -> the `member` label values it carries (text or OpenMetrics)."""
    out: dict[str, set[str]] = {}
    for line in text.splitlines():
        if line.startswith("#") or not line:
            continue
        name = _SAMPLE_NAME.match(line)
        assert name is not None, line
        member = re.search(r'[{,]member="([^"]*)"', line)
        out.setdefault(name.group(), set()).add(member.group(1) if member else "")
    return out


def test_every_family_of_every_member_comes_out_under_its_own_name(
    shared_cluster: LocalCluster, tmp_path: Path
) -> None:
    raws = {m: raw_metrics(shared_cluster, m) for m in MEMBERS}
    with run_exporter(
        tmp_path, endpoints_flag(shared_cluster), "--inspection.interval=1s"
    ) as exporter:
        scrape = exporter.wait_for(all_members_up, "all three members up")
        status, openmetrics, _ = exporter.get("/metrics", headers={"Accept": OPENMETRICS})
    assert status == 200
    text = scrape.text

    # Text format: each raw family once, with its type, and every member's samples.
    exposed = type_lines(text)
    for member, raw in raws.items():
        raw_types = type_lines(raw)
        assert "go_memstats_alloc_bytes_total" in raw_types
        missing = {n: t for n, t in raw_types.items() if exposed.get(n) != t}
        assert missing == {}, member
        for name in raw_types:
            assert text.count(f"# TYPE {name} ") == 1, name
    text_samples = sample_members(text)
    om_samples = sample_members(openmetrics)
    raw_sample_names = set().union(*(sample_members(r) for r in raws.values()))
    for name in raw_sample_names:
        assert set(MEMBERS) <= text_samples[name], name
        assert set(MEMBERS) <= om_samples[name], name
    assert text_samples["go_memstats_alloc_bytes_total"] == set(MEMBERS)

    # OpenMetrics, read by prometheus_client's strict parser.
    assert openmetrics.endswith("# EOF\n")
    families = {f.name: f for f in parse_openmetrics(openmetrics)}
    assert families["go_memstats_alloc_bytes_total"].type == "unknown"  # next to the gauge
    assert families["etcd_server_proposals_committed_total"].type == "gauge"  # etcd's own
    assert families["etcd_network_client_grpc_sent_bytes"].type == "counter"
    # The exporter's process_* and the members' share one family: ours without `member`.
    cpu = text_samples["process_cpu_seconds_total"]
    assert cpu == {"", *MEMBERS}
    clashes = scrape.by_member("etcd_inspector_member_family_clashes_total", outcome="merged")
    assert set(clashes) == set(MEMBERS) and min(clashes.values()) >= 5, clashes


@pytest.mark.prometheus
def test_a_real_prometheus_ingests_every_member_without_scrape_errors(
    shared_cluster: LocalCluster, tmp_path: Path
) -> None:
    with run_exporter(
        tmp_path, endpoints_flag(shared_cluster), "--inspection.interval=1s"
    ) as exporter:
        exporter.wait_for(all_members_up, "all three members up")
        config = {
            "global": {"scrape_interval": "1s", "scrape_timeout": "1s"},
            "scrape_configs": [
                {
                    "job_name": "inspector",
                    "honor_labels": True,
                    "static_configs": [{"targets": [f"127.0.0.1:{exporter.port}"]}],
                },
                {
                    "job_name": "member-m2",
                    "honor_labels": True,
                    "metrics_path": "/members/m2/metrics",
                    "static_configs": [{"targets": [f"127.0.0.1:{exporter.port}"]}],
                },
            ],
        }
        with run_prometheus(config, tmp_path / "prometheus") as prom:
            deadline = time.monotonic() + 30
            while True:
                targets = prom.api("targets")["activeTargets"]
                scraped = [t for t in targets if t["lastScrape"] != "0001-01-01T00:00:00Z"]
                if len(scraped) == 2 and all(t["health"] == "up" for t in scraped):
                    break
                assert time.monotonic() < deadline, targets
                time.sleep(0.5)
            time.sleep(2.5)  # a few more scrapes
            targets = prom.api("targets")["activeTargets"]
            assert [(t["health"], t["lastError"]) for t in targets] == [("up", "")] * 2
            per_job = {
                r["metric"]["job"]: r["value"][1]
                for r in prom.query("count by (job) (go_memstats_alloc_bytes_total)")
            }
            assert per_job == {"inspector": "3", "member-m2": "1"}
            members = {
                r["metric"]["member"]
                for r in prom.query('etcd_server_has_leader{job="inspector"}')
            }
            assert members == set(MEMBERS)
            assert prom.query('sum(scrape_samples_scraped{job="inspector"}) > 3000')
            # Not a single scrape failed: up stayed 1 since the first.
            assert prom.query('min_over_time(up{job="inspector"}[10s])')[0]["value"][1] == "1"


def test_a_frozen_member_costs_a_scrape_about_a_second(
    etcd_cluster: LocalCluster, tmp_path: Path
) -> None:
    frozen = etcd_cluster.member("m3")
    with run_exporter(
        tmp_path, endpoints_flag(etcd_cluster), "--inspection.interval=1s"
    ) as exporter:
        exporter.wait_for(all_members_up, "all three members up")
        frozen.freeze()
        try:
            elapsed = []
            for _ in range(8):
                scrape = exporter.scrape(10.5)  # a 10 s budget
                assert scrape.status == 200
                elapsed.append(scrape.elapsed)
                assert scrape.value("etcd_inspector_member_up", member="m3") == 0
                assert set(scrape.by_member("etcd_server_has_leader")) == {"m1", "m2"}
            timeouts = scrape.value(
                "etcd_inspector_member_scrape_errors_total", member="m3", reason="timeout"
            )
            # the first waits "auto" (1 s here), the others a 0.25 s probe
            assert max(elapsed) < 1.5, elapsed
            assert sorted(elapsed)[len(elapsed) // 2] < 0.6, elapsed
            assert timeouts is not None and timeouts >= len(elapsed)
        finally:
            frozen.thaw()
        exporter.wait_for(all_members_up, "m3 is back after the thaw", timeout=15)


def _scrape(exporter: ExporterProcess) -> tuple[int, str]:
    status, body, _ = exporter.get("/metrics", timeout=30)
    return status, body


def test_concurrent_scrapes_share_one_fetch_per_member(
    etcd_cluster: LocalCluster, tmp_path: Path
) -> None:
    scrapers = 20
    with run_exporter(
        tmp_path, endpoints_flag(etcd_cluster), "--inspection.interval=1s"
    ) as exporter:
        before = exporter.wait_for(all_members_up, "all three members up")
        fetches_before = before.by_member("etcd_inspector_member_scrape_fetches_total")
        # Frozen for a moment, every member's fetch lasts long enough for all scrapers to
        # arrive while it is in flight; then they all get what that one fetch brought.
        for m in etcd_cluster.members:
            m.freeze()
        try:
            with concurrent.futures.ThreadPoolExecutor(scrapers) as pool:
                futures = [pool.submit(_scrape, exporter) for _ in range(scrapers)]
                time.sleep(0.5)
                for m in etcd_cluster.members:
                    m.thaw()
                results = [f.result() for f in futures]
        finally:
            for m in etcd_cluster.members:
                m.thaw()
        after = exporter.scrape()
    assert [status for status, _ in results] == [200] * scrapers
    for _, body in results:
        assert sample_members(body)["etcd_server_has_leader"] == set(MEMBERS)
    fetches_after = after.by_member("etcd_inspector_member_scrape_fetches_total")
    # The scrapers' fetch, and the one of the scrape that reads the counter.
    assert {m: fetches_after[m] - fetches_before[m] for m in MEMBERS} == dict.fromkeys(
        MEMBERS, 2.0
    )


def test_each_member_as_its_own_target(shared_cluster: LocalCluster, tmp_path: Path) -> None:
    with run_exporter(
        tmp_path, endpoints_flag(shared_cluster), "--inspection.interval=1s"
    ) as exporter:
        exporter.wait_for(all_members_up, "all three members up")
        status, body, _ = exporter.get("/members/m2/metrics")
        missing = exporter.get("/members/nobody/metrics")
        wrong_cluster = exporter.get("/members/m2/metrics?cluster=other")
    assert status == 200
    members = sample_members(body)
    assert members["etcd_server_has_leader"] == {"m2"}
    assert members["etcd_inspector_member_up"] == {"m2"}
    assert "etcd_inspector_build_info" not in members  # only on /metrics
    assert members["process_cpu_seconds_total"] == {"m2"}
    assert missing[0] == 404 and wrong_cluster[0] == 404


def test_member_timeout_is_configurable(shared_cluster: LocalCluster, tmp_path: Path) -> None:
    config = tmp_path / "config.yml"
    config.write_text(
        "scrape:\n  member_timeout: 3s\nclusters:\n  - name: c\n    endpoints:\n"
        + "".join(f"      - {e}\n" for e in shared_cluster.endpoints)
    )
    with run_exporter(tmp_path, f"--config.file={config}") as exporter:
        scrape = exporter.wait_for(all_members_up, "all three members up")
    assert sample_members(scrape.text)["etcd_server_has_leader"] == set(MEMBERS)


def test_real_member_texts_take_the_go_path_and_agree_with_the_general_one(
    shared_cluster: LocalCluster,
) -> None:
    cache = FamilyCache("c", "m1", None, None)
    for _ in range(2):  # the second text repeats most families: cached
        raw = raw_metrics(shared_cluster, "m1")
        parts = go_parts(raw)
        assert parts and all(grammar.is_go_family(f"# HELP {p.rstrip()}\n") for p in parts)
        fast = cache.relabel(raw)
        assert fast == relabel(raw, "c", "m1")
        assert len(fast.families) > 100
