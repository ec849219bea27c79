"""leases: how many leases the cluster holds (leaked leases are a classic cause of a full db).

LeaseLeases is answered from the member's lessor in memory: no raft round, no read of the
backend, one small message per lease ID. The lessor is the same on every member, so the first
member that answers is asked (the others only if it fails).

Keys attached to leases are not counted: etcd only tells them per lease (LeaseTimeToLive with
keys=true), one call per lease, which for the thousands of leases this probe looks for costs
far more than the count itself (docs/decisions.md has the measurement).
"""

from __future__ import annotations

from collections.abc import Iterable
from dataclasses import dataclass
from typing import Any

from prometheus_client.core import GaugeMetricFamily
from prometheus_client.metrics_core import Metric

from etcd_inspector.errors import ErrorKind, ProbeError
from etcd_inspector.etcd.deadline import call_timeout
from etcd_inspector.etcd.errors import attempt
from etcd_inspector.probes.base import (
    CACHED,
    Check,
    NoOptions,
    Probe,
    ProbeContext,
    ProbeSpec,
    ReportContext,
)
from etcd_inspector.report.findings import Finding, Severity
from etcd_inspector.report.view import Facts, Look, PageSection, ViewInput, ViewPart, text


@dataclass(frozen=True)
class LeasesResult:
    leases: int
    member: str  # the member that answered


class LeasesProbe(Probe[NoOptions, LeasesResult]):
    async def run(self, ctx: ProbeContext) -> LeasesResult:
        # The leader first: its lessor is the one that grants and expires leases.
        members = sorted(ctx.members, key=lambda c: not ctx.topology.is_leader(c.endpoint))
        errors: list[str] = []
        for client in members:
            ids, error = await attempt(
                client.lease_ids(timeout=call_timeout(client.request_timeout, 0.5))
            )
            if ids is not None:
                return LeasesResult(leases=len(ids), member=ctx.member_name(client.endpoint))
            errors.append(f"{ctx.member_name(client.endpoint)}: {error}")
        raise ProbeError(
            ErrorKind.NO_ANSWER, f"no member answered LeaseLeases ({', '.join(errors)})"
        )

    def metrics(self, cluster: str, result: LeasesResult) -> Iterable[Metric]:
        fam = GaugeMetricFamily(
            "etcd_inspector_leases",
            f"Number of active leases (LeaseLeases: no raft round). {CACHED}",
            labels=["cluster"],
        )
        fam.add_metric([cluster], result.leases)
        yield fam

    def findings(self, result: LeasesResult, rc: ReportContext) -> Iterable[Finding]:
        limit = rc.thresholds.leases_max
        if result.leases > limit:
            yield Finding(
                rc.cluster, "leases",
                f"{result.leases} active leases (limit {limit}): leaked leases keep their keys "
                "alive and fill the database",
                severity=Severity.WARNING, value=result.leases, threshold=limit,
            )  # fmt: skip

    def report_json(self, result: LeasesResult | None, rc: ReportContext) -> dict[str, Any]:
        if result is None:
            return {"leases": None}
        return {"leases": {"count": result.leases, "limit": rc.thresholds.leases_max}}

    def report_text(self, result: LeasesResult | None, rc: ReportContext) -> list[str]:
        if result is None:
            return []
        return [f"Leases: {result.leases} active (limit {rc.thresholds.leases_max})"]


def leases_view(v: ViewInput) -> list[ViewPart]:
    doc = v.doc.get("leases")
    if doc is None:
        cell = text(v.why or "no result", Look.MUTED)
    else:
        over = doc["count"] > doc["limit"]
        cell = text(doc["count"], Look.BAD if over else Look.PLAIN, note=f"limit {doc['limit']}",
                    tag="leases")  # fmt: skip
    return [PageSection("Leases", (Facts("leases", (("active leases", cell),)),))]


SPEC = ProbeSpec(
    name="leases",
    probe_type=LeasesProbe,
    description="Counts the cluster's active leases (LeaseLeases).",
    default_interval=60.0,
    default_timeout=15.0,
    cluster_wide=True,
    title="Leases",
    view=leases_view,
    checks=(Check("leases", "EtcdInspectorLeasesHigh", thresholds=("leases_max",)),),
    stale_seconds=1800,
)
