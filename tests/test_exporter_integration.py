"""The real `etcd-inspector run` against real 3-member etcd clusters on 127.0.0.1.

The exporter runs as a subprocess of the installed CLI on a free port, exactly as an operator
starts it (tests/harness.py).
"""

from __future__ import annotations

import signal
import time
from pathlib import Path

import pytest

from etcd_inspector.demo.localcluster import LocalCluster
from harness import (
    MEMBERS,
    all_members_up,
    enable_auth_with_read_only_user,
    endpoints_flag,
    established_connections,
    member_ids,
    run_exporter,
)

pytestmark = pytest.mark.etcd


def test_run_serves_every_member_with_cluster_and_member_labels(
    shared_cluster: LocalCluster, tmp_path: Path
) -> None:
    metrics_urls = ",".join(m.metrics_url for m in shared_cluster.members)
    with run_exporter(
        tmp_path,
        endpoints_flag(shared_cluster),
        f"--etcd.metrics-urls={metrics_urls}",
        "--etcd.cluster-name=itest",
        "--inspection.interval=1s",
    ) as exporter:
        scrape = exporter.wait_for(all_members_up, "all three members up")

        assert scrape.by_member("etcd_server_has_leader", cluster="itest") == dict.fromkeys(
            MEMBERS, 1.0
        )
        assert scrape.by_member("etcd_inspector_member_up", cluster="itest") == dict.fromkeys(
            MEMBERS, 1.0
        )
        assert scrape.value("etcd_inspector_probe_success", cluster="itest", probe="status") == 1
        # The member label is etcd's own name for the member, matched by its real ID.
        ids = member_ids(shared_cluster)
        info = {s.labels["member"]: s.labels for s in scrape.samples("etcd_inspector_member_info")}
        assert {name: labels["member_id"] for name, labels in info.items()} == ids
        assert {name: labels["endpoint"] for name, labels in info.items()} == {
            m.name: m.client_url for m in shared_cluster.members
        }
        # Exactly one leader, and etcd's own metric agrees on which.
        leaders = scrape.by_member("etcd_inspector_member_is_leader")
        assert sorted(leaders.values()) == [0, 0, 1]
        assert leaders == scrape.by_member("etcd_server_is_leader")

        # --etcd.metrics-urls is used: the exporter holds HTTP connections to every member's
        # separate metrics listener (aiohttp keeps them alive between scrapes).
        for m in shared_cluster.members:
            assert established_connections(exporter.pid, m.metrics_port) >= 1, m.name

        status, body, _ = exporter.get("/")
        assert status == 200
        assert '<a href="/metrics">' in body
        for m in shared_cluster.members:
            assert (
                f"<td><b>{m.name}</b></td><td><code>{m.client_url}</code></td>"
                '<td><span class="state state-up">up</span></td>'
            ) in body
        assert exporter.get("/api/v1/status")[0] == 200
        assert exporter.get("/-/healthy")[:2] == (200, "Healthy.\n")
        assert exporter.get("/-/ready")[:2] == (200, "Ready.\n")
        assert exporter.get("/no-such-page")[0] == 404


def test_without_metrics_urls_the_client_urls_serve_metrics(
    shared_cluster: LocalCluster, tmp_path: Path
) -> None:
    with run_exporter(
        tmp_path, endpoints_flag(shared_cluster), "--inspection.interval=1s"
    ) as exporter:
        scrape = exporter.wait_for(all_members_up, "all three members up")
        assert scrape.by_member("etcd_server_has_leader", cluster="default") == dict.fromkeys(
            MEMBERS, 1.0
        )
        for m in shared_cluster.members:
            assert established_connections(exporter.pid, m.metrics_port) == 0, m.name


def test_openmetrics_negotiation_gives_a_strictly_valid_exposition(
    shared_cluster: LocalCluster, tmp_path: Path
) -> None:
    # Prometheus asks for OpenMetrics first; its parser is strict, as is prometheus_client's.
    from prometheus_client.openmetrics.parser import (
        text_string_to_metric_families as parse_openmetrics,
    )

    accept = (
        "application/openmetrics-text;version=1.0.0,application/openmetrics-text;"
        "version=0.0.1;q=0.75,text/plain;version=0.0.4;q=0.5,*/*;q=0.1"
    )
    with run_exporter(
        tmp_path, endpoints_flag(shared_cluster), "--inspection.interval=1s"
    ) as exporter:
        exporter.wait_for(all_members_up, "all three members up")
        status, body, _ = exporter.get("/metrics", headers={"Accept": accept})
    assert status == 200
    assert body.endswith("# EOF\n")
    families = {f.name: f for f in parse_openmetrics(body)}
    has_leader = families["etcd_server_has_leader"]
    assert sorted(s.labels["member"] for s in has_leader.samples) == list(MEMBERS)
    assert families["etcd_inspector_member_scrape_errors"].type == "counter"


def test_read_only_user_is_enough_for_the_status_probe(
    etcd_cluster: LocalCluster, tmp_path: Path
) -> None:
    enable_auth_with_read_only_user(etcd_cluster, "inspector", "s3cret-pw")
    password_file = tmp_path / "password"
    password_file.write_text("s3cret-pw\n")  # the trailing newline is the editor's
    with run_exporter(
        tmp_path,
        endpoints_flag(etcd_cluster),
        "--etcd.username=inspector",
        f"--etcd.password-file={password_file}",
        "--inspection.interval=1s",
    ) as exporter:
        scrape = exporter.wait_for(
            lambda s: (
                all_members_up(s) and s.value("etcd_inspector_probe_success", probe="status") == 1
            ),
            "status probe succeeds with the read-only user",
        )
        assert set(scrape.by_member("etcd_inspector_member_revision")) == set(MEMBERS)
        assert set(scrape.by_member("etcd_inspector_member_info")) == set(MEMBERS)
        # Alarms need only read access too.
        assert len(scrape.samples("etcd_inspector_member_alarm")) == 2 * len(MEMBERS)


def test_wrong_password_fails_the_status_probe_but_not_the_exporter(
    etcd_cluster: LocalCluster, tmp_path: Path
) -> None:
    enable_auth_with_read_only_user(etcd_cluster, "inspector", "right-pw")
    password_file = tmp_path / "password"
    password_file.write_text("wrong-pw")
    with run_exporter(
        tmp_path,
        endpoints_flag(etcd_cluster),
        "--etcd.username=inspector",
        f"--etcd.password-file={password_file}",
        "--inspection.interval=1s",
    ) as exporter:
        scrape = exporter.wait_for(
            lambda s: s.value("etcd_inspector_probe_success", probe="status") == 0,
            "status probe fails with a wrong password",
        )
        # Never identified: the members are labeled host:port.
        assert scrape.by_member("etcd_inspector_member_up") == dict.fromkeys(
            (f"127.0.0.1:{m.client_port}" for m in etcd_cluster.members), 0.0
        )
        # /metrics of the members needs no etcd auth: the proxied part is still there.
        assert len(scrape.samples("etcd_server_has_leader")) == 3
        assert exporter.get("/-/ready")[0] == 200
        # The operator is told why, not just "error".
        assert (
            'err="every member refused us: authentication failed (wrong user name or password)"'
            in exporter.log()
        )
        # ...and the status page names the cause, not members down: they answered.
        page = exporter.get("/")[1]
        assert "cannot inspect" in page and "authentication failed (wrong user name" in page
        assert ">down<" not in page  # no member is called down


def test_sigterm_stops_the_exporter_promptly(shared_cluster: LocalCluster, tmp_path: Path) -> None:
    with run_exporter(
        tmp_path, endpoints_flag(shared_cluster), "--inspection.interval=1s"
    ) as exporter:
        exporter.wait_for(all_members_up, "all three members up")
        start = time.monotonic()
        exporter.signal(signal.SIGTERM)
        assert exporter.process is not None
        assert exporter.process.wait(timeout=10) == 0
        assert time.monotonic() - start < 5
