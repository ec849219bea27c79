"""The text report of `inspect` (pure): one section per probe, then the findings."""

from __future__ import annotations

from collections.abc import Sequence

from etcd_inspector.exitcodes import EXIT_ERROR, EXIT_FINDINGS, EXIT_OK
from etcd_inspector.probes.base import ProbeSpec
from etcd_inspector.render.inspection import ClusterInspection, exit_code, findings
from etcd_inspector.report.format import rfc3339


def _section(insp: ClusterInspection, spec: ProbeSpec) -> list[str]:
    if not insp.watched(spec):
        return [f"{spec.title or spec.name}: not watched (use --watch 30s)"]
    why = insp.why_no_result(spec)
    if why is not None and not spec.provides_topology:
        return [f"{spec.title or spec.name}: {why}"]
    lines = insp.probe(spec).report_text(insp.shown(spec), insp.context)
    return lines or [f"{spec.title or spec.name}: {why or 'nothing to show'}"]


def render_cluster(insp: ClusterInspection) -> str:
    body = [f"== cluster {insp.name} ({len(insp.endpoints)} endpoints)"]
    if not insp.inspected:
        body += [f"could not inspect: {insp.error}"]
        spec = insp.topology_spec
        if spec is not None:
            body += ["", *insp.probe(spec).report_text(insp.shown(spec), insp.context)]
    else:
        for spec in insp.specs:
            body += ["", *_section(insp, spec)]
    found = findings(insp)
    body += ["", "Findings"]
    body += [f"  ! [{f.check}] {f.message}" for f in found] or ["  none: all clear"]
    return "\n".join(body) + "\n"


def render_text(inspections: Sequence[ClusterInspection], *, started_at: float) -> str:
    code = exit_code(inspections)
    verdict = {EXIT_OK: "all clear", EXIT_FINDINGS: "findings", EXIT_ERROR: "could not inspect"}
    parts = [f"etcd-inspector inspect at {rfc3339(started_at)}\n"]
    parts += ["\n" + render_cluster(i) for i in inspections]
    parts.append(f"\nResult: {verdict[code]} (exit {code})\n")
    return "".join(parts)
