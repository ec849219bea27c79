"""The status probe's report: the members table of the JSON document, the text report and the
page (pure: they read the Topology the probe published)."""

from __future__ import annotations

from typing import Any

from etcd_inspector.cluster.topology import MemberView, Topology
from etcd_inspector.errors import ErrorKind
from etcd_inspector.probes.base import ReportContext
from etcd_inspector.report.format import size, table
from etcd_inspector.report.view import (
    Cell,
    Format,
    Look,
    PageSection,
    Summary,
    Table,
    ViewInput,
    ViewPart,
    text,
)


def learner_lags(result: Topology) -> dict[str, int]:
    """Each answering learner's catch-up distance, by member name: the leader's raft index
    minus the learner's applied index (both from Status; none without an answering leader).
    A learner that has caught up reads 0."""
    leader = next((m.status for m in result.members if m.status and m.status.is_leader), None)
    if leader is None:
        return {}
    return {
        m.name: max(0, leader.raft_index - m.status.raft_applied_index)
        for m in result.members
        if m.status is not None and m.status.is_learner
    }


def downgrade_json(result: Topology | None) -> dict[str, Any] | None:
    said = [m.status for m in (result.members if result else ())
            if m.status is not None and m.status.downgrade_enabled is not None]  # fmt: skip
    if not said:
        return None
    enabled = [st for st in said if st.downgrade_enabled]
    target = next((st.downgrade_target_version for st in enabled), None)
    return {"enabled": bool(enabled), "target_version": target}


def members_json(result: Topology | None, rc: ReportContext) -> list[dict[str, Any]]:
    rows = []
    lags = learner_lags(result) if result is not None else {}
    for endpoint in rc.endpoints:
        m = result.view(endpoint) if result is not None else None
        st = m.status if m else None
        rows.append(
            {
                "name": rc.member(endpoint),
                "endpoint": endpoint,
                # A member that refused our credentials answered: it is up; so is a slow one.
                "up": st is not None
                or bool(m and m.error and (m.error.is_auth or m.error == ErrorKind.SLOW)),
                "state": member_state(m),
                "error": m.error if m else None,
                "reason": member_reason(m) if m and st is None else None,
                "member_id": f"{st.member_id:x}" if st else None,
                "leader": st.is_leader if st else None,
                "learner": st.is_learner if st else None,
                # the leader's raft index minus this learner's applied index (None: a voter)
                "learner_lag_entries": lags.get(rc.member(endpoint)) if st else None,
                "version": st.version if st else None,
                "storage_version": st.storage_version if st else None,  # etcd >= 3.6
                "revision": st.revision if st else None,
                "raft_term": st.raft_term if st else None,
                "raft_index": st.raft_index if st else None,
                "db_size_bytes": st.db_size if st else None,
                "db_size_in_use_bytes": st.db_size_in_use if st else None,
                "errors": list(st.errors) if st else [],
            }
        )
    return rows


def member_state(m: MemberView | None) -> str:
    """up | down | auth_failed (answered, refused our credentials) | slow (Status timed out,
    /metrics answered) | unknown (never asked)."""
    if m is None or (m.status is None and m.error is None):
        return "unknown"
    if m.status is not None:
        return "up"
    if m.error == ErrorKind.SLOW:
        return "slow"
    return "auth_failed" if m.error is not None and m.error.is_auth else "down"


def member_reason(m: MemberView | None) -> str:
    """Why a member did not answer, in one line: the kind in words, then the detail."""
    if m is None or m.error is None:
        return "not asked yet" if m is None or m.status is None else ""
    return f"{m.error.reason}: {m.detail}" if m.detail else m.error.reason


def members_text(result: Topology | None, rc: ReportContext) -> list[str]:
    rows = []
    for m in members_json(result, rc):
        state = {
            "up": "up",
            "auth_failed": "up, AUTHENTICATION FAILED",
            "slow": "up, SLOW (Status timed out)",
            "unknown": "unknown",
        }.get(m["state"], "DOWN (" + str(m["error"]) + ")" if m["error"] else "DOWN")
        rows.append(
            [
                m["name"], m["endpoint"], state,
                "*" if m["leader"] else f"learner, {lag} behind"
                if m["learner"] and (lag := m.get("learner_lag_entries")) is not None
                else "learner" if m["learner"] else "", m["version"],
                m["revision"],
                size(m["db_size_bytes"]) if m["db_size_bytes"] is not None else None,
                size(m["db_size_in_use_bytes"]) if m["db_size_in_use_bytes"] is not None else None,
            ]
        )  # fmt: skip
    headers = ["NAME", "ENDPOINT", "STATE", "LEADER", "VERSION", "REVISION", "DB SIZE", "IN USE"]
    lines = ["Members", *table(headers, rows)]
    if result is not None:
        if result.alarms is None:
            lines.append("  alarms: could not be read")
        else:
            active = ", ".join(f"{a} on {m}" for m, a in result.alarms) or "none"
            lines.append(f"  alarms: {active}")
    return lines


STATE_LOOKS = {"up": Look.UP, "down": Look.DOWN, "auth_failed": Look.CAUTION, "slow": Look.CAUTION}
STATE_LABELS = {"up": "up", "down": "down", "auth_failed": "up: auth failed", "slow": "up: slow"}


def learner_cell(m: dict[str, Any]) -> Cell:
    if not m.get("learner"):
        return text("")
    lag = m.get("learner_lag_entries")
    note = None if lag is None else "caught up" if lag == 0 else f"{lag} entries behind"
    return text("learner", Look.CAUTION if lag else Look.PLAIN, note=note, tag="learner")


def members_view(v: ViewInput) -> list[ViewPart]:
    """The members table of the status page (other probes add per-member columns before
    `alarms`), and "N of M members up · leader X" beside the cluster's name."""
    members, alarms = v.doc.get("members") or [], v.doc.get("alarms")
    active: dict[str, list[str]] = {}
    for a in alarms or []:
        active.setdefault(a["member"], []).append(a["alarm"])
    rows = []
    for m in members:
        state = m.get("state") or ("up" if m.get("up") else "down")
        on = active.get(m["name"])
        rows.append((
            text(m["name"], Look.STRONG), text(m["endpoint"], Look.CODE),
            Cell(STATE_LABELS.get(state, state), look=STATE_LOOKS.get(state, Look.UNKNOWN),
                 note=m.get("reason")),
            text("leader" if m.get("leader") else ""), learner_cell(m),
            text(m.get("version")), text(m.get("revision")),
            Cell(m.get("db_size_bytes"), Format.BYTES),
            Cell(tuple(on), look=Look.ALERT) if on
            else text("none" if alarms is not None else "unknown"),
        ))  # fmt: skip
    headers = ("member", "endpoint", "state", "leader", "learner", "version", "revision",
               "DB size", "alarms")  # fmt: skip
    up = sum(1 for m in members if m.get("state") in ("up", "slow"))
    return [
        Summary(f"{up} of {len(members)} members up · leader {v.doc.get('leader') or '-'}"),
        PageSection("Members", (Table("members", headers, tuple(rows), insert_columns_at=8),)),
    ]
