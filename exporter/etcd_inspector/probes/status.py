"""status: each member's Maintenance.Status, the member list and the cluster's alarms.

Every member is asked on its own, concurrently, each call with its own deadline; one frozen
member costs one timeout, never the others' answers. The run fails only when no member answers.
"""

from __future__ import annotations

import asyncio
from collections.abc import Iterable
from dataclasses import dataclass

from prometheus_client.core import GaugeMetricFamily
from prometheus_client.metrics_core import Metric

from etcd_inspector.cluster.members import member_id_names, merge_member_lists, resolve_member_names
from etcd_inspector.etcd.client import Alarm, EtcdError, MemberList, MemberStatus, call_timeout
from etcd_inspector.probes.base import CACHED, Probe, ProbeContext, ProbeSpec

KNOWN_ALARMS = ("NOSPACE", "CORRUPT")


class NoMemberAnswered(RuntimeError):
    pass


@dataclass(frozen=True)
class MemberStatusResult:
    endpoint: str
    member: str
    status: MemberStatus | None
    error: str | None


@dataclass(frozen=True)
class StatusResult:
    members: tuple[MemberStatusResult, ...]
    member_list: MemberList | None
    # (member name, alarm) pairs; None when the alarm list could not be read
    alarms: tuple[tuple[str, str], ...] | None

    def up(self, endpoint: str) -> bool:
        return any(m.endpoint == endpoint and m.status is not None for m in self.members)

    def status_of(self, endpoint: str) -> MemberStatus | None:
        return next((m.status for m in self.members if m.endpoint == endpoint), None)


async def _try(coro):
    try:
        return await coro, None
    except EtcdError as err:
        return None, err.kind


def alarm_pairs(alarms: Iterable[Alarm], ids: dict[int, str]) -> tuple[tuple[str, str], ...]:
    return tuple(sorted({(ids.get(a.member_id, f"{a.member_id:x}"), a.alarm) for a in alarms}))


# Status gets half of the run, each later call half of what is then left: a frozen member's
# Status must time out early enough for the answers of the others to be published.
_SHARE = 0.5


class StatusProbe(Probe):
    async def run(self, ctx: ProbeContext) -> StatusResult:
        statuses = await asyncio.gather(
            *(_try(m.status(timeout=call_timeout(m.request_timeout, _SHARE))) for m in ctx.members)
        )
        answered = [m for m, (st, _err) in zip(ctx.members, statuses, strict=True) if st]
        if not answered:
            kinds = sorted({err for _st, err in statuses if err})
            raise NoMemberAnswered(f"no member answered Status ({', '.join(kinds)})")
        member_list = alarms = None
        # Member list and alarms are cluster-wide: the first member that answers them will do.
        for client in answered:
            member_list, _ = await _try(
                client.member_list(timeout=call_timeout(client.request_timeout, _SHARE))
            )
            if member_list is not None:
                break
        for client in answered:
            raw_alarms, _ = await _try(
                client.alarms(timeout=call_timeout(client.request_timeout, _SHARE))
            )
            if raw_alarms is not None:
                alarms = alarm_pairs(raw_alarms, member_id_names(member_list))
                break
        by_endpoint = {m.endpoint: st for m, (st, _e) in zip(ctx.members, statuses, strict=True)}
        # A member the list does not know (another cluster's, listed by mistake) is named by
        # its own member list, so the operator sees which member it is.
        known = {m.id for m in member_list.members} if member_list else set()
        lists = [member_list] if member_list else []
        for client in answered:
            st = by_endpoint[client.endpoint]
            if st is not None and st.member_id not in known:
                own, _ = await _try(
                    client.member_list(timeout=call_timeout(client.request_timeout, _SHARE))
                )
                if own is not None:
                    lists.append(own)
                    known |= {m.id for m in own.members}
        names = resolve_member_names(
            [m.endpoint for m in ctx.members],
            by_endpoint,
            merge_member_lists(lists),
            ctx.state.member_names,
        )
        ctx.state.set_member_names(names)
        return StatusResult(
            members=tuple(
                MemberStatusResult(m.endpoint, names[m.endpoint], st, err)
                for m, (st, err) in zip(ctx.members, statuses, strict=True)
            ),
            member_list=member_list,
            alarms=alarms,
        )

    def metrics(self, cluster: str, result: StatusResult) -> Iterable[Metric]:
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
            lv = [cluster, m.member]
            db.add_metric(lv, st.db_size)
            in_use.add_metric(lv, st.db_size_in_use)
            term.add_metric(lv, st.raft_term)
            index.add_metric(lv, st.raft_index)
            applied.add_metric(lv, st.raft_applied_index)
            revision.add_metric(lv, st.revision)
            leader.add_metric(lv, 1 if st.leader_id == st.member_id else 0)
            learner.add_metric(lv, 1 if st.is_learner else 0)
            info.add_metric([*lv, f"{st.member_id:x}", st.version, m.endpoint], 1)
        yield from (db, in_use, term, index, applied, revision, leader, learner, info)
        if result.alarms is not None:
            alarm = GaugeMetricFamily(
                "etcd_inspector_member_alarm",
                f"1 when the alarm is active on the member (from the Alarm list). {CACHED}",
                labels=["cluster", "member", "alarm"],
            )
            members = sorted({m.member for m in result.members} | {n for n, _ in result.alarms})
            active = set(result.alarms)
            for name in members:
                for kind in KNOWN_ALARMS:
                    alarm.add_metric([cluster, name, kind], 1 if (name, kind) in active else 0)
            yield alarm


SPEC = ProbeSpec(
    name="status",
    probe_type=StatusProbe,
    description="Maintenance.Status of every member, the member list and the alarm list.",
    default_interval=15.0,
    default_timeout=10.0,
)
