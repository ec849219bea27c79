"""Leases (etcd_inspector_leases) and revisions since compaction: on the in-memory etcd, then
on a real cluster against what etcdctl says."""

from __future__ import annotations

import json

import pytest

from conftest import etcdctl
from etcd_inspector.cluster.state import ClusterState
from etcd_inspector.config import parse_config
from etcd_inspector.demo.localcluster import LocalCluster
from etcd_inspector.errors import ErrorKind, ProbeError
from etcd_inspector.probes import REGISTRY
from etcd_inspector.probes.base import NoOptions, ProbeContext, ReportContext
from etcd_inspector.probes.compaction import since
from etcd_inspector.probes.consistency import (
    ConsistencyOptions,
    ConsistencyProbe,
    ConsistencyResult,
)
from etcd_inspector.probes.leases import LeasesProbe, LeasesResult
from etcd_inspector.report import thresholds
from etcd_inspector.runtime.runtime import ClusterRuntime, build_runtime
from etcd_inspector.runtime.scheduler import run_probe_once
from memory_etcd import MemoryCluster, as_members

CLUSTER = "c1"


def context(cluster: MemoryCluster) -> ProbeContext:
    members = as_members(cluster)
    endpoints = tuple(m.endpoint for m in members)
    return ProbeContext(cluster=CLUSTER, members=members, state=ClusterState(CLUSTER, endpoints))


def report_context(**overrides: object) -> ReportContext:
    t = thresholds.with_overrides(overrides) if overrides else thresholds.DEFAULT
    return ReportContext(CLUSTER, (), {}, thresholds=t)


def samples(probe: object, result: object, name: str) -> list[float]:
    fams = list(probe.metrics(CLUSTER, result))  # type: ignore[attr-defined]
    return [s.value for f in fams if f.name == name for s in f.samples]


# --------------------------------------------------------------------------- memory etcd


async def test_leases_are_counted_from_the_first_member_that_answers() -> None:
    cluster = MemoryCluster()
    cluster.members[0].store.leases.update({11, 12, 13})
    cluster.members[0].fail = ErrorKind.TIMEOUT
    probe = LeasesProbe(NoOptions())
    result = await probe.run(context(cluster))
    assert result.leases == 3 and result.member == cluster.members[1].endpoint.removeprefix(
        "http://"
    )
    assert samples(probe, result, "etcd_inspector_leases") == [3.0]
    assert list(probe.findings(result, report_context())) == []
    assert probe.report_json(result, report_context()) == {"leases": {"count": 3, "limit": 10000}}


async def test_leases_fail_with_no_answer_when_no_member_answers() -> None:
    cluster = MemoryCluster()
    for m in cluster.members:
        m.fail = ErrorKind.UNAVAILABLE
    with pytest.raises(ProbeError) as err:
        await LeasesProbe(NoOptions()).run(context(cluster))
    assert err.value.kind == ErrorKind.NO_ANSWER


def test_leases_over_the_limit_are_a_finding_with_the_alerts_runbook() -> None:
    probe = LeasesProbe(NoOptions())
    (f,) = probe.findings(LeasesResult(leases=51, member="m1"), report_context(leases_max=50))
    assert (f.check, f.severity, f.value, f.threshold) == ("leases", "warning", 51, 50)
    assert list(probe.findings(LeasesResult(50, "m1"), report_context(leases_max=50))) == []
    assert [c.alert for c in REGISTRY["leases"].checks] == ["EtcdInspectorLeasesHigh"]


async def test_revisions_since_compaction_come_from_the_hashkv_answers() -> None:
    cluster = MemoryCluster()
    store = cluster.members[0].store
    for i in range(30):
        store.put(f"/k/{i % 3}".encode(), b"v")
    probe = ConsistencyProbe(ConsistencyOptions())
    before = await probe.run(context(cluster))
    assert since(before.members) == store.revision  # nothing compacted yet
    store.compact(store.revision - 5)
    after = await probe.run(context(cluster))
    assert since(after.members) == 5
    assert samples(probe, after, "etcd_inspector_revisions_since_compaction") == [5.0]
    assert list(probe.findings(after, report_context(revisions_since_compaction_max=5))) == []
    (f,) = probe.findings(after, report_context(revisions_since_compaction_max=4))
    assert (f.check, f.value, f.threshold) == ("compaction_stalled", 5, 4)
    # Without HashKV (hash_check off) there is nothing to tell it from: absent, no finding.
    off = await ConsistencyProbe(ConsistencyOptions(hash_check=False)).run(context(cluster))
    assert since(off.members) is None
    assert samples(probe, off, "etcd_inspector_revisions_since_compaction") == []


# --------------------------------------------------------------------------- real etcd


def make_runtime(cluster: LocalCluster) -> ClusterRuntime:
    raw = {
        "clusters": [{"name": CLUSTER, "endpoints": list(cluster.endpoints)}],
        "inspection": {"probes": {"consistency": {"timeout": "20s"}}},
    }
    config = parse_config(raw, REGISTRY)
    probes = {"status", "consistency", "leases", "bigvalue"}
    return build_runtime(config.clusters[0], config, only=probes)


async def run(runtime: ClusterRuntime, name: str) -> object:
    for probe in ("status", name):
        ctx = runtime.scheduler.context_for(probe)
        outcome = await run_probe_once(runtime.probes[probe], ctx, runtime.state)
        assert outcome.success, outcome.error
    return runtime.state.outcomes[name].result


def etcdctl_lease_count(cluster: LocalCluster) -> int:
    out = json.loads(etcdctl(cluster, "lease", "list", "-w=json"))
    return len(out.get("leases") or [])


@pytest.mark.etcd
async def test_leases_granted_by_etcdctl_are_counted_exactly(etcd_cluster: LocalCluster) -> None:
    runtime = make_runtime(etcd_cluster)
    try:
        result = await run(runtime, "leases")
        assert isinstance(result, LeasesResult)
        assert result.leases == etcdctl_lease_count(etcd_cluster) == 0
        ids = [etcdctl(etcd_cluster, "lease", "grant", "600").split()[1] for _ in range(25)]
        for key in ("/leased/a", "/leased/b", "/leased/c"):
            etcdctl(etcd_cluster, "put", "--lease", ids[0], key, "1")
        etcdctl(etcd_cluster, "put", "/plain/d", "1")
        result = await run(runtime, "leases")
        assert isinstance(result, LeasesResult)
        assert result.leases == etcdctl_lease_count(etcd_cluster) == 25
        # Keys attached to leases: counted by the keyspace scan from each key's lease field.
        scan = await run(runtime, "bigvalue")
        ttl = etcdctl(etcd_cluster, "lease", "timetolive", "--keys", ids[0])
        assert all(k in ttl for k in ("/leased/a", "/leased/b", "/leased/c"))
        assert samples(runtime.probes["bigvalue"].probe, scan, "etcd_inspector_lease_keys") == [3.0]
        etcdctl(etcd_cluster, "lease", "revoke", ids[1])
        result = await run(runtime, "leases")
        assert isinstance(result, LeasesResult)
        assert result.leases == etcdctl_lease_count(etcd_cluster) == 24
    finally:
        await runtime.close()


@pytest.mark.etcd
async def test_revisions_since_compaction_rise_with_writes_and_drop_after_compact(
    etcd_cluster: LocalCluster,
) -> None:
    runtime = make_runtime(etcd_cluster)
    try:
        first = await run(runtime, "consistency")
        assert isinstance(first, ConsistencyResult)
        for i in range(40):
            etcdctl(etcd_cluster, "put", f"/churn/{i % 4}", f"v{i}")
        second = await run(runtime, "consistency")
        assert isinstance(second, ConsistencyResult)
        a = since(first.members)
        b = since(second.members)
        assert a is not None and b is not None and b >= a + 40, (a, b)

        status = json.loads(etcdctl(etcd_cluster, "endpoint", "status", "-w=json"))
        revision = max(int(e["Status"]["header"]["revision"]) for e in status)
        etcdctl(etcd_cluster, "compact", str(revision - 3), "--physical")
        third = await run(runtime, "consistency")
        assert isinstance(third, ConsistencyResult) and third.members[0].status is not None
        c = since(third.members)
        assert c == third.members[0].status.revision - (revision - 3) == 3
        assert samples(
            runtime.probes["consistency"].probe, third, "etcd_inspector_revisions_since_compaction"
        ) == [3.0]
    finally:
        await runtime.close()


def test_a_raised_limit_moves_the_finding() -> None:
    result = LeasesResult(leases=20_000, member="m1")
    assert [f.check for f in LeasesProbe(NoOptions()).findings(result, report_context())] == [
        "leases"
    ]
    assert list(
        LeasesProbe(NoOptions()).findings(result, report_context(leases_max=50_000))
    ) == []
