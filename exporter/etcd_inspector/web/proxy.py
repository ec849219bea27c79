"""Members' /metrics text -> one exposition with `cluster` and `member` on every sample (pure).

Works on the text, never on per-sample objects: a member's exposition (text format 0.0.4, what
etcd serves and what `metrics_fetch` asks for) is cut into family blocks at its `# HELP` and
`# TYPE` lines; each block is checked with one regular expression (C speed) and relabeled with
`str.replace` on the sample names the family may use. Only a block the fast path does not
recognise (a label the member already has under one of our names, timestamps, tabs, comments,
samples of an undeclared family) goes through the line-by-line path, which checks and rewrites
each line on its own. A line neither path accepts makes the whole member `MalformedMetrics`.

`merge` groups the families of all members (and the exporter's own, by name) under one HELP and
TYPE; `render` writes the text format or OpenMetrics 1.0 (counters named without `_total`,
`unknown` for untyped, `# EOF`, timestamps in seconds, `"` escaped in HELP).
"""

from __future__ import annotations

import re
from collections import Counter
from collections.abc import Callable, Iterable, Mapping, Sequence
from dataclasses import dataclass, field
from functools import lru_cache
from typing import Any

import re2  # type: ignore[import-untyped]
from prometheus_client.metrics_core import Metric

ADDED_LABELS = ("cluster", "member")
KINDS = frozenset({"counter", "gauge", "histogram", "summary", "untyped"})
# What each kind's samples may be called, as suffixes of the family name.
_SUFFIXES = {
    "counter": ("",),
    "gauge": ("",),
    "untyped": ("",),
    "histogram": ("_bucket", "_sum", "_count"),
    "summary": ("", "_sum", "_count"),
}
# prometheus_client's kinds for the exporter's own families, in text-format terms.
_OWN_KIND = {"unknown": "untyped", "info": "gauge", "stateset": "gauge"}

# Clash outcomes (etcd_inspector_member_family_clashes_total{outcome}).
MERGED = "merged"
DROPPED = "dropped"
CLASH_OUTCOMES = (MERGED, DROPPED)

_NAME = r"[a-zA-Z_:][a-zA-Z0-9_:]*"
_LABEL_NAME = r"[a-zA-Z_][a-zA-Z0-9_]*"
# The text format's escapes in label values are \\, \" and \n; the unrolled loop keeps the
# common case (no escapes) in one character-class run.
_LABEL_VALUE = r'"[^"\\\n]*(?:\\[\\"n][^"\\\n]*)*"'
_LABEL = _LABEL_NAME + "=" + _LABEL_VALUE
_LABELS = r"\{(?:" + _LABEL + r"(?:," + _LABEL + r")*,?)?\}"
# What Go's strconv.ParseFloat accepts, without hex floats and underscores.
_VALUE = (
    r"[-+]?(?:[0-9]+(?:\.[0-9]*)?(?:[eE][-+]?[0-9]+)?|\.[0-9]+(?:[eE][-+]?[0-9]+)?"
    r"|[Ii][Nn][Ff](?:[Ii][Nn][Ii][Tt][Yy])?)|[Nn][Aa][Nn]"
)

_SAMPLE = re.compile(
    r"(" + _NAME + r")(" + _LABELS + r")?[ \t]+(" + _VALUE + r")(?:[ \t]+(-?[0-9]+))?[ \t]*"
)
_NAME_RE = re.compile(_NAME)
_LABEL_PAIR = re.compile(r"(" + _LABEL_NAME + r")=(" + _LABEL_VALUE + r")")
_CLASH_MARKERS = tuple(f"{name}=" for name in ADDED_LABELS)


def _exposition_checker() -> Any:
    """One DFA pass (RE2) over a member's whole text, against two grammars at once.

    LOOSE is the text format: comments, blank lines, samples with tabs, timestamps, a trailing
    comma. STRICT is what Go's client writes (one space, no timestamp, no `{}`, no trailing
    comma), where every line can be relabeled without being looked at on its own. Python's
    `re` needs ~1.5 us per line for this; RE2 reads the 147 KiB of an etcd member in ~0.3 ms.
    """
    loose_line = (
        r"[ \t]*|#[^\n]*|" + _NAME + r"(?:" + _LABELS + r")?[ \t]+(?:" + _VALUE + r")"
        r"(?:[ \t]+-?[0-9]+)?[ \t]*"
    )
    labels = r"\{" + _LABEL + r"(?:," + _LABEL + r")*\}"
    strict_line = r"#[^\n]*|" + _NAME + r"(?:" + labels + r")? (?:" + _VALUE + r")"
    options = re2.Options()
    options.encoding = re2.Options.Encoding.LATIN1  # bytes as they come; decoded afterwards
    checker = re2.Set.FullMatchSet(options)
    checker.Add(f"(?:(?:{loose_line})\n)*(?:{loose_line})".encode())  # LOOSE = 0
    checker.Add(f"(?:(?:{strict_line})\n)*".encode())  # STRICT = 1
    checker.Compile()
    return checker


_CHECKER = _exposition_checker()
_LOOSE, _STRICT = 0, 1


class MalformedMetrics(ValueError):
    pass


@dataclass(frozen=True, slots=True)
class FamilyText:
    """One family of one member: its metadata and its relabeled sample lines (each ends in \\n).

    `om_samples` is set only when the lines carry timestamps, which OpenMetrics writes in
    seconds where the text format has milliseconds.
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


_ADDED_MARK = '{cluster="'


@lru_cache(maxsize=16384)
def _replacements(added: str, name: str, kind: str) -> tuple[tuple[str, str], ...]:
    """(old, new) pairs that put `added` first in every sample line of a family."""
    pairs = []
    for suffix in _SUFFIXES[kind]:
        sample = name + suffix
        pairs.append((f"\n{sample}{{", f"\n{sample}{{{added},"))
        pairs.append((f"\n{sample} ", f"\n{sample}{{{added}}} "))
    return tuple(pairs)


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
        return tuple(self.name + s for s in _SUFFIXES[self.kind])


class _Relabeler:
    """One member's exposition, relabeled; see the module doc for the two paths."""

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
        self.strict = False

    def family(self, name: str) -> _Builder:
        fam = self.families.get(name)
        if fam is None:
            fam = self.families[name] = _Builder(name)
        return fam

    def run(self, text: str) -> MemberExposition:
        matched = _CHECKER.Match(text.encode()) or []
        if _LOOSE not in matched:
            raise MalformedMetrics(_first_bad_line(text))
        self.strict = _STRICT in matched
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
                self.block(current, text[pos:at])
            pos = end
            current = self.meta(current, text[at + 1 : end])
            at = text.find("\n#", end)
        if pos < len(text):
            self.block(current, text[pos:])
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

    def block(self, fam: _Builder | None, block: str) -> None:
        """Sample lines (each after a "\n"), all of them valid: relabel them."""
        block = block.rstrip("\n")
        if not block or block.isspace():
            return
        if fam is not None and self.strict and not any(m in block for m in _CLASH_MARKERS):
            out = block
            for old, new in _replacements(self.added, fam.name, fam.kind):
                out = out.replace(old, new)
            # Every line began with one of the family's sample names and `{` or ` `, or it
            # is not relabeled: the member's text has no `cluster=` (checked above).
            if out.count(_ADDED_MARK) == block.count("\n"):
                out = out[1:] + "\n"
                fam.chunks.append(out)
                fam.om_chunks.append(out)
                return
        self.lines(fam, block)

    def lines(self, fam: _Builder | None, block: str) -> None:
        """The line-by-line path: any valid text-format line."""
        for line in block.split("\n"):
            if not line.strip() or line.lstrip().startswith("#"):
                continue  # blank lines and other comments carry nothing
            m = _SAMPLE.fullmatch(line)
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
    return _NAME_RE.fullmatch(name) is not None


def _first_bad_line(text: str) -> str:
    for number, line in enumerate(text.split("\n"), 1):
        stripped = line.strip()
        if stripped and not stripped.startswith("#") and not _SAMPLE.fullmatch(line):
            return f"line {number}: not a sample line: {line[:200]!r}"
    return "not a text-format exposition"


def _relabel_labels(labels: str | None) -> str:
    """A member's own label block -> ",a=..,b=.." to follow ours; our names become exported_*."""
    if not labels or labels == "{}":
        return ""
    inner = labels[1:-1].rstrip(",")
    if not any(marker in inner for marker in _CLASH_MARKERS):
        return "," + inner
    pairs = _LABEL_PAIR.findall(inner)
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
    """Check one member's exposition and add cluster/member to every sample.

    A label the member already carries under one of our names is kept as `exported_<name>`,
    the way Prometheus keeps a target's conflicting labels. Raises MalformedMetrics.
    """
    return _Relabeler(cluster, member, allow, deny).run(text)


# --------------------------------------------------------------------------- merging


def own_family_name(fam: Metric) -> str:
    """The name prometheus_client's text format gives one of the exporter's own families."""
    if fam.type == "counter":
        return fam.name + "_total"
    if fam.type == "info":
        return fam.name + "_info"
    return fam.name


def own_kinds(own: Iterable[Metric]) -> dict[str, str]:
    """Text-format family name -> kind of the exporter's own families, and their bare names
    (OpenMetrics names a counter without `_total`) so that a member cannot take those either."""
    kinds: dict[str, str] = {}
    for fam in own:
        kind = _OWN_KIND.get(fam.type, fam.type)
        kinds.setdefault(own_family_name(fam), kind)
        kinds.setdefault(fam.name, kind if own_family_name(fam) == fam.name else "")
    return kinds


@dataclass
class _Merged:
    name: str
    kind: str
    help: str | None
    parts: list[FamilyText] = field(default_factory=list)


@dataclass
class Merged:
    """Member families grouped by name; `into_own` are joined to an exporter family's block.

    `clashes[i]` counts, for `parts[i]`, the families that met one of the exporter's own
    (merged or dropped) or another member's family of a different type (dropped).
    """

    families: dict[str, _Merged]
    into_own: dict[str, list[FamilyText]]
    clashes: list[Counter[str]]
    parts: tuple[MemberExposition, ...] = ()


def merge(parts: Sequence[MemberExposition], own: Mapping[str, str]) -> Merged:
    """Group the members' families by name (first HELP and TYPE win) next to the exporter's
    own families (`own`: name -> kind, from `own_kinds`)."""
    families: dict[str, _Merged] = {}
    into_own: dict[str, list[FamilyText]] = {}
    clashes: list[Counter[str]] = []
    for part in parts:
        counts: Counter[str] = Counter()
        for fam in part.families:
            own_kind = own.get(fam.name)
            if own_kind is not None:
                if own_kind == fam.kind:
                    into_own.setdefault(fam.name, []).append(fam)
                    counts[MERGED] += 1
                else:
                    counts[DROPPED] += 1
                continue
            have = families.get(fam.name)
            if have is None:
                families[fam.name] = _Merged(fam.name, fam.kind, fam.help, [fam])
            elif have.kind == fam.kind:
                have.parts.append(fam)
            else:
                counts[DROPPED] += 1
        clashes.append(counts)
    return Merged(families, into_own, clashes, tuple(parts))


# --------------------------------------------------------------------------- rendering

OwnEncoder = Callable[[Sequence[Metric]], str]


def render(merged: Merged, own: Sequence[Metric], encode_own: OwnEncoder, openmetrics: bool) -> str:
    """The whole exposition: `render_own`, `render_members`, and `# EOF` for OpenMetrics."""
    eof = "# EOF\n" if openmetrics else ""
    members = render_members(merged, own_names(own), openmetrics)
    return render_own(merged, own, encode_own, openmetrics) + members + eof


def own_names(own: Sequence[Metric]) -> frozenset[str]:
    """Every name the exporter's own families take, in either format."""
    taken: set[str] = set()
    for fam in own:
        taken.update((fam.name, own_family_name(fam)))
        taken.update(s.name for s in fam.samples)
    return frozenset(taken)


def render_own(
    merged: Merged, own: Sequence[Metric], encode_own: OwnEncoder, openmetrics: bool
) -> str:
    """The exporter's own families (`encode_own`, without `# EOF`), the members' samples of a
    clashing name right after the exporter's."""
    out: list[str] = []
    plain = [f for f in own if own_family_name(f) not in merged.into_own]
    out.append(encode_own(plain))
    for fam in own:
        extra = merged.into_own.get(own_family_name(fam))
        if extra is not None:
            out.append(encode_own([fam]))
            out.extend(_samples(p, openmetrics) for p in extra)
    return "".join(out)


def render_members(merged: Merged, own_taken: frozenset[str], openmetrics: bool) -> str:
    """The members' families (those without a name of the exporter's): the bulk of a scrape,
    the same for every scrape that shared the members' fetches."""
    out: list[str] = []
    taken = set(merged.families) | set(merged.into_own) | own_taken
    for m in merged.families.values():
        name, kind, help_text = m.name, m.kind, m.help
        if openmetrics:
            name, kind = _openmetrics_family(name, kind, taken)
            if help_text is not None:
                help_text = help_text.replace('"', r"\"")
        if help_text is not None:
            out.append(f"# HELP {name} {help_text}\n")
        out.append(f"# TYPE {name} {kind}\n")
        out.extend(_samples(p, openmetrics) for p in m.parts)
    return "".join(out)


def _samples(part: FamilyText, openmetrics: bool) -> str:
    if openmetrics and part.om_samples is not None:
        return part.om_samples
    return part.samples


def _openmetrics_family(name: str, kind: str, taken: set[str]) -> tuple[str, str]:
    """OpenMetrics names a counter family without `_total` (its samples keep it); where that
    name or its `_created` is taken by another family (go_memstats_alloc_bytes_total next to
    the gauge go_memstats_alloc_bytes) or the samples lack `_total`, the family stays under
    its own name as `unknown`, which Prometheus stores the same way (untyped)."""
    if kind == "untyped":
        return name, "unknown"
    if kind == "counter":
        base = name[:-6]
        if name.endswith("_total") and base not in taken and f"{base}_created" not in taken:
            return base, "counter"
        return name, "unknown"
    return name, kind
