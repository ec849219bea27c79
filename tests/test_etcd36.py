"""etcd 3.6 Status fields (issue 19): storage version and a downgrade in progress.

No etcd 3.6 binary can be installed here, so the answers are made byte by byte from etcd's own
definition at tag v3.6.0 (etcd-io/etcd api/etcdserverpb/rpc.proto, message StatusResponse:
`string storageVersion = 11; int64 dbSizeQuota = 12; DowngradeInfo downgradeInfo = 13;` and
`message DowngradeInfo { bool enabled = 1; string targetVersion = 2; }`), appended to a 3.5-shaped
answer as a 3.6 member sends them (server/etcdserver/api/v3rpc/maintenance.go: Status always sets
downgradeInfo, storageVersion once known). Real 3.4/3.5 members send neither: nothing exported."""

from __future__ import annotations

import pytest
from aetcd import rpc

from etcd_inspector.cluster.topology import MemberView, Topology
from etcd_inspector.etcd.client import member_status
from etcd_inspector.etcd.status36 import status36
from etcd_inspector.probes.base import ReportContext
from etcd_inspector.probes.status import StatusProbe
from etcd_inspector.probes.status_report import members_json
from exposition import assert_promtool_clean, render


def _varint(n: int) -> bytes:
    out = bytearray()
    while True:
        byte, n = n & 0x7F, n >> 7
        out.append(byte | (0x80 if n else 0))
        if not n:
            return bytes(out)


def _len_field(number: int, payload: bytes) -> bytes:
    return _varint(number << 3 | 2) + _varint(len(payload)) + payload


def v36_answer(
    member_id: int, *, storage: str | None, downgrade: tuple[bool, str]
) -> rpc.StatusResponse:
    """A StatusResponse as an etcd 3.6 member sends it, decoded by this client's 3.5 protos."""
    base = rpc.StatusResponse(
        header=rpc.ResponseHeader(cluster_id=7, member_id=member_id, revision=40, raft_term=2),
        version="3.6.0", dbSize=4096, leader=1, raftIndex=90, raftTerm=2, raftAppliedIndex=90,
        dbSizeInUse=2048, isLearner=False,
    )  # fmt: skip
    extra = b""
    if storage is not None:
        extra += _len_field(11, storage.encode())
    extra += _varint(12 << 3 | 0) + _varint(2 * 2**30)  # dbSizeQuota
    enabled, target = downgrade
    info = (_varint(1 << 3 | 0) + _varint(1) if enabled else b"") + (
        _len_field(2, target.encode()) if target else b""
    )
    extra += _len_field(13, info)  # always sent, empty when no downgrade
    return rpc.StatusResponse.FromString(base.SerializeToString() + extra)


def topology(*answers: rpc.StatusResponse) -> Topology:
    views = tuple(
        MemberView(f"e{a.header.member_id}", f"m{a.header.member_id}",
                   member_status(f"e{a.header.member_id}", a), None, "")
        for a in answers
    )  # fmt: skip
    return Topology(views, None, (), taken_at=1.0)


def test_the_36_fields_are_read_from_the_answer_and_absent_before() -> None:
    st = member_status("e1", v36_answer(1, storage="3.6.0", downgrade=(True, "3.5.0")))
    assert (st.storage_version, st.downgrade_enabled, st.downgrade_target_version) == (
        "3.6.0", True, "3.5.0",
    )  # fmt: skip
    assert (st.version, st.raft_applied_index, st.db_size) == ("3.6.0", 90, 4096)
    idle = status36(v36_answer(1, storage=None, downgrade=(False, "")).SerializeToString())
    assert (idle.storage_version, idle.downgrade_enabled) == (None, False)
    old = rpc.StatusResponse(version="3.5.17", dbSize=1, raftAppliedIndex=3)  # what 3.5 sends
    st35 = member_status("e1", old)
    assert (st35.storage_version, st35.downgrade_enabled) == (None, None)


@pytest.mark.promtool
def test_storage_version_and_downgrade_are_exported_from_36_members() -> None:
    topo = topology(
        v36_answer(1, storage="3.6.0", downgrade=(True, "3.5.0")),
        v36_answer(2, storage="3.6.0", downgrade=(False, "")),
        v36_answer(3, storage="3.5.0", downgrade=(False, "")),
    )
    text = render(StatusProbe(None).metrics("prod", topo))  # type: ignore[arg-type]
    info = 'etcd_inspector_member_storage_version_info{cluster="prod",member="m3",version="3.5.0"}'
    assert f"{info} 1.0" in text
    assert text.count("etcd_inspector_member_storage_version_info{") == 3
    assert 'etcd_inspector_downgrade_enabled{cluster="prod"} 1.0' in text
    assert_promtool_clean(text)
    rc = ReportContext("prod", ("e1", "e2", "e3"), {"e1": "m1", "e2": "m2", "e3": "m3"})
    doc = StatusProbe(None).report_json(topo, rc)  # type: ignore[arg-type]
    assert doc["downgrade"] == {"enabled": True, "target_version": "3.5.0"}
    assert [m["storage_version"] for m in members_json(topo, rc)] == ["3.6.0", "3.6.0", "3.5.0"]
    quiet = topology(v36_answer(1, storage="3.6.0", downgrade=(False, "")))
    assert 'etcd_inspector_downgrade_enabled{cluster="prod"} 0.0' in render(
        StatusProbe(None).metrics("prod", quiet)  # type: ignore[arg-type]
    )


def test_nothing_is_exported_for_35_members() -> None:
    old = rpc.StatusResponse(
        header=rpc.ResponseHeader(cluster_id=7, member_id=1, revision=4), version="3.5.17",
        leader=1, raftIndex=9, raftAppliedIndex=9,
    )  # fmt: skip
    topo = topology(old)
    text = render(StatusProbe(None).metrics("prod", topo))  # type: ignore[arg-type]
    assert "storage_version" not in text and "downgrade" not in text
    rc = ReportContext("prod", ("e1",), {"e1": "m1"})
    assert StatusProbe(None).report_json(topo, rc)["downgrade"] is None  # type: ignore[arg-type]
