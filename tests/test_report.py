"""report.py without a network: probe results -> findings, exit codes, JSON and text."""

from __future__ import annotations

import dataclasses
import json
import re

import pytest

from etcd_inspector.cluster.state import ProbeOutcome
from etcd_inspector.cluster.topology import MemberView, Topology
from etcd_inspector.errors import ErrorKind
from etcd_inspector.etcd.client import MemberInfo, MemberList, MemberStatus
from etcd_inspector.exitcodes import EXIT_ERROR, EXIT_FINDINGS, EXIT_OK
from etcd_inspector.probes.bigvalue import BigValueResult, PrefixUsage
from etcd_inspector.probes.consistency import ConsistencyResult, MemberFacts, compare
from etcd_inspector.probes.hotkeys import HotKey, HotKeysResult, PrefixWrites
from etcd_inspector.probes.quota import QUOTA_USED_RATIO_LIMIT, MemberQuota, QuotaResult
from etcd_inspector.render.inspection import ClusterInspection, exit_code, findings
from etcd_inspector.render.jsondoc import to_json
from etcd_inspector.render.text import render_text
from etcd_inspector.report.thresholds import RUNBOOK_URL_BASE

ENDPOINTS = ("http://10.0.0.1:2379", "http://10.0.0.2:2379", "http://10.0.0.3:2379")
NAMES = {e: f"m{i + 1}" for i, e in enumerate(ENDPOINTS)}
CLUSTER_ID = 0xC1
LEADER = 1
T0 = 1_700_000_000.0


def member_status(i: int, *, revision: int = 500, leader: int = LEADER) -> MemberStatus:
    return MemberStatus(
        endpoint=ENDPOINTS[i], member_id=i + 1, cluster_id=CLUSTER_ID, leader_id=leader,
        raft_term=3, raft_index=900, raft_applied_index=900, revision=revision,
        db_size=4 * 2**20, db_size_in_use=3 * 2**20, version="3.5.1", is_learner=False,
        errors=(),
    )  # fmt: skip


def outcome(probe: str, result=None, error: str | None = None) -> ProbeOutcome:
    """A failed run when `error` is given; "KIND: message" gives it an ErrorKind too."""
    kind = None
    if error is not None and error.split(": ", 1)[0] in {k.value for k in ErrorKind}:
        kind, error = ErrorKind(error.split(": ", 1)[0]), error.split(": ", 1)[1]
    return ProbeOutcome(
        probe=probe, success=error is None, duration_seconds=0.25, finished_at=T0,
        last_success_at=T0 if error is None else None, result=result, error=error,
        error_kind=kind,
    )  # fmt: skip


def status_result(down: tuple[int, ...] = (), alarms=(), leader: int = LEADER) -> Topology:
    members = tuple(
        MemberView(
            ENDPOINTS[i],
            NAMES[ENDPOINTS[i]],
            None if i in down else member_status(i, leader=leader),
            ErrorKind.UNAVAILABLE if i in down else None,
        )
        for i in range(3)
    )
    member_list = MemberList(
        CLUSTER_ID,
        tuple(MemberInfo(i + 1, f"m{i + 1}", (), (ENDPOINTS[i],), False) for i in range(3)),
    )
    return Topology(members=members, member_list=member_list, alarms=tuple(alarms))


def consistency_result(keys=(100, 100, 100), hashes=(7, 7, 7)) -> ConsistencyResult:
    facts = tuple(
        MemberFacts(
            endpoint=ENDPOINTS[i],
            member=f"m{i + 1}",
            status=member_status(i),
            keys=keys[i],
            hash=hashes[i],
            hash_compact_revision=0,
        )
        for i in range(3)
    )
    return ConsistencyResult(revision=500, members=facts, verdict=compare(facts, 500))


def quota_result(db_size: int = 4 * 2**20, quota: int = 2 * 2**30) -> QuotaResult:
    return QuotaResult(
        members=tuple(
            MemberQuota(
                ENDPOINTS[i],
                f"m{i + 1}",
                db_size,
                db_size // 2,
                quota,
                "metrics",
                None if i else 7200.0,
            )
            for i in range(3)
        )
    )


def bigvalue_result(big: int = 0, top_size: int = 512, threshold: int = 102400) -> BigValueResult:
    top_values = ((top_size, "/big/blob"), (300, "/app/a"), (200, "/app/b"))
    return BigValueResult(
        revision=500, member="m2", keys=1002, total_bytes=200_000,
        bucket_bounds=(64, 1024), bucket_counts=(0, 1000, 2),
        threshold_bytes=threshold, big_values=big, big_values_bytes=top_size if big else 0,
        top_values=top_values, top_versions=((2500, "/hot/counter"), (3, "/app/a")),
        prefixes=(PrefixUsage("/app/", 1000, 150_000), PrefixUsage("/big/", 1, top_size),
                  PrefixUsage("/hot/", 1, 4)),
        duration_seconds=1.5, restarts=0,
    )  # fmt: skip


def hotkeys_result() -> HotKeysResult:
    return HotKeysResult(
        prefix_writes=(PrefixWrites("/hot/", "put", 900), PrefixWrites("/hot/", "delete", 0),
                       PrefixWrites("/app/", "put", 10), PrefixWrites("/app/", "delete", 5)),
        hot_keys=(HotKey("/hot/counter", 42.5),), events_total=915, revision=1415,
        lag_revisions=0, missed_windows_total=0, restarts_total=0,
        watched_endpoints=(ENDPOINTS[1],), sketch_entries=3,
        key_writes=(("/hot/counter", 212), ("/app/a", 2)), events_per_second=38.0,
    )  # fmt: skip


def inspection(name: str = "prod", watch: float | None = None, unavailable=(), **results):
    """A cluster where every probe succeeded; keyword args replace a probe's result (a string
    makes it a failed run with that error, None leaves the probe out)."""
    defaults = {
        "status": status_result(),
        "consistency": consistency_result(),
        "quota": quota_result(),
        "bigvalue": bigvalue_result(),
    }
    if watch is not None:
        defaults["hotkeys"] = hotkeys_result()
    defaults.update(results)
    outcomes = {}
    for probe, result in defaults.items():
        if probe in unavailable or result is None:
            continue
        outcomes[probe] = (
            outcome(probe, error=result) if isinstance(result, str) else outcome(probe, result)
        )
    return ClusterInspection(
        name=name, endpoints=ENDPOINTS, member_names=NAMES, outcomes=outcomes,
        unavailable=tuple(unavailable), watch_seconds=watch,
    )  # fmt: skip


def checks(insp: ClusterInspection) -> list[str]:
    return [f.check for f in findings(insp)]


# --------------------------------------------------------------------------- findings


def test_healthy_cluster_is_all_clear():
    insp = inspection()
    assert findings(insp) == []
    assert exit_code([insp]) == EXIT_OK


def test_member_down_is_a_finding_naming_the_member():
    insp = inspection(status=status_result(down=(2,)))
    (f,) = findings(insp)
    assert (f.check, f.member) == ("member_down", "m3")
    assert "http://10.0.0.3:2379" in f.message and "unreachable" in f.message
    assert exit_code([insp]) == EXIT_FINDINGS


def test_active_alarm_is_a_finding():
    insp = inspection(status=status_result(alarms=(("m1", "NOSPACE"),)))
    (f,) = findings(insp)
    assert (f.check, f.member) == ("alarm", "m1")
    assert "NOSPACE" in f.message
    assert exit_code([insp]) == EXIT_FINDINGS


def test_no_leader_is_a_finding_per_member():
    assert checks(inspection(status=status_result(leader=0))) == ["no_leader"] * 3


def test_inconsistent_key_counts_and_hashes_each_give_a_finding():
    insp = inspection(consistency=consistency_result(keys=(100, 100, 99), hashes=(7, 7, 8)))
    found = findings(insp)
    assert [f.check for f in found] == ["inconsistent", "inconsistent"]
    assert "m3=99" in found[0].message
    assert "m3=8" in found[1].message
    assert exit_code([insp]) == EXIT_FINDINGS


@pytest.mark.parametrize(
    ("used", "expected"),
    [(QUOTA_USED_RATIO_LIMIT, []), (QUOTA_USED_RATIO_LIMIT + 0.01, ["quota"] * 3)],
)
def test_quota_over_the_limit_is_a_finding(used: float, expected: list[str]):
    quota = 1_000_000
    assert checks(inspection(quota=quota_result(db_size=round(quota * used), quota=quota))) == (
        expected
    )


def test_a_value_over_the_threshold_is_a_finding_naming_the_key():
    insp = inspection(bigvalue=bigvalue_result(big=1, top_size=1048576))
    (f,) = findings(insp)
    assert f.check == "big_value"
    assert "/big/blob is 1.0 MiB" in f.message
    assert "/app/a" not in f.message  # under the threshold: not named
    assert (f.subject, f.value, f.threshold) == ("/big/blob", 1048576, 102400)
    assert f.runbook_url == RUNBOOK_URL_BASE + "etcdinspectorbigvalues"
    assert exit_code([insp]) == EXIT_FINDINGS


def test_a_failed_probe_is_a_finding():
    insp = inspection(quota="timed out after 15s")
    (f,) = findings(insp)
    assert f.check == "probe_failed"
    assert f.message == "probe quota failed: timed out after 15s"


def test_consistency_not_comparable_is_left_to_the_member_down_finding():
    insp = inspection(
        status=status_result(down=(1, 2)),
        consistency="not_comparable: 1 member(s) answered Status; at least 2 are needed",
    )
    assert checks(insp) == ["member_down", "member_down"]
    assert (
        "Consistency: not comparable: 1 member(s) answered Status; at least 2 are needed"
        in render_text([insp], started_at=T0)
    )


def test_no_member_answering_means_exit_2_whatever_the_other_clusters_say():
    down = inspection(
        "down", status="no_answer: no member answered Status (unavailable)",
        consistency=None, quota=None, bigvalue=None,
    )  # fmt: skip
    assert not down.inspected
    assert down.error == "no member answered Status (unavailable)"
    assert checks(down) == ["unreachable"]
    assert exit_code([inspection(), down]) == EXIT_ERROR
    assert exit_code([]) == EXIT_ERROR


def test_a_probe_missing_from_the_build_is_not_a_finding():
    insp = inspection(unavailable=("bigvalue",))
    assert findings(insp) == []
    assert exit_code([insp]) == EXIT_OK
    doc = to_json([insp], started_at=T0, finished_at=T0 + 2)
    cluster = doc["clusters"][0]
    assert cluster["keyspace"] is None
    assert cluster["probes"]["bigvalue"] == {
        "available": False, "ran": False, "success": None, "duration_seconds": None,
        "error": None, "error_kind": None, "finished_at": None, "last_success_at": None,
    }  # fmt: skip
    assert "Keyspace scan: not available (this build has no bigvalue probe)" in render_text(
        [insp], started_at=T0
    )


# --------------------------------------------------------------------------- JSON


def test_json_document_shape_and_values():
    insp = inspection(bigvalue=bigvalue_result(big=1, top_size=1048576), watch=5.0)
    doc = to_json([insp], started_at=T0, finished_at=T0 + 2.5)
    json.dumps(doc)  # serializable as is
    assert list(doc) == [
        "schema", "started_at", "finished_at", "exit_code", "watch_seconds", "findings",
        "clusters",
    ]  # fmt: skip
    assert doc["schema"] == 1
    assert doc["started_at"] == "2023-11-14T22:13:20.000Z"
    assert doc["finished_at"] == "2023-11-14T22:13:22.500Z"
    assert doc["exit_code"] == EXIT_FINDINGS
    assert doc["watch_seconds"] == 5.0
    (cluster,) = doc["clusters"]
    assert list(cluster) == [
        "name", "inspected", "error", "probes", "members", "leader", "alarms", "downgrade",
        "performance", "consistency", "quota", "leases", "keyspace", "hot_keys", "certificates",
        "backup", "findings",
    ]  # fmt: skip
    assert cluster["name"] == "prod" and cluster["inspected"] and cluster["error"] is None
    assert list(cluster["probes"]) == [
        "status", "performance", "consistency", "quota", "leases", "bigvalue", "hotkeys",
        "certs", "backup",
    ]  # fmt: skip
    assert cluster["leader"] == "m1"
    assert cluster["alarms"] == []
    m1 = cluster["members"][0]
    assert m1 == {
        "name": "m1", "endpoint": ENDPOINTS[0], "up": True, "state": "up", "error": None,
        "reason": None, "member_id": "1",
        "leader": True, "learner": False, "learner_lag_entries": None, "version": "3.5.1",
        "storage_version": None, "revision": 500, "raft_term": 3,
        "raft_index": 900, "db_size_bytes": 4 * 2**20, "db_size_in_use_bytes": 3 * 2**20,
        "errors": [],
    }  # fmt: skip
    c = cluster["consistency"]
    assert (c["revision"], c["consistent"], c["hashes_agree"], c["key_counts_agree"]) == (
        500, True, True, True,
    )  # fmt: skip
    assert c["members"][0] == {
        "name": "m1", "keys": 100, "hash": "00000007", "cluster_id": "c1", "error": None
    }  # fmt: skip
    q = cluster["quota"]["members"][0]
    assert q["used_ratio"] == pytest.approx(4 * 2**20 / 2**31)
    assert q["headroom_bytes"] == 2**31 - 4 * 2**20
    assert q["exhaustion_seconds"] == 7200.0
    assert cluster["quota"]["members"][1]["exhaustion_seconds"] is None
    assert cluster["quota"]["members"][0]["name"] == "m1"
    ks = cluster["keyspace"]
    assert ks["largest_values"][0] == {"key": "/big/blob", "bytes": 1048576}
    assert ks["most_modified"][0] == {"key": "/hot/counter", "version": 2500}
    assert [p["prefix"] for p in ks["prefixes"]] == ["/big/", "/app/", "/hot/"]  # by bytes
    assert (ks["big_values"], ks["threshold_bytes"]) == (1, 102400)
    hk = cluster["hot_keys"]
    # --watch 5s: writes counted in the window / the window, like the header's rate
    assert hk["keys"] == [{"key": "/hot/counter", "writes_per_second": 42.4}]
    assert hk["short_window"] is True and "5s window" in hk["rate_basis"]
    assert hk["events"] == 915 and hk["events_per_second"] == 183.0
    assert hk["prefixes"] == [
        {"prefix": "/hot/", "puts": 900, "deletes": 0},
        {"prefix": "/app/", "puts": 10, "deletes": 5},
    ]
    assert [f["check"] for f in doc["findings"]] == ["big_value"]
    assert doc["findings"] == cluster["findings"]
    assert doc["findings"][0] == {
        "cluster": "prod", "check": "big_value", "member": None,
        "message": "value of /big/blob is 1.0 MiB (threshold 100.0 KiB)", "severity": "info",
        "subject": "/big/blob", "value": 1048576, "threshold": 102400, "unit": "bytes",
        "runbook": "etcdinspectorbigvalues",
        "runbook_url": RUNBOOK_URL_BASE + "etcdinspectorbigvalues",
    }  # fmt: skip
    assert (c["members_compared"], c["members_total"]) == (3, 3)


def test_json_without_watch_has_no_hot_keys_entry():
    cluster = to_json([inspection()], started_at=T0, finished_at=T0)["clusters"][0]
    assert cluster["hot_keys"] is None
    assert "hotkeys" not in cluster["probes"]


def test_json_of_an_unreachable_cluster_keeps_every_key():
    down = inspection(
        status="no_answer: no member answered Status (unavailable)",
        consistency=None, quota=None, bigvalue=None,
    )  # fmt: skip
    doc = to_json([down], started_at=T0, finished_at=T0)
    cluster = doc["clusters"][0]
    assert doc["exit_code"] == EXIT_ERROR
    assert cluster["inspected"] is False
    assert [m["up"] for m in cluster["members"]] == [False, False, False]
    assert [m["name"] for m in cluster["members"]] == ["m1", "m2", "m3"]
    assert cluster["consistency"] is None and cluster["keyspace"] is None
    assert cluster["alarms"] is None and cluster["leader"] is None


# --------------------------------------------------------------------------- text


def test_text_report_has_every_section_and_the_verdict():
    insp = inspection(bigvalue=bigvalue_result(big=1, top_size=1048576), watch=5.0)
    text = render_text([insp], started_at=T0)
    for heading in (
        "== cluster prod (3 endpoints)", "Members", "Consistency (at revision 500)", "Quota",
        "Keyspace scan (at revision 500, from m2)", "Largest values", "Most-modified keys",
        "Biggest prefixes", "Hot keys (watched 5s: 915 writes, 183.0/s)", "Findings",
        "Result: findings (exit 1)",
    ):  # fmt: skip
        assert heading in text, heading
    assert "1.0 MiB  OVER  /big/blob" in text
    assert "2500     /hot/counter" in text
    assert "! [big_value]" in text
    assert "2.0h" in text  # m1's projected time to a full quota


def test_text_report_of_a_healthy_cluster_says_all_clear():
    text = render_text([inspection()], started_at=T0)
    assert "none: all clear" in text
    assert "Hot keys: not watched" in text
    assert text.rstrip().endswith("Result: all clear (exit 0)")


def test_text_report_shows_down_members_and_failed_sections():
    insp = inspection(status=status_result(down=(2,)), quota="timed out after 15s")
    text = render_text([insp], started_at=T0)
    assert "DOWN (unavailable)" in text
    assert "Quota: failed: timed out after 15s" in text


def test_inspection_is_frozen():
    with pytest.raises(dataclasses.FrozenInstanceError):
        inspection().name = "x"  # type: ignore[misc]


# --------------------------------------------------------------------------- hot keys


def test_a_key_over_the_alerts_rate_is_a_finding_by_key_in_a_watch_window():
    # 212 writes of /hot/counter in a 3s window: 70.7/s, over the alert's 50/s.
    insp = inspection(watch=3.0)
    (f,) = findings(insp)
    assert (f.check, f.subject, f.threshold) == ("hot_key", "/hot/counter", 50)
    assert f.value == pytest.approx(212 / 3, abs=0.001)
    assert f.runbook_url == RUNBOOK_URL_BASE + "etcdinspectorhotkey"
    text = render_text([insp], started_at=T0)
    assert "short window: rates are writes counted / 3s" in text
    assert re.search(r"^  70.7 +/hot/counter$", text, re.M)  # one divisor: the window


def test_the_exporters_live_view_reports_the_watch_with_decayed_rates():
    live = dataclasses.replace(inspection(hotkeys=hotkeys_result()), live=True)
    hk = to_json([live], started_at=T0, finished_at=T0)["clusters"][0]["hot_keys"]
    assert hk["watch_seconds"] is None and hk["short_window"] is False
    assert hk["keys"] == [{"key": "/hot/counter", "writes_per_second": 42.5}]
    assert hk["events_per_second"] == 38.0
    assert checks(live) == []  # 42.5/s is under the alert's 50/s


def test_a_member_that_refuses_our_credentials_is_not_down():
    topology = status_result()
    refused = dataclasses.replace(
        topology.members[2], status=None, error=ErrorKind.AUTH_FAILED, detail="wrong password"
    )
    insp = inspection(
        status=dataclasses.replace(topology, members=(*topology.members[:2], refused))
    )
    (f,) = findings(insp)
    assert f.check == "auth_failed" and "answered, but authentication failed" in f.message
    m3 = to_json([insp], started_at=T0, finished_at=T0)["clusters"][0]["members"][2]
    assert (m3["up"], m3["state"]) == (True, "auth_failed")
    assert "up, AUTHENTICATION FAILED" in render_text([insp], started_at=T0)
    assert "DOWN" not in render_text([insp], started_at=T0)


def test_a_sub_second_duration_is_shown_in_milliseconds() -> None:
    """The performance table's fsync and commit p99: 0.4 s used to read "0s"."""
    from etcd_inspector.report.format import duration

    shown = [duration(v) for v in (0, 0.0008, 0.4, 2.04, 90)]
    assert shown == ["0s", "0.8ms", "400ms", "2s", "1.5m"]
