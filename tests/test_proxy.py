"""proxy.py (relabel, filters, merge) and app.scrape_budget: pure, no network."""

from __future__ import annotations

import re

import pytest
from prometheus_client.core import CounterMetricFamily, GaugeMetricFamily
from prometheus_client.exposition import generate_latest

from etcd_inspector.config import ScrapeConfig
from etcd_inspector.web.proxy import MalformedMetrics, merge_families, relabel, wanted
from etcd_inspector.web.scrape import MIN_BUDGET_SECONDS, _Families, scrape_budget

MEMBER_TEXT = """\
# HELP etcd_server_has_leader Whether or not a leader exists. 1 is existence, 0 is not.
# TYPE etcd_server_has_leader gauge
etcd_server_has_leader 1
# HELP etcd_server_proposals_failed_total The total number of failed proposals seen.
# TYPE etcd_server_proposals_failed_total counter
etcd_server_proposals_failed_total 3
# HELP etcd_disk_wal_fsync_duration_seconds The latency distributions of fsync called by WAL.
# TYPE etcd_disk_wal_fsync_duration_seconds histogram
etcd_disk_wal_fsync_duration_seconds_bucket{le="0.001"} 5
etcd_disk_wal_fsync_duration_seconds_bucket{le="+Inf"} 7
etcd_disk_wal_fsync_duration_seconds_sum 0.02
etcd_disk_wal_fsync_duration_seconds_count 7
# HELP grpc_server_handled_total Total number of RPCs completed on the server.
# TYPE grpc_server_handled_total counter
grpc_server_handled_total{grpc_code="OK",grpc_method="Range",cluster="inner",member="x"} 42
"""


def _samples(families):
    return {(s.name, tuple(sorted(s.labels.items()))): s.value for f in families for s in f.samples}


def test_relabel_adds_cluster_and_member_to_every_sample() -> None:
    families = relabel(MEMBER_TEXT, "prod", "m1")
    assert [f.name for f in families] == [
        "etcd_server_has_leader",
        "etcd_server_proposals_failed",  # the parser strips a counter's _total
        "etcd_disk_wal_fsync_duration_seconds",
        "grpc_server_handled",
    ]
    samples = _samples(families)
    assert samples[("etcd_server_has_leader", (("cluster", "prod"), ("member", "m1")))] == 1
    assert (
        samples[("etcd_server_proposals_failed_total", (("cluster", "prod"), ("member", "m1")))]
        == 3
    )
    bucket = ("etcd_disk_wal_fsync_duration_seconds_bucket",
              (("cluster", "prod"), ("le", "0.001"), ("member", "m1")))  # fmt: skip
    assert samples[bucket] == 5
    assert all(s.labels["cluster"] == "prod" for f in families for s in f.samples)
    assert families[0].documentation.startswith("Whether or not a leader exists.")


def test_relabel_keeps_a_members_own_cluster_and_member_labels_as_exported() -> None:
    grpc = relabel(MEMBER_TEXT, "prod", "m1")[3]
    assert grpc.samples[0].labels == {
        "cluster": "prod",
        "member": "m1",
        "exported_cluster": "inner",
        "exported_member": "x",
        "grpc_code": "OK",
        "grpc_method": "Range",
    }


def test_relabel_output_renders_as_the_same_exposition_names() -> None:
    text = generate_latest(_Families(relabel(MEMBER_TEXT, "prod", "m1"))).decode()  # type: ignore[arg-type]
    assert "# TYPE etcd_server_proposals_failed_total counter" in text
    assert 'etcd_server_proposals_failed_total{cluster="prod",member="m1"} 3.0' in text
    assert 'etcd_disk_wal_fsync_duration_seconds_count{cluster="prod",member="m1"} 7.0' in text


@pytest.mark.parametrize(
    ("allow", "deny", "kept"),
    [
        (None, None, {"etcd_server_has_leader", "etcd_server_proposals_failed",
                      "etcd_disk_wal_fsync_duration_seconds", "grpc_server_handled"}),
        ("etcd_server_.*", None, {"etcd_server_has_leader", "etcd_server_proposals_failed"}),
        # users write the exposed counter name, with _total
        ("etcd_server_proposals_failed_total", None, {"etcd_server_proposals_failed"}),
        # ... and the name without it works as well
        ("etcd_server_proposals_failed", None, {"etcd_server_proposals_failed"}),
        (None, "grpc_.*|etcd_disk_.*", {"etcd_server_has_leader", "etcd_server_proposals_failed"}),
        (None, "grpc_server_handled_total", {"etcd_server_has_leader",
                                             "etcd_server_proposals_failed",
                                             "etcd_disk_wal_fsync_duration_seconds"}),
        ("etcd_.*", "etcd_disk_.*", {"etcd_server_has_leader", "etcd_server_proposals_failed"}),
        # fullmatch: a prefix of a name is no match
        ("etcd_server", None, set()),
    ],
)  # fmt: skip
def test_allow_and_deny_filters(allow: str | None, deny: str | None, kept: set[str]) -> None:
    families = relabel(
        MEMBER_TEXT, "c", "m",
        re.compile(allow) if allow else None, re.compile(deny) if deny else None,
    )  # fmt: skip
    assert {f.name for f in families} == kept


def test_wanted_only_adds_total_for_counters() -> None:
    allow = re.compile("foo_total")
    assert wanted("foo", "counter", allow, None)
    assert not wanted("foo", "gauge", allow, None)


@pytest.mark.parametrize(
    "text",
    [
        "<html><body>502 Bad Gateway</body></html>\n",
        'etcd_server_has_leader{member="m1 1\n',
        "etcd_server_has_leader one\n",
        "etcd_server_\n",  # a body cut off mid-line
    ],
)
def test_malformed_text_raises_malformed_metrics(text: str) -> None:
    with pytest.raises(MalformedMetrics):
        relabel(text, "c", "m")


def test_empty_text_is_no_families() -> None:
    assert relabel("", "c", "m") == []


def test_merge_families_merges_samples_of_the_same_name() -> None:
    a = relabel(MEMBER_TEXT, "c", "m1")
    b = relabel(MEMBER_TEXT, "c", "m2")
    merged, conflicts = merge_families([a, b])
    assert conflicts == []
    assert [f.name for f in merged] == [f.name for f in a]
    leader = merged[0]
    assert [s.labels["member"] for s in leader.samples] == ["m1", "m2"]
    assert len(a[0].samples) == 1  # the inputs are not changed


def test_merge_families_reports_a_type_conflict_and_keeps_the_first() -> None:
    ours = GaugeMetricFamily("process_cpu_seconds", "ours", value=1)
    theirs = CounterMetricFamily("process_cpu_seconds", "theirs", value=2)
    other = GaugeMetricFamily("x", "x", value=3)
    merged, conflicts = merge_families([[ours], [theirs, other]])
    assert conflicts == ["process_cpu_seconds"]
    assert [(f.name, f.type, len(f.samples)) for f in merged] == [
        ("process_cpu_seconds", "gauge", 1),
        ("x", "gauge", 1),
    ]
    text = generate_latest(_Families(merged)).decode()  # type: ignore[arg-type]
    assert text.count("# TYPE process_cpu_seconds ") == 1


SCRAPE = ScrapeConfig(timeout=10.0, timeout_offset=0.5)


@pytest.mark.parametrize(
    ("header", "budget"),
    [
        (None, 10.0),  # no header: the configured timeout
        ("", 10.0),
        ("2", 1.5),  # header minus the offset
        ("4.5", 4.0),
        ("30", 10.0),  # capped at the configured timeout
        ("garbage", 10.0),
        ("0.3", MIN_BUDGET_SECONDS),  # never below the floor
        ("-5", MIN_BUDGET_SECONDS),
    ],
)
def test_scrape_budget(header: str | None, budget: float) -> None:
    assert scrape_budget(header, SCRAPE) == pytest.approx(budget)


def test_scrape_budget_with_zero_offset() -> None:
    assert scrape_budget("3", ScrapeConfig(timeout=10.0, timeout_offset=0.0)) == 3.0
