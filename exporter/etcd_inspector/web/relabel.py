"""One member's /metrics text -> its families with `cluster` and `member` on every sample (pure).

Works on the text, never on per-sample objects. Two paths, held to the same output by the tests:
the GO path (web/relabel_cache.py) for a text laid out as Go's client writes it, every etcd
member's, and the general path here, `relabel`, for any other text (a label the member already
has under one of our names, timestamps, tabs, other comments, samples of an undeclared family):
the text is checked whole (grammar.is_text_format), then read line by line, each line checked
and rewritten on its own. A line it does not accept makes the whole member `MalformedMetrics`.
"""

from __future__ import annotations

import re
from dataclasses import dataclass
from functools import lru_cache
from typing import NamedTuple

from etcd_inspector.web import grammar
from etcd_inspector.web.grammar import ADDED_LABELS, LABEL_PAIR, NAME_RE, SAMPLE

KINDS = frozenset({"counter", "gauge", "histogram", "summary", "untyped"})
# What each kind's samples may be called, as suffixes of the family name.
SUFFIXES = {
    "counter": ("",),
    "gauge": ("",),
    "untyped": ("",),
    "histogram": ("_bucket", "_sum", "_count"),
    "summary": ("", "_sum", "_count"),
}
_CLASH_MARKERS = tuple(f"{name}=" for name in ADDED_LABELS)


class MalformedMetrics(ValueError):
    pass


class FamilyText(NamedTuple):
    """One family of one member: its metadata and its relabeled sample lines (each ends in \\n).

    `om_samples` is set only when the lines carry timestamps, which OpenMetrics writes in
    seconds where the text format has milliseconds. A tuple: a member has ~125 of them per
    scrape, and a frozen dataclass costs ~0.8 us each to build.
    """

    name: str  # as exposed in the text format (a counter's name ends in _total)
    kind: str  # one of KINDS
    help: str | None  # escaped as in the text format
    samples: str
    om_samples: str | None = None


@dataclass(frozen=True)
class MemberExposition:
    families: tuple[FamilyText, ...]


def escape_label_value(value: str) -> str:
    return value.replace("\\", r"\\").replace("\n", r"\n").replace('"', r"\"")


def added_labels(cluster: str, member: str) -> str:
    return f'cluster="{escape_label_value(cluster)}",member="{escape_label_value(member)}"'


def wanted(
    name: str, kind: str, allow: re.Pattern[str] | None, deny: re.Pattern[str] | None
) -> bool:
    """Filters match the family name as exposed; a counter's name without `_total` works too."""
    names = (name, name[:-6]) if kind == "counter" and name.endswith("_total") else (name,)
    if allow is not None and not any(allow.fullmatch(n) for n in names):
        return False
    return not (deny is not None and any(deny.fullmatch(n) for n in names))


class _Builder:
    __slots__ = ("chunks", "has_timestamps", "help", "kind", "kind_set", "name", "om_chunks")

    def __init__(self, name: str) -> None:
        self.name = name
        self.kind = "untyped"
        self.kind_set = False
        self.help: str | None = None
        self.chunks: list[str] = []
        self.om_chunks: list[str] = []
        self.has_timestamps = False

    def sample_names(self) -> tuple[str, ...]:
        return tuple(self.name + s for s in SUFFIXES[self.kind])


class _Relabeler:
    """One member's exposition, relabeled line by line (the general path)."""

    def __init__(
        self,
        cluster: str,
        member: str,
        allow: re.Pattern[str] | None,
        deny: re.Pattern[str] | None,
    ) -> None:
        self.added = added_labels(cluster, member)
        self.allow, self.deny = allow, deny
        self.families: dict[str, _Builder] = {}

    def family(self, name: str) -> _Builder:
        fam = self.families.get(name)
        if fam is None:
            fam = self.families[name] = _Builder(name)
        return fam

    def run(self, text: str) -> MemberExposition:
        if not grammar.is_text_format(text):
            raise MalformedMetrics(_first_bad_line(text))
        # Lines start after a newline: one in front makes the first line no exception.
        text = "\n" + text
        current: _Builder | None = None
        pos = 0  # where the current block of sample lines starts (at its "\n")
        at = text.find("\n#")
        while at != -1:
            end = text.find("\n", at + 1)
            if end == -1:
                end = len(text)
            if at > pos:
                self.lines(current, text[pos:at])
            pos = end
            current = self.meta(current, text[at + 1 : end])
            at = text.find("\n#", end)
        if pos < len(text):
            self.lines(current, text[pos:])
        return MemberExposition(
            tuple(
                FamilyText(
                    f.name,
                    f.kind,
                    f.help,
                    "".join(f.chunks),
                    "".join(f.om_chunks) if f.has_timestamps else None,
                )
                for f in self.families.values()
                if f.chunks and wanted(f.name, f.kind, self.allow, self.deny)
            )
        )

    def meta(self, current: _Builder | None, line: str) -> _Builder | None:
        """A comment line: HELP or TYPE starts or describes a family; others are skipped."""
        if line.startswith(("# HELP ", "# TYPE ")):  # as Go writes it: quicker than split()
            fields = ["#", line[2:6], *line[7:].split(" ", 1)]
        else:
            fields = line.split(None, 3)
        if len(fields) < 3 or fields[0] != "#" or fields[1] not in ("HELP", "TYPE"):
            return current
        keyword, name = fields[1], fields[2]
        if not _valid_name(name):
            raise MalformedMetrics(f"invalid metric name in {line[:200]!r}")
        if current is None or current.name != name:
            current = self.family(name)
        if keyword == "HELP":
            current.help = fields[3] if len(fields) > 3 else ""
            return current
        kind = fields[3].strip() if len(fields) > 3 else ""
        if kind not in KINDS:
            raise MalformedMetrics(f"unknown type {kind!r} for {name}")
        if current.kind_set and current.kind != kind:
            raise MalformedMetrics(f"second TYPE for {name}: {kind} after {current.kind}")
        if current.chunks and not current.kind_set:
            raise MalformedMetrics(f"TYPE for {name} after its samples")
        current.kind, current.kind_set = kind, True
        return current

    def lines(self, fam: _Builder | None, block: str) -> None:
        """Sample lines (each after a "\n"), blank lines and comments: relabel the samples."""
        for line in block.split("\n"):
            if not line.strip() or line.lstrip().startswith("#"):
                continue  # blank lines and other comments carry nothing
            m = SAMPLE.fullmatch(line)
            if m is None:
                raise MalformedMetrics(f"not a sample line: {line[:200]!r}")
            name, labels, value, timestamp = m.groups()
            if fam is None or name not in fam.sample_names():
                # A sample of a family not declared here: an untyped family of its own, as in
                # Prometheus' parser.
                fam = self.family(name)
                if name not in fam.sample_names():
                    raise MalformedMetrics(f"sample {name} does not belong to {fam.name}")
            head = f"{name}{{{self.added}{_relabel_labels(labels)}}} {value}"
            if timestamp is None:
                fam.chunks.append(head + "\n")
                fam.om_chunks.append(head + "\n")
            else:
                fam.has_timestamps = True
                fam.chunks.append(f"{head} {timestamp}\n")
                fam.om_chunks.append(f"{head} {_ms_to_seconds(timestamp)}\n")


@lru_cache(maxsize=16384)
def _valid_name(name: str) -> bool:
    return NAME_RE.fullmatch(name) is not None


def _first_bad_line(text: str) -> str:
    for number, line in enumerate(text.split("\n"), 1):
        stripped = line.strip()
        if stripped and not stripped.startswith("#") and not SAMPLE.fullmatch(line):
            return f"line {number}: not a sample line: {line[:200]!r}"
    return "not a text-format exposition"


def _relabel_labels(labels: str | None) -> str:
    """A member's own label block -> ",a=..,b=.." to follow ours; our names become exported_*."""
    if not labels or labels == "{}":
        return ""
    inner = labels[1:-1].rstrip(",")
    if not any(marker in inner for marker in _CLASH_MARKERS):
        return "," + inner
    pairs = LABEL_PAIR.findall(inner)
    names = {n for n, _ in pairs}
    out = []
    for name, value in pairs:
        if name in ADDED_LABELS:
            # As Prometheus does for a target's conflicting labels, and again if taken.
            name = f"exported_{name}"
            while name in names:
                name = f"exported_{name}"
            names.add(name)
        out.append(f"{name}={value}")
    return "," + ",".join(out)


def _ms_to_seconds(timestamp: str) -> str:
    ms = int(timestamp)
    sign = "-" if ms < 0 else ""
    whole, frac = divmod(abs(ms), 1000)
    return f"{sign}{whole}.{frac:03d}" if frac else f"{sign}{whole}"


def relabel(
    text: str,
    cluster: str,
    member: str,
    allow: re.Pattern[str] | None = None,
    deny: re.Pattern[str] | None = None,
) -> MemberExposition:
    """Check one member's exposition and add cluster/member to every sample (the general path;
    `FamilyCache` tries the GO path first).

    A label the member already carries under one of our names is kept as `exported_<name>`,
    the way Prometheus keeps a target's conflicting labels. Raises MalformedMetrics.
    """
    return _Relabeler(cluster, member, allow, deny).run(text)
