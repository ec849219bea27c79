"""Durations: Prometheus duration strings, and the one rule for when a bare number will do.

The rule, for files: **a number needs a unit, in the value or in the key.** "500ms" and
"1m30s" are accepted everywhere; a bare number only where the key's name says the unit
(``*_seconds``), because "timeout: 5" reads as seconds to some and milliseconds to others.
``DurationRule`` is the only validator that applies it; every duration field uses it.

At most one year: durations become sleeps, timeouts and gRPC deadlines (a deadline beyond
int64 nanoseconds fails only when the call is made), and "1000000y" is a typo, not a wish.
"""

from __future__ import annotations

import math
import re
from dataclasses import dataclass
from typing import Annotated, Any

from pydantic import GetCoreSchemaHandler, ValidationInfo
from pydantic_core import CoreSchema, PydanticCustomError, core_schema

from .errors import CUSTOM, type_name

# Same grammar as Prometheus' model.ParseDuration: integer amounts, units largest first,
# each unit at most once.
_DURATION_RE = re.compile(
    r"(?:(\d+)y)?(?:(\d+)w)?(?:(\d+)d)?(?:(\d+)h)?(?:(\d+)m)?(?:(\d+)s)?(?:(\d+)ms)?",
    re.ASCII,
)
_UNIT_MS = (365 * 86_400_000, 7 * 86_400_000, 86_400_000, 3_600_000, 60_000, 1000, 1)
_BARE_NUMBER_RE = re.compile(r"\d+(?:\.\d*)?|\.\d+", re.ASCII)

MAX_DURATION = 365 * 86_400.0  # 1y


def _unit_suggestion(number: str) -> str:
    # Prometheus durations have no fractions, so 1.5 becomes 1500ms rather than 1.5s.
    value = float(number)
    return f"'{int(value)}s'" if value.is_integer() else f"'{round(value * 1000)}ms'"


def parse_duration(text: object) -> float:
    """Parse a Prometheus duration ("500ms", "15s", "1m30s", "2h", "1d") into seconds.

    Amounts too large for a float give ``math.inf`` (the callers' bounds reject it).
    """
    if not isinstance(text, str):  # YAML gives numbers and booleans too
        raise ValueError(f"expected a duration string like '15s', got {type_name(text)}")
    s = text.strip()
    if _BARE_NUMBER_RE.fullmatch(s):
        raise ValueError(f"{text!r} has no unit; write e.g. {_unit_suggestion(s)}")
    m = _DURATION_RE.fullmatch(s)
    if not s or m is None:
        raise ValueError(
            f"{text!r} is not a duration (use e.g. '500ms', '15s', '1m30s', '2h', '1d')"
        )
    total_ms = sum(
        int(g) * unit for g, unit in zip(m.groups(), _UNIT_MS, strict=True) if g is not None
    )
    try:
        return total_ms / 1000
    except OverflowError:
        return math.inf


@dataclass(frozen=True)
class DurationRule:
    """pydantic metadata for a duration field (held as float seconds); see the module doc.

    ``positive`` rejects zero too (an interval or a timeout of 0 makes no sense).
    """

    positive: bool = False

    def __get_pydantic_core_schema__(
        self, source_type: Any, handler: GetCoreSchemaHandler
    ) -> CoreSchema:
        return core_schema.with_info_plain_validator_function(self.validate)

    def validate(self, value: object, info: ValidationInfo) -> float:
        try:
            # The unit rule is for files; code passes seconds (ScrapeConfig(timeout=10.0)).
            from_file = bool((info.context or {}).get(FROM_FILE))
            seconds = self._seconds(value, info.field_name or "", from_file)
        except ValueError as e:
            raise PydanticCustomError(CUSTOM, str(e)) from None
        if math.isnan(seconds):
            raise PydanticCustomError(CUSTOM, f"must be a number of seconds, got {value!r}")
        if seconds < 0:
            raise PydanticCustomError(CUSTOM, f"must not be negative, got {value!r}")
        if self.positive and seconds == 0:
            raise PydanticCustomError(CUSTOM, f"must be greater than 0, got {value!r}")
        if seconds > MAX_DURATION:
            raise PydanticCustomError(CUSTOM, f"must be at most 1y, got {value!r}")
        return seconds

    @staticmethod
    def _seconds(value: object, key: str, from_file: bool) -> float:
        if isinstance(value, bool) or not isinstance(value, int | float):
            return parse_duration(value)  # it reports a wrong type itself
        if key.endswith("_seconds") or not from_file:
            return float(value)
        # Through parse_duration for its "add a unit" hint.
        return parse_duration(str(value))


# The validation context key that says the input was read from a file.
FROM_FILE = "file"
# A duration of zero or more.
Duration = Annotated[float, DurationRule()]
# A duration greater than zero (intervals and timeouts).
PositiveDuration = Annotated[float, DurationRule(positive=True)]
