"""``inspection.probes``: per probe, enabled/interval/timeout next to the probe's options.

A probe's options are a stdlib frozen dataclass (``ProbeSpecLike.options_type``) that
checks its own invariants in ``__post_init__``. From its fields a pydantic model of the
probe's YAML section is derived once per class, with each annotation made strict
(``_strict``): no "5" for an int, no ``true`` for a number, a YAML list for a tuple.
Absent options are left out of the constructor call, so the class's own defaults apply.

Bounds: an integer option must fit in a signed 64-bit integer, as the etcd API's int64
fields do (``page_size`` becomes a Range limit, for one); a float option must be finite.
A float option named ``*_seconds`` is a duration (see ``durations``).
"""

from __future__ import annotations

import dataclasses
import functools
import types
from collections.abc import Mapping
from typing import Annotated, Any, Literal, Union, get_args, get_origin, get_type_hints

from pydantic import (
    AfterValidator,
    AllowInfNan,
    BaseModel,
    ConfigDict,
    PlainValidator,
    Strict,
    StrictBool,
    StrictStr,
    ValidationError,
    ValidationInfo,
    ValidatorFunctionWrapHandler,
    create_model,
    model_validator,
)
from pydantic_core import InitErrorDetails

from .durations import Duration, DurationRule, PositiveDuration
from .errors import did_you_mean, problem, problems, reraise, type_name
from .fields import LIST, validate_section
from .schema import ProbeConfig, ProbeSpecLike

_INT64_MAX = 2**63 - 1


def _int64(value: int) -> int:
    if not -_INT64_MAX - 1 <= value <= _INT64_MAX:
        raise ValueError(
            f"must be between {-_INT64_MAX - 1} and {_INT64_MAX} (etcd's int64), got {value}"
        )
    return value


def _literal(allowed: tuple[object, ...]) -> PlainValidator:
    listed = ", ".join(repr(a) for a in allowed)

    def validate(value: object) -> object:
        # type() check so that True does not pass for Literal[1] and 1 not for Literal[True].
        if any(type(value) is type(a) and value == a for a in allowed):
            return value
        raise ValueError(f"{value!r} is not one of {listed}")

    return PlainValidator(validate)


_SCALARS: dict[object, object] = {
    bool: StrictBool,
    int: Annotated[int, Strict(), AfterValidator(_int64)],
    float: Annotated[float, Strict(), AllowInfNan(False)],
    str: StrictStr,
    Any: Any,
}


def _strict(hint: Any, name: str) -> Any:
    """The strict schema type for an option annotated ``hint`` and named ``name``."""
    origin = get_origin(hint)
    if origin is Annotated:
        base, *meta = get_args(hint)
        if any(isinstance(m, DurationRule) for m in meta):
            return hint
        return Annotated[(_strict(base, name), *meta)]
    if origin is Union or origin is types.UnionType:
        return Union[tuple(_strict(a, name) for a in get_args(hint))]  # noqa: UP007
    if origin is Literal:
        return Annotated[hint, _literal(get_args(hint))]
    if origin is tuple:
        item, *rest = get_args(hint)
        if rest != [Ellipsis]:
            raise TypeError(f"{name}: unsupported probe option type {hint!r} (use tuple[X, ...])")
        return Annotated[tuple[_strict(item, ""), ...], LIST]  # type: ignore[misc]
    if hint is type(None):
        return hint
    if hint is float and name.endswith("_seconds"):
        return Duration
    if hint not in _SCALARS:
        raise TypeError(f"{name}: unsupported probe option type {hint!r}")
    return _SCALARS[hint]


class _ProbeSection(BaseModel):
    """The keys every probe has; ``section_model`` adds the probe's options."""

    model_config = ConfigDict(extra="forbid", frozen=True, protected_namespaces=())

    enabled: StrictBool | None = None
    interval: PositiveDuration | None = None
    timeout: PositiveDuration | None = None

    @model_validator(mode="wrap")
    @classmethod
    def _section(cls, data: Any, handler: ValidatorFunctionWrapHandler) -> Any:
        # Unlike enabled/interval/timeout, an option given as null is passed on as None
        # (the options class decides whether None is allowed).
        options = [name for name in cls.model_fields if name not in _RESERVED]
        return validate_section(cls, data, handler, keep_null=options)


_RESERVED = tuple(_ProbeSection.model_fields)


@functools.cache
def section_model(options_type: type) -> type[_ProbeSection]:
    hints = get_type_hints(options_type, include_extras=True)
    fields: dict[str, Any] = {
        # The None default only marks "absent"; absent options are not passed on.
        f.name: (_strict(hints[f.name], f.name), None)
        for f in dataclasses.fields(options_type)
        if f.init and f.name not in _RESERVED
    }
    return create_model(f"{options_type.__name__}Section", __base__=_ProbeSection, **fields)


def _probe(
    raw: object, spec: ProbeSpecLike, interval: float | None, timeout: float | None
) -> ProbeConfig:
    section = section_model(spec.options_type).model_validate({} if raw is None else raw)
    given = {k: getattr(section, k) for k in section.model_fields_set if k not in _RESERVED}
    try:
        options = spec.options_type(**given)
    except (TypeError, ValueError) as e:
        # The options class validates combinations in __post_init__.
        raise problems(spec.name, [problem((), str(e))]) from None
    if section.interval is not None:
        interval = section.interval
    elif interval is None:
        interval = spec.default_interval
    if section.timeout is not None:
        timeout = section.timeout
    else:
        # An implicit timeout never outlasts the interval, so runs cannot pile up;
        # an explicit one is trusted as written.
        timeout = min(spec.default_timeout if timeout is None else timeout, interval)
    enabled = spec.default_enabled if section.enabled is None else section.enabled
    return ProbeConfig(enabled=enabled, interval=interval, timeout=timeout, options=options)


def validate_probes(value: object, info: ValidationInfo) -> dict[str, ProbeConfig]:
    """``inspection.probes`` -> a ProbeConfig for every registered probe.

    Needs ``context={"specs": ...}`` and the already validated ``interval`` and ``timeout``
    of the inspection section (the probes' defaults).
    """
    specs: Mapping[str, ProbeSpecLike] = (info.context or {})["specs"]
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
    probes = {}
    for name, spec in specs.items():
        try:
            probes[name] = _probe(
                value.get(name), spec, info.data.get("interval"), info.data.get("timeout")
            )
        except ValidationError as e:
            errors.extend(reraise(err, (name,)) for err in e.errors())
    if errors:
        raise problems("probes", errors)
    return probes
