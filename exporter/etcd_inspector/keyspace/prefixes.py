"""Prefix groups: which bounded "directory" of the keyspace a key belongs to (pure).

Used to aggregate per-prefix key counts and bytes (bigvalue) and write rates (hotkeys) without
one series per key. Rules, first match wins:

  kubernetes  under /registry/: the resource, i.e. /registry/<resource>/ for built-in
              resources (/registry/pods/ns/name -> /registry/pods/), and
              /registry/<group>/<resource>/ when the segment after /registry/ contains a '.'
              (CRDs and aggregated APIs: /registry/apps.example.com/widgets/ns/w)
  depth       otherwise the first `depth` '/'-separated segments, with their trailing '/':
              depth 2 maps /app/config/x/y to /app/config/

A key with fewer segments falls into its own directory (/app/x -> /app/ at depth 2), and a key
without any '/' into the group ROOT. Groups always end with '/', so the two special labels ROOT
and OTHER (used by callers that bound the number of groups) never collide with a real one.

API: PrefixRules, prefix_of() for a printable label, group_of() for hot loops.
"""

from __future__ import annotations

from dataclasses import dataclass

from etcd_inspector.keyspace.keys import printable_key

ROOT = "<root>"
OTHER = "<other>"

_K8S_PREFIX = b"/registry/"


@dataclass(frozen=True)
class PrefixRules:
    depth: int = 2
    kubernetes: bool = True

    def __post_init__(self) -> None:
        if self.depth < 1:
            raise ValueError(f"prefix depth must be 1 or more, got {self.depth}")


def _first_segments(key: bytes, start: int, depth: int) -> tuple[bytes, bool]:
    pos = start
    for _ in range(depth):
        slash = key.find(b"/", pos)
        if slash < 0:
            # Fewer segments than asked: the last one is the key's own name, not a directory,
            # so a longer key may later share this start and still belong deeper.
            return key[:pos], False
        pos = slash + 1
    return key[:pos], True


def group_of(key: bytes, rules: PrefixRules) -> tuple[bytes, bool]:
    """The key's group as raw bytes (b'' for ROOT), and whether the group is closed.

    Closed means every key that starts with the group belongs to it, so a caller walking keys in
    sorted order may skip group_of() while `key.startswith(group)` holds.
    """
    if rules.kubernetes and key.startswith(_K8S_PREFIX):
        start = len(_K8S_PREFIX)
        slash = key.find(b"/", start)
        segment = key[start:] if slash < 0 else key[start:slash]
        return _first_segments(key, start, 2 if b"." in segment else 1)
    start = 1 if key.startswith(b"/") else 0
    return _first_segments(key, start, rules.depth)


def group_label(group: bytes) -> str:
    """The printable label of a group returned by group_of()."""
    return printable_key(group) if group else ROOT


def prefix_of(key: bytes, rules: PrefixRules) -> str:
    """The key's prefix group as a label value: valid UTF-8, e.g. '/registry/pods/'."""
    return group_label(group_of(key, rules)[0])
