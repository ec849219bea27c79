"""A drill's report as text or JSON (pure; the same DrillReport feeds both)."""

from __future__ import annotations

import json
from typing import Any

from etcd_inspector.drill.timeline import DrillReport, InstanceResult
from etcd_inspector.report.format import table

__all__ = ["render_json", "render_text", "span"]


def span(seconds: float) -> str:
    """12.5s, 45s, 3m05s, 1h02m: seconds to read at a glance."""
    if seconds < 10:
        return f"{seconds:.1f}s"
    whole = round(seconds)
    if whole < 60:
        return f"{whole}s"
    if whole < 3600:
        return f"{whole // 60}m{whole % 60:02d}s"
    return f"{whole // 3600}h{whole % 3600 // 60:02d}m"


def _labels(labels: tuple[tuple[str, str], ...]) -> str:
    return ", ".join(f'{k}="{v}"' for k, v in labels)


def _resolved(seconds: float | None, fault_seconds: float) -> str:
    if seconds is None:
        return "still firing"
    after = seconds - fault_seconds
    where = f"fault end +{span(after)}" if after >= 0 else "during the fault"
    return f"{span(seconds)} ({where})"


def _instance_row(item: InstanceResult, fault_seconds: float) -> list[str]:
    fired = "at start" if item.firing_at_start else span(item.fired_after)
    return [item.name, fired, _resolved(item.resolved_after, fault_seconds), _labels(item.labels)]


def render_text(report: DrillReport) -> str:
    headers = ("ALERT", "FIRED AFTER", "RESOLVED AFTER", "LABELS")
    lines = [
        f"drill against {report.api} at {report.url}: fault {span(report.fault_seconds)}, "
        f"resolve timeout {span(report.resolve_timeout_seconds)}, watched "
        f"{span(report.watched_seconds)}, polled every {span(report.interval_seconds)} "
        f"({report.polls} polls, {report.failed_polls} failed)",
    ]
    if report.match:
        lines.append(f"counting only alerts with {_labels(report.match)}")
    if report.last_poll_error:
        lines.append(f"last failed poll: {report.last_poll_error}")
    lines += ["", "Expected alerts:"]
    rows: list[list[str]] = []
    for alert in report.expected:
        if not alert.instances:
            rows.append([alert.name, "NOT FIRED", "-", ""])
        for item in alert.instances:
            row = _instance_row(item, report.fault_seconds)
            if item.firing_at_start:
                row[1] = "at start (not counted)"
            rows.append(row)
    lines += table(headers, rows)
    for title, items in (
        ("Other alerts that fired:", report.unexpected),
        ("Already firing at the start:", report.firing_at_start),
    ):
        lines += ["", title]
        if items:
            lines += table(headers, [_instance_row(i, report.fault_seconds) for i in items])
        else:
            lines.append("  none")
    lines.append("")
    if report.passed:
        lines.append(f"PASS: all {len(report.expected)} expected alerts fired and resolved")
    else:
        lines.append("FAIL: " + "; ".join(report.problems))
    return "\n".join(lines) + "\n"


def _instance(item: InstanceResult) -> dict[str, Any]:
    return {
        "alert": item.name,
        "labels": dict(item.labels),
        "firing_at_start": item.firing_at_start,
        "fired_after_seconds": None if item.firing_at_start else round(item.fired_after, 3),
        "resolved_after_seconds": (
            None if item.resolved_after is None else round(item.resolved_after, 3)
        ),
    }


def render_json(report: DrillReport) -> str:
    def rounded(value: float | None) -> float | None:
        return None if value is None else round(value, 3)

    document = {
        "api": report.api,
        "url": report.url,
        "fault_seconds": report.fault_seconds,
        "resolve_timeout_seconds": report.resolve_timeout_seconds,
        "interval_seconds": report.interval_seconds,
        "match": dict(report.match),
        "watched_seconds": round(report.watched_seconds, 3),
        "polls": report.polls,
        "failed_polls": report.failed_polls,
        "last_poll_error": report.last_poll_error,
        "passed": report.passed,
        "problems": report.problems,
        "expected": [
            {
                "alert": alert.name,
                "fired": alert.fired,
                "fired_after_seconds": rounded(alert.fired_after),
                "resolved": alert.resolved,
                "resolved_after_seconds": rounded(alert.resolved_after),
                "firing_at_start": alert.firing_at_start,
                "instances": [_instance(i) for i in alert.instances],
            }
            for alert in report.expected
        ],
        "unexpected": [_instance(i) for i in report.unexpected],
        "firing_at_start": [_instance(i) for i in report.firing_at_start],
    }
    return json.dumps(document, indent=2) + "\n"
