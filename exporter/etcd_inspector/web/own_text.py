"""The exporter's own families as exposition text: one block per family name, whatever number
of clusters and probes contributed samples to it, each probe outcome encoded once.

Every (cluster, probe) pair builds its own families (`probe.metrics(cluster, result)`); with
more than one cluster the same family name comes once per cluster, and the exposition must
carry it under one HELP and TYPE (promtool and Prometheus' OpenMetrics parser reject a second
one). `OwnText` joins the samples of equal names; `OwnPart` is some families encoded in one
format, split into those per-name blocks; `OutcomeCache` keeps each probe outcome's part until
the scheduler publishes the next outcome (a new object), so a scrape encodes only what changed
since the last one: the process' own families, the scans in progress and the per-member ones.
"""

from __future__ import annotations

from collections.abc import Callable, Iterable, Sequence
from dataclasses import dataclass, field

from prometheus_client.metrics_core import Metric

from etcd_inspector.web.proxy import encode_own, own_family_name, own_kinds, own_names


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


def encode_part(families: Iterable[Metric], openmetrics: bool) -> OwnPart:
    """`families` encoded (web/proxy.py's encoder) and split into blocks, one per HELP line
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
        """Every name the families take, in either format (web/proxy.py's `own_names`)."""
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
