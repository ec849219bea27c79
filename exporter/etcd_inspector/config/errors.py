"""ConfigError, and the translation of pydantic's errors into its one-line-per-problem form."""

from __future__ import annotations

import difflib
from collections.abc import Iterable, Mapping, Sequence
from typing import Any

from pydantic import ValidationError
from pydantic_core import ErrorDetails, InitErrorDetails, PydanticCustomError

Loc = tuple[str | int, ...]

# The error type of every message written by this package; pydantic's own types are
# translated by ``_message`` below.
CUSTOM = "config"

# pydantic error type -> what the value should have been.
_EXPECTED = {
    "string_type": "a string",
    "int_type": "an integer",
    "bool_type": "a boolean",
    "float_type": "a number",
    "tuple_type": "a list",
    "dict_type": "a mapping",
}

# pydantic's range errors (Field bounds): error type -> (ctx key, wording).
_BOUNDS = {
    "greater_than_equal": ("ge", "at least"), "greater_than": ("gt", "greater than"),
    "less_than_equal": ("le", "at most"), "less_than": ("lt", "less than"),
}  # fmt: skip


class ConfigError(Exception):
    """Every problem found in one configuration source, each prefixed with its YAML path."""

    def __init__(self, errors: Iterable[str], source: str = "<config>") -> None:
        self.errors: list[str] = list(errors)
        self.source = source
        super().__init__(self._render())

    def _render(self) -> str:
        n = len(self.errors)
        noun = "problem" if n == 1 else "problems"
        lines = "".join(f"\n  - {e}" for e in self.errors)
        return f"{n} {noun} in {self.source}:{lines}"

    def __str__(self) -> str:
        return self._render()

    def __reduce__(self) -> tuple[Any, ...]:
        # The default reduce would call ConfigError(message) and lose the list.
        return (type(self), (self.errors, self.source))


_TYPE_NAMES = (
    (type(None), "null"), (bool, "boolean"), (int, "integer"), (float, "number"),
    (str, "string"), (Mapping, "mapping"), (list | tuple, "list"),
)  # fmt: skip


def type_name(value: object) -> str:
    """The YAML word for a value's type, as used in "expected a string, got list"."""
    return next((name for t, name in _TYPE_NAMES if isinstance(value, t)), type(value).__name__)


def did_you_mean(key: object, allowed: Sequence[str], or_list: bool = False) -> str:
    """The " (did you mean ...?)" suffix for a near miss, else "" (or the allowed keys)."""
    close = difflib.get_close_matches(key, list(allowed), n=1) if isinstance(key, str) else []
    if close or not (or_list and allowed):
        return f" (did you mean {close[0]!r}?)" if close else ""
    return f" (allowed: {', '.join(allowed)})"


def problem(loc: Loc, message: str) -> InitErrorDetails:
    """One located problem, to be raised in a ValidationError (see ``problems``)."""
    # No context is given, so the message is used as is (braces in a regex stay literal).
    return {"type": PydanticCustomError(CUSTOM, message), "loc": loc, "input": None}


def reraise(error: ErrorDetails, prefix: Loc = ()) -> InitErrorDetails:
    """Turn a caught error back into raisable form, optionally below ``prefix``."""
    loc = (*prefix, *error["loc"])
    if error["type"] == CUSTOM:
        return problem(loc, error["msg"])
    details: InitErrorDetails = {"type": error["type"], "loc": loc, "input": error["input"]}
    if "ctx" in error:
        details["ctx"] = error["ctx"]
    return details


def problems(title: str, errors: Sequence[InitErrorDetails]) -> ValidationError:
    """All ``errors`` as one exception; raised in a validator, pydantic puts them below the
    location being validated."""
    return ValidationError.from_exception_data(title, list(errors))


def yaml_path(loc: Loc) -> str:
    """('clusters', 0, 'endpoints', 1, 'url') -> 'clusters[0].endpoints[1].url'."""
    path = ""
    for part in loc:
        path += f"[{part}]" if isinstance(part, int) else f".{part}" if path else str(part)
    return path or "top level"


def _message(error: ErrorDetails) -> tuple[Loc, str]:
    kind, loc, value = error["type"], error["loc"], error["input"]
    if kind in ("missing", "missing_argument"):
        # Reported on the mapping that lacks the key, like the other structural problems.
        return loc[:-1], f"missing required key {loc[-1]!r}"
    if kind in _EXPECTED:
        return loc, f"expected {_EXPECTED[kind]}, got {type_name(value)}"
    if kind in ("value_error", "assertion_error"):
        return loc, str(error.get("ctx", {}).get("error", error["msg"]))
    if kind == "literal_error":
        # "'a', 'b' or 'c'" -> "a, b, c", as in "'x' is not one of a, b, c".
        allowed = str(error.get("ctx", {}).get("expected", "")).replace(" or ", ", ")
        return loc, f"{value!r} is not one of {allowed.replace(chr(39), '')}"
    if kind in _BOUNDS:
        bound = error.get("ctx", {}).get(_BOUNDS[kind][0])
        return loc, f"must be {_BOUNDS[kind][1]} {bound}, got {value!r}"
    if kind == "finite_number":
        return loc, f"must be a finite number, got {value!r}"
    if kind == "recursion_loop":
        return loc, "refers to itself (an anchor used inside its own value?)"
    return loc, error["msg"]


def messages(exc: ValidationError) -> list[str]:
    """One "yaml.path: message" line per problem, in the order pydantic found them."""
    found = map(_message, exc.errors(include_url=False))
    return [f"{yaml_path(loc)}: {text}" for loc, text in found]
