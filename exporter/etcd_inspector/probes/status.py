"""status: each member's Maintenance.Status, the member list and the cluster's alarms.

Its result is the cluster's Topology (cluster/topology.py): every other probe, the scrape path
and the report read member names, the leader and who answered from it.

Every member is asked on its own, concurrently, each call with its own deadline; one frozen
member costs one timeout, never the others' answers. The run fails only when no member answers.
"""

from __future__ import annotations

import asyncio
import logging
from collections.abc import Awaitable, Callable, Iterable, Sequence
from typing import TYPE_CHECKING, Any

from prometheus_client.core import GaugeMetricFamily
from prometheus_client.metrics_core import Metric

from etcd_inspector.cluster.members import (
    member_id_names,
    merge_member_lists,
    resolve_member_names,
)
from etcd_inspector.cluster.membership import Membership
from etcd_inspector.cluster.topology import MemberView, Topology
from etcd_inspector.errors import ErrorKind, ProbeError
from etcd_inspector.etcd.deadline import call_timeout
from etcd_inspector.etcd.errors import EtcdError, attempt
from etcd_inspector.etcd.interfaces import Endpoint, Maintenance, Member
from etcd_inspector.etcd.tls import handshake
from etcd_inspector.etcd.types import Alarm, MemberList, MemberStatus
from etcd_inspector.probes.base import (
    CACHED,
    Check,
    NoOptions,
    Probe,
    ProbeContext,
    ProbeSpec,
    ReportContext,
)
from etcd_inspector.probes.status_report import (
    downgrade_json,
    learner_lags,
    member_reason,
    members_json,
    members_text,
    members_view,
)
from etcd_inspector.report.findings import Finding, Severity
from etcd_inspector.report.format import size
from etcd_inspector.report.view import (
    Format,
)

if TYPE_CHECKING:
    from etcd_inspector.etcd.metrics_fetch import FetchResult

log = logging.getLogger(__name__)


def alarm_pairs(alarms: Iterable[Alarm], ids: dict[int, str]) -> tuple[tuple[str, str], ...]:
    return tuple(sorted({(ids.get(a.member_id, f"{a.member_id:x}"), a.alarm) for a in alarms}))


# Status gets half of the run, each later call half of what is then left: a frozen member's
# Status must time out early enough for the answers of the others to be published.
_SHARE = 0.5


def _timeout(client: Endpoint) -> float:
    return call_timeout(client.request_timeout, _SHARE)


Answer = tuple[MemberStatus | None, ErrorKind | None, str]  # status, why not, one-line detail


async def _status(client: Maintenance) -> Answer:
    """A member's Status; when it fails for a reason TLS could explain, the handshake says."""
    try:
        return await client.status(timeout=_timeout(client)), None, ""
    except EtcdError as err:
        # gRPC reports every TLS failure as "unavailable"; a frozen member times out instead,
        # and must not cost more of the run.
        if err.kind != ErrorKind.UNAVAILABLE:
            return None, err.kind, err.detail
        shake = await handshake(client.endpoint, client.tls, _timeout(client))
        if shake.kind == ErrorKind.TLS:
            return None, ErrorKind.TLS, shake.message
        return None, err.kind, err.detail


async def _statuses(clients: Sequence[Member]) -> dict[str, Answer]:
    answers = await asyncio.gather(*(_status(c) for c in clients))
    return {c.endpoint: a for c, a in zip(clients, answers, strict=True)}


# How long a member whose Status timed out gets to answer its /metrics, which etcd serves from
# another goroutine (no raft, no backend lock): an answer proves the process alive.
METRICS_CHECK_SECONDS = 2.0


async def slow_not_down(
    answers: dict[str, Answer],
    fetch: Callable[[str, float], Awaitable[FetchResult]],
    wait: float,
) -> dict[str, Answer]:
    """Members whose Status timed out but whose /metrics answers are SLOW, not down.

    etcd answers Status behind its slow commits (a slow or throttled disk, a starved CPU): the
    issue's drill saw Status time out in 5 of 18 rounds of a 5-IOPS disk while every /metrics
    fetch answered. Down would page for the wrong cause; slow names it (and the performance
    probe says why: fsync, commit)."""
    timed_out = [e for e, (_st, kind, _d) in answers.items() if kind == ErrorKind.TIMEOUT]
    if not timed_out:
        return answers
    fetched = await asyncio.gather(*(fetch(e, wait) for e in timed_out))
    out = dict(answers)
    for endpoint, result in zip(timed_out, fetched, strict=True):
        if result.text is not None:
            out[endpoint] = (
                None, ErrorKind.SLOW,
                f"Status timed out{f' ({d})' if (d := answers[endpoint][2]) else ''}, yet "
                f"/metrics answered in "
                f"{result.duration_seconds:.2g}s: the process is alive, and etcd answers Status "
                "behind its slow commits (a slow disk or a starved CPU)",
            )  # fmt: skip
    return out


async def _no_answer(clients: Sequence[Member], answers: dict[str, Answer]) -> str:
    """One line: why no member answered, with the first TLS problem spelled out."""
    kinds = sorted({kind for _st, kind, _d in answers.values() if kind})
    if kinds and all(kind.is_auth for kind in kinds):
        # They all answered: it is our credentials, not the cluster.
        return f"every member refused us: {kinds[0].reason}"
    text = f"no member answered Status ({', '.join(kinds)})"
    tls = next(((c.endpoint, answers[c.endpoint][2]) for c in clients
                if answers[c.endpoint][1] == ErrorKind.TLS), None)  # fmt: skip
    return f"{text}: {tls[0]}: {tls[1]}" if tls else text


def log_changes(
    cluster: str, names: dict[str, str], before: dict[str, str], answers: dict[str, Answer]
) -> dict[str, str]:
    """Log a member once when it stops answering and once when it answers again; returns the
    states (up | down | auth_failed) to compare the next round with."""
    states: dict[str, str] = {}
    for endpoint, (status, kind, detail) in answers.items():
        state = "up" if status is not None else (
            "auth_failed" if kind and kind.is_auth else "slow" if kind == ErrorKind.SLOW
            else "down")  # fmt: skip
        states[endpoint] = state
        was = before.get(endpoint, "up")  # the first round logs only what is wrong
        if state == was:
            continue
        fields = {"cluster": cluster, "member": names.get(endpoint, endpoint),
                  "endpoint": endpoint}  # fmt: skip
        if state == "up":
            log.info("member answers again", extra=fields)
        else:
            reason = kind.reason if kind else "no answer"
            message = {"down": "member stopped answering", "slow": "member answers slowly"}.get(
                state, "member refuses us"
            )
            err = f"{reason}: {detail}" if detail else reason
            log.warning(message, extra={**fields, "reason": kind, "err": err})
    return states


async def read_topology(members: Sequence[Member]) -> Topology:
    """One round of Status, MemberList and the alarms over `members`: what the status probe
    publishes (without its logging), for a caller that needs the topology once (`snapshot`).
    Raises ProbeError when no member answers."""
    clients = list(members)
    unknown = Topology.unknown([c.endpoint for c in clients])
    return await topology_from(members, await _statuses(clients), unknown)


async def topology_from(
    members: Sequence[Member], answers: dict[str, Answer], previous: Topology
) -> Topology:
    """The topology from one round of Status answers (`members` may grow by discovery);
    `previous` names the members that do not answer now."""
    clients = list(members)
    answers = dict(answers)
    answered = [c for c in clients if answers[c.endpoint][0] is not None]
    if not answered:
        # Every member was asked and none answered: each is down (or refused us) for its own
        # reason, which the page and `inspect` show instead of "unknown".
        down = Topology(
            members=tuple(
                MemberView(c.endpoint, previous.name_of(c.endpoint), None, *answers[c.endpoint][1:])
                for c in clients
            ),
            member_list=None,
            alarms=None,
        )
        raise ProbeError(ErrorKind.NO_ANSWER, await _no_answer(clients, answers), partial=down)
    member_list: MemberList | None = None
    # The member list is cluster-wide: the first member that answers it will do.
    for client in answered:
        member_list, _ = await attempt(client.member_list(timeout=_timeout(client)))
        if member_list is not None:
            break
    if member_list is not None and isinstance(members, Membership):
        statuses = {e: a[0] for e, a in answers.items()}
        added = members.sync(member_list, statuses)
        if added:
            answers |= await _statuses(added)
        clients = list(members)
    by_endpoint = {e: a[0] for e, a in answers.items()}
    # A member the list does not know (another cluster's, listed by mistake) is named by
    # its own member list, so the operator sees which member it is.
    known = {m.id for m in member_list.members} if member_list else set()
    lists = [member_list] if member_list else []
    for client in answered:
        st = by_endpoint[client.endpoint]
        if st is not None and st.member_id not in known:
            own, _ = await attempt(client.member_list(timeout=_timeout(client)))
            if own is not None:
                lists.append(own)
                known |= {m.id for m in own.members}
    previous_names = {m.endpoint: m.name for m in previous.members if previous.known}
    names = resolve_member_names(
        [c.endpoint for c in clients], by_endpoint, merge_member_lists(lists), previous_names
    )
    # Alarms are cluster state every member reports in its Status (no Alarm RPC: that one
    # is a raft proposal even to list).
    ids = member_id_names(member_list)
    alarms = alarm_pairs((a for st in by_endpoint.values() if st for a in st.alarms), ids)
    return Topology(
        members=tuple(
            MemberView(
                c.endpoint, names[c.endpoint], answers[c.endpoint][0], *answers[c.endpoint][1:]
            )
            for c in clients
        ),
        member_list=member_list,
        alarms=alarms,
    )


def learner_lag_family(cluster: str, lags: dict[str, int]) -> GaugeMetricFamily:
    lag = GaugeMetricFamily(
        "etcd_inspector_learner_lag_entries",
        "Raft entries a learner trails the leader: the leader's raft index minus the "
        f"learner's applied index, from Status (0 once caught up). {CACHED}",
        labels=["cluster", "member"],
    )
    for name, entries in sorted(lags.items()):
        lag.add_metric([cluster, name], entries)
    return lag


def v36_metrics(cluster: str, result: Topology) -> Iterable[Metric]:
    """etcd 3.6's Status fields, which no etcd metric carries: each member's storage version,
    and whether a downgrade is enabled (1 when any member that says reports one). Nothing on
    3.4/3.5, whose Status has neither."""
    answered = [m for m in result.members if m.status is not None]
    storage = [(m.name, m.status.storage_version) for m in answered
               if m.status and m.status.storage_version]  # fmt: skip
    if storage:
        info = GaugeMetricFamily(
            "etcd_inspector_member_storage_version_info",
            f"The version of the member's db file (etcd >= 3.6 Status), value 1. {CACHED}",
            labels=["cluster", "member", "version"],
        )
        for name, version in storage:
            info.add_metric([cluster, name, version], 1)
        yield info
    said = [m.status.downgrade_enabled for m in answered
            if m.status and m.status.downgrade_enabled is not None]  # fmt: skip
    if said:
        downgrade = GaugeMetricFamily(
            "etcd_inspector_downgrade_enabled",
            "1 while a cluster downgrade is enabled (etcdctl downgrade enable; etcd >= 3.6 "
            f"Status). {CACHED}",
            labels=["cluster"],
        )
        downgrade.add_metric([cluster], 1 if any(said) else 0)
        yield downgrade


def learner_findings(result: Topology, rc: ReportContext) -> Iterable[Finding]:
    """A learner far behind the leader (it cannot be promoted), and a learner whose database
    is much larger than the voters' (it cannot be defragmented)."""
    t, c = rc.thresholds, rc.cluster
    for name, lag in sorted(learner_lags(result).items()):
        if lag > t.learner_lag_entries_max:
            yield Finding(
                c, "learner_behind",
                f"learner {name} is {lag} raft entries behind the leader (over "
                f"{t.learner_lag_entries_max}): it cannot be promoted until it catches up; "
                "check its disk and its link to the leader",
                name, Severity.WARNING, value=lag, threshold=t.learner_lag_entries_max,
            )  # fmt: skip
    answered = [m for m in result.members if m.status is not None]
    voters = [m.status.db_size for m in answered if m.status and not m.status.is_learner]
    if not voters or max(voters) <= 0:
        return
    limit = t.learner_db_size_ratio_max * max(voters)
    for m in answered:
        st = m.status
        if st is not None and st.is_learner and st.db_size > limit:
            yield Finding(
                c, "learner_db_large",
                f"learner {m.name}'s database is {size(st.db_size)}, "
                f"{st.db_size / max(voters):.1f}x the largest voter's ({size(max(voters))}, "
                f"limit {t.learner_db_size_ratio_max:g}x): a learner cannot be defragmented; "
                "promote it and defragment, or remove it and add it again",
                m.name, Severity.WARNING, value=st.db_size, threshold=int(limit),
            )  # fmt: skip


class StatusProbe(Probe[NoOptions, Topology]):
    def __init__(self, options: NoOptions) -> None:
        super().__init__(options)
        self._states: dict[str, str] = {}  # endpoint -> up | down | auth_failed, last round

    async def run(self, ctx: ProbeContext) -> Topology:
        clients = list(ctx.members)
        answers = await _statuses(clients)
        metrics = ctx.metrics
        if metrics is not None:
            # Imported here, where a fetcher exists: aiohttp is not for `--help` or `snapshot`.
            from etcd_inspector.etcd.metrics_fetch import FetchResult

            async def fetch(endpoint: str, wait: float) -> FetchResult:
                if endpoint not in metrics.targets:
                    return FetchResult(endpoint, None, "connect", 0.0, "no metrics URL")
                return await metrics.fetch(endpoint, wait)

            answers = await slow_not_down(
                answers, fetch, call_timeout(METRICS_CHECK_SECONDS, _SHARE)
            )
        names_now = {c.endpoint: ctx.member_name(c.endpoint) for c in clients}
        self._states = log_changes(ctx.cluster, names_now, self._states, answers)
        return await topology_from(ctx.members, answers, ctx.topology)

    def metrics(self, cluster: str, result: Topology) -> Iterable[Metric]:
        labels = ["cluster", "member"]

        def gauge(name: str, doc: str) -> GaugeMetricFamily:
            return GaugeMetricFamily(
                f"etcd_inspector_member_{name}", f"{doc} {CACHED}", labels=labels
            )

        db = gauge("db_size_bytes", "Size of the member's backend database, from Status.")
        in_use = gauge("db_size_in_use_bytes", "Logically used part of the member's database.")
        term = gauge("raft_term", "The member's raft term.")
        index = gauge("raft_index", "The member's raft committed index.")
        applied = gauge("raft_applied_index", "The member's raft applied index (0 on etcd < 3.4).")
        revision = gauge("revision", "The member's current MVCC revision.")
        leader = gauge("is_leader", "1 when the member is the leader it reports.")
        learner = gauge("is_learner", "1 when the member is a raft learner.")
        info = GaugeMetricFamily(
            "etcd_inspector_member_info",
            f"Identity of each member, value 1. {CACHED}",
            labels=["cluster", "member", "member_id", "version", "endpoint"],
        )
        for m in result.members:
            st = m.status
            if st is None:
                continue
            lv = [cluster, m.name]
            db.add_metric(lv, st.db_size)
            in_use.add_metric(lv, st.db_size_in_use)
            term.add_metric(lv, st.raft_term)
            index.add_metric(lv, st.raft_index)
            applied.add_metric(lv, st.raft_applied_index)
            revision.add_metric(lv, st.revision)
            leader.add_metric(lv, 1 if st.is_leader else 0)
            learner.add_metric(lv, 1 if st.is_learner else 0)
            info.add_metric([*lv, f"{st.member_id:x}", st.version, m.endpoint], 1)
        yield from (db, in_use, term, index, applied, revision, leader, learner, info)
        lags = learner_lags(result)
        if lags:
            yield learner_lag_family(cluster, lags)
        yield from v36_metrics(cluster, result)
        if result.alarms is not None:
            alarm = GaugeMetricFamily(
                "etcd_inspector_member_alarm",
                "1 when the alarm is active on the member (from the members' Status answers). "
                + CACHED,
                labels=["cluster", "member", "alarm"],
            )
            for name, kind, active in result.alarm_matrix():
                alarm.add_metric([cluster, name, kind], 1 if active else 0)
            yield alarm

    # ----------------------------------------------------------------------- report

    def findings(self, result: Topology, rc: ReportContext) -> Iterable[Finding]:
        c = rc.cluster
        for m in result.members:
            if m.status is None and m.error is not None and m.error.is_auth:
                yield Finding(
                    c, "auth_failed",
                    f"member {m.name} ({m.endpoint}) answered, but {m.error.reason}"
                    + (f": {m.detail}" if m.detail else ""),
                    m.name, Severity.CRITICAL, subject=m.endpoint,
                )  # fmt: skip
            elif m.status is None and m.error == ErrorKind.SLOW:
                yield Finding(
                    c, "slow_member",
                    f"member {m.name} ({m.endpoint}) is slow, not down: {m.detail}",
                    m.name, Severity.WARNING, subject=m.endpoint,
                )  # fmt: skip
            elif m.status is None:
                yield Finding(
                    c, "member_down",
                    f"member {m.name} ({m.endpoint}) is down: {member_reason(m)}",
                    m.name, Severity.CRITICAL, subject=m.endpoint,
                )  # fmt: skip
            elif m.status.leader_id == 0:
                yield Finding(
                    c, "no_leader", f"member {m.name} knows no leader", m.name, Severity.CRITICAL,
                )  # fmt: skip
        yield from learner_findings(result, rc)
        for member, alarm in result.alarms or ():
            yield Finding(
                c, "alarm", f"alarm {alarm} is active on member {member}", member,
                Severity.CRITICAL, subject=alarm,
            )  # fmt: skip

    def report_json(self, result: Topology | None, rc: ReportContext) -> dict[str, Any]:
        return {
            "members": members_json(result, rc),
            "leader": result.leader if result is not None else None,
            "alarms": (
                [{"member": m, "alarm": a} for m, a in result.alarms]
                if result is not None and result.alarms is not None
                else None
            ),
            # etcd >= 3.6 Status: {enabled, target_version}; None before 3.6
            "downgrade": downgrade_json(result),
        }

    def report_text(self, result: Topology | None, rc: ReportContext) -> list[str]:
        return members_text(result, rc)


SPEC = ProbeSpec(
    name="status",
    probe_type=StatusProbe,
    description="Maintenance.Status of every member, the member list and the alarm list.",
    default_interval=15.0,
    default_timeout=10.0,
    provides_topology=True,
    title="Members",
    view=members_view,
    checks=(
        Check("member_down", "EtcdInspectorMemberUnreachable"),
        # Status blocks behind backend commits: the commit-duration alert names the cause.
        Check("slow_member", "etcdHighCommitDurations"),
        Check("auth_failed", "EtcdInspectorProbeFailing"),
        Check("no_leader", "etcdNoLeader"),
        Check("alarm", "EtcdInspectorAlarmActive", thresholds=("alarms_critical",)),
        Check(
            "learner_behind", "EtcdInspectorLearnerBehind", thresholds=("learner_lag_entries_max",)
        ),
        Check(
            "learner_db_large",
            "EtcdInspectorLearnerDatabaseLarge",
            Format.BYTES,
            thresholds=("learner_db_size_ratio_max",),
        ),
    ),
    stale_seconds=600,
)
