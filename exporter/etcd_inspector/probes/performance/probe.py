"""performance: why a cluster is slow, from its members' own metrics and Status (I/O here).

Each run reads every member's /metrics (through the cluster's one MetricsFetcher, as the scrape
path and the quota probe do) and its Status, side by side. Quantiles and rates compare the
cumulative histograms and counters of two reads (histograms.py):
  * in the exporter, the newest read with the one about `window_seconds` older (a sliding
    window, like rate() over a range: etcd measures each peer's round trip only every 30 s,
    every 5 s while the peer is unhealthy, so a window under 30 s may see no round trip);
  * on the first run, which is `inspect`'s only one, two reads around the inspection itself:
    the first as soon as the status round is done, the second when the cluster's other probes
    have ended (HashKV, the scan; ProbeContext.others_done) or `inspect_window_seconds` after
    the first, whichever is later (at most `window_seconds`). The minimum, 1 s by default, is
    hidden under any inspection that reads a large keyspace and costs a small one 1 s; a
    written-to member fsyncs and commits several times in it.
    `--performance.inspect-window 35s` also catches every peer's round trip. The exporter's
    first run has no other probes to wait for: its window is the minimum.
The same reads give each member's revision and applied-index lag and its raft term, whose jump
while it has no leader is a member campaigning without --pre-vote.
"""

from __future__ import annotations

import asyncio
import contextlib
import time
from collections import deque
from collections.abc import Iterable
from typing import TYPE_CHECKING, Any

from prometheus_client.metrics_core import Metric

from etcd_inspector.cluster.members import member_id_names
from etcd_inspector.config import Duration, Section
from etcd_inspector.etcd.deadline import call_timeout
from etcd_inspector.etcd.errors import attempt
from etcd_inspector.etcd.interfaces import Member
from etcd_inspector.etcd.types import MemberStatus
from etcd_inspector.probes.base import Probe, ProbeContext, ReportContext
from etcd_inspector.probes.performance.histograms import (
    BACKEND_COMMIT,
    LEADER_CHANGES,
    PEER_RTT,
    PROPOSALS_FAILED,
    PROPOSALS_PENDING,
    SLOW_APPLIES,
    WAL_FSYNC,
    MetricsRead,
    parse_read,
    window_quantile,
    window_rate,
)
from etcd_inspector.probes.performance.model import (
    WINDOW_SLACK_SECONDS,
    Campaign,
    MemberPerformance,
    PeerRtt,
    PerformanceResult,
    performance_findings,
    seconds_text,
    term_campaign,
)
from etcd_inspector.report.findings import Finding
from etcd_inspector.report.format import table

if TYPE_CHECKING:  # aiohttp loads with the fetcher (the runtime), not with this spec
    from etcd_inspector.etcd.metrics_fetch import FetchResult

# Leader-change counts and campaigns are kept this long (the longest leader_changes_window a
# values file may reasonably set; the findings read their window from the thresholds).
HISTORY_SECONDS = 3600.0
_SHARE = 0.5


class PerformanceOptions(Section):
    # The exporter's window: quantiles and rates over about this many seconds of reads.
    window_seconds: Duration = 60.0
    # The first run's (inspect's) window: two reads at least this far apart; in inspect, as far
    # apart as the other probes take (up to window_seconds). See the module's docstring.
    inspect_window_seconds: Duration = 1.0


MemberRead = tuple[MetricsRead | None, str | None, MemberStatus | None]  # metrics, error, status


async def _read_member(ctx: ProbeContext, client: Member) -> MemberRead:
    assert ctx.metrics is not None, "the performance probe needs the cluster's metrics fetcher"
    timeout = call_timeout(ctx.request_timeout, _SHARE)
    fetched: FetchResult
    (fetched, (status, _err)) = await asyncio.gather(
        ctx.metrics.fetch(client.endpoint, timeout), attempt(client.status(timeout=timeout))
    )
    if fetched.text is None:
        why = f"{fetched.error}: {fetched.detail}" if fetched.detail else fetched.error
        return None, why, status
    return parse_read(fetched.text, time.monotonic()), None, status


class PerformanceProbe(Probe[PerformanceOptions, PerformanceResult]):
    def __init__(self, options: PerformanceOptions) -> None:
        super().__init__(options)
        self._reads: dict[str, deque[MetricsRead]] = {}
        self._leader_points: dict[str, deque[tuple[float, float]]] = {}
        # Members without a leader: (term then, reads in a row without one, since: monotonic).
        self._terms: dict[str, tuple[int, int, float]] = {}
        self._campaigns: deque[Campaign] = deque(maxlen=64)

    def waits_seconds(self) -> float:
        # The first run's window comes on top of the timeout its two reads need.
        return float(self._longest_first_window())

    def _longest_first_window(self) -> float:
        return max(float(self.options.inspect_window_seconds), float(self.options.window_seconds))

    async def _first_window(self, ctx: ProbeContext) -> None:
        """Until the other probes are done (inspect) or the minimum has passed, the later."""
        started = time.monotonic()
        if ctx.others_done is not None:
            with contextlib.suppress(TimeoutError):
                async with asyncio.timeout(self._longest_first_window()):
                    await ctx.others_done()
        left = self.options.inspect_window_seconds - (time.monotonic() - started)
        if left > 0:
            await asyncio.sleep(left)

    async def _read_all(self, ctx: ProbeContext) -> dict[str, MemberRead]:
        clients = [c for c in ctx.members if ctx.metrics and c.endpoint in ctx.metrics.targets]
        reads = await asyncio.gather(*(_read_member(ctx, c) for c in clients))
        return {c.endpoint: r for c, r in zip(clients, reads, strict=True)}

    async def run(self, ctx: ProbeContext) -> PerformanceResult:
        reads = await self._read_all(ctx)
        if not self._reads:
            self._remember(ctx, reads)
            await self._first_window(ctx)
            reads = await self._read_all(ctx)
        return self._remember(ctx, reads)

    def _remember(self, ctx: ProbeContext, reads: dict[str, MemberRead]) -> PerformanceResult:
        now_wall, now = time.time(), time.monotonic()
        statuses = [st for _m, _e, st in reads.values() if st is not None]
        max_rev = max((st.revision for st in statuses), default=0)
        max_applied = max((st.raft_applied_index for st in statuses), default=0)
        ids = member_id_names(ctx.topology.member_list)
        ids |= {st.member_id: ctx.member_name(st.endpoint) for st in statuses}
        members = []
        for endpoint, (read, error, st) in reads.items():
            name = ctx.member_name(endpoint)
            if st is not None:
                led = any(o.leader_id != 0 for o in statuses if o.endpoint != endpoint)
                self._note_term(name, endpoint, st, st.leader_id == 0 and led, now, now_wall)
            lags: dict[str, Any] = {}
            if st is not None:
                lags = {
                    "has_leader": st.leader_id != 0,
                    "raft_term": st.raft_term,
                    "revision_lag": max_rev - st.revision,
                    # etcd < 3.4 reports no applied index (0): no lag to speak of.
                    "applied_index_lag": max_applied - st.raft_applied_index
                    if st.raft_applied_index
                    else None,
                }
            if read is None:
                members.append(MemberPerformance(endpoint, name, error=error or "no answer",
                                                 **lags))  # fmt: skip
                continue
            members.append(self._measure(endpoint, name, read, ids, now_wall, lags))
        windows = [m.window_seconds for m in members if m.window_seconds]
        return PerformanceResult(
            tuple(members), tuple(self._campaigns), now_wall, max(windows, default=None)
        )

    def _note_term(
        self, name: str, endpoint: str, st: MemberStatus, cut_off: bool, now: float, wall: float
    ) -> None:
        """A member is taken as cut off after two reads in a row without a leader while another
        member had one: one read is no proof (a member between two leaders of an ordinary
        election, read a moment apart from the others, looks the same)."""
        before = self._terms.get(endpoint)
        if before is not None and st.leader_id != 0:
            term0, reads, since = before
            campaign = term_campaign(name, (term0, reads >= 2), st.raft_term, now - since, wall)
            if campaign is not None:
                self._campaigns.append(campaign)
        while self._campaigns and self._campaigns[0].seen_at < wall - HISTORY_SECONDS:
            self._campaigns.popleft()
        if st.leader_id != 0:
            self._terms.pop(endpoint, None)
        elif before is None:
            if cut_off:
                self._terms[endpoint] = (st.raft_term, 1, now)
        else:
            self._terms[endpoint] = (before[0], before[1] + 1, before[2])

    def _measure(
        self,
        endpoint: str,
        name: str,
        read: MetricsRead,
        ids: dict[int, str],
        now_wall: float,
        lags: dict[str, Any],
    ) -> MemberPerformance:
        history = self._reads.setdefault(endpoint, deque())
        history.append(read)
        # The window's start: the newest read at least window_seconds old (else the oldest).
        start = read.at - self.options.window_seconds + WINDOW_SLACK_SECONDS
        while len(history) > 2 and history[1].at <= start:
            history.popleft()
        points = self._leader_points.setdefault(endpoint, deque())
        changes = read.scalars.get(LEADER_CHANGES)
        if changes is not None:
            points.append((now_wall, changes))
        while points and points[0][0] < now_wall - HISTORY_SECONDS:
            points.popleft()
        base = history[0]
        if base is read:
            return MemberPerformance(endpoint, name, leader_changes_seen=tuple(points), **lags)
        fsync = window_quantile(0.99, base, read, WAL_FSYNC)
        commit = window_quantile(0.99, base, read, BACKEND_COMMIT)
        fsync_q = fsync.get((), None)
        commit_q = commit.get((), None)
        peers = []
        for group, q in sorted(window_quantile(0.99, base, read, PEER_RTT).items()):
            to = dict(group).get("To", "")
            try:
                peer = ids.get(int(to, 16), to)
            except ValueError:
                peer = to
            peers.append(PeerRtt(peer, q.value, q.count))
        return MemberPerformance(
            endpoint, name,
            window_seconds=read.at - base.at,
            fsync_p99=fsync_q.value if fsync_q else None,
            fsync_count=fsync_q.count if fsync_q else 0.0,
            commit_p99=commit_q.value if commit_q else None,
            commit_count=commit_q.count if commit_q else 0.0,
            peers=tuple(peers),
            failed_proposals_per_second=window_rate(base, read, PROPOSALS_FAILED),
            slow_applies_per_second=window_rate(base, read, SLOW_APPLIES),
            proposals_pending=read.scalars.get(PROPOSALS_PENDING),
            leader_changes_seen=tuple(points),
            **lags,
        )  # fmt: skip

    def metrics(self, cluster: str, result: PerformanceResult) -> Iterable[Metric]:
        # The alerts read etcd's own histograms, which the scrape path already serves: the
        # probe's job is to name the cause in findings, not to export the same numbers again.
        return ()

    def findings(self, result: PerformanceResult, rc: ReportContext) -> Iterable[Finding]:
        return performance_findings(rc.cluster, result, rc.thresholds)

    def report_json(self, result: PerformanceResult | None, rc: ReportContext) -> dict[str, Any]:
        if result is None:
            return {"performance": None}
        t = rc.thresholds
        return {
            "performance": {
                "window_seconds": result.window_seconds,
                "members": [
                    _member_json(m, result, t.leader_changes_window_seconds) for m in result.members
                ],
                "campaigns": [
                    {
                        "member": c.member,
                        "from_term": c.from_term,
                        "to_term": c.to_term,
                        "seconds": c.seconds,
                        "seen_at": c.seen_at,
                    }
                    for c in result.campaigns
                ],
                "thresholds": {
                    "fsync_p99_seconds": t.fsync_p99_seconds_warning,
                    "commit_p99_seconds": t.commit_p99_seconds_warning,
                    "peer_rtt_p99_seconds": t.peer_rtt_p99_seconds,
                    "failed_proposals_per_second": t.failed_proposals_per_second,
                    "slow_applies_per_second": t.slow_applies_per_second,
                    "revision_lag_max": t.revision_lag_max,
                    "applied_index_lag_max": t.applied_index_lag_max,
                },
            }
        }

    def report_text(self, result: PerformanceResult | None, rc: ReportContext) -> list[str]:
        if result is None:
            return []
        doc = self.report_json(result, rc)["performance"]
        window = result.window_seconds
        head = f"Performance (over {window:.0f}s)" if window else "Performance (one read so far)"
        rows = []
        for m in doc["members"]:
            rows.append([
                m["name"], _ms(m["wal_fsync_p99_seconds"]), _ms(m["backend_commit_p99_seconds"]),
                _worst_peer(m["peers"]), _rate(m["failed_proposals_per_second"]),
                _rate(m["slow_applies_per_second"]), m["revision_lag"], m["applied_index_lag"],
                m["error"] or ("no leader" if m["has_leader"] is False else ""),
            ])  # fmt: skip
        headers = ["MEMBER", "FSYNC P99", "COMMIT P99", "PEER RTT P99", "FAILED PROPOSALS",
                   "SLOW APPLIES", "REV LAG", "APPLIED LAG", "NOTE"]  # fmt: skip
        return [head, *table(headers, rows)]


def _ms(v: float | None) -> str | None:
    return seconds_text(v) if v is not None else None


def _rate(v: float | None) -> str | None:
    return f"{v:.2f}/s" if v is not None else None


def _worst_peer(peers: list[dict[str, Any]]) -> str | None:
    measured = [p for p in peers if p["p99_seconds"] is not None]
    if not measured:
        return None
    worst = max(measured, key=lambda p: p["p99_seconds"])
    return f"{seconds_text(worst['p99_seconds'])} to {worst['peer']}"


def _member_json(m: MemberPerformance, r: PerformanceResult, window: float) -> dict[str, Any]:
    changes = m.leader_changes(r.taken_at, window)
    return {
        "name": m.name,
        "endpoint": m.endpoint,
        "error": m.error,
        "window_seconds": m.window_seconds,
        "wal_fsync_p99_seconds": m.fsync_p99,
        "wal_fsyncs": m.fsync_count,
        "backend_commit_p99_seconds": m.commit_p99,
        "backend_commits": m.commit_count,
        "peers": [{"peer": p.peer, "p99_seconds": p.p99, "round_trips": p.count} for p in m.peers],
        "failed_proposals_per_second": m.failed_proposals_per_second,
        "slow_applies_per_second": m.slow_applies_per_second,
        "proposals_pending": m.proposals_pending,
        "leader_changes": changes[0] if changes else None,
        "has_leader": m.has_leader,
        "raft_term": m.raft_term,
        "revision_lag": m.revision_lag,
        "applied_index_lag": m.applied_index_lag,
    }
