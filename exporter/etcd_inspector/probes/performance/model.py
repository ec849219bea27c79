"""What the performance probe measured, and what it makes of it (pure: no I/O).

Each finding names the member and the measured value and compares it with the same mixin value
(report/thresholds.py) as the alert its Check names, so `inspect`, the status page and the
alerts agree on what is slow. The probe's window is shorter than the alerts' (5 minutes of
rate(); their `for:` on top), so a finding shows a fault within one run, before the alert.
"""

from __future__ import annotations

import itertools
from collections.abc import Iterable, Sequence
from dataclasses import dataclass

from etcd_inspector.report.findings import Finding, Severity
from etcd_inspector.report.thresholds import Thresholds

# A read closer to this many seconds to the window's start is taken as its start (reads land
# a little early or late with the scheduler's jitter).
WINDOW_SLACK_SECONDS = 1.0


@dataclass(frozen=True)
class PeerRtt:
    """Round trips from a member to one peer (etcd_network_peer_round_trip_time_seconds)."""

    peer: str  # the peer's name (its hex ID when the member list does not know it)
    p99: float | None  # None: no round trip measured in the window
    count: float


@dataclass(frozen=True)
class MemberPerformance:
    endpoint: str
    name: str
    error: str | None = None  # why its /metrics could not be read (nothing else is then known)
    window_seconds: float | None = None  # between the two reads the quantiles compare
    fsync_p99: float | None = None
    fsync_count: float = 0.0
    commit_p99: float | None = None
    commit_count: float = 0.0
    peers: tuple[PeerRtt, ...] = ()
    failed_proposals_per_second: float | None = None
    slow_applies_per_second: float | None = None
    proposals_pending: float | None = None
    # (wall-clock time, etcd_server_leader_changes_seen_total) of the reads kept, oldest first.
    leader_changes_seen: tuple[tuple[float, float], ...] = ()
    # From Status at the window's end (None: it did not answer Status).
    has_leader: bool | None = None
    raft_term: int | None = None
    revision_lag: int | None = None
    applied_index_lag: int | None = None

    def leader_changes(self, now: float, window_seconds: float) -> tuple[float, float] | None:
        """(leader changes this member saw within the window, seconds actually covered)."""
        points = [p for p in self.leader_changes_seen if p[0] >= now - window_seconds]
        if len(points) < 2:
            return None
        grew = sum(max(0.0, b - a) if b >= a else b
                   for (_, a), (_, b) in itertools.pairwise(points))  # fmt: skip
        return grew, points[-1][0] - points[0][0]


@dataclass(frozen=True)
class Campaign:
    """A member whose raft term rose by more than one while it had no leader: it campaigned
    alone, as etcd without pre-vote does when cut off; rejoining, its higher term forces the
    cluster into an election (writes stall for it)."""

    member: str
    from_term: int
    to_term: int
    seconds: float  # between the two Status answers that show it
    seen_at: float  # wall clock


@dataclass(frozen=True)
class PerformanceResult:
    members: tuple[MemberPerformance, ...]
    campaigns: tuple[Campaign, ...]
    taken_at: float  # wall clock
    window_seconds: float | None  # the longest window any member's quantiles cover


def term_campaign(
    member: str,
    before: tuple[int, bool] | None,
    after: int | None,
    seconds: float,
    now: float,
) -> Campaign | None:
    """(raft term, cut off) at one Status answer and the term at the next -> the campaign they
    show, if any. `cut off`: the member had no leader while another member had one (in an
    ordinary election none has). Status reports the term of the entries a member applied, so
    a lone campaign shows when the member rejoins: its term jumps past the campaigns it ran.
    One term more is an ordinary election; two or more is the member campaigning alone,
    election timeout after election timeout (etcd without --pre-vote)."""
    if before is None or after is None:
        return None
    term0, cut_off = before
    if cut_off and after - term0 >= 2:
        return Campaign(member, term0, after, seconds, now)
    return None


def seconds_text(value: float) -> str:
    return f"{value * 1000:.0f}ms" if value < 1 else f"{value:.2f}s"


def slow_peer_culprits(
    pairs: Sequence[tuple[str, str, float]],
    fast: Sequence[tuple[str, str]] = (),
) -> list[tuple[str, list[tuple[str, str, float]]]]:
    """Slow (from, to, p99) round trips -> the members they point at, each with its pairs.

    A slow member or a slow link at one member shows in the round trips of every pair it is
    part of, in both directions where etcd measured them; the member in the most slow pairs is
    the one to name. A tie (m2<->m3 both slow, nothing else measured slow) is broken by the
    round trips measured fast (`fast`, (from, to)): m3 answering m1 quickly clears m3. What
    still ties is named together; one slow pair alone names its destination (the prober on
    `from` waited for `to`).
    """
    if not pairs:
        return []
    involved: dict[str, int] = {}
    for src, dst, _ in pairs:
        involved[src] = involved.get(src, 0) + 1
        involved[dst] = involved.get(dst, 0) + 1
    most = max(involved.values())
    culprits = sorted(m for m, n in involved.items() if n == most)
    if len(culprits) > 1:
        cleared = {m: sum(m in link for link in fast) for m in culprits}
        culprits = [m for m in culprits if cleared[m] == min(cleared.values())]
    if most == 1 and len(culprits) > 1:
        culprits = sorted({dst for _, dst, _ in pairs} & set(culprits)) or culprits
    return [(m, [p for p in pairs if m in (p[0], p[1])]) for m in culprits]


def performance_findings(
    cluster: str, result: PerformanceResult, t: Thresholds
) -> Iterable[Finding]:
    for m in result.members:
        yield from _member_findings(cluster, m, t)
    yield from _peer_findings(cluster, result, t)
    yield from _leader_change_findings(cluster, result, t)
    for c in result.campaigns:
        if c.seen_at < result.taken_at - t.leader_changes_window_seconds:
            continue
        yield Finding(
            cluster, "pre_vote",
            f"member {c.member} campaigned alone while it had no leader: its raft term rose from "
            f"{c.from_term} to {c.to_term} in {c.seconds:.0f}s. Without --pre-vote (etcd 3.4's "
            "default) such a member forces an election when it rejoins, and writes stall "
            "meanwhile; start every member with --pre-vote (the default from etcd 3.5)",
            c.member, Severity.WARNING, subject="--pre-vote", value=float(c.to_term - c.from_term),
        )  # fmt: skip


def _window(m: MemberPerformance) -> str:
    return f"over the last {m.window_seconds:.0f}s" if m.window_seconds else ""


def _member_findings(cluster: str, m: MemberPerformance, t: Thresholds) -> Iterable[Finding]:
    if m.fsync_p99 is not None and m.fsync_p99 > t.fsync_p99_seconds_warning:
        critical = m.fsync_p99 > t.fsync_p99_seconds_critical
        limit = t.fsync_p99_seconds_critical if critical else t.fsync_p99_seconds_warning
        yield Finding(
            cluster, "slow_disk",
            f"member {m.name} has a slow disk: WAL fsync p99 {seconds_text(m.fsync_p99)} "
            f"{_window(m)} ({m.fsync_count:.0f} fsyncs; over {seconds_text(limit)}); every "
            "write waits for the fsyncs of a quorum",
            m.name, Severity.CRITICAL if critical else Severity.WARNING,
            value=m.fsync_p99, threshold=limit,
        )  # fmt: skip
    if m.commit_p99 is not None and m.commit_p99 > t.commit_p99_seconds_warning:
        yield Finding(
            cluster, "slow_commit",
            f"member {m.name} has a slow disk: backend commit p99 {seconds_text(m.commit_p99)} "
            f"{_window(m)} ({m.commit_count:.0f} commits; over "
            f"{seconds_text(t.commit_p99_seconds_warning)})",
            m.name, Severity.WARNING, value=m.commit_p99, threshold=t.commit_p99_seconds_warning,
        )  # fmt: skip
    rate = m.failed_proposals_per_second
    if rate is not None and rate > t.failed_proposals_per_second:
        yield Finding(
            cluster, "failed_proposals",
            f"member {m.name}: {rate:.1f} proposals failed per second {_window(m)} (over "
            f"{t.failed_proposals_per_second:g}/s); peers are slow, lossy or cut off",
            m.name, Severity.WARNING, value=rate, threshold=t.failed_proposals_per_second,
        )  # fmt: skip
    rate = m.slow_applies_per_second
    if rate is not None and rate > t.slow_applies_per_second:
        yield Finding(
            cluster, "slow_applies",
            f"member {m.name} applies slowly: {rate:.2f} applies per second took over 100ms "
            f"{_window(m)} (over {t.slow_applies_per_second:g}/s); a slow disk or a starved CPU",
            m.name, Severity.WARNING, value=rate, threshold=t.slow_applies_per_second,
        )  # fmt: skip
    if m.revision_lag is not None and m.revision_lag > t.revision_lag_max:
        yield Finding(
            cluster, "member_lag",
            f"member {m.name} is {m.revision_lag} revisions behind the most advanced member "
            f"(over {t.revision_lag_max}); it serves stale serializable reads",
            m.name, Severity.WARNING, value=float(m.revision_lag), threshold=t.revision_lag_max,
        )  # fmt: skip
    if m.applied_index_lag is not None and m.applied_index_lag > t.applied_index_lag_max:
        yield Finding(
            cluster, "applied_lag",
            f"member {m.name} has applied {m.applied_index_lag} fewer raft entries than the most "
            f"advanced member (over {t.applied_index_lag_max}); it is slow (disk, CPU) or cut off",
            m.name, Severity.WARNING, value=float(m.applied_index_lag),
            threshold=t.applied_index_lag_max,
        )  # fmt: skip


def _peer_findings(cluster: str, result: PerformanceResult, t: Thresholds) -> Iterable[Finding]:
    pairs = [
        (m.name, p.peer, p.p99)
        for m in result.members
        for p in m.peers
        if p.p99 is not None and p.p99 > t.peer_rtt_p99_seconds
    ]
    fast = [
        (m.name, p.peer)
        for m in result.members
        for p in m.peers
        if p.p99 is not None and p.p99 <= t.peer_rtt_p99_seconds
    ]
    for member, mine in slow_peer_culprits(pairs, fast):
        worst = max(p99 for _, _, p99 in mine)
        links = ", ".join(f"{a}->{b} {seconds_text(p99)}" for a, b, p99 in mine)
        yield Finding(
            cluster, "slow_peer",
            f"member {member} is slow to reach or be reached by its peers: peer round-trip p99 "
            f"{links} (over {seconds_text(t.peer_rtt_p99_seconds)}); a slow or lossy network "
            "at this member, or the member itself is starved",
            member, Severity.WARNING, value=worst, threshold=t.peer_rtt_p99_seconds,
        )  # fmt: skip


def _leader_change_findings(
    cluster: str, result: PerformanceResult, t: Thresholds
) -> Iterable[Finding]:
    seen = [
        (changes, m)
        for m in result.members
        if (changes := m.leader_changes(result.taken_at, t.leader_changes_window_seconds))
    ]
    if not seen:
        return
    (count, covered), _ = max(seen, key=lambda s: s[0][0])
    if count >= t.leader_changes_max:
        yield Finding(
            cluster, "leader_changes",
            f"{count:.0f} leader changes within the last {covered:.0f}s (at most "
            f"{t.leader_changes_max - 1} within {t.leader_changes_window_seconds:.0f}s): "
            "elections stall writes; look for slow disks, slow peers or a starved CPU",
            None, Severity.WARNING, value=count, threshold=t.leader_changes_max,
        )  # fmt: skip
