"""The cluster as the exporter last saw it: members, names, leader, learners, alarms (pure).

The status probe refreshes it (one round of Status, MemberList and the alarm list); every other
probe, the scrape path, the report and the status page read it from the cluster's state. Until
the first round, every configured endpoint is a member of unknown state named by its host:port.
"""

from __future__ import annotations

from collections.abc import Sequence
from dataclasses import dataclass

from etcd_inspector.cluster.members import fallback_name
from etcd_inspector.errors import ErrorKind
from etcd_inspector.etcd.types import MemberList, MemberStatus

KNOWN_ALARMS = ("NOSPACE", "CORRUPT")


@dataclass(frozen=True)
class MemberView:
    """One configured endpoint: the member behind it, its name, and its last Status."""

    endpoint: str
    name: str
    status: MemberStatus | None  # None: it did not answer Status (or was never asked)
    error: ErrorKind | None = None  # why it did not answer
    detail: str = ""  # the cause in one line (e.g. which certificate problem)

    @property
    def up(self) -> bool:
        return self.status is not None

    @property
    def is_leader(self) -> bool:
        return self.status is not None and self.status.is_leader

    @property
    def is_learner(self) -> bool:
        return self.status is not None and self.status.is_learner


@dataclass(frozen=True)
class Topology:
    members: tuple[MemberView, ...]  # one per configured endpoint, in config order
    member_list: MemberList | None
    # (member name, alarm) pairs; None when the alarm list could not be read
    alarms: tuple[tuple[str, str], ...] | None
    taken_at: float = 0.0  # wall clock, seconds since the epoch; 0: never taken

    @classmethod
    def unknown(cls, endpoints: Sequence[str]) -> Topology:
        return cls(tuple(MemberView(e, fallback_name(e), None) for e in endpoints), None, None)

    @property
    def known(self) -> bool:
        return self.taken_at > 0

    @property
    def endpoints(self) -> tuple[str, ...]:
        return tuple(m.endpoint for m in self.members)

    def view(self, endpoint: str) -> MemberView | None:
        return next((m for m in self.members if m.endpoint == endpoint), None)

    def name_of(self, endpoint: str) -> str:
        view = self.view(endpoint)
        return view.name if view is not None else fallback_name(endpoint)

    def status_of(self, endpoint: str) -> MemberStatus | None:
        view = self.view(endpoint)
        return view.status if view is not None else None

    def up(self, endpoint: str) -> bool:
        return self.status_of(endpoint) is not None

    def is_leader(self, endpoint: str) -> bool:
        st = self.status_of(endpoint)
        return st is not None and st.is_leader

    def statuses(self) -> dict[str, MemberStatus | None]:
        return {m.endpoint: m.status for m in self.members}

    @property
    def answered(self) -> tuple[MemberView, ...]:
        return tuple(m for m in self.members if m.status is not None)

    @property
    def max_revision(self) -> int:
        return max((m.status.revision for m in self.answered if m.status), default=0)

    @property
    def leader(self) -> str | None:
        """The leader's name: a configured member, else the member list's name for it."""
        leader_ids = {m.status.leader_id for m in self.answered if m.status and m.status.leader_id}
        for m in self.answered:
            if m.status is not None and m.status.member_id in leader_ids:
                return m.name
        names = {mi.id: mi.name for mi in self.member_list.members} if self.member_list else {}
        # The leader may be a member that is not configured here; name it from the member list.
        return next((names.get(i) or f"{i:x}" for i in sorted(leader_ids)), None)

    @property
    def max_applied_index(self) -> int:
        return max((m.status.raft_applied_index for m in self.answered if m.status), default=0)

    def serving_problem(self, endpoint: str, revision_lag_max: int) -> str | None:
        """Why a member that answered should not serve a watch or a scan: it knows no leader
        (cut off: its data is stale and stops moving) or it trails the most advanced member by
        more than `revision_lag_max` revisions. None: it is fit (or did not answer: the
        caller's own failover handles that)."""
        st = self.status_of(endpoint)
        if st is None:
            return None
        if st.leader_id == 0:
            return "it has no leader"
        lag = self.max_revision - st.revision
        if lag > revision_lag_max:
            return f"it is {lag} revisions behind"
        return None

    def alarm_matrix(self) -> list[tuple[str, str, bool]]:
        """(member, alarm, active) for every member and known alarm; [] when unreadable."""
        if self.alarms is None:
            return []
        members = sorted({m.name for m in self.members} | {n for n, _ in self.alarms})
        active = set(self.alarms)
        return [(n, kind, (n, kind) in active) for n in members for kind in KNOWN_ALARMS]
