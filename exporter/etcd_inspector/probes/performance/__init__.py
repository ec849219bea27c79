"""performance: names the cause when a cluster is slow (a disk, a peer link, a lagging member).

Modules: histograms.py (quantiles and rates between two reads, pure), model.py (the result and
its findings, pure), probe.py (the reads: /metrics and Status of every member).
"""

from __future__ import annotations

from typing import Any

from etcd_inspector.config import parse_duration
from etcd_inspector.probes.base import Check, ProbeFlag, ProbeSpec
from etcd_inspector.probes.performance.probe import PerformanceOptions, PerformanceProbe
from etcd_inspector.report.view import (
    Cell,
    Column,
    Format,
    Look,
    PageSection,
    Table,
    ViewInput,
    ViewPart,
    text,
)


def _seconds_cell(value: float | None, limit: float | None, note: str | None = None) -> Cell:
    look = Look.BAD if value is not None and limit is not None and value > limit else Look.PLAIN
    return Cell(value, Format.SECONDS, look, note=note)


def _number_cell(value: float | None, limit: float | None, fmt: Format = Format.COUNT) -> Cell:
    look = Look.BAD if value is not None and limit is not None and value > limit else Look.PLAIN
    return Cell(value, fmt, look)


def performance_view(v: ViewInput) -> list[ViewPart]:
    """One row per member: the measured values, over the mixin's thresholds in red."""
    doc: dict[str, Any] | None = v.doc.get("performance")
    if doc is None:
        return []
    t = doc.get("thresholds") or {}
    rows = []
    for m in doc.get("members", []):
        peers = [p for p in m.get("peers", []) if p.get("p99_seconds") is not None]
        worst = max(peers, key=lambda p: p["p99_seconds"], default=None)
        rows.append((
            text(m["name"], Look.STRONG),
            _seconds_cell(m.get("wal_fsync_p99_seconds"), t.get("fsync_p99_seconds")),
            _seconds_cell(m.get("backend_commit_p99_seconds"), t.get("commit_p99_seconds")),
            _seconds_cell(worst["p99_seconds"] if worst else None, t.get("peer_rtt_p99_seconds"),
                          note=f"to {worst['peer']}" if worst else None),
            _number_cell(m.get("failed_proposals_per_second"),
                         t.get("failed_proposals_per_second"), Format.RATE),
            _number_cell(m.get("slow_applies_per_second"), t.get("slow_applies_per_second"),
                         Format.RATE),
            _number_cell(m.get("revision_lag"), t.get("revision_lag_max")),
            _number_cell(m.get("applied_index_lag"), t.get("applied_index_lag_max")),
            text(m.get("error") or ("no leader" if m.get("has_leader") is False else ""),
                 Look.BAD if m.get("error") or m.get("has_leader") is False else Look.MUTED),
        ))  # fmt: skip
    window = doc.get("window_seconds")
    causes = {m["name"]: _causes(m, t) for m in doc.get("members", [])}
    headers = ("member", "WAL fsync p99", "commit p99", "peer RTT p99", "failed proposals",
               "slow applies", "revision lag", "applied lag", "note")  # fmt: skip
    return [
        # In the members table, beside "up": what makes a member slow, in a few words.
        Column(
            "members",
            "performance",
            {
                n: Cell(", ".join(c) or "ok", look=Look.BAD if c else Look.GOOD, tag="performance")
                if c is not None
                else Cell(None, look=Look.MUTED, tag="performance")
                for n, c in causes.items()
            },
        ),
        PageSection(
            "Performance",
            (
                Table(
                    "performance",
                    headers,
                    tuple(rows),
                    caption=f"over the last {window:.0f}s" if window else "one read so far",
                    empty="no member's metrics read yet",
                ),
            ),
        ),
    ]


def _over(value: float | None, limit: float | None) -> bool:
    return value is not None and limit is not None and value > limit


def _causes(m: dict[str, Any], t: dict[str, Any]) -> list[str] | None:
    """The member's problems in a few words ([] when none; None: its metrics were not read)."""
    if m.get("error"):
        return None
    causes = []
    if _over(m.get("wal_fsync_p99_seconds"), t.get("fsync_p99_seconds")) or _over(
        m.get("backend_commit_p99_seconds"), t.get("commit_p99_seconds")
    ):
        causes.append("slow disk")
    if any(_over(p.get("p99_seconds"), t.get("peer_rtt_p99_seconds")) for p in m.get("peers", [])):
        causes.append("slow peer links")
    if _over(m.get("slow_applies_per_second"), t.get("slow_applies_per_second")):
        causes.append("slow applies")
    if _over(m.get("revision_lag"), t.get("revision_lag_max")):
        causes.append(f"{m['revision_lag']} revisions behind")
    return causes


SPEC = ProbeSpec(
    name="performance",
    probe_type=PerformanceProbe,
    description="Each member's WAL fsync, commit and peer round-trip p99, failed proposals, "
    "slow applies, leader changes, lag and lone campaigns, from its /metrics and Status.",
    options_type=PerformanceOptions,
    default_interval=15.0,
    default_timeout=60.0,
    title="Performance",
    view=performance_view,
    flags=(
        ProbeFlag(
            flag="--performance.inspect-window",
            option="inspect_window_seconds",
            type=parse_duration,
            metavar="DURATION",
            help="The least time between the performance probe's two reads of every member's "
            "/metrics on its first run, i.e. in inspect, where the window otherwise spans the "
            "other probes (default 1s; 35s also sees every peer's round trip, which etcd "
            "measures every 30s).",
        ),
    ),
    checks=(
        Check(
            "slow_disk",
            "etcdHighFsyncDurations",
            Format.SECONDS,
            thresholds=("fsync_p99_seconds_warning", "fsync_p99_seconds_critical"),
        ),
        Check(
            "slow_commit",
            "etcdHighCommitDurations",
            Format.SECONDS,
            thresholds=("commit_p99_seconds_warning",),
        ),
        Check(
            "slow_peer",
            "etcdMemberCommunicationSlow",
            Format.SECONDS,
            thresholds=("peer_rtt_p99_seconds",),
        ),
        Check(
            "failed_proposals",
            "etcdHighNumberOfFailedProposals",
            Format.RATE,
            thresholds=("failed_proposals_per_second",),
        ),
        Check(
            "slow_applies",
            "etcdHighNumberOfSlowApplies",
            Format.RATE,
            thresholds=("slow_applies_per_second",),
        ),
        Check(
            "leader_changes",
            "etcdHighNumberOfLeaderChanges",
            Format.COUNT,
            thresholds=("leader_changes_max", "leader_changes_window"),
        ),
        Check("pre_vote", "etcdHighNumberOfLeaderChanges", Format.COUNT),
        Check(
            "member_lag",
            "EtcdInspectorMemberRevisionLag",
            Format.COUNT,
            thresholds=("revision_lag_max",),
        ),
        Check(
            "applied_lag",
            "EtcdInspectorMemberAppliedIndexLag",
            Format.COUNT,
            thresholds=("applied_index_lag_max",),
        ),
    ),
    stale_seconds=600,
)

__all__ = ["SPEC", "PerformanceOptions", "PerformanceProbe"]
