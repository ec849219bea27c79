"""The members' relabeled families and the exporter's own -> one exposition (pure).

`merge` groups the families of all members (and the exporter's own, by name) under one HELP and
TYPE; `render` writes the body in the text format or OpenMetrics 1.0 (counters named without
`_total`, `unknown` for untyped, `# EOF`, timestamps in seconds, `"` escaped in HELP). Members'
expositions stay text (relabeling each is web/relabel.py's); the exporter's own families come
already encoded, one block per name (web/own_text.py).
"""

from __future__ import annotations

from collections import Counter
from collections.abc import Mapping, Sequence
from dataclasses import dataclass, field

from prometheus_client import exposition as text_format

from etcd_inspector.web.own_text import EOF, OwnText
from etcd_inspector.web.relabel import FamilyText, MemberExposition

TEXT_CONTENT_TYPE = text_format.CONTENT_TYPE_PLAIN_0_0_4
OPENMETRICS_CONTENT_TYPE = "application/openmetrics-text; version=1.0.0; charset=utf-8"

# Clash outcomes (etcd_inspector_member_family_clashes_total{outcome}).
MERGED = "merged"
DROPPED = "dropped"
CLASH_OUTCOMES = (MERGED, DROPPED)


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


def render(
    merged: Merged,
    own: OwnText,
    openmetrics: bool,
    cache: MemberTextCache | None = None,
) -> bytes:
    """The response body: the exporter's own families (`own`, encoded in the same format;
    web/own_text.py), each followed by the members' samples of its name, then the members'
    own families (`cache` spares rendering them again for scrapes that shared every fetch),
    and `# EOF` for OpenMetrics."""
    head = render_own(merged, own, openmetrics)
    cache = cache if cache is not None else MemberTextCache()
    members = cache.get(merged, own.taken(), openmetrics)
    return b"".join((head.encode(), members, EOF.encode() if openmetrics else b""))


@dataclass
class MemberTextCache:
    """The members' part of the latest body per format: scrapes that shared every member's
    fetch (concurrent scrapers) render it once. Keyed by the very expositions (held here, so
    their ids stay theirs) and the exporter's own names."""

    _last: dict[bool, tuple[tuple[object, ...], frozenset[str], bytes]] = field(
        default_factory=dict
    )

    def get(self, merged: Merged, taken: frozenset[str], openmetrics: bool) -> bytes:
        cached = self._last.get(openmetrics)
        if (
            cached is not None
            and cached[1] == taken
            and len(cached[0]) == len(merged.parts)
            and all(a is b for a, b in zip(cached[0], merged.parts, strict=True))
        ):
            return cached[2]
        text = render_members(merged, taken, openmetrics).encode()
        self._last[openmetrics] = (merged.parts, taken, text)
        return text

    def let_go(self) -> None:
        """No scrape is in progress: no later one can share these members' fetches."""
        self._last.clear()


def render_own(merged: Merged, own: OwnText, openmetrics: bool) -> str:
    """The exporter's own families (without `# EOF`), the members' samples of a clashing name
    right after the exporter's."""
    out: list[str] = []
    for fam in own.families.values():
        out.append(fam.header)
        out.extend(fam.samples)
        extra = merged.into_own.get(fam.text_name)
        if extra is not None:
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
