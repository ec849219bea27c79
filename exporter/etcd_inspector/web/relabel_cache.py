"""The GO path of relabeling, and relabeling across scrapes: what a member repeats is not
relabeled again.

A text laid out as Go's client writes it (every etcd member: `# HELP`, `# TYPE`, samples, per
family) is cut at `\n# HELP ` (`go_parts`), each family checked on its own
(grammar.is_go_family) and relabeled by `go_family`: `re.split` finds every sample's name and
what follows it, `map` puts our labels there, `join` glues it back, a few C calls per family and
no Python per line. Any other text goes to web/relabel.py's general path whole.

`RelabelCache` holds, per (cluster, member endpoint), the outcome of the member's latest fetch
(scrapes that shared one fetch share its relabeling) and a `FamilyCache`: the member's families
as relabeled from its previous text, keyed by each family's raw text. Between two scrapes an
idle etcd member changes ~2% of its /metrics text (go_memstats_*, peer traffic, promhttp's
own counter), so a scrape relabels those families and reuses the rest.
"""

from __future__ import annotations

import re
from collections.abc import Sequence
from dataclasses import dataclass, field
from functools import lru_cache

from etcd_inspector.etcd.metrics_fetch import FetchResult
from etcd_inspector.web import grammar
from etcd_inspector.web.grammar import SAMPLE_START
from etcd_inspector.web.relabel import (
    SUFFIXES,
    FamilyText,
    MalformedMetrics,
    MemberExposition,
    added_labels,
    relabel,
    wanted,
)

Filter = re.Pattern[str] | None


@dataclass
class RelabelCache:
    """Each member's latest fetch, relabeled once: scrapes that shared a fetch share this too.

    Keyed by (cluster, endpoint); an outcome is reused only for the very same FetchResult (and
    member label and filters), so it never outlives the fetch in flight it came from. The
    member's FamilyCache carries over from fetch to fetch.
    """

    _last: dict[tuple[str, str], tuple[object, MemberExposition | MalformedMetrics]] = field(
        default_factory=dict
    )
    _families: dict[tuple[str, str], FamilyCache] = field(default_factory=dict)

    def relabel(
        self,
        cluster: str,
        endpoint: str,
        member: str,
        fetch: FetchResult,
        allow: Filter,
        deny: Filter,
    ) -> MemberExposition:
        assert fetch.text is not None
        key = (fetch, member, allow, deny)
        cached = self._last.get((cluster, endpoint))
        if cached is not None and _same(cached[0], key):
            outcome = cached[1]
        else:
            families = self._families.get((cluster, endpoint))
            if families is None or families.key != (cluster, member, allow, deny):
                families = FamilyCache(cluster, member, allow, deny)
                self._families[(cluster, endpoint)] = families
            try:
                outcome = families.relabel(fetch.text)
            except MalformedMetrics as err:
                outcome = err
            self._last[(cluster, endpoint)] = (key, outcome)
        if isinstance(outcome, MalformedMetrics):
            raise outcome
        return outcome

    def let_go(self) -> None:
        """No scrape is in progress: the fetches these outcomes came from are over, no later
        scrape can share them; let their texts go (~190 KiB a member). FamilyCaches stay."""
        self._last.clear()

    def retain(self, members: set[tuple[str, str]]) -> None:
        """Forget members no longer scraped (replaced, moved, or a cluster gone): what a
        member's cache holds (~350 KiB) would otherwise stay for good."""
        for cache in (self._last, self._families):
            for key in [k for k in cache if k not in members]:
                del cache[key]


def _same(a: object, b: tuple[FetchResult, str, object, object]) -> bool:
    # Identity for the fetch (two fetches may well have equal texts but are not the same).
    return isinstance(a, tuple) and a[0] is b[0] and a[1:] == b[1:]


class FamilyCache:
    """One member's families as relabeled for its last text, by the raw text of each family.

    The GO path (below): the text is cut into families, each new one checked on its
    own (grammar.is_go_family) and relabeled by `go_family`; a text that does not start with a
    family, a family off the layout, or a name that comes twice goes to `relabel` (the general
    path) whole and empties the cache.
    """

    def __init__(self, cluster: str, member: str, allow: Filter, deny: Filter) -> None:
        self.key = (cluster, member, allow, deny)
        self._added = added_labels(cluster, member)
        # (hash, length) of a family's raw text -> the family relabeled. Not the raw text
        # itself: holding it would keep a second copy of the member's /metrics (~190 KiB) for
        # good. str hashes are 64-bit SipHash with a per-process key, computed anyway by the
        # lookup: two versions of a family meeting on both is a 2^-64 event.
        self._last: dict[tuple[int, int], FamilyText] = {}

    def relabel(self, text: str) -> MemberExposition:
        parts = go_parts(text)
        if parts is None:
            return self._whole(text)
        keys = [(hash(part), len(part)) for part in parts]
        last = self._last
        families = [
            last.get(key) or self._new_family(part) for key, part in zip(keys, parts, strict=True)
        ]
        exposition = go_exposition(families, *self.key[2:])
        if exposition is None:
            return self._whole(text)
        self._last = {key: fam for key, fam in zip(keys, families, strict=True) if fam}
        return exposition

    def _new_family(self, part: str) -> FamilyText | None:
        block = f"# HELP {part}" if part.endswith("\n") else f"# HELP {part}\n"
        return go_family(part, self._added) if grammar.is_go_family(block) else None

    def _whole(self, text: str) -> MemberExposition:
        self._last = {}
        return relabel(text, *self.key)


# --------------------------------------------------------------------------- the GO path


def go_parts(text: str) -> list[str] | None:
    """A text cut into `go_family` parts at each `\n# HELP `; None when something comes
    before the first family (not a GO text)."""
    parts = ("\n" + text).split("\n# HELP ")
    return None if parts[0] else parts[1:]


@lru_cache(maxsize=256)
def _openers(added: str) -> dict[str, str]:
    """What follows a sample's name -> the same with our labels first."""
    return {"{": f"{{{added},", " ": f"{{{added}}} "}


@lru_cache(maxsize=16384)
def _sample_names(name: str, kind: str) -> tuple[str, ...]:
    return tuple(name + suffix for suffix in SUFFIXES[kind])


def go_family(part: str, added: str) -> FamilyText | None:
    """One family of a GO text as cut at `\n# HELP ` (that prefix gone: "name help\n# TYPE name
    kind\nsample\n...sample", a trailing \n or not), its samples relabeled with `added`; None
    where it does not keep to the layout (a TYPE of another name, a sample of another family)."""
    help_end = part.find("\n")
    if help_end == -1:
        return None
    name, _, help_text = part[:help_end].partition(" ")
    type_end = part.find("\n", help_end + 1)
    if type_end == -1:
        type_end = len(part)
    prefix = f"\n# TYPE {name} "
    if not part.startswith(prefix, help_end):
        return None
    kind = part[help_end + len(prefix) : type_end]
    pieces = SAMPLE_START.split(part[type_end:])
    names = pieces[1::3]
    valid = _sample_names(name, kind)
    if (name not in valid or names.count(name) != len(names)) and (  # a histogram, a summary
        sum(names.count(n) for n in valid) != len(names)
    ):
        return None
    pieces[1::3] = map("\n".__add__, names)
    pieces[2::3] = map(_openers(added).__getitem__, pieces[2::3])
    samples = "".join(pieces)[1:]
    if samples and samples[-1] != "\n":
        samples += "\n"
    return FamilyText(name, kind, help_text, samples)


def go_exposition(
    families: Sequence[FamilyText | None],
    allow: re.Pattern[str] | None,
    deny: re.Pattern[str] | None,
) -> MemberExposition | None:
    """The families of one GO text, without empty or filtered ones; None where a family did
    not keep to the layout (None) or a name comes twice."""
    out: list[FamilyText] = []
    seen: set[str] = set()
    filtered = allow is not None or deny is not None
    for fam in families:
        if fam is None or fam.name in seen:
            return None
        seen.add(fam.name)
        if fam.samples and (not filtered or wanted(fam.name, fam.kind, allow, deny)):
            out.append(fam)
    return MemberExposition(tuple(out))
