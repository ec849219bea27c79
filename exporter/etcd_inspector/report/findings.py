"""What `inspect`, the status page and the JSON API call a finding (pure, no dependencies)."""

from __future__ import annotations

from dataclasses import dataclass
from enum import StrEnum
from typing import Any

from etcd_inspector.report.thresholds import runbook_url


class Severity(StrEnum):
    CRITICAL = "critical"
    WARNING = "warning"
    INFO = "info"


@dataclass(frozen=True)
class Finding:
    """One thing an operator should look at. `check` is its kind (stable, e.g. member_down)."""

    cluster: str
    check: str
    message: str
    member: str | None = None
    severity: Severity = Severity.WARNING
    # What it is about besides a member: a key, a prefix.
    subject: str | None = None
    value: float | None = None  # the measured value, where there is one
    threshold: float | None = None  # the limit it crossed
    # Anchor of the matching alert's runbook in docs/mixin.md. A probe leaves it None: the
    # report sets the one of the alert its spec declares for `check` (probes/base.py Check).
    runbook: str | None = None
    # How value and threshold show (report/view.py Format); None: the unit its Check declares.
    unit: str | None = None

    @property
    def runbook_anchor(self) -> str | None:
        return self.runbook

    @property
    def runbook_url(self) -> str | None:
        return runbook_url(self.runbook_anchor)

    def as_json(self) -> dict[str, Any]:
        return {
            "cluster": self.cluster,
            "check": self.check,
            "member": self.member,
            "message": self.message,
            "severity": str(self.severity),
            "subject": self.subject,
            "value": self.value,
            "threshold": self.threshold,
            "unit": self.unit,
            "runbook": self.runbook_anchor,
            "runbook_url": self.runbook_url,
        }
