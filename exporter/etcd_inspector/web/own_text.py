"""The exporter's own families as exposition text: one block per family name, whatever number
of clusters and probes contributed samples to it, each probe outcome encoded once.

Every (cluster, probe) pair builds its own families (`probe.metrics(cluster, result)`); with
more than one cluster the same family name comes once per cluster, and the exposition must
carry it under one HELP and TYPE (promtool and Prometheus' OpenMetrics parser reject a second
one). `OwnText` joins the samples of equal names; `OwnPart` is some families encoded in one
format, split into those per-name blocks; `OutcomeCache` keeps each probe outcome's part until
the scheduler publishes the next outcome (a new object), so a scrape encodes only what changed
since the last one: the process' own families, the scans in progress and the per-member ones.
`encode_own` writes prometheus_client families in either format (plain ones by hand, faster).
"""

from __future__ import annotations

import math
from collections.abc import Callable, Iterable, Sequence
from dataclasses import dataclass, field
from typing import Any

from prometheus_client import exposition as text_format
from prometheus_client.metrics_core import Metric
from prometheus_client.openmetrics import exposition as openmetrics_format

from etcd_inspector.web.relabel import escape_label_value

EOF = "# EOF\n"

# prometheus_client's kinds for the exporter's own families, in text-format terms.
_OWN_KIND = {"unknown": "untyped", "info": "gauge", "stateset": "gauge"}


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


def own_names(own: Sequence[Metric]) -> frozenset[str]:
    """Every name the exporter's own families take, in either format."""
    taken: set[str] = set()
    for fam in own:
        taken.update((fam.name, own_family_name(fam)))
        taken.update(s.name for s in fam.samples)
    return frozenset(taken)


@dataclass(frozen=True)
class Block:
    """One family's text: `header` (HELP, TYPE, UNIT) and `samples`, in one format."""

    name: str  # as its HELP line names it in that format
    text_name: str  # the name in the text format (members' clashing families are keyed by it)
    header: str
    samples: str
    # What the family takes from the members' names: own_kinds and own_names of its Metric
    # (on the first block of a Metric; a `_created` block takes nothing more).
    kinds: tuple[tuple[str, str], ...] = ()
    taken: frozenset[str] = frozenset()


@dataclass(frozen=True)
class OwnPart:
    """Some of the exporter's own families, encoded in one format."""

    blocks: tuple[Block, ...]

    def names(self) -> frozenset[str]:
        return frozenset(b.name for b in self.blocks)

    def without(self, names: frozenset[str]) -> OwnPart:
        """The blocks but those of `names` (those a run in progress stands for)."""
        return OwnPart(tuple(b for b in self.blocks if b.name not in names))


def encode_part(families: Iterable[Metric], openmetrics: bool) -> OwnPart:
    """`families` encoded (`encode_own`, below) and split into blocks, one per HELP line
    (prometheus_client writes a counter's `_created` as a family of its own in the text
    format: a block of its own here)."""
    blocks: list[Block] = []
    for fam in families:
        for i, (name, header, samples) in enumerate(split_blocks(encode_own([fam], openmetrics))):
            if i == 0:
                kinds = tuple(own_kinds([fam]).items())
                blocks.append(
                    Block(name, own_family_name(fam), header, samples, kinds, own_names([fam]))
                )
            else:
                blocks.append(Block(name, name, header, samples))
    return OwnPart(tuple(blocks))


def split_blocks(text: str) -> list[tuple[str, str, str]]:
    """(name, header, samples) per family of an exposition without `# EOF`; every family
    starts with its HELP line (both of prometheus_client's encoders and ours write one)."""
    out: list[tuple[str, str, str]] = []
    if not text:
        return out
    pieces = ("\n" + text).split("\n# HELP ")[1:]
    for i, piece in enumerate(pieces):
        chunk = "# HELP " + piece + ("\n" if i < len(pieces) - 1 else "")
        end = 0
        while chunk.startswith("# ", end):
            end = chunk.index("\n", end) + 1
        out.append((piece.split(" ", 1)[0], chunk[:end], chunk[end:]))
    return out


@dataclass
class _Family:
    header: str
    text_name: str
    samples: list[str] = field(default_factory=list)


@dataclass
class OwnText:
    """The exporter's own families of one scrape, one block per name in the order names first
    came, the first HELP and TYPE kept. What a name takes from the members (`kinds`, `taken`)
    comes from its first block: the same name means the same family, whichever cluster built
    it (~3 dict operations per block; at 60 clusters a scrape adds ~5,000 blocks)."""

    families: dict[str, _Family] = field(default_factory=dict)
    kinds: dict[str, str] = field(default_factory=dict)
    _taken: list[frozenset[str]] = field(default_factory=list)

    @classmethod
    def of(cls, parts: Iterable[OwnPart]) -> OwnText:
        own = cls()
        for part in parts:
            own.add(part)
        return own

    def add(self, part: OwnPart) -> None:
        families = self.families
        for block in part.blocks:
            fam = families.get(block.name)
            if fam is None:
                fam = families[block.name] = _Family(block.header, block.text_name)
                for name, kind in block.kinds:
                    self.kinds.setdefault(name, kind)
                self._taken.append(block.taken)
            fam.samples.append(block.samples)

    def taken(self) -> frozenset[str]:
        """Every name the families take, in either format (`own_names`)."""
        return frozenset().union(*self._taken)


@dataclass
class OutcomeCache:
    """Per (cluster, probe): the outcome (and probe object) last encoded, and its part per
    format. An outcome is immutable and replaced on publish, so identity is its version; a
    reload that replaces the probe re-encodes too (its options may change its families)."""

    _entries: dict[tuple[str, str], tuple[object, object, dict[bool, OwnPart]]] = field(
        default_factory=dict
    )
    _seen: set[tuple[str, str]] = field(default_factory=set)

    def part(
        self,
        key: tuple[str, str],
        outcome: object,
        probe: object,
        openmetrics: bool,
        build: Callable[[], Sequence[Metric]],
    ) -> OwnPart:
        self._seen.add(key)
        entry = self._entries.get(key)
        if entry is None or entry[0] is not outcome or entry[1] is not probe:
            entry = self._entries[key] = (outcome, probe, {})
        parts = entry[2]
        part = parts.get(openmetrics)
        if part is None:
            part = parts[openmetrics] = encode_part(build(), openmetrics)
        return part

    def sweep(self) -> None:
        """Forget the pairs that the scrape since the last sweep did not ask for (a reload
        removed the cluster or turned the probe off): memory follows the configuration."""
        for key in [k for k in self._entries if k not in self._seen]:
            del self._entries[key]
        self._seen.clear()

    def __len__(self) -> int:
        return len(self._entries)


# --------------------------------------------------------------------------- own families


def encode_own(families: Sequence[Metric], openmetrics: bool) -> str:
    """The exporter's own families, without OpenMetrics' `# EOF`.

    Plain gauges, counters, histograms and summaries are written here (prometheus_client's
    encoders spend ~5 us per sample in the text format and ~9 us in OpenMetrics, checking
    every character of every label name: with ten clusters that was most of a scrape); any
    other family (units, timestamps, exemplars, `_created`, info, stateset) goes through
    prometheus_client's own encoder.
    """
    simple = [f for f in families if _simple(f)]
    rest = [f for f in families if not _simple(f)]
    out = [_encode_simple(fam, openmetrics) for fam in simple]
    if rest:
        collector: Any = _Families(rest)
        if openmetrics:
            text: bytes = openmetrics_format.generate_latest(collector)  # type: ignore[no-untyped-call]
            out.append(text.decode().removesuffix(EOF))
        else:
            out.append(text_format.generate_latest(collector).decode())
    return "".join(out)


_SIMPLE_TYPES = {"gauge": "gauge", "counter": "counter", "histogram": "histogram",
                 "summary": "summary", "unknown": "untyped"}  # fmt: skip


def _simple(fam: Metric) -> bool:
    return (
        fam.type in _SIMPLE_TYPES
        and not fam.unit
        and all(
            s.timestamp is None and s.exemplar is None and s.native_histogram is None
            and not s.name.endswith("_created")
            for s in fam.samples
        )
    )  # fmt: skip


def _encode_simple(fam: Metric, openmetrics: bool) -> str:
    name = fam.name
    kind = _SIMPLE_TYPES[fam.type]
    if fam.type == "counter" and not openmetrics:
        name += "_total"
    if openmetrics and kind == "untyped":
        kind = "unknown"
    doc = fam.documentation.replace("\\", r"\\").replace("\n", r"\n")
    if openmetrics:
        doc = doc.replace('"', r"\"")
    lines = [f"# HELP {name} {doc}\n# TYPE {name} {kind}\n"]
    for s in fam.samples:
        if s.labels:
            labels = ",".join([f'{k}="{_escape(v)}"' for k, v in s.labels.items()])
            lines.append(f"{s.name}{{{labels}}} {_value(s.value)}\n")
        else:
            lines.append(f"{s.name} {_value(s.value)}\n")
    return "".join(lines)


def _escape(value: str) -> str:
    if "\\" in value or "\n" in value or '"' in value:
        return escape_label_value(value)
    return value


def _value(value: float) -> str:
    """Any float as both formats read it: +Inf, -Inf, NaN, else Python's shortest repr."""
    if value == math.inf:
        return "+Inf"
    if value == -math.inf:
        return "-Inf"
    if value != value:
        return "NaN"
    return repr(float(value))


class _Families:
    """What prometheus_client's encoders need: something with collect()."""

    def __init__(self, families: Sequence[Metric]) -> None:
        self._families = families

    def collect(self) -> Sequence[Metric]:
        return self._families
