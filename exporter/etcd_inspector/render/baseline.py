"""`inspect --baseline BEFORE.json`: what changed since a saved report (pure, no I/O).

Both sides are `inspect --output json` documents (render/jsondoc.py), so the comparison reads
only their stable keys: a report saved before a change (an upgrade, a member swap, a config
push) is compared with the run after it. Per cluster, matched by name:

  findings      new (worse) and resolved (better), a finding known by (check, member, subject)
  members       added, removed (worse), up before and down now (worse)
  versions      a member's etcd version changed (listed: it is what an upgrade does)
  leader        moved from one member to another (listed)
  prefix keys   a prefix's key count moved by more than prefix_keys_delta (growth is worse)
  db size       a member's database file moved by more than db_size_delta_bytes (growth is
                worse)
  leases        the active lease count moved by more than leases_delta (growth is worse: one
                run sees no growth rate, so a leak shows here, and as EtcdInspectorLeasesGrowing)

The deltas are config.libsonnet's baseline_* values (Limits.of(thresholds)), so a values file
given as `--mixin.values` moves them like every other threshold.

`worse` is what makes `inspect --baseline` exit 1; an unchanged cluster has no changes at all.
"""

from __future__ import annotations

import json
from collections.abc import Iterable, Mapping, Sequence
from dataclasses import dataclass
from pathlib import Path
from typing import Any

from etcd_inspector.report.format import size
from etcd_inspector.report.thresholds import DEFAULT, Thresholds


class BaselineError(ValueError):
    """A baseline file that cannot be compared with (one line: the file and the cause)."""


@dataclass(frozen=True)
class Limits:
    """How much may change between two runs without being named (config.libsonnet's
    baseline_prefix_keys_delta, baseline_db_size_delta_bytes, baseline_leases_delta)."""

    prefix_keys_delta: int = DEFAULT.baseline_prefix_keys_delta
    db_size_delta_bytes: int = DEFAULT.baseline_db_size_delta_bytes
    leases_delta: int = DEFAULT.baseline_leases_delta

    @classmethod
    def of(cls, thresholds: Thresholds) -> Limits:
        return cls(
            prefix_keys_delta=thresholds.baseline_prefix_keys_delta,
            db_size_delta_bytes=thresholds.baseline_db_size_delta_bytes,
            leases_delta=thresholds.baseline_leases_delta,
        )


@dataclass(frozen=True)
class Change:
    cluster: str
    kind: str  # finding_new | finding_resolved | member_added | member_removed | member_down |
    # member_up | version_changed | leader_moved | prefix_keys | db_size | leases |
    # cluster_missing
    subject: str | None  # the member, prefix or finding check it is about
    before: Any
    after: Any
    worse: bool
    message: str

    def as_json(self) -> dict[str, Any]:
        return {
            "cluster": self.cluster,
            "kind": self.kind,
            "subject": self.subject,
            "before": self.before,
            "after": self.after,
            "worse": self.worse,
            "message": self.message,
        }


@dataclass(frozen=True)
class Comparison:
    baseline_started_at: str | None
    changes: tuple[Change, ...]

    @property
    def worse(self) -> bool:
        return any(c.worse for c in self.changes)

    def as_json(self, baseline_file: str) -> dict[str, Any]:
        return {
            "file": baseline_file,
            "started_at": self.baseline_started_at,
            "worse": self.worse,
            "changes": [c.as_json() for c in self.changes],
        }


def load_baseline(path: str) -> dict[str, Any]:
    """A saved `inspect --output json` document; BaselineError with one line otherwise."""
    try:
        text = Path(path).read_text(encoding="utf-8")
    except OSError as err:
        raise BaselineError(f"--baseline {path}: cannot read: {err.strerror or err}") from None
    try:
        doc = json.loads(text)
    except ValueError as err:
        raise BaselineError(f"--baseline {path}: not JSON: {err}") from None
    if not isinstance(doc, dict) or not isinstance(doc.get("clusters"), list):
        raise BaselineError(
            f"--baseline {path}: not an `inspect --output json` report (no \"clusters\" list)"
        )
    return doc


# --------------------------------------------------------------------------- comparison


def _finding_key(f: Mapping[str, Any]) -> tuple[str, str | None, str | None]:
    return (str(f.get("check")), f.get("member"), f.get("subject"))


def _findings(cluster: str, before: Mapping[str, Any], after: Mapping[str, Any]) -> list[Change]:
    old = {_finding_key(f): f for f in before.get("findings") or ()}
    new = {_finding_key(f): f for f in after.get("findings") or ()}
    changes = [
        Change(cluster, "finding_new", key[0], None, f.get("message"), True,
               f"new finding: {f.get('message')}")
        for key, f in new.items() if key not in old
    ]  # fmt: skip
    changes += [
        Change(cluster, "finding_resolved", key[0], f.get("message"), None, False,
               f"resolved: {f.get('message')}")
        for key, f in old.items() if key not in new
    ]  # fmt: skip
    return changes


def _members(cluster: str, before: Mapping[str, Any], after: Mapping[str, Any]) -> list[Change]:
    old = {m["name"]: m for m in before.get("members") or () if m.get("name")}
    new = {m["name"]: m for m in after.get("members") or () if m.get("name")}
    changes: list[Change] = []
    for name in sorted(new.keys() - old.keys()):
        changes.append(Change(cluster, "member_added", name, None, name, False,
                              f"member {name} added"))  # fmt: skip
    for name in sorted(old.keys() - new.keys()):
        changes.append(Change(cluster, "member_removed", name, name, None, True,
                              f"member {name} removed"))  # fmt: skip
    for name in sorted(old.keys() & new.keys()):
        a, b = old[name], new[name]
        if a.get("up") and not b.get("up"):
            changes.append(Change(cluster, "member_down", name, True, False, True,
                                  f"member {name} was up, now down"))  # fmt: skip
        elif not a.get("up") and b.get("up"):
            changes.append(Change(cluster, "member_up", name, False, True, False,
                                  f"member {name} was down, now up"))  # fmt: skip
        va, vb = a.get("version"), b.get("version")
        if va and vb and va != vb:
            changes.append(Change(cluster, "version_changed", name, va, vb, False,
                                  f"member {name}: etcd {va} -> {vb}"))  # fmt: skip
    return changes


def _leader(cluster: str, before: Mapping[str, Any], after: Mapping[str, Any]) -> list[Change]:
    a, b = before.get("leader"), after.get("leader")
    if a and b and a != b:
        return [Change(cluster, "leader_moved", b, a, b, False, f"leader moved: {a} -> {b}")]
    return []


def _prefixes(
    cluster: str, before: Mapping[str, Any], after: Mapping[str, Any], limits: Limits
) -> list[Change]:
    ka, kb = before.get("keyspace"), after.get("keyspace")
    if not ka or not kb:
        return []  # not scanned on one side: nothing to compare
    old = {p["prefix"]: int(p["keys"]) for p in ka.get("prefixes") or ()}
    new = {p["prefix"]: int(p["keys"]) for p in kb.get("prefixes") or ()}
    changes = []
    for prefix in sorted(old.keys() | new.keys()):
        a, b = old.get(prefix, 0), new.get(prefix, 0)
        if abs(b - a) > limits.prefix_keys_delta:
            what = "new prefix" if prefix not in old else "prefix"
            changes.append(Change(
                cluster, "prefix_keys", prefix, a, b, b > a,
                f"{what} {prefix}: {a} -> {b} keys ({b - a:+d}; limit ±{limits.prefix_keys_delta})",
            ))  # fmt: skip
    return changes


def _db_sizes(
    cluster: str, before: Mapping[str, Any], after: Mapping[str, Any], limits: Limits
) -> list[Change]:
    old = {m["name"]: m.get("db_size_bytes") for m in before.get("members") or ()}
    changes = []
    for m in after.get("members") or ():
        a, b = old.get(m.get("name")), m.get("db_size_bytes")
        if a is None or b is None or abs(b - a) <= limits.db_size_delta_bytes:
            continue
        sign = "+" if b > a else "-"
        changes.append(Change(
            cluster, "db_size", m["name"], a, b, b > a,
            f"member {m['name']}: database {size(a)} -> {size(b)} ({sign}{size(abs(b - a))}; "
            f"limit {size(limits.db_size_delta_bytes)})",
        ))  # fmt: skip
    return changes


def _leases(
    cluster: str, before: Mapping[str, Any], after: Mapping[str, Any], limits: Limits
) -> list[Change]:
    la, lb = before.get("leases"), after.get("leases")
    if not la or not lb or la.get("count") is None or lb.get("count") is None:
        return []  # not counted on one side: nothing to compare
    a, b = int(la["count"]), int(lb["count"])
    if abs(b - a) <= limits.leases_delta:
        return []
    return [Change(
        cluster, "leases", None, a, b, b > a,
        f"leases: {a} -> {b} active ({b - a:+d}; limit ±{limits.leases_delta})",
    )]  # fmt: skip


def compare_cluster(
    before: Mapping[str, Any], after: Mapping[str, Any], limits: Limits = Limits()
) -> list[Change]:
    name = str(after.get("name"))
    return [
        *_members(name, before, after),
        *_leader(name, before, after),
        *_db_sizes(name, before, after, limits),
        *_prefixes(name, before, after, limits),
        *_leases(name, before, after, limits),
        *_findings(name, before, after),
    ]


def compare(
    before: Mapping[str, Any], after: Mapping[str, Any], limits: Limits = Limits()
) -> Comparison:
    """Every change from the `before` document to the `after` one (both inspect JSON)."""
    old = {c.get("name"): c for c in before.get("clusters") or ()}
    changes: list[Change] = []
    for cluster in after.get("clusters") or ():
        base = old.get(cluster.get("name"))
        if base is None:
            continue  # a cluster the baseline did not inspect: nothing to compare with
        changes += compare_cluster(base, cluster, limits)
    now = {c.get("name") for c in after.get("clusters") or ()}
    for name in old.keys() - now:
        changes.append(Change(str(name), "cluster_missing", str(name), name, None, True,
                              f"cluster {name} was inspected before, not now"))  # fmt: skip
    return Comparison(before.get("started_at"), tuple(changes))


def comparison_text(comparison: Comparison, baseline_file: str) -> list[str]:
    since = f" (saved {comparison.baseline_started_at})" if comparison.baseline_started_at else ""
    head = f"Changes since {baseline_file}{since}"
    if not comparison.changes:
        return [head, "  none"]
    lines = [head]
    lines += [f"  {'WORSE' if c.worse else '     '} [{c.cluster}] {c.message}"
              for c in _ordered(comparison.changes)]  # fmt: skip
    verdict = "worse" if comparison.worse else "not worse"
    lines.append(f"  verdict: {verdict} ({sum(c.worse for c in comparison.changes)} worse, "
                 f"{len(comparison.changes)} changes)")  # fmt: skip
    return lines


def _ordered(changes: Iterable[Change]) -> Sequence[Change]:
    return sorted(changes, key=lambda c: (not c.worse,))
