"""Faults: a frozen member, a killed one, none reachable, broken /metrics, slow /metrics.

The exporter is the real CLI subprocess (helpers from test_exporter_integration); the members
are real etcd processes frozen with SIGSTOP or killed with SIGKILL. The only fakes are the two
named /metrics servers in tests/fakes.py.
"""

from __future__ import annotations

import asyncio
import json
import signal
import time
import urllib.request
from pathlib import Path

import aiohttp
import pytest
import yaml

from etcd_inspector.demo.localcluster import LocalCluster
from etcd_inspector.etcd.metrics_fetch import fetch_metrics
from etcd_inspector.ports import free_ports
from etcd_inspector.web.relabel import relabel
from fakes import DribblingMetricsServer, GarbageMetricsServer
from harness import (
    MEMBERS,
    all_members_up,
    endpoints_flag,
    established_connections,
    run_exporter,
)

SCRAPE_TIMEOUT = 2.0  # what Prometheus would send in X-Prometheus-Scrape-Timeout-Seconds
MAX_SCRAPE_SECONDS = 2.5
INTERVAL_FLAG = "--inspection.interval=1s"


@pytest.mark.etcd
def test_frozen_member_is_down_others_stay_up_nothing_piles_up_and_shutdown_is_prompt(
    etcd_cluster: LocalCluster, tmp_path: Path
) -> None:
    frozen = etcd_cluster.member("m3")
    with run_exporter(tmp_path, endpoints_flag(etcd_cluster), INTERVAL_FLAG) as exporter:
        exporter.wait_for(all_members_up, "all three members up")
        frozen.freeze()
        try:
            # Within a probe interval (plus one scrape budget) the status probe has m3 down,
            # and the other members' Status answers are still published.
            exporter.wait_for(
                lambda s: (
                    s.elapsed < MAX_SCRAPE_SECONDS
                    and set(s.by_member("etcd_inspector_member_revision")) == {"m1", "m2"}
                ),
                "status probe drops the frozen m3 and keeps m1, m2",
                timeout=1.0 + MAX_SCRAPE_SECONDS,
                scrape_timeout=SCRAPE_TIMEOUT,
            )
            connections = []
            deadline = time.monotonic() + 4.5  # several probe intervals
            while time.monotonic() < deadline:
                scrape = exporter.scrape(SCRAPE_TIMEOUT)
                assert scrape.status == 200
                assert scrape.elapsed < MAX_SCRAPE_SECONDS
                assert scrape.by_member("etcd_inspector_member_up") == {
                    "m1": 1.0, "m2": 1.0, "m3": 0.0,
                }  # fmt: skip
                assert set(scrape.by_member("etcd_server_has_leader")) == {"m1", "m2"}
                assert scrape.value("etcd_inspector_probe_success", probe="status") == 1
                connections.append(established_connections(exporter.pid, frozen.client_port))
            # One gRPC channel and a few HTTP connections, however long it lasts: the scrape's
            # fetch, the status probe's /metrics liveness check (slow or down?) and the
            # performance probe's read each hold at most one while it times out.
            assert len(connections) >= 3
            assert max(connections) <= 5, connections
            errors = exporter.scrape(SCRAPE_TIMEOUT).value(
                "etcd_inspector_member_scrape_errors_total", member="m3", reason="timeout"
            )
            assert errors is not None and errors >= len(connections)

            start = time.monotonic()
            exporter.signal(signal.SIGTERM)
            assert exporter.process is not None
            assert exporter.process.wait(timeout=10) == 0
            assert time.monotonic() - start < 5
        finally:
            frozen.thaw()


@pytest.mark.etcd
def test_killed_member_comes_back_without_restarting_the_exporter(
    etcd_cluster: LocalCluster, tmp_path: Path
) -> None:
    victim = etcd_cluster.member("m2")
    with run_exporter(tmp_path, endpoints_flag(etcd_cluster), INTERVAL_FLAG) as exporter:
        exporter.wait_for(all_members_up, "all three members up")
        victim.kill()
        scrape = exporter.wait_for(
            lambda s: s.by_member("etcd_inspector_member_up") == {"m1": 1, "m2": 0, "m3": 1},
            "killed m2 is down, m1 and m3 stay up",
            timeout=5,
        )
        # A member that is down keeps the name its peers know it by.
        assert set(scrape.by_member("etcd_server_has_leader")) == {"m1", "m3"}
        assert scrape.value(
            "etcd_inspector_member_scrape_errors_total", member="m2", reason="connect"
        )
        victim.start()
        etcd_cluster.wait_healthy(members=[victim])
        scrape = exporter.wait_for(all_members_up, "restarted m2 is up again", timeout=15)
        assert scrape.by_member("etcd_server_has_leader") == dict.fromkeys(MEMBERS, 1.0)
        assert set(scrape.by_member("etcd_inspector_member_revision")) == set(MEMBERS)
        assert exporter.process is not None and exporter.process.poll() is None


def test_no_member_reachable_at_start(tmp_path: Path) -> None:
    ports = free_ports(3)  # nobody listens there
    endpoints = ",".join(f"http://127.0.0.1:{p}" for p in ports)
    names = {f"127.0.0.1:{p}" for p in ports}
    with run_exporter(tmp_path, f"--etcd.endpoints={endpoints}", INTERVAL_FLAG) as exporter:
        # Ready means: the first status round has finished, even though it failed.
        deadline = time.monotonic() + 10
        while exporter.get("/-/ready")[0] != 200:
            assert time.monotonic() < deadline, "never ready"
            time.sleep(0.1)
        scrape = exporter.scrape(SCRAPE_TIMEOUT)
        assert scrape.status == 200
        assert scrape.by_member("etcd_inspector_member_up") == dict.fromkeys(names, 0.0)
        assert scrape.value("etcd_inspector_probe_success", probe="status") == 0
        # No probe that needs a member has ever succeeded (certs and backup read local files).
        for probe in ("status", "consistency", "quota", "bigvalue", "hotkeys"):
            assert (
                scrape.value("etcd_inspector_probe_last_success_timestamp_seconds", probe=probe)
                is None
            ), probe
        assert scrape.by_member(
            "etcd_inspector_member_scrape_errors_total", reason="connect"
        ) == dict.fromkeys(names, 1.0)
        assert not scrape.samples("etcd_server_has_leader")
        assert scrape.samples("process_resident_memory_bytes")  # the exporter's own metrics
        assert 'err="no member answered Status (unavailable)"' in exporter.log()
        status, body, _ = exporter.get("/")
        # The status page: the cluster cannot be inspected, each member down for its reason.
        assert status == 200 and "cannot inspect" in body
        assert "no member answered Status (unavailable)" in body
        assert all(name in body for name in names)
        cluster_doc = json.loads(exporter.get("/api/v1/status")[1])["clusters"][0]
        assert {m["name"]: m["state"] for m in cluster_doc["members"]} == dict.fromkeys(
            names, "down"
        )


@pytest.mark.etcd
def test_member_serving_malformed_metrics_is_counted_and_the_rest_is_unaffected(
    shared_cluster: LocalCluster, tmp_path: Path
) -> None:
    m1, m2, m3 = shared_cluster.members
    with GarbageMetricsServer() as garbage:
        config = tmp_path / "config.yml"
        config.write_text(
            yaml.safe_dump(
                {
                    "inspection": {"interval": "1s"},
                    "clusters": [
                        {
                            "name": "faulty",
                            "endpoints": [
                                {"url": m1.client_url, "metrics_url": m1.metrics_url},
                                {"url": m2.client_url, "metrics_url": m2.metrics_url},
                                {"url": m3.client_url, "metrics_url": garbage.url},
                            ],
                        }
                    ],
                }
            )
        )
        with run_exporter(tmp_path, f"--config.file={config}") as exporter:
            # member names come from the status probe, which is unaffected by m3's /metrics
            before = exporter.wait_for(
                lambda s: set(s.by_member("etcd_inspector_member_up")) == set(MEMBERS),
                "members named",
            )
            after = exporter.scrape(SCRAPE_TIMEOUT)
            log = exporter.log()
        assert garbage.requests >= 2

    def parse_errors(s):
        return s.value("etcd_inspector_member_scrape_errors_total", member="m3", reason="parse")

    assert parse_errors(before) >= 1
    assert parse_errors(after) == parse_errors(before) + 1
    assert after.by_member("etcd_inspector_member_up") == {"m1": 1, "m2": 1, "m3": 0}
    assert after.by_member("etcd_server_has_leader", cluster="faulty") == {"m1": 1, "m2": 1}
    assert set(after.by_member("etcd_inspector_member_revision")) == set(MEMBERS)
    assert "reason=parse" in log and "member=m3" in log and garbage.url in log


@pytest.mark.etcd
async def test_metrics_arriving_in_pieces_are_read_whole(shared_cluster: LocalCluster) -> None:
    url = shared_cluster.member("m1").metrics_url
    real = await asyncio.to_thread(lambda: urllib.request.urlopen(url, timeout=5).read().decode())
    with DribblingMetricsServer(real, pieces=5, pause_seconds=0.05) as server:
        async with aiohttp.ClientSession() as session:
            result = await fetch_metrics(session, server.url, timeout=5)
    assert result.error is None
    assert result.text == real
    expected = {line.split()[2] for line in real.splitlines() if line.startswith("# TYPE ")}
    assert {f.name for f in relabel(result.text, "c", "m1").families} == expected


@pytest.mark.etcd
async def test_fetch_errors_are_classified(shared_cluster: LocalCluster) -> None:
    member = shared_cluster.member("m1")
    async with aiohttp.ClientSession() as session:
        not_found = await fetch_metrics(session, f"{member.client_url}/no-such-path", 5)
        refused = await fetch_metrics(session, f"http://127.0.0.1:{free_ports(1)[0]}/metrics", 5)
        # (a frozen member's timeout is covered by the frozen-member test above)
    assert (not_found.error, not_found.detail) == ("http", "HTTP 404")
    assert refused.error == "connect"
