"""members.py: which member sits behind which endpoint (pure, no network)."""

from __future__ import annotations

from etcd_inspector.cluster.members import fallback_name, member_id_names, resolve_member_names
from etcd_inspector.cluster.state import ClusterState
from etcd_inspector.cluster.topology import MemberView, Topology
from etcd_inspector.etcd.client import MemberInfo, MemberList, MemberStatus

E1, E2, E3 = "http://127.0.0.1:2379", "http://127.0.0.2:2379", "https://etcd-3.example:2379"
ENDPOINTS = (E1, E2, E3)

MEMBERS = MemberList(
    cluster_id=7,
    members=(
        MemberInfo(0xA1, "infra1", ("http://127.0.0.1:2380",), (E1,), False),
        MemberInfo(0xA2, "infra2", ("http://127.0.0.2:2380",), (E2,), False),
        # advertised in upper case and with a path: matched on scheme://host:port only
        MemberInfo(
            0xA3,
            "infra3",
            ("https://etcd-3.example:2380",),
            ("HTTPS://ETCD-3.example:2379/",),
            False,
        ),
    ),
)


def status(member_id: int, endpoint: str) -> MemberStatus:
    return MemberStatus(
        endpoint, member_id, 7, 0xA1, 2, 10, 10, 5, 20480, 16384, "3.5.1", False, ()
    )


def test_names_by_member_id_from_status() -> None:
    # The endpoint order need not match the member list's: the ID decides.
    statuses = {E1: status(0xA2, E1), E2: status(0xA1, E2), E3: status(0xA3, E3)}
    assert resolve_member_names(ENDPOINTS, statuses, MEMBERS, {}) == {
        E1: "infra2",
        E2: "infra1",
        E3: "infra3",
    }


def test_a_down_member_is_named_by_its_client_url() -> None:
    statuses = {E1: status(0xA1, E1), E2: None, E3: None}
    assert resolve_member_names(ENDPOINTS, statuses, MEMBERS, {}) == {
        E1: "infra1",
        E2: "infra2",
        E3: "infra3",
    }


def test_previous_name_when_nothing_else_knows() -> None:
    previous = {E2: "infra2"}
    assert resolve_member_names(ENDPOINTS, {E1: None, E2: None, E3: None}, None, previous) == {
        E1: "127.0.0.1:2379",
        E2: "infra2",
        E3: "etcd-3.example:2379",
    }


def test_member_list_wins_over_a_stale_previous_name() -> None:
    names = resolve_member_names((E1,), {E1: status(0xA1, E1)}, MEMBERS, {E1: "old-name"})
    assert names == {E1: "infra1"}


def test_unnamed_member_falls_back_to_host_port() -> None:
    # A member added but not started yet has no name in the member list.
    unnamed = MemberList(7, (MemberInfo(0xA1, "", ("http://127.0.0.1:2380",), (E1,), False),))
    assert resolve_member_names((E1,), {E1: status(0xA1, E1)}, unnamed, {}) == {
        E1: "127.0.0.1:2379"
    }


def test_fallback_name_and_id_names() -> None:
    assert fallback_name("https://10.0.0.1:2379") == "10.0.0.1:2379"
    assert fallback_name("not a url") == "not a url"
    assert member_id_names(MEMBERS) == {0xA1: "infra1", 0xA2: "infra2", 0xA3: "infra3"}
    assert member_id_names(None) == {}


def test_cluster_state_uses_resolved_names_and_falls_back() -> None:
    state = ClusterState("c", ENDPOINTS)
    assert state.member_name(E1) == "127.0.0.1:2379"
    state.set_topology(
        Topology(
            tuple(
                MemberView(e, "infra1" if e == E1 else fallback_name(e), None) for e in ENDPOINTS
            ),
            None,
            None,
        )
    )
    assert state.member_name(E1) == "infra1"
    assert state.member_name(E2) == "127.0.0.2:2379"


def test_merge_member_lists_keeps_every_member_once() -> None:
    from etcd_inspector.cluster.members import merge_member_lists
    from etcd_inspector.etcd.client import MemberInfo, MemberList

    a = MemberInfo(1, "m1", (), ("http://a:2379",), False)
    b = MemberInfo(2, "m2", (), ("http://b:2379",), False)
    x = MemberInfo(9, "x1", (), ("http://x:2379",), False)
    merged = merge_member_lists([MemberList(7, (a, b)), MemberList(8, (x, a))])
    assert merged is not None and merged.cluster_id == 7
    assert [m.name for m in merged.members] == ["m1", "m2", "x1"]
    assert merge_member_lists([]) is None
