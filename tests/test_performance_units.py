"""The performance probe's math and the slow/down classification, without etcd: quantiles of
bucket increases between two reads (Prometheus' histogram_quantile), counter resets, the slow
peer's name, lone campaigns, lag findings against the mixin's thresholds, and the topology's
verdict that moves the watch and the scan."""

from __future__ import annotations

import asyncio
import math

import pytest

from etcd_inspector.cluster.topology import MemberView, Topology
from etcd_inspector.errors import ErrorKind
from etcd_inspector.etcd.metrics_fetch import FetchResult
from etcd_inspector.etcd.types import MemberStatus
from etcd_inspector.probes.base import ReportContext
from etcd_inspector.probes.bigvalue.reader import scan_order
from etcd_inspector.probes.hotkeys.watch import watch_order
from etcd_inspector.probes.performance.histograms import (
    LEADER_CHANGES,
    PEER_RTT,
    PROPOSALS_FAILED,
    WAL_FSYNC,
    bucket_increase,
    counter_increase,
    parse_read,
    quantile,
    window_quantile,
    window_rate,
)
from etcd_inspector.probes.performance.model import (
    MemberPerformance,
    PeerRtt,
    PerformanceResult,
    performance_findings,
    slow_peer_culprits,
    term_campaign,
)
from etcd_inspector.probes.status import StatusProbe, slow_not_down
from etcd_inspector.probes.status_report import member_state
from etcd_inspector.report.thresholds import DEFAULT, with_overrides

INF = math.inf


PEER = 'To="8e9e05c52164694d"'
RTT = "etcd_network_peer_round_trip_time_seconds"


def exposition(fsync: dict[float, int], rtt: dict[float, int], failed: int, changes: int) -> str:
    lines = ["# HELP etcd_disk_wal_fsync_duration_seconds x",
             "# TYPE etcd_disk_wal_fsync_duration_seconds histogram"]  # fmt: skip
    for le, n in fsync.items():
        lines.append(f'etcd_disk_wal_fsync_duration_seconds_bucket{{le="{le:g}"}} {n}'
                     .replace('"inf"', '"+Inf"'))  # fmt: skip
    lines += ["etcd_disk_wal_fsync_duration_seconds_sum 1",
              f"etcd_disk_wal_fsync_duration_seconds_count {max(fsync.values())}"]  # fmt: skip
    lines += ["# HELP etcd_network_peer_round_trip_time_seconds x",
              "# TYPE etcd_network_peer_round_trip_time_seconds histogram"]  # fmt: skip
    for le, n in rtt.items():
        bound = "+Inf" if math.isinf(le) else f"{le:g}"
        lines.append(f'{RTT}_bucket{{{PEER},le="{bound}"}} {n}')
    lines += [f"{RTT}_sum{{{PEER}}} 1", f"{RTT}_count{{{PEER}}} {max(rtt.values())}"]
    lines += ["# HELP etcd_server_proposals_failed_total x",
              "# TYPE etcd_server_proposals_failed_total counter",
              f"etcd_server_proposals_failed_total {failed}",
              "# HELP etcd_server_leader_changes_seen_total x",
              "# TYPE etcd_server_leader_changes_seen_total counter",
              f"etcd_server_leader_changes_seen_total {changes}"]  # fmt: skip
    return "\n".join(lines) + "\n"


def test_quantile_is_prometheus_histogram_quantile():
    # 100 observations: 90 under 10ms, 9 in (10ms, 0.5s], 1 in (0.5s, 1s]
    buckets = {0.01: 90.0, 0.5: 99.0, 1.0: 100.0, INF: 100.0}
    # rank 99 is the top of the 0.5 bucket
    assert quantile(0.99, buckets) == pytest.approx(0.5)
    # rank 50 in the first bucket: interpolated from 0
    assert quantile(0.5, buckets) == pytest.approx(0.01 * 50 / 90)
    # rank 99.5: half way through (0.5, 1]
    assert quantile(0.995, buckets) == pytest.approx(0.75)
    # the rank in +Inf: the highest finite bound
    assert quantile(0.99, {0.5: 1.0, 1.0: 1.0, INF: 10.0}) == 1.0
    assert quantile(0.99, {0.5: 0.0, INF: 0.0}) is None  # nothing observed


def test_window_quantile_uses_bucket_increases_and_survives_a_restart():
    before = parse_read(
        exposition(
            {0.008: 1000, 0.512: 1000, 1.024: 1000, INF: 1000},
            {0.0001: 5, 0.4: 5, INF: 5},
            failed=3,
            changes=1,
        ),
        at=0.0,
    )
    # 10 fsyncs in the window, all between 512ms and 1.024s: the history of fast ones is gone
    after = parse_read(
        exposition(
            {0.008: 1000, 0.512: 1000, 1.024: 1010, INF: 1010},
            {0.0001: 5, 0.4: 7, INF: 7},
            failed=13,
            changes=2,
        ),
        at=5.0,
    )
    q = window_quantile(0.99, before, after, WAL_FSYNC)[()]
    assert q.count == 10
    assert q.value == pytest.approx(0.512 + (1.024 - 0.512) * 9.9 / 10)
    rtt = window_quantile(0.99, before, after, PEER_RTT)[(("To", "8e9e05c52164694d"),)]
    assert rtt.count == 2 and rtt.value == pytest.approx(0.0001 + (0.4 - 0.0001) * 0.99)
    assert window_rate(before, after, PROPOSALS_FAILED) == pytest.approx(2.0)
    assert after.scalars[LEADER_CHANGES] == 2
    # The member restarted: counts went down, the later read alone is the window.
    restarted = parse_read(
        exposition(
            {0.008: 4, 0.512: 4, 1.024: 4, INF: 4}, {0.0001: 0, 0.4: 0, INF: 0}, failed=1, changes=0
        ),
        at=10.0,
    )
    assert window_quantile(0.99, after, restarted, WAL_FSYNC)[()].count == 4
    assert window_rate(after, restarted, PROPOSALS_FAILED) == pytest.approx(0.2)
    assert counter_increase(5, 2) == 2 and counter_increase(None, 2) is None
    assert bucket_increase({1.0: 3, INF: 3}, {1.0: 1, INF: 1}) == {1.0: 1, INF: 1}


def test_the_member_in_most_slow_links_is_named():
    # delay on m1's peer links: every link with m1 is slow, both ways
    pairs = [("m2", "m1", 0.4), ("m3", "m1", 0.35), ("m1", "m2", 0.3)]
    ((member, links),) = slow_peer_culprits(pairs)
    assert member == "m1" and len(links) == 3
    # one slow link: its destination, the member the prober waited for
    assert [m for m, _ in slow_peer_culprits([("m2", "m3", 0.2)])] == ["m3"]
    assert slow_peer_culprits([]) == []


def test_a_tie_is_broken_by_the_round_trips_measured_fast():
    # m2's links delayed, but in the window only m2<->m3 was measured slow (etcd records a
    # peer's round trip every 30 s): m3 answering m1 quickly clears m3, as a real run showed.
    slow = [("m2", "m3", 0.2), ("m3", "m2", 0.2)]
    assert [m for m, _ in slow_peer_culprits(slow, [("m3", "m1"), ("m1", "m3")])] == ["m2"]
    # nothing measured fast: both stay named, the evidence cannot tell them apart
    assert [m for m, _ in slow_peer_culprits(slow)] == ["m2", "m3"]


def test_a_lone_campaign_shows_as_a_term_jump_after_being_cut_off():
    # Status reports the applied term: the jump shows when the cut-off member rejoins.
    assert term_campaign("m3", (5, True), 68, 60.0, 1.0).to_term == 68
    assert term_campaign("m3", (5, True), 6, 5.0, 1.0) is None  # an ordinary election
    assert term_campaign("m3", (5, False), 68, 5.0, 1.0) is None  # it was not cut off
    assert term_campaign("m3", None, 8, 5.0, 1.0) is None


def result(*members: MemberPerformance, campaigns=()) -> PerformanceResult:
    return PerformanceResult(tuple(members), tuple(campaigns), taken_at=1000.0, window_seconds=5)


def test_findings_name_member_value_and_the_alerts_threshold():
    slow = MemberPerformance("e2", "m2", window_seconds=5.0, fsync_p99=1.9, fsync_count=4,
                             commit_p99=0.3, commit_count=4, revision_lag=4200,
                             applied_index_lag=10)  # fmt: skip
    ok = MemberPerformance("e1", "m1", window_seconds=5.0, fsync_p99=0.004, fsync_count=200,
                           peers=(PeerRtt("m2", 0.001, 3),))  # fmt: skip
    found = {f.check: f for f in performance_findings("c", result(slow, ok), DEFAULT)}
    assert set(found) == {"slow_disk", "slow_commit", "member_lag"}
    disk = found["slow_disk"]
    assert disk.member == "m2" and disk.value == 1.9 and disk.threshold == 1.0
    assert disk.severity == "critical" and "slow disk" in disk.message and "1.90s" in disk.message
    assert found["member_lag"].value == 4200 and found["member_lag"].threshold == 1000
    # a values file moves the finding with the alert
    lenient = with_overrides({
        "fsync_p99_seconds_warning": 2, "fsync_p99_seconds_critical": 3,
        "commit_p99_seconds_warning": 1, "revision_lag_max": 5000,
    })  # fmt: skip
    assert list(performance_findings("c", result(slow, ok), lenient)) == []


def test_leader_changes_and_pre_vote_findings():
    m = MemberPerformance("e1", "m1", leader_changes_seen=((100.0, 1), (500.0, 3), (990.0, 6)))
    found = {f.check: f for f in performance_findings("c", result(m), DEFAULT)}
    assert found["leader_changes"].value == 5 and found["leader_changes"].member is None
    campaign = term_campaign("m3", (5, True), 68, 60.0, 990.0)
    (f,) = performance_findings("c", result(campaigns=[campaign]), DEFAULT)
    assert f.check == "pre_vote" and f.member == "m3" and "--pre-vote" in f.message
    assert "5 to 68" in f.message
    old = term_campaign("m3", (5, True), 68, 60.0, 1000.0 - 901)
    assert list(performance_findings("c", result(campaigns=[old]), DEFAULT)) == []


def st(member_id: int, leader: int, revision: int, endpoint: str) -> MemberStatus:
    return MemberStatus(endpoint, member_id, 7, leader, 2, revision, revision, revision, 1, 1,
                        "3.4.30", False, ())  # fmt: skip


def topology(*statuses: MemberStatus | None, endpoints=("e1", "e2", "e3")) -> Topology:
    pairs = enumerate(zip(endpoints, statuses, strict=False))
    views = tuple(MemberView(e, f"m{i + 1}", s) for i, (e, s) in pairs)
    return Topology(views, None, (), taken_at=1.0)


def test_watch_and_scan_leave_a_member_without_leader_or_lagging():
    # m2 and m3 are followers of m1; m2 is cut off (no leader), m3 lags 4200 revisions
    t = topology(st(1, 1, 5000, "e1"), st(2, 0, 4990, "e2"), st(3, 1, 800, "e3"))
    assert t.serving_problem("e1", 1000) is None
    assert t.serving_problem("e2", 1000) == "it has no leader"
    assert t.serving_problem("e3", 1000) == "it is 4200 revisions behind"
    unfit = frozenset(e for e in t.endpoints if t.serving_problem(e, 1000))
    # followers first, but not unfit ones: the leader now serves
    assert watch_order(list(t.endpoints), t.statuses(), None, unfit) == ["e1", "e2", "e3"]
    assert scan_order(list(t.endpoints), t) == [0, 1, 2]
    healthy = topology(st(1, 1, 5000, "e1"), st(2, 1, 5000, "e2"), st(3, 1, 5000, "e3"))
    assert watch_order(list(healthy.endpoints), healthy.statuses(), None) == ["e2", "e3", "e1"]
    assert scan_order(list(healthy.endpoints), healthy) == [1, 2, 0]


def fetched(text: str | None) -> FetchResult:
    return FetchResult("u", text, None if text else "timeout", 0.01)


def test_status_timeout_with_metrics_answering_is_slow_not_down():
    answers = {
        "e1": (st(1, 1, 5, "e1"), None, ""),
        "e2": (None, ErrorKind.TIMEOUT, "deadline exceeded after 2.5s"),  # slow disk
        "e3": (None, ErrorKind.TIMEOUT, ""),  # frozen: /metrics times out too
        "e4": (None, ErrorKind.UNAVAILABLE, "connection refused"),
    }
    asked = []

    async def fetch(endpoint: str, wait: float) -> FetchResult:
        asked.append(endpoint)
        return fetched("etcd_server_has_leader 1\n" if endpoint == "e2" else None)

    out = asyncio.run(slow_not_down(answers, fetch, 2.0))
    assert sorted(asked) == ["e2", "e3"]  # only the members whose Status timed out
    assert out["e2"][1] is ErrorKind.SLOW and "alive" in out["e2"][2]
    assert out["e3"][1] is ErrorKind.TIMEOUT and out["e4"][1] is ErrorKind.UNAVAILABLE
    views = tuple(MemberView(e, f"m{i}", a[0], a[1], a[2])
                  for i, (e, a) in enumerate(out.items(), start=1))  # fmt: skip
    topo = Topology(views, None, (), taken_at=1.0)
    rc = ReportContext("c", tuple(out), {e: v.name for e, v in zip(out, views, strict=True)})
    found = {(f.check, f.member) for f in StatusProbe(None).findings(topo, rc)}  # type: ignore[arg-type]
    assert found == {("slow_member", "m2"), ("member_down", "m3"), ("member_down", "m4")}
    assert member_state(views[1]) == "slow" and member_state(views[2]) == "down"
    (slow,) = [f for f in StatusProbe(None).findings(topo, rc) if f.check == "slow_member"]  # type: ignore[arg-type]
    assert slow.severity == "warning" and "slow, not down" in slow.message


def test_the_page_shows_each_members_values_over_the_threshold_in_red():
    from etcd_inspector.probes.performance import SPEC
    from etcd_inspector.report.view import Column, Look, Table, ViewInput

    slow = MemberPerformance("e2", "m2", window_seconds=5.0, fsync_p99=1.9, fsync_count=4,
                             peers=(PeerRtt("m1", 0.4, 2),), revision_lag=3)  # fmt: skip
    probe = SPEC.build()
    rc = ReportContext("c", ("e2",), {"e2": "m2"})
    doc = probe.report_json(result(slow), rc)
    column, section = SPEC.view(ViewInput(doc))
    # the members table says why beside "up"
    assert isinstance(column, Column) and column.table == "members"
    assert column.cells["m2"].value == "slow disk, slow peer links"
    assert column.cells["m2"].look is Look.BAD
    (table,) = section.blocks  # type: ignore[union-attr]
    assert isinstance(table, Table) and table.caption == "over the last 5s"
    (row,) = table.rows
    assert row[0].value == "m2" and row[1].value == 1.9 and row[1].look is Look.BAD
    assert row[3].value == 0.4 and row[3].note == "to m1" and row[3].look is Look.BAD
    assert row[6].value == 3 and row[6].look is Look.PLAIN
    text = "\n".join(probe.report_text(result(slow), rc))
    assert "1.90s" in text and "400ms to m1" in text
