"""What a drill saw, and its verdict (pure: fed with polls, no I/O).

Times are seconds since the drill started (its first poll). The fault is on from 0 to
`fault_seconds` (the experiment's duration); the drill then waits up to the resolve timeout
for the expected alerts to resolve. An alert instance is one alert name with one label set;
instances already firing at the first poll existed before the fault and prove nothing.
"""

from __future__ import annotations

from collections.abc import Iterable, Sequence
from dataclasses import dataclass, field

from etcd_inspector.drill.alertsapi import FiringAlert

__all__ = ["AlertResult", "DrillReport", "InstanceResult", "Observer"]


@dataclass
class _Track:
    first_firing: float
    preexisting: bool
    resolved_at: float | None = None


@dataclass(frozen=True)
class InstanceResult:
    name: str
    labels: tuple[tuple[str, str], ...]
    fired_after: float  # seconds since the start (0 for one already firing then)
    resolved_after: float | None  # seconds since the start; None: still firing at the end
    firing_at_start: bool


@dataclass(frozen=True)
class AlertResult:
    """One expected alert: fired when an instance started firing after the start."""

    name: str
    instances: tuple[InstanceResult, ...]

    @property
    def new_instances(self) -> tuple[InstanceResult, ...]:
        return tuple(i for i in self.instances if not i.firing_at_start)

    @property
    def fired(self) -> bool:
        return bool(self.new_instances)

    @property
    def fired_after(self) -> float | None:
        return min((i.fired_after for i in self.new_instances), default=None)

    @property
    def resolved(self) -> bool:
        return self.fired and all(i.resolved_after is not None for i in self.instances)

    @property
    def resolved_after(self) -> float | None:
        if not self.resolved:
            return None
        return max(i.resolved_after for i in self.instances if i.resolved_after is not None)

    @property
    def firing_at_start(self) -> bool:
        return any(i.firing_at_start for i in self.instances)


@dataclass(frozen=True)
class DrillReport:
    api: str  # Prometheus | Alertmanager
    url: str
    fault_seconds: float
    resolve_timeout_seconds: float
    interval_seconds: float
    watched_seconds: float
    polls: int
    failed_polls: int
    last_poll_error: str | None
    expected: tuple[AlertResult, ...]
    unexpected: tuple[InstanceResult, ...]  # other alerts that started firing after the start
    firing_at_start: tuple[InstanceResult, ...]  # other alerts already firing at the start
    match: tuple[tuple[str, str], ...] = ()  # only alerts with these labels were counted

    @property
    def problems(self) -> list[str]:
        found = []
        for alert in self.expected:
            if not alert.fired:
                why = " (it was already firing at the start)" if alert.firing_at_start else ""
                found.append(f"{alert.name} did not fire{why}")
            elif not alert.resolved:
                found.append(
                    f"{alert.name} did not resolve within {self.resolve_timeout_seconds:g}s "
                    "of the fault's end"
                )
        return found

    @property
    def passed(self) -> bool:
        return not self.problems


@dataclass
class Observer:
    """Feed it every poll in order; `report()` gives what was seen."""

    expected: Sequence[str]
    tracks: dict[FiringAlert, _Track] = field(default_factory=dict)
    polls: int = 0
    failed_polls: int = 0
    last_poll_error: str | None = None
    last_poll_at: float = 0.0

    def observe(self, at: float, firing: Iterable[FiringAlert]) -> None:
        now = set(firing)
        first = self.polls == 0
        self.polls += 1
        self.last_poll_at = at
        for alert in now:
            track = self.tracks.get(alert)
            if track is None:
                self.tracks[alert] = _Track(first_firing=at, preexisting=first)
            else:
                track.resolved_at = None  # firing again
        for alert, track in self.tracks.items():
            if alert not in now and track.resolved_at is None:
                track.resolved_at = at

    def failed(self, at: float, error: str) -> None:
        self.failed_polls += 1
        self.last_poll_error = error
        self.last_poll_at = at

    def firing(self, name: str) -> bool:
        return any(a.name == name and t.resolved_at is None for a, t in self.tracks.items())

    def waiting_to_resolve(self) -> bool:
        """An expected alert that fired is still firing."""
        return any(self.firing(name) for name in self.expected)

    def _result(self, alert: FiringAlert, track: _Track) -> InstanceResult:
        return InstanceResult(
            name=alert.name,
            labels=alert.labels,
            fired_after=track.first_firing,
            resolved_after=track.resolved_at,
            firing_at_start=track.preexisting,
        )

    def report(
        self,
        api: str,
        url: str,
        fault_seconds: float,
        resolve_timeout_seconds: float,
        interval_seconds: float,
        match: tuple[tuple[str, str], ...] = (),
    ) -> DrillReport:
        ordered = sorted(
            self.tracks.items(),
            key=lambda item: (item[1].first_firing, item[0].name, item[0].labels),
        )
        results = [self._result(alert, track) for alert, track in ordered]
        expected = tuple(
            AlertResult(name, tuple(r for r in results if r.name == name)) for name in self.expected
        )
        others = [r for r in results if r.name not in set(self.expected)]
        return DrillReport(
            api=api,
            url=url,
            fault_seconds=fault_seconds,
            resolve_timeout_seconds=resolve_timeout_seconds,
            interval_seconds=interval_seconds,
            watched_seconds=self.last_poll_at,
            polls=self.polls,
            failed_polls=self.failed_polls,
            last_poll_error=self.last_poll_error,
            expected=expected,
            unexpected=tuple(r for r in others if not r.firing_at_start),
            firing_at_start=tuple(r for r in others if r.firing_at_start),
            match=match,
        )
