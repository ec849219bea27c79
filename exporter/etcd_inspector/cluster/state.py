"""The latest results of every probe of one cluster, replaced whole, never mutated.

The scheduler publishes; scrapes read. Each publish swaps one immutable ProbeOutcome into a new
dict, so a scrape sees either the old or the new result of a probe, never half of one.
"""

from __future__ import annotations

from collections.abc import Mapping
from dataclasses import dataclass
from typing import Any

from etcd_inspector.cluster.members import fallback_name


@dataclass(frozen=True)
class ProbeOutcome:
    probe: str
    success: bool
    duration_seconds: float
    finished_at: float  # wall clock, seconds since the epoch
    last_success_at: float | None
    result: Any | None
    error: str | None = None


class ClusterState:
    def __init__(self, name: str, endpoints: tuple[str, ...]) -> None:
        self.name = name
        self.endpoints = endpoints
        self._outcomes: Mapping[str, ProbeOutcome] = {}
        self._progress: Mapping[str, Any] = {}
        self._member_names: Mapping[str, str] = {}

    @property
    def outcomes(self) -> Mapping[str, ProbeOutcome]:
        return self._outcomes

    @property
    def progress(self) -> Mapping[str, Any]:
        return self._progress

    @property
    def member_names(self) -> Mapping[str, str]:
        return self._member_names

    def member_name(self, endpoint: str) -> str:
        return self._member_names.get(endpoint) or fallback_name(endpoint)

    def latest(self, probe: str) -> Any | None:
        outcome = self._outcomes.get(probe)
        return outcome.result if outcome is not None else None

    def publish(self, outcome: ProbeOutcome) -> None:
        self._outcomes = {**self._outcomes, outcome.probe: outcome}
        self._progress = {k: v for k, v in self._progress.items() if k != outcome.probe}

    def forget(self, probe: str) -> None:
        self._outcomes = {k: v for k, v in self._outcomes.items() if k != probe}
        self._progress = {k: v for k, v in self._progress.items() if k != probe}

    def publish_progress(self, probe: str, progress: Any) -> None:
        self._progress = {**self._progress, probe: progress}

    def set_member_names(self, names: Mapping[str, str]) -> None:
        self._member_names = dict(names)
