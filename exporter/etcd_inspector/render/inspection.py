"""One inspected cluster as the report sees it, its findings and the exit code (pure).

Generic over the probe registry: every section, finding and JSON key comes from the probes' own
report methods (probes/base.py), so a new probe shows up here with no change to this module.
A probe that this build does not ship is "not available", one that ran and failed carries its
error; the report shows what it has and never invents a value for what it lacks.

Findings (each one makes the exit code 1) come from the probes, plus (REPORT_CHECKS):
  unreachable      no member answered (the topology probe failed): exit code 2
  probe_failed     a probe ran and failed, so its check could not be made
Each kind of finding links the runbook of the alert its Check declares (alert_of_check).
Exit codes: 2 when a cluster could not be inspected at all, else 1 when there is any finding,
else 0.
"""

from __future__ import annotations

import dataclasses
from collections.abc import Mapping, Sequence
from dataclasses import dataclass, field
from typing import TYPE_CHECKING, Any

from etcd_inspector.cluster.state import ProbeOutcome
from etcd_inspector.errors import ErrorKind
from etcd_inspector.exitcodes import EXIT_ERROR, EXIT_FINDINGS, EXIT_OK
from etcd_inspector.probes import REGISTRY
from etcd_inspector.probes.base import Check, InspectMode, Probe, ProbeSpec, ReportContext
from etcd_inspector.report.findings import Finding, Severity
from etcd_inspector.report.thresholds import DEFAULT as DEFAULT_THRESHOLDS
from etcd_inspector.report.thresholds import Thresholds, runbook_anchor

if TYPE_CHECKING:
    from etcd_inspector.runtime.runtime import ClusterRuntime

__all__ = [
    "EXIT_ERROR",
    "EXIT_FINDINGS",
    "EXIT_OK",
    "REPORT_CHECKS",
    "ClusterInspection",
    "alert_of_check",
    "exit_code",
    "findings",
]


@dataclass(frozen=True)
class ClusterInspection:
    name: str
    endpoints: tuple[str, ...]
    member_names: Mapping[str, str]
    outcomes: Mapping[str, ProbeOutcome]
    unavailable: tuple[str, ...] = ()  # probes wanted but not in this build
    skipped: tuple[str, ...] = ()  # probes left out (`enabled: false`, not in inspect --probes)
    # The probe objects that ran (their options shape the sections); others use their defaults.
    probes: Mapping[str, Probe[Any, Any]] = field(default_factory=dict)
    watch_seconds: float | None = None
    registry: Mapping[str, ProbeSpec] = field(default_factory=lambda: REGISTRY)
    # The exporter's running view (status page, /api/v1/status): watches have run all along.
    live: bool = False
    # What findings compare with: the mixin's values (report/thresholds.py).
    thresholds: Thresholds = DEFAULT_THRESHOLDS

    @classmethod
    def of_runtime(
        cls,
        rt: ClusterRuntime,
        *,
        wanted: Sequence[str] = (),
        watch_seconds: float | None = None,
        live: bool = False,
        skipped: Sequence[str] = (),
    ) -> ClusterInspection:
        """What a cluster's runtime knows now, as the report sees it: `inspect` builds its
        report from this after its runs, the exporter's status page and JSON API at each
        request, so the three can never disagree. `wanted`: probes asked for by name (a name
        this build lacks is "not available")."""
        state = rt.state
        return cls(
            name=rt.name,
            endpoints=state.endpoints,
            member_names={e: state.member_name(e) for e in state.endpoints},
            outcomes=dict(state.outcomes),
            unavailable=tuple(name for name in wanted if name not in rt.probes),
            skipped=tuple(skipped),
            probes={name: scheduled.probe for name, scheduled in rt.probes.items()},
            watch_seconds=watch_seconds,
            live=live,
            thresholds=rt.thresholds,
        )

    @property
    def specs(self) -> list[ProbeSpec]:
        """The probes that have a place in the report, in report order."""
        names = list(self.registry) + [n for n in self.unavailable if n not in self.registry]
        return [
            self.registry.get(n) or ProbeSpec(name=n, probe_type=_Unavailable, description="")
            for n in names
            if n not in self.registry or self.registry[n].inspect is not InspectMode.NEVER
        ]

    def watched(self, spec: ProbeSpec) -> bool:
        return spec.inspect is not InspectMode.WATCH or self.watch_seconds is not None or self.live

    def probe(self, spec: ProbeSpec) -> Probe[Any, Any]:
        return self.probes.get(spec.name) or spec.build()

    def result(self, probe: str) -> Any | None:
        outcome = self.outcomes.get(probe)
        return outcome.result if outcome is not None and outcome.success else None

    def shown(self, spec: ProbeSpec) -> Any | None:
        """What a probe's section shows: its result; for a topology probe that nobody answered,
        the members it asked, each down (or refusing us) for its own reason."""
        outcome = self.outcomes.get(spec.name)
        if spec.provides_topology and outcome is not None and not outcome.success:
            return outcome.result
        return self.result(spec.name)

    @property
    def topology_spec(self) -> ProbeSpec | None:
        return next((s for s in self.registry.values() if s.provides_topology), None)

    @property
    def inspected(self) -> bool:
        spec = self.topology_spec
        return spec is not None and self.result(spec.name) is not None

    @property
    def error(self) -> str | None:
        if self.inspected:
            return None
        spec = self.topology_spec
        outcome = self.outcomes.get(spec.name) if spec is not None else None
        if outcome is None:
            unavailable = spec is None or spec.name in self.unavailable
            return "status probe not available" if unavailable else "not run"
        return outcome.error or "status probe failed"

    @property
    def context(self) -> ReportContext:
        return ReportContext(
            cluster=self.name,
            endpoints=self.endpoints,
            member_names=self.member_names,
            watch_seconds=self.watch_seconds,
            inspected=self.inspected,
            live=self.live,
            thresholds=self.thresholds,
        )

    def member(self, endpoint: str) -> str:
        return self.context.member(endpoint)

    def why_no_result(self, spec: ProbeSpec) -> str | None:
        """Why a probe's section is empty, or None when it has a result."""
        if spec.name in self.unavailable:
            return f"not available (this build has no {spec.name} probe)"
        outcome = self.outcomes.get(spec.name)
        if outcome is None and spec.name in self.skipped:
            return "not run (skipped: enabled: false, or not in --probes)"
        if outcome is None:
            return "not run" if self.inspected else "not run: the cluster did not answer"
        if not outcome.success:
            if outcome.error_kind is ErrorKind.NOT_COMPARABLE:
                return f"not comparable: {outcome.error}"
            return f"failed: {outcome.error}"
        return None


class _Unavailable(Probe[Any, None]):
    """Stands in for a probe this build does not have: it reports nothing."""

    async def run(self, ctx: Any) -> None:
        return None

    def metrics(self, cluster: str, result: None) -> list[Any]:
        return []


# The report's own kinds of finding (the probes declare theirs in their specs).
REPORT_CHECKS = (
    Check("unreachable", "EtcdInspectorMemberUnreachable"),
    Check("probe_failed", "EtcdInspectorProbeFailing"),
)


def declared_checks(registry: Mapping[str, ProbeSpec] = REGISTRY) -> dict[str, Check]:
    """Every kind of finding, by kind: the report's and each registered probe's."""
    return {c.kind: c for c in REPORT_CHECKS} | {
        c.kind: c for spec in registry.values() for c in spec.checks
    }


def alert_of_check(registry: Mapping[str, ProbeSpec] = REGISTRY) -> dict[str, str]:
    """The alert behind each kind of finding."""
    return {kind: c.alert for kind, c in declared_checks(registry).items()}


def _as_declared(f: Finding, checks: Mapping[str, Check]) -> Finding:
    """The finding with the runbook and unit of its kind's Check (unless it set its own)."""
    check = checks.get(f.check)
    if check is None:
        return f
    return dataclasses.replace(
        f, runbook=f.runbook or runbook_anchor(check.alert), unit=f.unit or str(check.unit)
    )


def findings(insp: ClusterInspection) -> list[Finding]:
    checks = declared_checks(insp.registry)
    return [_as_declared(f, checks) for f in _findings(insp)]


def _findings(insp: ClusterInspection) -> list[Finding]:
    c = insp.name
    if not insp.inspected:
        return [Finding(c, "unreachable", f"could not inspect: {insp.error}", None,
                        Severity.CRITICAL)]  # fmt: skip
    rc = insp.context
    out: list[Finding] = []
    for spec in insp.specs:
        result = insp.result(spec.name)
        if result is not None and insp.watched(spec):
            out.extend(insp.probe(spec).findings(result, rc))
    for spec in insp.specs:
        outcome = insp.outcomes.get(spec.name)
        if outcome is None or outcome.success:
            continue
        if outcome.error_kind is not None and not outcome.error_kind.is_finding:
            continue  # e.g. nothing to compare: the members that are down have their finding
        out.append(
            Finding(c, "probe_failed", f"probe {spec.name} failed: {outcome.error}",
                    subject=spec.name)
        )  # fmt: skip
    return out


def exit_code(inspections: Sequence[ClusterInspection]) -> int:
    if not inspections or any(not i.inspected for i in inspections):
        return EXIT_ERROR
    return EXIT_FINDINGS if any(findings(i) for i in inspections) else EXIT_OK
