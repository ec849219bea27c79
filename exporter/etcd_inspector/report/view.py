"""What a probe shows on the status page: a typed view model, with no HTML in it (pure).

A probe's spec declares a view (probes/base.py `ProbeSpec.view`): a function from the cluster's
JSON document (render/jsondoc.py, the one /api/v1/status serves) to sections of tables,
key/value rows and lines of typed cells. A cell carries its raw value and how it is shown
(`Format`: bytes, seconds, a ratio, a rate, a timestamp, ...) and what it means (`Look`: good,
bad, a member's state, ...); web/status_page.py turns these into HTML the same way for every
probe, so the page names no probe, and a new probe's section needs no edit to web/.
"""

from __future__ import annotations

from collections.abc import Callable, Mapping, Sequence
from dataclasses import dataclass, field
from enum import StrEnum
from typing import Any


class Format(StrEnum):
    """How a value is shown (its unit)."""

    TEXT = "text"  # as is
    NUMBER = "number"  # 0.25, 12
    COUNT = "count"  # 1,024
    BYTES = "bytes"  # 1.5 MiB
    SECONDS = "seconds"  # a duration: 3.0m
    RATIO = "ratio"  # 0..1 as a percentage: 80.0%
    RATE = "rate"  # per second: 99.9/s
    TIMESTAMP = "timestamp"  # seconds since the epoch or RFC 3339: 2026-12-07 10:00:00 UTC
    DATE = "date"  # the day of a timestamp: 2026-12-07
    AGE = "age"  # a timestamp as time before now: 3.0m ago


class Look(StrEnum):
    """What a cell means, which the page shows with a colour or a badge."""

    PLAIN = "plain"
    STRONG = "strong"  # a row's name
    CODE = "code"  # an endpoint, a file, a hash
    KEY = "key"  # an etcd key or prefix (as /metrics labels it)
    GOOD = "good"
    BAD = "bad"  # over a threshold
    MUTED = "muted"  # secondary, or nothing to show
    UP = "up"  # a state that is well
    DOWN = "down"  # a state that is not
    CAUTION = "caution"  # half well (answered, but refused our credentials)
    UNKNOWN = "unknown"
    ALERT = "alert"  # a red badge per value (an active alarm)
    VERDICT_GOOD = "verdict_good"  # a section's verdict
    VERDICT_BAD = "verdict_bad"


Value = str | int | float | bool | tuple[str, ...] | None


@dataclass(frozen=True)
class Cell:
    value: Value
    format: Format = Format.TEXT
    look: Look = Look.PLAIN
    note: str | None = None  # a second, smaller line: a reason, "of 2.0 GiB"
    tag: str | None = None  # a stable name for the cell (a CSS class users and tests select)


def text(value: Value, look: Look = Look.PLAIN, **kw: Any) -> Cell:
    return Cell(value, Format.TEXT, look, **kw)


@dataclass(frozen=True)
class Table:
    name: str  # stable: the table's CSS class
    headers: tuple[str, ...]
    rows: tuple[tuple[Cell, ...], ...]
    title: str | None = None  # a heading of its own (a table among others in a section)
    caption: str | None = None  # small text beside the title
    empty: str | None = None  # shown when there are no rows (else nothing)
    # Other probes' per-row columns (Column) join rows by the text of this column ...
    key_column: int = 0
    # ... and are inserted before this column (None: at the end).
    insert_columns_at: int | None = None


@dataclass(frozen=True)
class Facts:
    """Key/value rows."""

    name: str
    rows: tuple[tuple[str, Cell], ...]
    title: str | None = None


@dataclass(frozen=True)
class Line:
    """A paragraph of cells, ` · ` between them."""

    name: str  # its id on the page
    cells: tuple[Cell, ...]


@dataclass(frozen=True)
class Bullets:
    items: tuple[str, ...]


Block = Table | Facts | Line | Bullets


@dataclass(frozen=True)
class PageSection:
    """A heading and its blocks. Sections of the same title (from several probes) show as one,
    in registry order; `grid` puts its blocks side by side."""

    title: str
    blocks: tuple[Block, ...]
    grid: bool = False


@dataclass(frozen=True)
class Column:
    """A column a probe adds to another probe's table (e.g. quota use in the members table):
    cells by the text of that table's key column; rows without one show a dash."""

    table: str
    header: str
    cells: Mapping[str, Cell] = field(default_factory=dict)


@dataclass(frozen=True)
class Summary:
    """A few words beside the cluster's name ("3 of 3 members up · leader m1")."""

    text: str


ViewPart = PageSection | Column | Summary


@dataclass(frozen=True)
class ViewInput:
    """What a probe's view reads: the cluster's JSON document (its own keys in it, as
    report_json wrote them) and, when it has no result, why."""

    doc: Mapping[str, Any]
    why: str | None = None  # "not run yet", "failed: ...", None with a result


View = Callable[[ViewInput], Sequence[ViewPart]]


def no_view(_: ViewInput) -> Sequence[ViewPart]:
    return ()
