"""What `inspect`, the status page and the JSON API call a finding (pure, no dependencies)."""

from __future__ import annotations

from dataclasses import dataclass
from enum import StrEnum
from typing import Any


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
    runbook: str | None = None  # anchor in docs/runbook.md (the alerts link the same anchors)

    def as_json(self) -> dict[str, Any]:
        return {
            "cluster": self.cluster,
            "check": self.check,
            "member": self.member,
            "message": self.message,
        }
