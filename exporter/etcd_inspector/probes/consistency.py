"""consistency: do the members hold the same data?

Comparing live members is only meaningful at one revision: every member is asked for its key
count and its HashKV at the same pinned revision R, read serializably from its own store, so
writes landing during the run can never make two healthy members look different. R is the
lowest revision all answering members of the cluster have reached, so nobody is asked for a
revision it does not have yet.

Gathering (Status, MemberList, count, HashKV) is a thin async layer; the verdict is the pure
`compare()` over the gathered per-member facts.
"""

from __future__ import annotations

import asyncio
import logging
from collections import Counter
from collections.abc import Iterable, Sequence
from dataclasses import dataclass, replace
from typing import Any

from prometheus_client.core import GaugeMetricFamily
from prometheus_client.metrics_core import Metric
from pydantic import model_validator

from etcd_inspector.config import Duration, Section
from etcd_inspector.errors import ErrorKind, ProbeError
from etcd_inspector.etcd.deadline import call_timeout
from etcd_inspector.etcd.errors import attempt
from etcd_inspector.etcd.interfaces import Maintenance, Member
from etcd_inspector.etcd.types import MemberStatus
from etcd_inspector.probes import compaction
from etcd_inspector.probes.base import CACHED, Check, Probe, ProbeContext, ProbeSpec, ReportContext
from etcd_inspector.report.findings import Finding, Severity
from etcd_inspector.report.format import table
from etcd_inspector.report.view import Bullets, Line, Look, PageSection, ViewInput, ViewPart, text

log = logging.getLogger(__name__)

# Each step (Status, count, HashKV, a retry) gets at most this share of what is left of the run,
# so a member that froze mid-run costs one step's timeout, not the whole run.
_SHARE = 0.5

# A member that has not reached R is never asked for it; it gets this error kind instead,
# the one etcd itself would answer.
FUTURE_REVISION = ErrorKind.FUTURE_REVISION


class NotComparable(ProbeError):
    """Fewer than two members gave answers that can be compared."""

    def __init__(self, message: str) -> None:
        super().__init__(ErrorKind.NOT_COMPARABLE, message)


class ConsistencyOptions(Section):
    # HashKV reads the member's whole backend; on very large databases it can be switched off
    # and consistency is then decided on cluster IDs and key counts.
    hash_check: bool = True
    hash_timeout_seconds: Duration = 15.0

    @model_validator(mode="after")
    def _check(self) -> ConsistencyOptions:
        if self.hash_timeout_seconds <= 0:
            raise ValueError("hash_timeout_seconds must be positive")
        return self


@dataclass(frozen=True)
class MemberFacts:
    """What one member told us during one run; None where it did not answer."""

    endpoint: str
    member: str
    status: MemberStatus | None
    status_error: ErrorKind | None = None
    # IDs of the members its MemberList names (its own view of the membership)
    member_ids: frozenset[int] | None = None
    keys: int | None = None  # number of keys at the pinned revision
    count_error: ErrorKind | None = None
    hash: int | None = None  # HashKV at the pinned revision
    hash_compact_revision: int | None = None
    hash_error: ErrorKind | None = None


@dataclass(frozen=True)
class Verdict:
    key_count_diff: int | None  # None when fewer than two counts
    revision_diff: int
    raft_applied_index_diff: int | None  # None when fewer than two members report one
    hash_check_available: bool
    hash_unavailable_reason: str | None
    hash_mismatch: bool | None  # None when the hash check is unavailable
    leader_distinct: int
    cluster_id_distinct: int
    member_list_distinct: int | None
    consistent: bool
    # Why the members are not consistent (or why a check was skipped), for logs and `inspect`.
    reasons: tuple[str, ...]


@dataclass(frozen=True)
class ConsistencyResult:
    revision: int  # the pinned revision R
    members: tuple[MemberFacts, ...]
    verdict: Verdict


# --------------------------------------------------------------------------- pure logic


def reference_cluster_id(statuses: Sequence[MemberStatus]) -> int:
    """The cluster ID most answering members share; on a tie the first member's wins.

    Members of another cluster listed by mistake must not pull the pinned revision down to
    their own (unrelated) revision, so R is chosen among the reference cluster's members."""
    counts = Counter(st.cluster_id for st in statuses)
    best = max(counts.values())
    return next(st.cluster_id for st in statuses if counts[st.cluster_id] == best)


def pinned_revision(statuses: Sequence[MemberStatus]) -> int:
    """The lowest revision every answering member of the reference cluster has reached."""
    if not statuses:
        raise NotComparable("no member answered Status")
    ref = reference_cluster_id(statuses)
    return min(st.revision for st in statuses if st.cluster_id == ref)


def _spread(values: Iterable[int]) -> int | None:
    vals = list(values)
    return max(vals) - min(vals) if len(vals) >= 2 else None


def _hash_check(
    facts: Sequence[MemberFacts], enabled: bool
) -> tuple[bool, str | None, bool | None]:
    """(available, reason when not, mismatch)."""
    if not enabled:
        return False, "disabled", None
    if any(f.hash_error == ErrorKind.PERMISSION_DENIED for f in facts):
        # HashKV needs the root role when auth is on; not having it is a setup choice.
        return False, "permission_denied", None
    hashed = [f for f in facts if f.hash is not None]
    if len(hashed) < 2:
        return False, "too_few_answers", None
    # HashKV covers the history since the compact revision; members that applied a
    # compaction at different moments hash different ranges (etcd's own corruption check
    # skips such peers too).
    if len({f.hash_compact_revision for f in hashed}) > 1:
        return False, "compact_revision_differs", None
    return True, None, len({f.hash for f in hashed}) > 1


def compare(facts: Sequence[MemberFacts], revision: int, hash_enabled: bool = True) -> Verdict:
    """Decide whether the members agree at `revision`. Members that did not answer Status are
    left out. Raises NotComparable when fewer than two members can be compared."""
    up = [f for f in facts if f.status is not None]
    if len(up) < 2:
        raise NotComparable(f"{len(up)} member(s) answered Status; at least 2 are needed")
    statuses = [f.status for f in up if f.status is not None]
    reasons: list[str] = []

    cluster_ids = {st.cluster_id for st in statuses}
    if len(cluster_ids) > 1:
        groups = ", ".join(
            f"{cid:x}: {'/'.join(f.member for f in up if f.status and f.status.cluster_id == cid)}"
            for cid in sorted(cluster_ids)
        )
        reasons.append(f"members belong to {len(cluster_ids)} clusters ({groups})")

    not_comparable = [f.member for f in up if FUTURE_REVISION in (f.count_error, f.hash_error)]
    if not_comparable:
        reasons.append(
            f"not comparable: {', '.join(not_comparable)} has not reached revision {revision}"
        )

    counted = [f for f in up if f.keys is not None]
    key_count_diff = _spread(f.keys for f in counted if f.keys is not None)
    if key_count_diff:
        per_member = ", ".join(f"{f.member}={f.keys}" for f in counted)
        reasons.append(f"key counts at revision {revision} differ ({per_member})")

    available, unavailable_reason, mismatch = _hash_check(up, hash_enabled)
    if mismatch:
        per_member = ", ".join(f"{f.member}={f.hash:x}" for f in up if f.hash is not None)
        reasons.append(f"hashes at revision {revision} differ ({per_member})")

    structural = len(cluster_ids) > 1 or bool(not_comparable)
    if len(counted) < 2 and not structural:
        raise NotComparable(
            f"{len(counted)} member(s) answered the key count at revision {revision}"
        )

    member_sets = {f.member_ids for f in up if f.member_ids is not None}
    applied = [st.raft_applied_index for st in statuses if st.raft_applied_index]
    return Verdict(
        key_count_diff=key_count_diff,
        revision_diff=_spread(st.revision for st in statuses) or 0,
        raft_applied_index_diff=_spread(applied),
        hash_check_available=available,
        hash_unavailable_reason=unavailable_reason,
        hash_mismatch=mismatch,
        # Leader 0 (a cut-off member) is etcdNoLeader's case, not a second leader (the drills).
        leader_distinct=len({st.leader_id for st in statuses if st.leader_id}),
        cluster_id_distinct=len(cluster_ids),
        member_list_distinct=len(member_sets) if member_sets else None,
        consistent=not reasons,
        reasons=tuple(reasons),
    )


# --------------------------------------------------------------------------- gathering


async def _status(client: Maintenance) -> tuple[MemberStatus | None, ErrorKind | None]:
    return await attempt(client.status(timeout=call_timeout(client.request_timeout, _SHARE)))


async def _status_and_members(
    client: Member,
) -> tuple[MemberStatus | None, ErrorKind | None, frozenset[int] | None]:
    timeout = call_timeout(client.request_timeout, _SHARE)
    (status, error), (members, _) = await asyncio.gather(
        attempt(client.status(timeout=timeout)), attempt(client.member_list(timeout=timeout))
    )
    ids = frozenset(m.id for m in members.members) if members is not None else None
    return status, error, ids


class ConsistencyProbe(Probe[ConsistencyOptions, ConsistencyResult]):
    def __init__(self, options: ConsistencyOptions) -> None:
        super().__init__(options)
        self._last_reasons: tuple[str, ...] = ()

    async def run(self, ctx: ProbeContext) -> ConsistencyResult:
        first = await asyncio.gather(*(_status_and_members(c) for c in ctx.members))
        facts = {
            c.endpoint: MemberFacts(
                endpoint=c.endpoint,
                member=ctx.member_name(c.endpoint),
                status=status,
                status_error=error,
                member_ids=ids,
            )
            for c, (status, error, ids) in zip(ctx.members, first, strict=True)
        }
        clients = {c.endpoint: c for c in ctx.members}
        revision = 0
        for round_ in (1, 2):
            up = [f for f in facts.values() if f.status is not None]
            if len(up) < 2:
                raise NotComparable(f"{len(up)} member(s) answered Status; at least 2 are needed")
            revision = pinned_revision([f.status for f in up if f.status is not None])
            with ctx.own_load.running():  # count, HashKV: a scan's pacer does not yield to them
                measured = await self._measure(clients, up, revision)
            facts.update({f.endpoint: f for f in measured})
            compacted = any(ErrorKind.COMPACTED in (f.count_error, f.hash_error) for f in measured)
            if not compacted or round_ == 2:
                break
            # R fell behind a compaction between Status and the reads: pick a fresh R once.
            fresh = await asyncio.gather(*(_status(clients[f.endpoint]) for f in up))
            for f, (status, error) in zip(up, fresh, strict=True):
                facts[f.endpoint] = replace(
                    f, status=status, status_error=error, keys=None, count_error=None,
                    hash=None, hash_compact_revision=None, hash_error=None,
                )  # fmt: skip

        members = tuple(facts[c.endpoint] for c in ctx.members)
        verdict = compare(members, revision, self.options.hash_check)
        if verdict.reasons != self._last_reasons:
            # Logged on change only: a lasting inconsistency is the metrics' job to show.
            if verdict.consistent:
                log.info("members consistent again", extra={"cluster": ctx.cluster})
            else:
                log.warning(
                    "members inconsistent",
                    extra={"cluster": ctx.cluster, "err": "; ".join(verdict.reasons)},
                )
            self._last_reasons = verdict.reasons
        return ConsistencyResult(revision=revision, members=members, verdict=verdict)

    async def _measure(
        self, clients: dict[str, Member], up: Sequence[MemberFacts], revision: int
    ) -> list[MemberFacts]:
        """Key count, then HashKV, at `revision` on every member that has reached it."""

        async def count(f: MemberFacts) -> MemberFacts:
            assert f.status is not None
            if f.status.revision < revision:
                # Asking would only earn a future_revision error (a member of another cluster).
                return replace(f, keys=None, count_error=FUTURE_REVISION)
            result, error = await attempt(
                clients[f.endpoint].count_keys(
                    revision,
                    serializable=True,
                    timeout=call_timeout(clients[f.endpoint].request_timeout, _SHARE),
                )
            )
            return replace(f, keys=result[0] if result else None, count_error=error)

        counted = await asyncio.gather(*(count(f) for f in up))
        if not self.options.hash_check:
            return list(counted)

        async def hash_kv(f: MemberFacts) -> MemberFacts:
            if f.keys is None:
                return f
            result, error = await attempt(
                clients[f.endpoint].hash_kv(
                    revision, timeout=call_timeout(self.options.hash_timeout_seconds, _SHARE)
                )
            )
            if result is None:
                return replace(f, hash_error=error)
            return replace(f, hash=result.hash, hash_compact_revision=result.compact_revision)

        return list(await asyncio.gather(*(hash_kv(f) for f in counted)))

    def metrics(self, cluster: str, result: ConsistencyResult) -> Iterable[Metric]:
        v = result.verdict

        def gauge(name: str, doc: str, value: float | None = None) -> GaugeMetricFamily:
            fam = GaugeMetricFamily(f"etcd_inspector_{name}", f"{doc} {CACHED}", labels=["cluster"])
            if value is not None:
                fam.add_metric([cluster], value)
            return fam

        keys = GaugeMetricFamily(
            "etcd_inspector_member_keys",
            f"Number of keys the member holds at the pinned consistency revision. {CACHED}",
            labels=["cluster", "member"],
        )
        for f in result.members:
            if f.keys is not None:
                keys.add_metric([cluster, f.member], f.keys)
        yield keys
        yield gauge(
            "key_count_diff",
            "Largest minus smallest member key count at the pinned revision.",
            v.key_count_diff,
        )
        yield gauge(
            "revision_diff",
            "Largest minus smallest current revision among the answering members.",
            v.revision_diff,
        )
        yield gauge(
            "raft_applied_index_diff",
            "Largest minus smallest raft applied index among the answering members.",
            v.raft_applied_index_diff,
        )
        yield gauge(
            "hash_mismatch",
            "1 when the members' HashKV at the pinned revision differ; absent when the hash "
            "check is unavailable.",
            None if v.hash_mismatch is None else int(v.hash_mismatch),
        )
        yield gauge(
            "hash_check_available",
            "1 when HashKV could be compared (it needs the root role when auth is on).",
            int(v.hash_check_available),
        )
        yield gauge(
            "leader_distinct",
            "Number of distinct leader IDs the members name (healthy: 1).",
            v.leader_distinct,
        )
        yield gauge(
            "cluster_id_distinct",
            "Number of distinct cluster IDs among the configured endpoints (healthy: 1).",
            v.cluster_id_distinct,
        )
        yield gauge(
            "member_list_distinct",
            "Number of distinct memberships the members' MemberList answers name (healthy: 1).",
            v.member_list_distinct,
        )
        yield gauge(
            "consistent",
            "1 when cluster IDs, key counts and hashes agree at the pinned revision, else 0.",
            int(v.consistent),
        )
        yield gauge("revisions_since_compaction", compaction.HELP, compaction.since(result.members))
        yield gauge(
            "consistency_revision",
            "The revision at which the members' key counts and hashes were compared.",
            result.revision,
        )

    # ----------------------------------------------------------------------- report

    def findings(self, result: ConsistencyResult, rc: ReportContext) -> Iterable[Finding]:
        yield from compaction.findings(compaction.since(result.members), rc)
        if result.verdict.consistent:
            return
        for reason in result.verdict.reasons:
            yield Finding(
                rc.cluster, "inconsistent", reason, severity=Severity.CRITICAL,
                value=result.verdict.key_count_diff, threshold=0,
            )  # fmt: skip

    def report_json(self, result: ConsistencyResult | None, rc: ReportContext) -> dict[str, Any]:
        return {"consistency": consistency_json(result) if result is not None else None}

    def report_text(self, result: ConsistencyResult | None, rc: ReportContext) -> list[str]:
        if result is None:
            return []
        c = consistency_json(result)

        def agree(v: bool | None) -> str:
            return "n/a" if v is None else ("yes" if v else "NO")

        rows = [
            [m["name"], m["keys"], m["hash"], m["cluster_id"], m["error"]] for m in c["members"]
        ]
        lines = [
            f"Consistency (at revision {c['revision']})",
            *table(["MEMBER", "KEYS", "HASH", "CLUSTER ID", "ERROR"], rows),
        ]
        hashes = agree(c["hashes_agree"])
        if c["hashes_agree"] is None and c["hash_unavailable_reason"]:
            hashes += f" ({c['hash_unavailable_reason']})"
        lines.append(
            f"  key counts agree: {agree(c['key_counts_agree'])}; hashes agree: {hashes}; "
            f"cluster IDs agree: {agree(c['cluster_ids_agree'])}"
        )
        lines.append(
            f"  verdict: {'consistent' if c['consistent'] else 'INCONSISTENT'} ({compared_text(c)})"
        )
        return lines


def compared_text(c: dict[str, Any]) -> str:
    """ "2 of 3 members compared at revision 812 (m3: timeout)" from consistency_json()."""
    text = f"{c['members_compared']} of {c['members_total']} members compared"
    text += f" at revision {c['revision']}"
    left_out = [
        f"{m['name']}: {m['error'] or 'no answer'}" for m in c["members"] if m["keys"] is None
    ]
    return f"{text} ({', '.join(left_out)})" if left_out else text


def consistency_json(result: ConsistencyResult) -> dict[str, Any]:
    v = result.verdict
    return {
        "revision": result.revision,
        "consistent": v.consistent,
        # Members whose key count at the revision was compared; the others did not answer.
        "members_compared": sum(1 for f in result.members if f.keys is not None),
        "members_total": len(result.members),
        "reasons": list(v.reasons),
        "cluster_ids_agree": v.cluster_id_distinct <= 1,
        "key_counts_agree": None if v.key_count_diff is None else v.key_count_diff == 0,
        "hashes_agree": None if v.hash_mismatch is None else not v.hash_mismatch,
        "hash_unavailable_reason": v.hash_unavailable_reason,
        "revision_diff": v.revision_diff,
        "revisions_since_compaction": compaction.since(result.members),
        "members": [
            {
                "name": f.member,
                "keys": f.keys,
                "hash": f"{f.hash:08x}" if f.hash is not None else None,
                "cluster_id": f"{f.status.cluster_id:x}" if f.status else None,
                "error": f.status_error or f.count_error or f.hash_error,
            }
            for f in result.members
        ],
    }


def consistency_view(v: ViewInput) -> list[ViewPart]:
    c = v.doc.get("consistency")
    if c is None:
        why = text(f"Consistency: {v.why or 'no result'}", Look.MUTED)
        return [PageSection("Consistency", (Line("consistency", (why,)),))]
    hashes = {True: "agree", False: "DIFFER", None: f"n/a ({c.get('hash_unavailable_reason')})"}
    counts = {True: "agree", False: "DIFFER", None: "n/a"}
    ok = c["consistent"]
    line = Line("consistency", (
        text("consistent" if ok else "INCONSISTENT", Look.VERDICT_GOOD if ok else Look.VERDICT_BAD),
        text(compared_text(c), tag="compared"),
        text(f"key counts {counts[c['key_counts_agree']]}, hashes {hashes[c['hashes_agree']]}"),
    ))  # fmt: skip
    return [PageSection("Consistency", (line, Bullets(tuple(c.get("reasons") or ()))))]


SPEC = ProbeSpec(
    name="consistency",
    probe_type=ConsistencyProbe,
    description="Compares the members' cluster IDs, key counts and HashKV at one pinned revision.",
    options_type=ConsistencyOptions,
    default_interval=60.0,
    default_timeout=30.0,
    cluster_wide=True,
    title="Consistency",
    view=consistency_view,
    checks=(Check("inconsistent", "EtcdInspectorDataInconsistent"), compaction.CHECK),
    stale_seconds=1800,
)
