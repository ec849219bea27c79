"""The quota probe: pure parser/projection tests, and the real stack against a real cluster
started with a small --quota-backend-bytes."""

from __future__ import annotations

import asyncio
import itertools
import json
import time
from collections.abc import Iterator

import pytest
from prometheus_client.parser import text_string_to_metric_families

from conftest import etcdctl
from etcd_inspector.config import ConfigError, parse_config
from etcd_inspector.demo.localcluster import LocalCluster, start_cluster
from etcd_inspector.ports import free_ports
from etcd_inspector.probes import REGISTRY
from etcd_inspector.probes.quota import (
    DEFAULT_QUOTA_BYTES,
    QuotaResult,
    SizeHistory,
    least_squares_slope,
    parse_quota_backend_bytes,
    project_exhaustion,
)
from etcd_inspector.runtime.runtime import ClusterRuntime, build_runtime
from etcd_inspector.runtime.scheduler import run_probe_once
from exposition import assert_promtool_clean, exposed

CLUSTER = "c1"
QUOTA = 16 * 1024 * 1024

# --------------------------------------------------------------------------- pure: parser

METRICS_TEXT = """\
# HELP etcd_server_quota_backend_bytes Current backend storage quota size in bytes.
# TYPE etcd_server_quota_backend_bytes gauge
etcd_server_quota_backend_bytes 1.6777216e+07
# HELP etcd_server_quota_backend_bytes_total not the same family
etcd_server_quota_backend_bytes_total 5
"""


@pytest.mark.parametrize(
    ("text", "expected"),
    [
        (METRICS_TEXT, 16777216),
        ("etcd_server_quota_backend_bytes 2147483648\n", 2147483648),
        ("etcd_server_quota_backend_bytes 8.589934592e+09 1700000000000\n", 8589934592),
        ('etcd_server_quota_backend_bytes{instance="a"} 1048576\n', 1048576),
        ("etcd_mvcc_db_total_size_in_bytes 20480\n", None),  # etcd < 3.4 has no quota gauge
        ("# etcd_server_quota_backend_bytes 5\n", None),
        ("etcd_server_quota_backend_bytes NaN\n", None),
        ("etcd_server_quota_backend_bytes +Inf\n", None),
        ("etcd_server_quota_backend_bytes 0\n", None),
        ("etcd_server_quota_backend_bytes garbage\n", None),
        ("", None),
    ],
)
def test_parse_quota_backend_bytes(text: str, expected: int | None):
    assert parse_quota_backend_bytes(text) == expected


# --------------------------------------------------------------------------- pure: projection


def test_rising_series_projects_the_time_to_the_quota():
    # 1000 bytes/s from 10_000 at t0; quota 1_000_000 -> (1_000_000 - 130_000) / 1000 s left
    t0 = 1.7e9
    series = [(t0 + 10 * i, 10_000 + 10_000 * i) for i in range(13)]
    assert least_squares_slope(series) == pytest.approx(1000.0)
    assert project_exhaustion(series, 1_000_000) == pytest.approx(870.0)


def test_noisy_rising_series_uses_the_fit_not_the_endpoints():
    t0 = 1.7e9
    noise = [0, 300, -300, 200, -200, 0, 100, -100, 0]
    series = [(t0 + 30 * i, 50_000 + 300 * 30 * i + n) for i, n in enumerate(noise)]
    slope = least_squares_slope(series)
    assert slope == pytest.approx(300.0, rel=0.05)
    expected = (QUOTA - series[-1][1]) / slope
    assert project_exhaustion(series, QUOTA) == pytest.approx(expected)


def test_flat_or_shrinking_series_has_no_projection():
    flat = [(1.7e9 + 30 * i, 20480) for i in range(10)]
    assert project_exhaustion(flat, QUOTA) is None
    falling = [(1.7e9 + 30 * i, 100_000 - 10 * i) for i in range(10)]
    assert project_exhaustion(falling, QUOTA) is None


def test_too_few_samples_or_too_short_a_span_has_no_projection():
    assert project_exhaustion([(0.0, 1.0), (100.0, 2.0)], QUOTA) is None
    assert project_exhaustion([(0.0, 1.0), (20.0, 2.0), (59.0, 3.0)], QUOTA) is None
    assert project_exhaustion([(0.0, 1.0), (30.0, 2.0), (60.0, 3.0)], QUOTA) is not None
    assert project_exhaustion([], QUOTA) is None


def test_already_over_quota_projects_zero():
    series = [(0.0, QUOTA - 100.0), (60.0, QUOTA + 0.0), (120.0, QUOTA + 100.0)]
    assert project_exhaustion(series, QUOTA) == 0.0


def test_size_history_is_bounded_and_windowed():
    history = SizeHistory(window_seconds=600, max_samples=10)  # one sample per 60 s at most
    for i in range(100):
        history.add(30.0 * i, 1000 + i)
    assert len(history.samples) <= 10
    times = [t for t, _ in history.samples]
    assert times[-1] - times[0] <= 600
    assert all(b - a >= 60 for a, b in itertools.pairwise(times))
    # a sample that was not kept still ends the series it is projected from
    series = history.series_until(99 * 30.0 + 1, 2000)
    assert series[-1] == (99 * 30.0 + 1, 2000)
    assert history.series_until(times[-1], 5)[-1] == history.samples[-1]


def test_size_history_starts_over_after_a_defragmentation():
    history = SizeHistory(window_seconds=3600, max_samples=360)
    for i in range(5):
        history.add(60.0 * i, 1_000_000 + 1000 * i)
    history.add(300.0, 200_000)  # defragmented
    assert list(history.samples) == [(300.0, 200_000)]


def test_invalid_options_are_config_errors():
    raw = {
        "clusters": [{"name": CLUSTER, "endpoints": ["http://127.0.0.1:2379"]}],
        "inspection": {"probes": {"quota": {"projection_max_samples": 2}}},
    }
    with pytest.raises(ConfigError, match="projection_max_samples must be >= 3"):
        parse_config(raw, REGISTRY)
    raw["inspection"]["probes"]["quota"] = {"quota_bytes": -1}
    with pytest.raises(ConfigError, match="quota_bytes must not be negative"):
        parse_config(raw, REGISTRY)
    raw["inspection"]["probes"]["quota"] = {"projection_window_seconds": "1h"}
    config = parse_config(raw, REGISTRY)
    assert config.probes["quota"].options.projection_window_seconds == 3600.0
    assert (config.probes["quota"].interval, config.probes["quota"].timeout) == (30.0, 15.0)


# --------------------------------------------------------------------------- real etcd


@pytest.fixture(scope="module")
def quota_cluster(etcd_binary: str, tmp_path_factory) -> Iterator[LocalCluster]:
    cluster = start_cluster(
        3,
        quota_backend_bytes=QUOTA,
        base_dir=tmp_path_factory.mktemp("quota-etcd"),
        binary=etcd_binary,
    )
    yield cluster
    cluster.stop()


def scrape(runtime: ClusterRuntime) -> dict[tuple[str, str], float]:
    """(metric name, member) -> value for this cluster's per-member samples."""
    text = exposed([runtime])
    return {
        (s.name, s.labels.get("member", "")): s.value
        for fam in text_string_to_metric_families(text)
        for s in fam.samples
        if s.labels.get("cluster") == CLUSTER
    }


def make_runtime(endpoints: list, probes: set[str] | None = None, **options) -> ClusterRuntime:
    raw = {
        "clusters": [{"name": CLUSTER, "endpoints": endpoints, "request_timeout": "1s"}],
        "inspection": {"probes": {"quota": options}},
    }
    config = parse_config(raw, REGISTRY)
    return build_runtime(config.clusters[0], config, only=probes or {"status", "quota"})


async def run(runtime: ClusterRuntime) -> QuotaResult:
    for name in sorted(runtime.probes, key=lambda n: n != "status"):
        outcome = await run_probe_once(
            runtime.probes[name], runtime.scheduler.context_for(name), runtime.state
        )
        assert outcome.success, outcome.error
    result = runtime.state.outcomes["quota"].result
    assert isinstance(result, QuotaResult)
    return result


def etcdctl_status(cluster: LocalCluster) -> dict[str, dict]:
    """The independent view: etcdctl endpoint status, by endpoint."""
    out = json.loads(etcdctl(cluster, "endpoint", "status", "-w=json"))
    return {e["Endpoint"]: e["Status"] for e in out}


@pytest.mark.etcd
async def test_quota_from_member_metrics_and_ratios(quota_cluster: LocalCluster):
    runtime = make_runtime(quota_cluster.endpoints)
    try:
        result = await run(runtime)
        values = scrape(runtime)
        independent = etcdctl_status(quota_cluster)
    finally:
        await runtime.close()
    assert {m.member for m in result.members} == {"m1", "m2", "m3"}
    for m in result.members:
        st = independent[m.endpoint]
        assert (m.quota_bytes, m.quota_source) == (QUOTA, "metrics")
        assert m.db_size == st["dbSize"]
        assert values[("etcd_inspector_quota_bytes", m.member)] == QUOTA
        used = values[("etcd_inspector_quota_used_ratio", m.member)]
        assert 0 < used < 1
        assert used == pytest.approx(st["dbSize"] / QUOTA)
        assert values[("etcd_inspector_quota_headroom_bytes", m.member)] == QUOTA - st["dbSize"]
        # In-use moves on its own as the backend commits (etcd 3.5), so it is checked against
        # the Status the probe read, and against etcdctl's only for its range.
        assert values[("etcd_inspector_db_in_use_ratio", m.member)] == pytest.approx(
            m.db_size_in_use / m.db_size
        )
        assert 0 < st["dbSizeInUse"] <= st["dbSize"]
        # one sample is no trend
        assert ("etcd_inspector_quota_exhaustion_seconds", m.member) not in values
    assert values[("etcd_inspector_probe_success", "")] == 1


@pytest.mark.etcd
async def test_configured_quota_overrides_the_members(quota_cluster: LocalCluster):
    override = 64 * 1024 * 1024
    runtime = make_runtime(quota_cluster.endpoints, quota_bytes=override)
    try:
        result = await run(runtime)
        values = scrape(runtime)
    finally:
        await runtime.close()
    for m in result.members:
        assert (m.quota_bytes, m.quota_source) == (override, "option")
        assert values[("etcd_inspector_quota_bytes", m.member)] == override
        assert values[("etcd_inspector_quota_used_ratio", m.member)] == pytest.approx(
            m.db_size / override
        )


@pytest.mark.etcd
async def test_without_a_status_probe_it_asks_itself(quota_cluster: LocalCluster):
    runtime = make_runtime(quota_cluster.endpoints, probes={"quota"})
    try:
        result = await run(runtime)
    finally:
        await runtime.close()
    independent = etcdctl_status(quota_cluster)
    assert len(result.members) == 3
    for m in result.members:
        assert m.db_size == independent[m.endpoint]["dbSize"]
        assert m.quota_bytes == QUOTA


@pytest.mark.etcd
async def test_unreachable_metrics_fall_back_to_etcds_default(quota_cluster: LocalCluster):
    (closed_port,) = free_ports(1)
    endpoints = [
        {"url": url, "metrics_url": f"http://127.0.0.1:{closed_port}/metrics"}
        for url in quota_cluster.endpoints
    ]
    runtime = make_runtime(endpoints)
    try:
        result = await run(runtime)
        values = scrape(runtime)
    finally:
        await runtime.close()
    for m in result.members:
        assert (m.quota_bytes, m.quota_source) == (DEFAULT_QUOTA_BYTES, "default")
        assert values[("etcd_inspector_quota_bytes", m.member)] == DEFAULT_QUOTA_BYTES


@pytest.mark.etcd
@pytest.mark.promtool
async def test_writing_data_raises_the_used_ratio(quota_cluster: LocalCluster):
    runtime = make_runtime(quota_cluster.endpoints)
    try:
        before = {m.member: m for m in (await run(runtime)).members}
        sizes = {e: s["dbSize"] for e, s in etcdctl_status(quota_cluster).items()}
        for i in range(2):  # ~2 MiB; etcd takes requests up to 1.5 MiB
            etcdctl(quota_cluster, "put", f"/big/{i}", input=b"x" * (1024 * 1024))
        # the backend commits in batches (every 100 ms): wait for every file to grow
        deadline = time.monotonic() + 10
        while time.monotonic() < deadline:
            now = etcdctl_status(quota_cluster)
            if all(now[e]["dbSize"] >= sizes[e] + 2 * 1024 * 1024 for e in sizes):
                break
            await asyncio.sleep(0.2)
        after_result = await run(runtime)
        values = scrape(runtime)
        text = exposed([runtime])
    finally:
        await runtime.close()
    independent = etcdctl_status(quota_cluster)
    for m in after_result.members:
        used = values[("etcd_inspector_quota_used_ratio", m.member)]
        assert used == pytest.approx(independent[m.endpoint]["dbSize"] / QUOTA)
        assert used >= before[m.member].db_size / QUOTA + 2 / 16
        assert used < 1
    await asyncio.to_thread(assert_promtool_clean, text)
