"""The members' relabeled families and the exporter's own -> one exposition (pure).

`merge` groups the families of all members (and the exporter's own, by name) under one HELP and
TYPE; `render` writes the text format or OpenMetrics 1.0 (counters named without `_total`,
`unknown` for untyped, `# EOF`, timestamps in seconds, `"` escaped in HELP). Relabeling each
member's text is web/relabel.py's.
"""

from __future__ import annotations

from collections import Counter
from collections.abc import Callable, Iterable, Mapping, Sequence
from dataclasses import dataclass, field

from prometheus_client.metrics_core import Metric

from etcd_inspector.web.relabel import FamilyText, MemberExposition

# prometheus_client's kinds for the exporter's own families, in text-format terms.
_OWN_KIND = {"unknown": "untyped", "info": "gauge", "stateset": "gauge"}

# Clash outcomes (etcd_inspector_member_family_clashes_total{outcome}).
MERGED = "merged"
DROPPED = "dropped"
CLASH_OUTCOMES = (MERGED, DROPPED)



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
