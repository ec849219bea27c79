"""The JSON document of `inspect --output json` (pure).

Keys are stable, new keys may be added, "schema" changes when a key changes meaning or goes
away. Sizes are bytes, durations seconds, times RFC 3339 UTC:

  {
    "schema": 1,
    "started_at": str, "finished_at": str,
    "exit_code": 0 | 1 | 2,
    "watch_seconds": float | null,        # --watch window, null when not watched
    "findings": [Finding, ...],           # every cluster's, in cluster order
    "clusters": [{
      "name": str,
      "inspected": bool,                  # false: no member answered, see "error"
      "error": str | null,
      "probes": {<probe>: {"available": bool, "ran": bool, "success": bool | null,
                           "duration_seconds": float | null, "error": str | null,
                           "error_kind": str | null, "finished_at": str | null,
                           "last_success_at": str | null}},
      ...each probe's own keys, in registry order (probes' report_json), e.g.
      "members": [...], "leader": str | null, "alarms": [...] | null        (status)
      "consistency": {...} | null                                          (consistency)
      "quota": {...} | null                                                (quota)
      "leases": {"count": int, "limit": int} | null                        (leases)
      "keyspace": {...} | null                                             (bigvalue)
      "hot_keys": {...} | null                                             (hotkeys)
      "findings": [Finding, ...]
    }],
    "baseline": {...}                     # only with --baseline: render/baseline.py, and then
  }                                       # "exit_code" says whether anything got worse
  Finding = {"cluster": str, "check": str, "member": str | null, "message": str,
             "severity": "critical" | "warning" | "info", "subject": str | null,
             "value": float | null, "threshold": float | null,   # the alert's threshold
             "unit": "bytes" | "ratio" | "rate" | "date" | ... | null,  # of value, threshold
             "runbook": str | null, "runbook_url": str | null}   # the matching alert's runbook

The exporter serves the same document at /api/v1/status (render/inspection.py's
ClusterInspection.of_runtime over its live state; "watch_seconds" is null there and the
continuous watch's hot keys are reported with decayed rates).

Keys appear as the exporter labels them (key_labels: full, prefix or hash).
"""

from __future__ import annotations

from collections.abc import Sequence
from typing import Any

from etcd_inspector.render.inspection import ClusterInspection, exit_code, findings
from etcd_inspector.report.format import rfc3339

SCHEMA_VERSION = 1


def _probes_json(insp: ClusterInspection) -> dict[str, Any]:
    out: dict[str, Any] = {}
    for spec in insp.specs:
        if not insp.watched(spec):
            continue  # not asked for
        outcome = insp.outcomes.get(spec.name)
        out[spec.name] = {
            "available": spec.name not in insp.unavailable,
            "ran": outcome is not None,
            "success": outcome.success if outcome else None,
            "duration_seconds": round(outcome.duration_seconds, 3) if outcome else None,
            "error": outcome.error if outcome else None,
            "error_kind": str(outcome.error_kind) if outcome and outcome.error_kind else None,
            "finished_at": rfc3339(outcome.finished_at) if outcome else None,
            "last_success_at": (
                rfc3339(outcome.last_success_at)
                if outcome and outcome.last_success_at is not None
                else None
            ),
        }
    return out


def cluster_json(insp: ClusterInspection) -> dict[str, Any]:
    doc: dict[str, Any] = {
        "name": insp.name,
        "inspected": insp.inspected,
        "error": insp.error,
        "probes": _probes_json(insp),
    }
    rc = insp.context
    for spec in insp.specs:
        doc.update(insp.probe(spec).report_json(insp.shown(spec), rc))
    doc["findings"] = [f.as_json() for f in findings(insp)]
    return doc


def to_json(
    inspections: Sequence[ClusterInspection], *, started_at: float, finished_at: float
) -> dict[str, Any]:
    clusters = [cluster_json(i) for i in inspections]
    watch = next((i.watch_seconds for i in inspections), None)
    return {
        "schema": SCHEMA_VERSION,
        "started_at": rfc3339(started_at),
        "finished_at": rfc3339(finished_at),
        "exit_code": exit_code(inspections),
        "watch_seconds": watch,
        "findings": [f for c in clusters for f in c["findings"]],
        "clusters": clusters,
    }
