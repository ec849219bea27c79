"""Probe logic against the in-memory etcd (tests/memory_etcd.py, a fake for unit tests only):
what the quota, consistency and bigvalue probes find, report (text and JSON) and export for a
cluster planted exactly as the test needs. No etcd runs; the same probes against real clusters
are in test_probe_quota.py, test_probe_consistency.py and test_probe_bigvalue.py (-m etcd)."""

from __future__ import annotations

from typing import Any

import pytest
from prometheus_client.metrics_core import Metric

from etcd_inspector.cluster.state import ClusterState
from etcd_inspector.errors import ErrorKind, ProbeError
from etcd_inspector.etcd.interfaces import Member
from etcd_inspector.probes.base import ProbeContext, ReportContext
from etcd_inspector.probes.bigvalue import BigValueOptions, BigValueProbe
from etcd_inspector.probes.consistency import ConsistencyOptions, ConsistencyProbe, NotComparable
from etcd_inspector.probes.quota import QuotaOptions, QuotaProbe
from etcd_inspector.report.findings import Severity
from memory_etcd import MemoryCluster, as_members

CLUSTER = "mem"
MiB = 1024 * 1024


def context(members: list[Member], **kw: Any) -> ProbeContext:
    endpoints = tuple(m.endpoint for m in members)
    return ProbeContext(
        cluster=CLUSTER,
        members=members,
        state=ClusterState(CLUSTER, endpoints),
        **kw,
    )


def report_context(members: list[Member]) -> ReportContext:
    endpoints = tuple(m.endpoint for m in members)
    return ReportContext(CLUSTER, endpoints, {})


def name(member: Member) -> str:
    """What a member is called before the status probe has named it: its host:port."""
    return member.endpoint.removeprefix("http://")


def values(families: Any, family: str) -> dict[str, float]:
    (fam,) = [f for f in families if f.name == family]
    assert isinstance(fam, Metric)
    return {s.labels.get("member", ""): s.value for s in fam.samples}


# --------------------------------------------------------------------------- quota


async def test_quota_member_over_the_limit_is_one_warning_in_findings_json_and_text() -> None:
    cluster = MemoryCluster()
    for m, db in zip(cluster.members, (40 * MiB, 50 * MiB, 90 * MiB), strict=True):
        m.db_size, m.db_size_in_use = db, db // 2
    members = as_members(cluster)
    probe = QuotaProbe(QuotaOptions(quota_bytes=100 * MiB))
    result = await probe.run(context(members))
    rc = report_context(members)
    m3 = name(members[2])

    (finding,) = probe.findings(result, rc)
    assert (finding.check, finding.member, finding.subject) == ("quota", m3, m3)
    assert finding.severity == Severity.CRITICAL  # over the highest of the three tiers
    assert finding.message == (
        f"member {m3} uses 90% of its quota (90.0 MiB of 100.0 MiB; critical tier: limit 85%)"
    )
    assert (finding.value, finding.threshold) == (0.9, 0.85)

    doc = probe.report_json(result, rc)["quota"]
    assert doc["used_ratio_limit"] == 0.65
    assert doc["used_ratio_tiers"] == [
        {"severity": "info", "ratio": 0.65},
        {"severity": "warning", "ratio": 0.75},
        {"severity": "critical", "ratio": 0.85},
    ]
    assert [(m["name"], m["used_ratio"], m["headroom_bytes"], m["quota_source"])
            for m in doc["members"]] == [
        (name(members[0]), 0.4, 60 * MiB, "option"),
        (name(members[1]), 0.5, 50 * MiB, "option"),
        (m3, 0.9, 10 * MiB, "option"),
    ]  # fmt: skip
    text = probe.report_text(result, rc)
    assert text[0] == "Quota (limit 65% used; tiers 65% info, 75% warning, 85% critical)"
    assert text[1].split() == ["MEMBER", "DB", "SIZE", "QUOTA", "USED", "HEADROOM", "FULL", "IN"]
    assert text[-1].split() == [m3, "90.0", "MiB", "100.0", "MiB", "(option)", "90.0%", "10.0",
                                "MiB", "-"]  # fmt: skip

    families = list(probe.metrics(CLUSTER, result))
    assert values(families, "etcd_inspector_quota_used_ratio")[m3] == 0.9
    assert values(families, "etcd_inspector_db_in_use_ratio")[m3] == 0.5


async def test_quota_leaves_out_a_member_that_times_out_and_fails_when_none_answers() -> None:
    cluster = MemoryCluster()
    for m in cluster.members:
        m.db_size = 10 * MiB
    cluster.member("m2").fail = ErrorKind.TIMEOUT
    members = as_members(cluster)
    probe = QuotaProbe(QuotaOptions(quota_bytes=100 * MiB))
    result = await probe.run(context(members))
    assert [m.member for m in result.members] == [name(members[0]), name(members[2])]
    assert list(probe.findings(result, report_context(members))) == []

    for m in cluster.members:
        m.fail = ErrorKind.UNAVAILABLE
    with pytest.raises(ProbeError) as err:
        await probe.run(context(members))
    assert err.value.kind == ErrorKind.NO_ANSWER


# --------------------------------------------------------------------------- consistency


def planted(cluster: MemoryCluster, keys: int = 5) -> None:
    for i in range(keys):
        cluster.put(b"/registry/pods/p%d" % i, b"x" * 10)


async def test_consistency_equal_members_are_consistent_with_every_count_and_hash() -> None:
    cluster = MemoryCluster()
    planted(cluster)
    members = as_members(cluster)
    probe = ConsistencyProbe(ConsistencyOptions())
    result = await probe.run(context(members))
    rc = report_context(members)
    assert result.revision == 6  # etcd starts at 1; five writes
    assert result.verdict.consistent and result.verdict.reasons == ()
    assert list(probe.findings(result, rc)) == []
    doc = probe.report_json(result, rc)["consistency"]
    assert (doc["members_compared"], doc["members_total"]) == (3, 3)
    assert {m["keys"] for m in doc["members"]} == {5}
    assert len({m["hash"] for m in doc["members"]}) == 1
    text = probe.report_text(result, rc)
    assert text[0] == "Consistency (at revision 6)"
    assert text[-2] == "  key counts agree: yes; hashes agree: yes; cluster IDs agree: yes"
    assert text[-1] == "  verdict: consistent (3 of 3 members compared at revision 6)"


async def test_consistency_a_member_that_lost_a_write_is_critical() -> None:
    cluster = MemoryCluster()
    planted(cluster)
    lost = cluster.diverge("m3")
    cluster.put(b"/registry/pods/new", b"y")  # m1, m2: revision 7, six keys
    lost.delete(b"/registry/pods/p0")  # m3: revision 7, four keys
    members = as_members(cluster)
    probe = ConsistencyProbe(ConsistencyOptions())
    result = await probe.run(context(members))
    m1, m2, m3 = (name(m) for m in members)

    counts, hashes = result.verdict.reasons
    assert counts == f"key counts at revision 7 differ ({m1}=6, {m2}=6, {m3}=4)"
    assert hashes.startswith("hashes at revision 7 differ (")
    findings = list(probe.findings(result, report_context(members)))
    assert [(f.check, f.severity, f.message, f.value) for f in findings] == [
        ("inconsistent", Severity.CRITICAL, counts, 2),
        ("inconsistent", Severity.CRITICAL, hashes, 2),
    ]
    doc = probe.report_json(result, report_context(members))["consistency"]
    assert not doc["consistent"] and not doc["key_counts_agree"] and not doc["hashes_agree"]
    metrics = {f.name: f.samples[0].value for f in probe.metrics(CLUSTER, result) if f.samples}
    assert metrics["etcd_inspector_key_count_diff"] == 2


async def test_consistency_member_of_another_cluster_and_a_root_less_hash() -> None:
    cluster = MemoryCluster()
    planted(cluster)
    stranger = cluster.add_stranger("x1")
    for m in cluster.members:
        m.hash_fail = ErrorKind.PERMISSION_DENIED
    members = as_members(cluster)
    probe = ConsistencyProbe(ConsistencyOptions())
    result = await probe.run(context(members))
    m1, m2, m3, x1 = (name(m) for m in members)
    assert result.verdict.reasons == (
        f"members belong to 2 clusters (c1: {m1}/{m2}/{m3}, c2: {x1})",
        f"not comparable: {x1} has not reached revision 6",
    )
    doc = probe.report_json(result, report_context(members))["consistency"]
    assert doc["hash_unavailable_reason"] == "permission_denied"
    assert doc["hashes_agree"] is None and doc["cluster_ids_agree"] is False
    assert ("count", 6) not in stranger.calls  # a member behind R is not asked


async def test_consistency_retries_once_after_a_compaction_then_gives_up() -> None:
    cluster = MemoryCluster()
    planted(cluster)
    members = as_members(cluster)
    cluster.store.compact(100)  # every read at R is compacted, whichever R
    with pytest.raises(NotComparable):
        await ConsistencyProbe(ConsistencyOptions()).run(context(members))
    assert [c for c in cluster.member("m1").calls if c[0] == "count"] == [("count", 6)] * 2


# --------------------------------------------------------------------------- bigvalue


async def test_bigvalue_finds_the_big_values_and_reports_them_in_json_and_text() -> None:
    cluster = MemoryCluster()
    for i in range(30):
        cluster.put(b"/registry/configmaps/default/cm%02d" % i, b"v" * 100)
    cluster.put(b"/registry/secrets/default/huge", b"s" * 5000)
    cluster.put(b"/registry/configmaps/default/big", b"c" * 2000)
    for _ in range(4):
        cluster.put(b"/registry/leases/kube-system/hot", b"l")
    members = as_members(cluster)
    probe = BigValueProbe(BigValueOptions(threshold_bytes=1000, page_size=10, top_n=3))
    result = await probe.run(context(members))
    rc = report_context(members)

    assert (result.keys, result.revision) == (33, 37)
    assert (result.big_values, result.big_values_bytes) == (2, 7000)
    assert result.total_bytes == 30 * 100 + 5000 + 2000 + 1
    (huge_size, secret), (big_size, big) = result.top_values[:2]
    # A Secret's key is labelled by its hash, never by name (keyspace/keys.py).
    assert (huge_size, big_size, big) == (5000, 2000, "/registry/configmaps/default/big")
    assert secret.startswith("sha256:") and "huge" not in secret
    assert result.top_versions[0] == (4, "/registry/leases/kube-system/hot")
    # The first page pins the revision, every later page reads at it; all from the first
    # member (no topology yet to prefer a follower).
    first, *later = [c for c in cluster.member("m1").calls if c[0] == "range"]
    assert first == ("range", 0) and later and set(later) == {("range", 37)}

    findings = list(probe.findings(result, rc))
    assert [(f.check, f.subject, f.message) for f in findings] == [
        ("big_value", secret, f"value of {secret} is 4.9 KiB (threshold 1000 B)"),
        ("big_value", big, f"value of {big} is 2.0 KiB (threshold 1000 B)"),
    ]
    doc = probe.report_json(result, rc)["keyspace"]
    assert doc["largest_values"][0] == {"key": secret, "bytes": 5000}
    assert doc["most_modified"][0] == {"key": "/registry/leases/kube-system/hot", "version": 4}
    # Kubernetes keys group by resource: 31 ConfigMaps, 5,000 bytes of values.
    prefixes = {p["prefix"]: (p["keys"], p["bytes"]) for p in doc["prefixes"]}
    assert prefixes["/registry/configmaps/"] == (31, 30 * 100 + 2000)
    text = probe.report_text(result, rc)
    assert text[0].startswith(f"Keyspace scan (at revision 37, from {name(members[0])}): 33 keys")
    assert "Largest values (threshold 1000 B; 2 over it)" in text
    assert not any("secrets/default/huge" in line for line in text)


async def test_bigvalue_fails_over_to_the_next_member_when_one_times_out() -> None:
    cluster = MemoryCluster()
    for i in range(20):
        cluster.put(b"/k/%02d" % i, b"v")
    cluster.member("m1").fail = ErrorKind.TIMEOUT
    members = as_members(cluster)
    probe = BigValueProbe(BigValueOptions(page_size=5))
    result = await probe.run(context(members))
    assert (result.keys, result.member) == (20, name(members[1]))
    assert list(probe.findings(result, report_context(members))) == []
