"""The `inspect` report (pure): probe outcomes -> findings, exit code, text and JSON.

Nothing here does I/O; inspect.py gathers a ClusterInspection per cluster and hands it over.
A probe that this build does not ship is "not available", one that ran and failed carries its
error; the report shows what it has and never invents a value for what it lacks.

Findings (each one makes the exit code 1):
  member_down      a configured member did not answer Status
  no_leader        an answering member knows no leader
  alarm            an active alarm (NOSPACE, CORRUPT)
  inconsistent     consistency: cluster IDs, key counts or hashes at the pinned revision differ
  quota            a member's db size over QUOTA_USED_RATIO_LIMIT of its quota
  big_value        values larger than bigvalue's threshold_bytes option
  probe_failed     a probe ran and failed (its check could not be made)
Exit codes: 2 when a cluster could not be inspected at all (no member answered Status), else 1
when there is any finding, else 0.

JSON document (`--output json`; keys are stable, new keys may be added, "schema" changes when
a key changes meaning or goes away). Sizes are bytes, durations seconds, times RFC 3339 UTC:

  {
    "schema": 1,
    "started_at": str, "finished_at": str,
    "exit_code": 0 | 1 | 2,
    "watch_seconds": float | null,        # --watch window, null when not watched
    "findings": [Finding, ...],           # every cluster's, in cluster order
    "clusters": [{
      "name": str,
      "inspected": bool,                  # false: no member answered, see "error"
      "error": str | null,
      "probes": {<probe>: {"available": bool, "ran": bool, "success": bool | null,
                           "duration_seconds": float | null, "error": str | null}},
      "members": [{"name", "endpoint", "up": bool, "error": str | null,
                   "member_id": hex str | null, "leader": bool | null, "learner": bool | null,
                   "version": str | null, "revision": int | null, "raft_term": int | null,
                   "raft_index": int | null, "db_size_bytes": int | null,
                   "db_size_in_use_bytes": int | null, "errors": [str]}],
      "leader": member name | null,
      "alarms": [{"member": str, "alarm": str}] | null,   # null: the list could not be read
      "consistency": null | {"revision": int, "consistent": bool, "reasons": [str],
          "cluster_ids_agree": bool, "key_counts_agree": bool | null,
          "hashes_agree": bool | null, "hash_unavailable_reason": str | null,
          "revision_diff": int,
          "members": [{"name", "keys": int | null, "hash": hex str | null,
                       "cluster_id": hex str | null, "error": str | null}]},
      "quota": null | {"used_ratio_limit": float,
          "members": [{"name", "db_size_bytes", "db_size_in_use_bytes", "quota_bytes",
                       "quota_source", "used_ratio", "headroom_bytes",
                       "exhaustion_seconds": float | null}]},
      "keyspace": null | {"revision", "member", "keys", "total_value_bytes", "duration_seconds",
          "threshold_bytes", "big_values", "big_values_bytes",
          "largest_values": [{"key", "bytes"}],          # largest first
          "most_modified": [{"key", "version"}],         # most rewritten first
          "prefixes": [{"prefix", "keys", "bytes"}]},    # most bytes first
      "hot_keys": null | {"watch_seconds", "events", "events_per_second", "revision",
          "lag_revisions": int | null,
          "keys": [{"key", "writes_per_second"}],        # decayed rate, hottest first
          "prefixes": [{"prefix", "puts", "deletes"}]},  # most writes first
      "findings": [Finding, ...]
    }]
  }
  Finding = {"cluster": str, "check": str (see above), "member": str | null, "message": str}

Keys appear as the exporter labels them (key_labels: full, prefix or hash).
"""

from __future__ import annotations

import time
from collections.abc import Mapping, Sequence
from dataclasses import dataclass, field
from typing import Any

from etcd_inspector.cluster.state import ProbeOutcome

EXIT_OK, EXIT_FINDINGS, EXIT_ERROR = 0, 1, 2
SCHEMA_VERSION = 1

# etcd refuses writes at 100%; 80% leaves time to compact and defragment.
QUOTA_USED_RATIO_LIMIT = 0.8
# Rows per top list in the text report when the probe's options do not say.
DEFAULT_TOP_ROWS = 10

PROBE_ORDER = ("status", "consistency", "quota", "bigvalue", "hotkeys")


@dataclass(frozen=True)
class ClusterInspection:
    name: str
    endpoints: tuple[str, ...]
    member_names: Mapping[str, str]
    outcomes: Mapping[str, ProbeOutcome]
    unavailable: tuple[str, ...] = ()  # probes wanted but not in this build
    options: Mapping[str, Any] = field(default_factory=dict)
    watch_seconds: float | None = None

    def result(self, probe: str) -> Any | None:
        outcome = self.outcomes.get(probe)
        return outcome.result if outcome is not None and outcome.success else None

    @property
    def inspected(self) -> bool:
        return self.result("status") is not None

    @property
    def error(self) -> str | None:
        if self.inspected:
            return None
        outcome = self.outcomes.get("status")
        if outcome is None:
            return "status probe not available" if "status" in self.unavailable else "not run"
        # The probe's own exception name says nothing to an operator.
        return (outcome.error or "status probe failed").removeprefix("NoMemberAnswered: ")

    def member(self, endpoint: str) -> str:
        return self.member_names.get(endpoint) or endpoint.split("://", 1)[-1]


@dataclass(frozen=True)
class Finding:
    cluster: str
    check: str
    message: str
    member: str | None = None

    def as_json(self) -> dict[str, Any]:
        return {
            "cluster": self.cluster,
            "check": self.check,
            "member": self.member,
            "message": self.message,
        }


# --------------------------------------------------------------------------- findings


def _not_comparable(error: str | None) -> bool:
    # consistency raises NotComparable when fewer than two members answer: the members that
    # are down have their own finding, and a single-member cluster has nothing to compare.
    return bool(error) and error.startswith("NotComparable")  # type: ignore[union-attr]


def findings(insp: ClusterInspection) -> list[Finding]:
    c = insp.name
    if not insp.inspected:
        return [Finding(c, "unreachable", f"could not inspect: {insp.error}")]
    out: list[Finding] = []
    status = insp.result("status")
    for m in status.members:
        if m.status is None:
            out.append(
                Finding(
                    c,
                    "member_down",
                    f"member {m.member} ({m.endpoint}) did not answer Status: {m.error or 'error'}",
                    m.member,
                )
            )
        elif m.status.leader_id == 0:
            out.append(Finding(c, "no_leader", f"member {m.member} knows no leader", m.member))
    for member, alarm in status.alarms or ():
        out.append(Finding(c, "alarm", f"alarm {alarm} is active on member {member}", member))

    consistency = insp.result("consistency")
    if consistency is not None and not consistency.verdict.consistent:
        for reason in consistency.verdict.reasons:
            out.append(Finding(c, "inconsistent", reason))

    quota = insp.result("quota")
    for mq in quota.members if quota is not None else ():
        ratio = mq.db_size / mq.quota_bytes if mq.quota_bytes else 0.0
        if ratio > QUOTA_USED_RATIO_LIMIT:
            out.append(
                Finding(
                    c,
                    "quota",
                    f"member {mq.member} uses {ratio:.0%} of its quota "
                    f"({_size(mq.db_size)} of {_size(mq.quota_bytes)}; limit "
                    f"{QUOTA_USED_RATIO_LIMIT:.0%})",
                    mq.member,
                )
            )

    scan = insp.result("bigvalue")
    if scan is not None and scan.big_values:
        over = [(size, key) for size, key in scan.top_values if size > scan.threshold_bytes]
        largest = ", ".join(f"{key} ({_size(size)})" for size, key in over[:3])
        message = (
            f"{scan.big_values} value(s) larger than {_size(scan.threshold_bytes)} "
            f"({_size(scan.big_values_bytes)} in all)"
        )
        out.append(Finding(c, "big_value", f"{message}, largest: {largest}" if over else message))

    for name in PROBE_ORDER:
        outcome = insp.outcomes.get(name)
        if outcome is None or outcome.success:
            continue
        if name == "consistency" and _not_comparable(outcome.error):
            continue
        out.append(Finding(c, "probe_failed", f"probe {name} failed: {outcome.error}"))
    return out


def exit_code(inspections: Sequence[ClusterInspection]) -> int:
    if not inspections or any(not i.inspected for i in inspections):
        return EXIT_ERROR
    return EXIT_FINDINGS if any(findings(i) for i in inspections) else EXIT_OK


# --------------------------------------------------------------------------- JSON


def _rfc3339(t: float) -> str:
    return time.strftime("%Y-%m-%dT%H:%M:%S", time.gmtime(t)) + f".{int(t % 1 * 1000):03d}Z"


def _probes_json(insp: ClusterInspection) -> dict[str, Any]:
    out: dict[str, Any] = {}
    for name in PROBE_ORDER:
        outcome = insp.outcomes.get(name)
        if name == "hotkeys" and insp.watch_seconds is None:
            continue  # not asked for
        out[name] = {
            "available": name not in insp.unavailable,
            "ran": outcome is not None,
            "success": outcome.success if outcome else None,
            "duration_seconds": round(outcome.duration_seconds, 3) if outcome else None,
            "error": outcome.error if outcome else None,
        }
    return out


def _members_json(insp: ClusterInspection) -> list[dict[str, Any]]:
    status = insp.result("status")
    rows = []
    for endpoint in insp.endpoints:
        m = status.members[[x.endpoint for x in status.members].index(endpoint)] if status else None
        st = m.status if m else None
        rows.append(
            {
                "name": insp.member(endpoint),
                "endpoint": endpoint,
                "up": st is not None,
                "error": m.error if m else None,
                "member_id": f"{st.member_id:x}" if st else None,
                "leader": (st.leader_id == st.member_id) if st else None,
                "learner": st.is_learner if st else None,
                "version": st.version if st else None,
                "revision": st.revision if st else None,
                "raft_term": st.raft_term if st else None,
                "raft_index": st.raft_index if st else None,
                "db_size_bytes": st.db_size if st else None,
                "db_size_in_use_bytes": st.db_size_in_use if st else None,
                "errors": list(st.errors) if st else [],
            }
        )
    return rows


def _leader(insp: ClusterInspection) -> str | None:
    status = insp.result("status")
    if status is None:
        return None
    leader_ids = {m.status.leader_id for m in status.members if m.status and m.status.leader_id}
    for m in status.members:
        if m.status is not None and m.status.member_id in leader_ids:
            return m.member
    names = {mi.id: mi.name for mi in status.member_list.members} if status.member_list else {}
    # The leader may be a member that is not configured here; name it from the member list.
    return next((names.get(i) or f"{i:x}" for i in sorted(leader_ids)), None)


def _consistency_json(result: Any) -> dict[str, Any] | None:
    if result is None:
        return None
    v = result.verdict
    return {
        "revision": result.revision,
        "consistent": v.consistent,
        "reasons": list(v.reasons),
        "cluster_ids_agree": v.cluster_id_distinct <= 1,
        "key_counts_agree": None if v.key_count_diff is None else v.key_count_diff == 0,
        "hashes_agree": None if v.hash_mismatch is None else not v.hash_mismatch,
        "hash_unavailable_reason": v.hash_unavailable_reason,
        "revision_diff": v.revision_diff,
        "members": [
            {
                "name": f.member,
                "keys": f.keys,
                "hash": f"{f.hash:08x}" if f.hash is not None else None,
                "cluster_id": f"{f.status.cluster_id:x}" if f.status else None,
                "error": f.status_error or f.count_error or f.hash_error,
            }
            for f in result.members
        ],
    }


def _quota_json(result: Any) -> dict[str, Any] | None:
    if result is None:
        return None
    return {
        "used_ratio_limit": QUOTA_USED_RATIO_LIMIT,
        "members": [
            {
                "name": m.member,
                "db_size_bytes": m.db_size,
                "db_size_in_use_bytes": m.db_size_in_use,
                "quota_bytes": m.quota_bytes,
                "quota_source": m.quota_source,
                "used_ratio": m.db_size / m.quota_bytes if m.quota_bytes else None,
                "headroom_bytes": m.quota_bytes - m.db_size,
                "exhaustion_seconds": m.exhaustion_seconds,
            }
            for m in result.members
        ],
    }


def biggest_prefixes(result: Any, n: int) -> list[Any]:
    return sorted(result.prefixes, key=lambda p: (-p.bytes, -p.keys, p.prefix))[:n]


def _top_rows(insp: ClusterInspection, probe: str) -> int:
    return getattr(insp.options.get(probe), "top_n", None) or DEFAULT_TOP_ROWS


def _keyspace_json(insp: ClusterInspection) -> dict[str, Any] | None:
    r = insp.result("bigvalue")
    if r is None:
        return None
    return {
        "revision": r.revision,
        "member": r.member,
        "keys": r.keys,
        "total_value_bytes": r.total_bytes,
        "duration_seconds": round(r.duration_seconds, 3),
        "threshold_bytes": r.threshold_bytes,
        "big_values": r.big_values,
        "big_values_bytes": r.big_values_bytes,
        "largest_values": [{"key": k, "bytes": s} for s, k in r.top_values],
        "most_modified": [{"key": k, "version": v} for v, k in r.top_versions],
        "prefixes": [
            {"prefix": p.prefix, "keys": p.keys, "bytes": p.bytes}
            for p in biggest_prefixes(r, len(r.prefixes))
        ],
    }


def prefix_write_totals(result: Any) -> list[tuple[str, int, int]]:
    """(prefix, puts, deletes), most writes first."""
    totals: dict[str, list[int]] = {}
    for pw in result.prefix_writes:
        totals.setdefault(pw.prefix, [0, 0])[pw.op == "delete"] += pw.count
    rows = [(p, puts, dels) for p, (puts, dels) in totals.items() if puts or dels]
    return sorted(rows, key=lambda r: (-(r[1] + r[2]), r[0]))


def _hot_keys_json(insp: ClusterInspection) -> dict[str, Any] | None:
    r = insp.result("hotkeys")
    if r is None or insp.watch_seconds is None:
        return None
    return {
        "watch_seconds": insp.watch_seconds,
        "events": r.events_total,
        "events_per_second": round(r.events_total / insp.watch_seconds, 3),
        "revision": r.revision,
        "lag_revisions": r.lag_revisions,
        "keys": [
            {"key": hk.key, "writes_per_second": round(hk.writes_per_second, 3)}
            for hk in r.hot_keys
        ],
        "prefixes": [
            {"prefix": p, "puts": puts, "deletes": dels} for p, puts, dels in prefix_write_totals(r)
        ],
    }


def cluster_json(insp: ClusterInspection) -> dict[str, Any]:
    status = insp.result("status")
    return {
        "name": insp.name,
        "inspected": insp.inspected,
        "error": insp.error,
        "probes": _probes_json(insp),
        "members": _members_json(insp),
        "leader": _leader(insp),
        "alarms": (
            [{"member": m, "alarm": a} for m, a in status.alarms]
            if status is not None and status.alarms is not None
            else None
        ),
        "consistency": _consistency_json(insp.result("consistency")),
        "quota": _quota_json(insp.result("quota")),
        "keyspace": _keyspace_json(insp),
        "hot_keys": _hot_keys_json(insp),
        "findings": [f.as_json() for f in findings(insp)],
    }


def to_json(
    inspections: Sequence[ClusterInspection], *, started_at: float, finished_at: float
) -> dict[str, Any]:
    clusters = [cluster_json(i) for i in inspections]
    watch = next((i.watch_seconds for i in inspections), None)
    return {
        "schema": SCHEMA_VERSION,
        "started_at": _rfc3339(started_at),
        "finished_at": _rfc3339(finished_at),
        "exit_code": exit_code(inspections),
        "watch_seconds": watch,
        "findings": [f for c in clusters for f in c["findings"]],
        "clusters": clusters,
    }


# --------------------------------------------------------------------------- text


def _size(n: float) -> str:
    for unit in ("B", "KiB", "MiB", "GiB"):
        if abs(n) < 1024 or unit == "GiB":
            return f"{n:.0f} {unit}" if unit == "B" else f"{n:.1f} {unit}"
        n /= 1024
    raise AssertionError("unreachable")


def _duration(seconds: float) -> str:
    for unit, span in (("d", 86400), ("h", 3600), ("m", 60)):
        if seconds >= span:
            return f"{seconds / span:.1f}{unit}"
    return f"{seconds:.0f}s"


def table(headers: Sequence[str], rows: Sequence[Sequence[Any]], indent: str = "  ") -> list[str]:
    cells = [[str(h) for h in headers]] + [
        [("-" if v is None else str(v)) for v in r] for r in rows
    ]
    widths = [max(len(r[i]) for r in cells) for i in range(len(headers))]
    return [
        indent + "  ".join(c.ljust(w) for c, w in zip(r, widths, strict=True)).rstrip()
        for r in cells
    ]


def _section_unavailable(insp: ClusterInspection, probe: str) -> str | None:
    """Why a probe's section is empty, or None when it has a result."""
    if probe in insp.unavailable:
        return f"not available (this build has no {probe} probe)"
    outcome = insp.outcomes.get(probe)
    if outcome is None:
        return "not run" if insp.inspected else "not run: the cluster did not answer"
    if not outcome.success:
        if probe == "consistency" and _not_comparable(outcome.error):
            return "not comparable: " + (outcome.error or "").removeprefix("NotComparable: ")
        return f"failed: {outcome.error}"
    return None


def _members_text(insp: ClusterInspection) -> list[str]:
    rows = []
    for m in _members_json(insp):
        state = "up" if m["up"] else ("DOWN (" + m["error"] + ")" if m["error"] else "DOWN")
        rows.append(
            [
                m["name"],
                m["endpoint"],
                state,
                "*" if m["leader"] else "",
                m["version"],
                m["revision"],
                _size(m["db_size_bytes"]) if m["db_size_bytes"] is not None else None,
                _size(m["db_size_in_use_bytes"]) if m["db_size_in_use_bytes"] is not None else None,
            ]
        )
    lines = [
        "Members",
        *table(
            ["NAME", "ENDPOINT", "STATE", "LEADER", "VERSION", "REVISION", "DB SIZE", "IN USE"],
            rows,
        ),
    ]
    status = insp.result("status")
    if status is not None:
        if status.alarms is None:
            lines.append("  alarms: could not be read")
        else:
            active = ", ".join(f"{a} on {m}" for m, a in status.alarms) or "none"
            lines.append(f"  alarms: {active}")
    return lines


def _consistency_text(insp: ClusterInspection) -> list[str]:
    why = _section_unavailable(insp, "consistency")
    if why:
        return [f"Consistency: {why}"]
    c = _consistency_json(insp.result("consistency"))
    assert c is not None

    def agree(v: bool | None) -> str:
        return "n/a" if v is None else ("yes" if v else "NO")

    rows = [[m["name"], m["keys"], m["hash"], m["cluster_id"], m["error"]] for m in c["members"]]
    lines = [
        f"Consistency (at revision {c['revision']})",
        *table(["MEMBER", "KEYS", "HASH", "CLUSTER ID", "ERROR"], rows),
    ]
    hashes = agree(c["hashes_agree"])
    if c["hashes_agree"] is None and c["hash_unavailable_reason"]:
        hashes += f" ({c['hash_unavailable_reason']})"
    lines.append(
        f"  key counts agree: {agree(c['key_counts_agree'])}; hashes agree: {hashes}; "
        f"cluster IDs agree: {agree(c['cluster_ids_agree'])}"
    )
    lines.append(f"  verdict: {'consistent' if c['consistent'] else 'INCONSISTENT'}")
    return lines


def _quota_text(insp: ClusterInspection) -> list[str]:
    why = _section_unavailable(insp, "quota")
    if why:
        return [f"Quota: {why}"]
    q = _quota_json(insp.result("quota"))
    assert q is not None
    rows = [
        [
            m["name"],
            _size(m["db_size_bytes"]),
            f"{_size(m['quota_bytes'])} ({m['quota_source']})",
            f"{m['used_ratio']:.1%}" if m["used_ratio"] is not None else None,
            _size(m["headroom_bytes"]),
            _duration(m["exhaustion_seconds"]) if m["exhaustion_seconds"] is not None else "-",
        ]
        for m in q["members"]
    ]
    return [
        f"Quota (limit {QUOTA_USED_RATIO_LIMIT:.0%} used)",
        *table(["MEMBER", "DB SIZE", "QUOTA", "USED", "HEADROOM", "FULL IN"], rows),
    ]


def _keyspace_text(insp: ClusterInspection) -> list[str]:
    why = _section_unavailable(insp, "bigvalue")
    if why:
        return [f"Keyspace scan: {why}"]
    r = insp.result("bigvalue")
    n = _top_rows(insp, "bigvalue")
    lines = [
        f"Keyspace scan (at revision {r.revision}, from {r.member}): {r.keys} keys, "
        f"{_size(r.total_bytes)} of values, {r.duration_seconds:.1f}s",
        "",
        f"Largest values (threshold {_size(r.threshold_bytes)}; {r.big_values} over it)",
    ]
    rows = [[_size(s), "OVER" if s > r.threshold_bytes else "", k] for s, k in r.top_values[:n]]
    lines += table(["SIZE", "", "KEY"], rows) if rows else ["  (no keys)"]
    lines += ["", "Most-modified keys (version = writes since creation)"]
    rows = [[v, k] for v, k in r.top_versions[:n]]
    lines += table(["VERSION", "KEY"], rows) if rows else ["  (no keys)"]
    lines += ["", "Biggest prefixes (by value bytes)"]
    rows = [[p.prefix, p.keys, _size(p.bytes)] for p in biggest_prefixes(r, n)]
    lines += table(["PREFIX", "KEYS", "BYTES"], rows) if rows else ["  (no keys)"]
    return lines


def _hot_keys_text(insp: ClusterInspection) -> list[str]:
    if insp.watch_seconds is None:
        return ["Hot keys: not watched (use --watch 30s)"]
    why = _section_unavailable(insp, "hotkeys")
    if why:
        return [f"Hot keys: {why}"]
    h = _hot_keys_json(insp)
    assert h is not None
    lines = [
        f"Hot keys (watched {h['watch_seconds']:g}s: {h['events']} writes, "
        f"{h['events_per_second']:.1f}/s)"
    ]
    rows = [[f"{k['writes_per_second']:.1f}", k["key"]] for k in h["keys"]]
    lines += table(["WRITES/S", "KEY"], rows) if rows else ["  (no key over the minimum rate)"]
    n = _top_rows(insp, "hotkeys")
    rows = [[p["prefix"], p["puts"], p["deletes"]] for p in h["prefixes"][:n]]
    if rows:
        lines += ["", *table(["PREFIX", "PUTS", "DELETES"], rows)]
    return lines


def render_cluster(insp: ClusterInspection) -> str:
    head = f"== cluster {insp.name} ({len(insp.endpoints)} endpoints)"
    if not insp.inspected:
        body = [head, f"could not inspect: {insp.error}", "", *_members_text(insp)]
    else:
        body = [
            head,
            "",
            *_members_text(insp),
            "",
            *_consistency_text(insp),
            "",
            *_quota_text(insp),
            "",
            *_keyspace_text(insp),
            "",
            *_hot_keys_text(insp),
        ]
    found = findings(insp)
    body += ["", "Findings"]
    body += [f"  ! [{f.check}] {f.message}" for f in found] or ["  none: all clear"]
    return "\n".join(body) + "\n"


def render_text(inspections: Sequence[ClusterInspection], *, started_at: float) -> str:
    code = exit_code(inspections)
    verdict = {EXIT_OK: "all clear", EXIT_FINDINGS: "findings", EXIT_ERROR: "could not inspect"}
    parts = [f"etcd-inspector inspect at {_rfc3339(started_at)}\n"]
    parts += ["\n" + render_cluster(i) for i in inspections]
    parts.append(f"\nResult: {verdict[code]} (exit {code})\n")
    return "".join(parts)
