"""The latest results of every probe of one cluster, and its topology: replaced whole, never
mutated.

The scheduler publishes; scrapes read. Each publish swaps one immutable ProbeOutcome into a new
dict, so a scrape sees either the old or the new result of a probe, never half of one.
"""

from __future__ import annotations

from collections.abc import Mapping
from dataclasses import dataclass
from typing import Any

from etcd_inspector.cluster.topology import Topology
from etcd_inspector.errors import ErrorKind


@dataclass(frozen=True)
class ProbeOutcome:
    probe: str
    success: bool
    duration_seconds: float
    finished_at: float  # wall clock, seconds since the epoch
    last_success_at: float | None
    # The probe's own result type; only the probe that made it reads it (probes/base.py). On a
    # failure: what the probe still knew (ProbeError.partial), usually None.
    result: Any | None
    error: str | None = None  # for people: what went wrong
    error_kind: ErrorKind | None = None  # for code: why (never parsed from `error`)


class ClusterState:
    def __init__(self, name: str, endpoints: tuple[str, ...]) -> None:
        self.name = name
        self._outcomes: Mapping[str, ProbeOutcome] = {}
        self._progress: Mapping[str, Any] = {}
        self._topology = Topology.unknown(endpoints)

    @property
    def outcomes(self) -> Mapping[str, ProbeOutcome]:
        return self._outcomes

    @property
    def progress(self) -> Mapping[str, Any]:
        return self._progress

    @property
    def endpoints(self) -> tuple[str, ...]:
        """Every member's client URL: the configured ones, then those discovered since."""
        return self._topology.endpoints

    @property
    def topology(self) -> Topology:
        return self._topology

    def member_name(self, endpoint: str) -> str:
        return self._topology.name_of(endpoint)

    def publish(self, outcome: ProbeOutcome) -> None:
        self._outcomes = {**self._outcomes, outcome.probe: outcome}
        self._progress = {k: v for k, v in self._progress.items() if k != outcome.probe}

    def forget(self, probe: str) -> None:
        self._outcomes = {k: v for k, v in self._outcomes.items() if k != probe}
        self._progress = {k: v for k, v in self._progress.items() if k != probe}

    def publish_progress(self, probe: str, progress: Any) -> None:
        self._progress = {**self._progress, probe: progress}

    def set_topology(self, topology: Topology) -> None:
        self._topology = topology
