"""Probe sections: ``inspection.probes`` and a cluster's own ``probes``, resolved in one place.

A section holds ``enabled``/``interval``/``timeout`` beside the options, a ``Section`` the
probe's module declares (``options_type``; an explicit ``null`` is passed on to it). A
cluster's section overrides the global one per probe and per key; each is checked where it is
written, the merged one again (``resolve_probes``). Defaults are resolved here only: the
spec's, then ``inspection.interval``/``timeout``; an implicit timeout never outlasts the
interval (runs cannot pile up), an explicit one is trusted as written.
"""

from __future__ import annotations

from collections.abc import Mapping, Sequence
from dataclasses import dataclass
from typing import Any, Protocol

from pydantic import ValidationError, ValidationInfo
from pydantic_core import InitErrorDetails

from .durations import FROM_FILE, PositiveDuration
from .errors import did_you_mean, problem, problems, reraise, type_name
from .fields import Section

# Probe name -> its section as written (validated, not yet merged or resolved).
RawProbes = Mapping[str, Mapping[str, Any]]


class ProbeSpecLike(Protocol):
    """What the loader needs from a probe registry entry."""

    @property
    def name(self) -> str: ...
    @property
    def options_type(self) -> type[Section]: ...
    @property
    def default_enabled(self) -> bool: ...
    @property
    def default_interval(self) -> float: ...
    @property
    def default_timeout(self) -> float: ...


@dataclass(frozen=True)
class ProbeConfig:
    """One probe's settings after defaults: built by the loader, not read from YAML as is."""

    enabled: bool
    interval: float
    timeout: float
    options: Any  # an instance of the probe's ``options_type``


class _Schedule(Section):
    enabled: bool | None = None
    interval: PositiveDuration | None = None
    timeout: PositiveDuration | None = None


_SCHEDULE = tuple(_Schedule.model_fields)


def _parse(spec: ProbeSpecLike, raw: object) -> tuple[_Schedule, Section]:
    """One probe's section -> (schedule, options); a ValidationError lists every problem."""
    if not isinstance(raw, Mapping):
        raise problems(spec.name, [problem((), f"expected a mapping, got {type_name(raw)}")])
    errors: list[InitErrorDetails] = []
    schedule, options = _Schedule(), None
    try:
        given = {k: v for k, v in raw.items() if k in _SCHEDULE}
        schedule = _Schedule.model_validate(given, context={FROM_FILE: True})
    except ValidationError as e:
        errors.extend(reraise(err) for err in e.errors())
    try:
        given = {k: v for k, v in raw.items() if k not in _SCHEDULE}
        context = {FROM_FILE: True, "also_allowed": _SCHEDULE, "keep_null": True}
        options = spec.options_type.model_validate(given, context=context)
    except ValidationError as e:
        errors.extend(reraise(err) for err in e.errors())
    if errors or options is None:
        raise problems(spec.name, errors)
    return schedule, options


def validate_probes(value: object, info: ValidationInfo) -> RawProbes:
    """A ``probes:`` mapping, each section checked on its own; needs ``context={"specs": ...}``."""
    # Only parse_config knows the probes: in code, every probe name is unknown.
    specs: Mapping[str, ProbeSpecLike] = (info.context or {}).get("specs", {})
    if not isinstance(value, Mapping):
        raise ValueError(f"expected a mapping, got {type_name(value)}")
    known = sorted(specs)
    errors: list[InitErrorDetails] = [
        problem(
            (),
            f"unknown probe {name!r}{did_you_mean(name, known)}; known probes: {', '.join(known)}",
        )
        for name in value
        if name not in specs
    ]
    for name, raw in value.items():
        try:
            if name in specs:
                _parse(specs[name], {} if raw is None else raw)
        except ValidationError as e:
            errors.extend(reraise(err, (name,)) for err in e.errors())
    if errors:
        raise problems("probes", errors)
    return {name: dict(raw or {}) for name, raw in value.items()}


def resolve_probes(
    specs: Mapping[str, ProbeSpecLike],
    raw: RawProbes,
    interval: float | None,
    timeout: float | None,
    clusters: Sequence[tuple[str, RawProbes]],
) -> tuple[dict[str, ProbeConfig], dict[str, dict[str, ProbeConfig]]]:
    """(every probe's settings, those of the clusters with overrides of their own).

    Raises a ValidationError where a cluster's merged section fails the probe's checks.
    """

    def resolve(spec: ProbeSpecLike, section: Mapping[str, Any]) -> ProbeConfig:
        schedule, options = _parse(spec, section)
        every = schedule.interval or interval or spec.default_interval
        if schedule.timeout is None:
            limit = min(timeout or spec.default_timeout, every)
        else:
            limit = schedule.timeout
        enabled = spec.default_enabled if schedule.enabled is None else schedule.enabled
        return ProbeConfig(enabled=enabled, interval=every, timeout=limit, options=options)

    common = {name: resolve(spec, raw.get(name, {})) for name, spec in specs.items()}
    per_cluster: dict[str, dict[str, ProbeConfig]] = {}
    errors: list[InitErrorDetails] = []
    for i, (cluster, own) in enumerate(clusters):
        if not own:
            continue
        per_cluster[cluster] = mine = dict(common)
        for name in own:
            try:
                mine[name] = resolve(specs[name], {**raw.get(name, {}), **own[name]})
            except ValidationError as e:
                errors.extend(reraise(err, ("clusters", i, "probes", name)) for err in e.errors())
    if errors:
        raise problems("probes", errors)
    return common, per_cluster
