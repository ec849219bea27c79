"""Learners (issue 19): a learner's catch-up lag (etcd_inspector_learner_lag_entries), its flag on
the page and in `inspect`, and the findings for a learner far behind or with a bloated database.

The unit tests build Status answers by hand; the last test adds a real learner to a real cluster
with `etcdctl member add --learner` and starts it as an operator would."""

from __future__ import annotations

import asyncio
import dataclasses
import itertools
import time
from pathlib import Path

import pytest

from etcd_inspector.cluster.topology import MemberView, Topology
from etcd_inspector.demo.faults.cgroups import ProcessCgroup
from etcd_inspector.demo.localcluster import LocalCluster, LocalMember, start_cluster
from etcd_inspector.demo.sample_writer import SampleWriter
from etcd_inspector.etcd.client import MemberClient
from etcd_inspector.etcd.types import MemberStatus
from etcd_inspector.ports import free_ports
from etcd_inspector.probes.base import ReportContext
from etcd_inspector.probes.status import StatusProbe, read_topology
from etcd_inspector.probes.status_report import (
    learner_lags,
    members_json,
    members_text,
    members_view,
)
from etcd_inspector.report.view import Table, ViewInput

GiB = 2**30
BURST = 2000  # entries the leader runs ahead of the stopped learner
LEARNER_CPU_QUOTA_US = 3000  # per 100 ms period: 3% of one CPU while it catches up


def status(member_id: int, *, learner: bool = False, index: int = 100, applied: int = 100,
           db: int = GiB, leader_id: int = 1) -> MemberStatus:  # fmt: skip
    return MemberStatus(
        endpoint=f"e{member_id}", member_id=member_id, cluster_id=7, leader_id=leader_id,
        raft_term=2, raft_index=index, raft_applied_index=applied, revision=50, db_size=db,
        db_size_in_use=db, version="3.5.17", is_learner=learner, errors=(),
    )  # fmt: skip


def topology(*statuses: MemberStatus) -> Topology:
    views = tuple(MemberView(s.endpoint, f"m{s.member_id}", s, None, "") for s in statuses)
    return Topology(views, None, (), taken_at=1.0)


def context(topo: Topology) -> ReportContext:
    return ReportContext("c", tuple(m.endpoint for m in topo.members),
                         {m.endpoint: m.name for m in topo.members})  # fmt: skip


def test_the_lag_is_the_leaders_index_minus_the_learners_applied_index() -> None:
    topo = topology(
        status(1, index=50_000, applied=50_000),
        status(2, index=49_990, applied=49_980),
        status(3, learner=True, index=50_000, applied=12_000),
    )
    assert learner_lags(topo) == {"m3": 38_000}
    (family,) = [f for f in StatusProbe(None).metrics("c", topo)  # type: ignore[arg-type]
                 if f.name == "etcd_inspector_learner_lag_entries"]  # fmt: skip
    assert [(s.labels, s.value) for s in family.samples] == [
        ({"cluster": "c", "member": "m3"}, 38_000.0)
    ]
    # no answering leader: no lag is published (not a guess)
    assert learner_lags(topology(status(2), status(3, learner=True, applied=1))) == {}


def test_a_learner_far_behind_and_a_bloated_learner_are_findings() -> None:
    topo = topology(
        status(1, index=50_000, applied=50_000, db=GiB),
        status(2, index=50_000, applied=50_000, db=GiB // 2),
        status(3, learner=True, index=50_000, applied=12_000, db=3 * GiB),
    )
    found = list(StatusProbe(None).findings(topo, context(topo)))  # type: ignore[arg-type]
    assert [(f.check, f.member, f.value, f.threshold) for f in found] == [
        ("learner_behind", "m3", 38_000, 10_000),
        ("learner_db_large", "m3", 3 * GiB, int(1.5 * GiB)),
    ]
    assert "cannot be defragmented" in found[1].message and "3.0x" in found[1].message
    caught_up = topology(
        status(1, index=50_000, applied=50_000, db=GiB),
        status(3, learner=True, index=50_000, applied=49_000, db=GiB + 1),
    )
    assert list(StatusProbe(None).findings(caught_up, context(caught_up))) == []  # type: ignore[arg-type]


def test_the_learner_and_its_lag_are_in_json_text_and_on_the_page() -> None:
    topo = topology(status(1, index=500, applied=500), status(3, learner=True, applied=480))
    rc = context(topo)
    rows = members_json(topo, rc)
    assert [(r["name"], r["learner"], r["learner_lag_entries"]) for r in rows] == [
        ("m1", False, None), ("m3", True, 20),
    ]  # fmt: skip
    assert "learner, 20 behind" in "\n".join(members_text(topo, rc))
    parts = members_view(ViewInput({"members": rows, "alarms": [], "leader": "m1"}))
    (table,) = [c for p in parts for c in getattr(p, "blocks", ()) if isinstance(c, Table)]
    learner = table.rows[1][table.headers.index("learner")]
    assert (learner.value, learner.note, learner.tag) == ("learner", "20 entries behind", "learner")


@pytest.mark.etcd
def test_a_real_learner_catches_up_and_shows_as_a_learner(etcd_binary: str, tmp_path: Path) -> None:
    """`etcdctl member add --learner`, then the new member started with
    --initial-cluster-state existing: Status names it a learner and its lag falls to 0."""
    from conftest import etcdctl

    cluster = start_cluster(1, base_dir=tmp_path / "etcd", binary=etcd_binary)
    learner: LocalMember | None = None
    try:
        for i in range(200):
            etcdctl(cluster, "put", f"/k/{i % 20}", "x" * 200)
        client_port, peer_port, metrics_port = free_ports(3)
        (first,) = cluster.members
        learner = dataclasses.replace(
            first, name="l1", client_port=client_port, peer_port=peer_port,
            metrics_port=metrics_port, data_dir=tmp_path / "l1.etcd",
            log_path=tmp_path / "l1.log", process=None, listen_peer_port=None,
        )  # fmt: skip
        out = etcdctl(cluster, "member", "add", "l1", "--learner",
                      f"--peer-urls={learner.peer_url}")  # fmt: skip
        assert "added to cluster" in out, out
        learner.args = _joined_args(first, learner, cluster)
        learner.start()
        members = [MemberClient(first.client_url), MemberClient(learner.client_url)]
        lags, topo = asyncio.run(_watch_lag(members))
        assert lags[-1] == 0, lags
        # The fall: the learner stopped (SIGSTOP) and starved of CPU (a CFS quota), the leader
        # runs BURST entries ahead, then the learner resumes and its lag is sampled every ~30 ms.
        # Unthrottled it applies thousands of entries within one Status round; at 3% of a CPU
        # the catch-up takes a second or two, so the samples show it falling, not just 0.
        assert learner.process is not None
        quota = ProcessCgroup("cpu", "l1")
        try:
            quota.enter(learner.process.pid)
            quota.write("cpu.cfs_period_us", "100000")
            quota.write("cpu.cfs_quota_us", str(LEARNER_CPU_QUOTA_US))
            learner.freeze()
            try:
                asyncio.run(_burst(first.client_url, BURST))
            finally:
                learner.thaw()
            members = [MemberClient(first.client_url), MemberClient(learner.client_url)]
            falling, topo = asyncio.run(_watch_lag(members, interval=0.03))
        finally:
            quota.remove()
        print(f"learner lag falling (entries, every ~30 ms): {falling}")
        assert max(falling) >= BURST // 4, falling  # the first answer comes as it catches up
        top = falling.index(max(falling))
        after = falling[top:]
        assert after[-1] == 0, falling
        assert all(a >= b for a, b in itertools.pairwise(after)), falling
        assert any(0 < lag < after[0] for lag in after), falling  # seen on its way down
        members = [MemberClient(first.client_url), MemberClient(learner.client_url)]
        lags, topo = asyncio.run(_watch_lag(members))
        assert lags[-1] == 0, lags
        rc = ReportContext("c", tuple(c.endpoint for c in members),
                           {first.client_url: "m1", learner.client_url: "l1"})  # fmt: skip
        rows = {r["name"]: r for r in members_json(topo, rc)}
        assert rows["l1"]["learner"] is True and rows["l1"]["learner_lag_entries"] == 0
        assert rows["m1"]["learner"] is False and rows["m1"]["leader"] is True
        # a real 3.4/3.5 Status has no 3.6 fields: nothing of them is exported
        assert all(r["storage_version"] is None for r in rows.values())
        names = {f.name for f in StatusProbe(None).metrics("c", topo)}  # type: ignore[arg-type]
        assert "etcd_inspector_learner_lag_entries" in names
        assert not names & {"etcd_inspector_member_storage_version_info",
                            "etcd_inspector_downgrade_enabled"}  # fmt: skip
        # etcdctl agrees: the last column of `member list` is IS LEARNER
        (row,) = [r for r in etcdctl(cluster, "member", "list").splitlines() if ", l1," in r]
        assert row.rsplit(", ", 1)[1] == "true", row
        print(f"learner lag samples (entries): {lags}")
    finally:
        if learner is not None:
            learner.stop()
        cluster.stop()


def _joined_args(first: LocalMember, learner: LocalMember, cluster: LocalCluster) -> list[str]:
    initial = f"{first.name}={first.peer_url},{learner.name}={learner.peer_url}"
    return [
        cluster.binary, "--name", learner.name, "--data-dir", str(learner.data_dir),
        "--listen-client-urls", learner.client_url, "--advertise-client-urls", learner.client_url,
        "--listen-peer-urls", learner.peer_url, "--initial-advertise-peer-urls", learner.peer_url,
        "--listen-metrics-urls", f"http://127.0.0.1:{learner.metrics_port}",
        "--initial-cluster", initial, "--initial-cluster-token", cluster.token,
        "--initial-cluster-state", "existing",
        "--heartbeat-interval", "50", "--election-timeout", "500",
        "--logger", "zap", "--log-level", "warn",
    ]  # fmt: skip


async def _watch_lag(
    members: list[MemberClient], interval: float = 0.05
) -> tuple[list[int], Topology]:
    """Status rounds until the learner's lag reads 0 (at most 30 s): the lags seen."""
    lags: list[int] = []
    deadline = time.monotonic() + 30
    topo = None
    try:
        while time.monotonic() < deadline:
            try:
                topo = await read_topology(members)
            except Exception:  # the learner's first seconds: no answer yet
                await asyncio.sleep(0.1)
                continue
            lag = learner_lags(topo).get(next(
                (m.name for m in topo.members if m.is_learner), ""))  # fmt: skip
            if lag is not None:
                lags.append(lag)
                if lag == 0:
                    break
            await asyncio.sleep(interval)
    finally:
        for c in members:
            await c.close()
    assert topo is not None and lags, "the learner never answered Status"
    return lags, topo


async def _burst(endpoint: str, entries: int) -> None:
    """`entries` raft entries on the leader: one Put each, 64 in flight at a time."""
    writer = SampleWriter(endpoint)
    try:
        for start in range(0, entries, 64):
            await asyncio.gather(*(writer.put(f"/burst/{i % 50}".encode(), b"v" * 64)
                                   for i in range(start, min(start + 64, entries))))  # fmt: skip
    finally:
        await writer.close()
