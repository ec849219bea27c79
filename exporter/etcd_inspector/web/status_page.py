"""The status page at `/`: what an SRE reads at a glance, per cluster (pure rendering).

Server-rendered HTML with its CSS inline: no JavaScript, nothing fetched from the internet, a
meta refresh keeps it current. It renders the cluster's JSON document (render/jsondoc.py's
cluster_json, the document /api/v1/status and `inspect --output json` give), never the probes'
results directly, so the page, the API and `inspect` cannot disagree.

Everything that comes from etcd or the configuration (keys, member names, endpoints, error
texts) is escaped; keys appear exactly as /metrics labels them (key_labels).
"""

from __future__ import annotations

import calendar
import html
import time
from collections.abc import Iterable, Mapping, Sequence
from typing import Any

from etcd_inspector import __version__
from etcd_inspector.report.format import duration, rfc3339, size

REFRESH_SECONDS = 15
DASH = "-"
SEVERITY_ORDER = {"critical": 0, "warning": 1, "info": 2}
TOP_ROWS = 10


def e(value: object) -> str:
    """Escaped text; None shows as a dash."""
    return DASH if value is None else html.escape(str(value), quote=True)


def _link(url: str | None, text: str) -> str:
    if not url or not url.startswith(("https://", "http://", "/")):
        return e(text) if not url else e(url)
    return f'<a href="{e(url)}">{e(text)}</a>'


def _table(headers: Sequence[str], rows: Iterable[Sequence[str]], cls: str = "") -> str:
    """Cells are HTML already (escaped by the caller)."""
    body = "".join("<tr>" + "".join(f"<td>{c}</td>" for c in row) + "</tr>" for row in rows)
    if not body:
        return ""
    head = "".join(f"<th>{e(h)}</th>" for h in headers)
    return f'<table class="{cls}"><thead><tr>{head}</tr></thead><tbody>{body}</tbody></table>'


def _ago(timestamp: str | None, now: float) -> str:
    if timestamp is None:
        return "never"
    t = calendar.timegm(time.strptime(timestamp[:19], "%Y-%m-%dT%H:%M:%S"))
    return f"{duration(max(0.0, now - t))} ago"


# --------------------------------------------------------------------------- findings


def measured(f: Mapping[str, Any]) -> tuple[str, str]:
    """(value, threshold) of a finding in the unit of its kind."""
    value, threshold = f.get("value"), f.get("threshold")
    check = f.get("check")

    def fmt(v: Any) -> str:
        if v is None:
            return DASH
        if check == "quota":
            return f"{v:.1%}"
        if check == "big_value" and f.get("subject") is not None:
            return size(v)
        if check == "hot_key":
            return f"{v:.1f}/s"
        if check == "certificate_expiry":
            return rfc3339(v)[:10]
        return f"{v:g}" if isinstance(v, float) else str(v)

    return fmt(value), fmt(threshold)


def _findings(findings: Sequence[Mapping[str, Any]]) -> str:
    if not findings:
        return '<p class="ok">No findings: every check is within its threshold.</p>'
    ordered = sorted(findings, key=lambda f: SEVERITY_ORDER.get(f.get("severity") or "", 9))
    rows = []
    for f in ordered:
        value, threshold = measured(f)
        sev = str(f.get("severity") or "warning")
        rows.append(
            [
                f'<span class="sev sev-{e(sev)}">{e(sev)}</span>',
                e(f.get("check")),
                f'<code class="subject">{e(f.get("subject") or f.get("member"))}</code>',
                e(f.get("message")),
                f'<span class="n measured">{e(value)}</span>',
                f'<span class="n threshold">{e(threshold)}</span>',
                _link(f.get("runbook_url"), "runbook") if f.get("runbook_url") else DASH,
            ]
        )
    return _table(
        ["severity", "kind", "subject", "what", "measured", "threshold", "what to do"],
        rows,
        "findings",
    )


# --------------------------------------------------------------------------- members


def _members(doc: Mapping[str, Any]) -> str:
    quota = {m["name"]: m for m in (doc.get("quota") or {}).get("members", [])}
    alarms: dict[str, list[str]] = {}
    for a in doc.get("alarms") or []:
        alarms.setdefault(a["member"], []).append(a["alarm"])
    rows = []
    for m in doc.get("members") or []:
        state = m.get("state") or ("up" if m.get("up") else "down")
        label = {"up": "up", "down": "down", "auth_failed": "up: auth failed"}.get(state, state)
        reason = f'<div class="reason">{e(m.get("reason"))}</div>' if m.get("reason") else ""
        q = quota.get(m["name"])
        used = q["used_ratio"] if q else None
        quota_cell = DASH
        if q is not None and used is not None:
            cls = "bad" if used > ((doc.get("quota") or {}).get("used_ratio_limit") or 1) else ""
            quota_cell = (
                f'<span class="quota {cls}" data-used="{used:.4f}">{used:.1%}</span>'
                f'<div class="reason">of {e(size(q["quota_bytes"]))}</div>'
            )
        active = alarms.get(m["name"], [])
        rows.append(
            [
                f"<b>{e(m['name'])}</b>",
                f"<code>{e(m['endpoint'])}</code>",
                f'<span class="state state-{e(state)}">{e(label)}</span>{reason}',
                "leader" if m.get("leader") else "",
                "learner" if m.get("learner") else "",
                e(m.get("version")),
                e(m.get("revision")),
                (
                    f'<span class="n">{e(size(m["db_size_bytes"]))}</span>'
                    if m.get("db_size_bytes") is not None
                    else DASH
                ),
                quota_cell,
                (
                    " ".join(f'<span class="sev sev-critical">{e(a)}</span>' for a in active)
                    if active
                    else ("none" if doc.get("alarms") is not None else "unknown")
                ),
            ]
        )
    headers = ["member", "endpoint", "state", "leader", "learner", "version", "revision",
               "DB size", "quota used", "alarms"]  # fmt: skip
    return _table(headers, rows, "members")


# --------------------------------------------------------------------------- consistency


def _consistency(doc: Mapping[str, Any], probes: Mapping[str, Any]) -> str:
    c = doc.get("consistency")
    if c is None:
        p = probes.get("consistency") or {}
        why = p.get("error") or ("not run yet" if not p.get("ran") else "no result")
        return f'<p class="muted" id="consistency">Consistency: {e(why)}</p>'
    verdict = "consistent" if c["consistent"] else "INCONSISTENT"
    compared = (
        f"{c['members_compared']} of {c['members_total']} members compared "
        f"at revision {c['revision']}"
    )
    left_out = [m for m in c["members"] if m["keys"] is None]
    if left_out:
        compared += " (not compared: " + ", ".join(
            f"{m['name']}: {m['error'] or 'no answer'}" for m in left_out
        ) + ")"
    hashes = {True: "agree", False: "DIFFER", None: f"n/a ({c.get('hash_unavailable_reason')})"}
    counts = {True: "agree", False: "DIFFER", None: "n/a"}
    reasons = "".join(f"<li>{e(r)}</li>" for r in c.get("reasons") or [])
    return (
        f'<p id="consistency"><span class="verdict-{"ok" if c["consistent"] else "bad"}">'
        f"{e(verdict)}</span> · <span class=\"compared\">{e(compared)}</span> · key counts "
        f"{e(counts[c['key_counts_agree']])}, hashes {e(hashes[c['hashes_agree']])}</p>"
        + (f"<ul>{reasons}</ul>" if reasons else "")
    )


# --------------------------------------------------------------------------- keyspace


def _keyspace(doc: Mapping[str, Any]) -> str:
    parts = []
    ks = doc.get("keyspace")
    if ks is not None:
        limit = ks["threshold_bytes"]
        rows = [
            [f'<code class="key">{e(v["key"])}</code>',
             f'<span class="n {"bad" if v["bytes"] > limit else ""}">{e(size(v["bytes"]))}</span>']
            for v in ks["largest_values"][:TOP_ROWS]
        ]  # fmt: skip
        parts.append(
            f"<div><h4>Largest values <small>({ks['big_values']} over {e(size(limit))}; "
            f"{ks['keys']} keys at revision {ks['revision']})</small></h4>"
            + (_table(["key", "size"], rows, "largest") or "<p>none</p>")
            + "</div>"
        )
        rows = [
            [f'<code class="key">{e(p["prefix"])}</code>', e(p["keys"]),
             f'<span class="n">{e(size(p["bytes"]))}</span>']
            for p in ks["prefixes"][:TOP_ROWS]
        ]
        parts.append(
            "<div><h4>Biggest prefixes</h4>" + (_table(["prefix", "keys", "bytes"], rows) or "")
            + "</div>"
        )
    hk = doc.get("hot_keys")
    if hk is not None:
        limit = hk.get("threshold_writes_per_second")
        rows = []
        for k in hk["keys"][:TOP_ROWS]:
            over = limit is not None and k["writes_per_second"] > limit
            rows.append(
                [f'<code class="key">{e(k["key"])}</code>',
                 f'<span class="n {"bad" if over else ""}">{k["writes_per_second"]:.1f}/s</span>']
            )  # fmt: skip
        parts.append(
            f"<div><h4>Hot keys <small>({e(hk['rate_basis'])}; alert over {e(limit)}/s)"
            "</small></h4>"
            + (_table(["key", "writes"], rows, "hotkeys") or "<p>no key over the minimum rate</p>")
            + "</div>"
        )
    if not parts:
        return ""
    return '<div class="grid">' + "".join(parts) + "</div>"


# --------------------------------------------------------------------------- probes


def _probes(probes: Mapping[str, Any], now: float) -> str:
    rows = []
    for name, p in probes.items():
        if not p.get("ran"):
            state = '<span class="muted">not run</span>' if p.get("available") else "n/a"
        elif p.get("success"):
            state = '<span class="state state-up">ok</span>'
        else:
            state = f'<span class="state state-down">failed: {e(p.get("error_kind"))}</span>'
        rows.append(
            [
                e(name),
                state,
                e(_ago(p.get("last_success_at"), now)),
                (
                    e(f"{p['duration_seconds']:.2f}s")
                    if p.get("duration_seconds") is not None
                    else DASH
                ),
                f'<span class="reason">{e(p.get("error"))}</span>' if p.get("error") else "",
            ]
        )
    return _table(["probe", "last run", "last success", "took", "last error"], rows, "probes")


# --------------------------------------------------------------------------- page


def headline(doc: Mapping[str, Any]) -> tuple[str, str]:
    """(css class, text): healthy | findings | cannot inspect."""
    if not doc["inspected"]:
        status = doc["probes"].get("status") or {}
        if not status.get("ran"):
            return "wait", "waiting for the first status round"
        return "error", "cannot inspect"
    found = doc["findings"]
    if not found:
        return "ok", "healthy"
    worst = min((SEVERITY_ORDER.get(f["severity"], 9) for f in found), default=9)
    cls = "error" if worst == 0 else ("warn" if worst == 1 else "info")
    return cls, f"{len(found)} finding{'s' if len(found) != 1 else ''}"


def _cluster(doc: Mapping[str, Any], now: float) -> str:
    cls, text = headline(doc)
    members = doc.get("members") or []
    up = sum(1 for m in members if m.get("state") == "up")
    error = f'<p class="error-line">{e(doc["error"])}</p>' if doc.get("error") else ""
    return f"""
<section class="cluster" id="cluster-{e(doc['name'])}">
<h2>cluster <span class="name">{e(doc['name'])}</span>
<span class="verdict verdict-{cls}">{e(text)}</span>
<small>{up} of {len(members)} members up · leader {e(doc.get('leader'))}</small></h2>
{error}
<h3>Findings</h3>
{_findings(doc['findings'])}
<h3>Members</h3>
{_members(doc)}
<h3>Consistency</h3>
{_consistency(doc, doc['probes'])}
{('<h3>Keyspace</h3>' + _keyspace(doc)) if _keyspace(doc) else ''}
<h3>Probes</h3>
{_probes(doc['probes'], now)}
</section>"""


CSS = """
body{font:14px/1.45 system-ui,-apple-system,Segoe UI,Roboto,sans-serif;margin:0;color:#1d2330;
background:#f4f5f7}
header{background:#1d2330;color:#fff;padding:10px 24px;display:flex;gap:24px;align-items:center}
header h1{font-size:18px;margin:0}header a{color:#9cc3ff}header nav{display:flex;gap:16px}
header .updated{margin-left:auto;color:#aab}
main{padding:8px 24px 40px}
.cluster{background:#fff;border:1px solid #dde;border-radius:6px;margin:16px 0;
padding:4px 18px 14px}
h2{font-size:18px;display:flex;gap:12px;align-items:center;flex-wrap:wrap}
h2 small{font-weight:normal;color:#667}h3{font-size:14px;margin:16px 0 6px;color:#445}
h4{margin:6px 0;font-size:13px}h4 small{font-weight:normal;color:#667}
.verdict{padding:2px 10px;border-radius:12px;font-size:13px;text-transform:uppercase}
.verdict-ok{background:#d8f5dd;color:#176a2a}.verdict-warn{background:#fff0c2;color:#7a5300}
.verdict-error{background:#ffd9d6;color:#a4160b}.verdict-info{background:#dfeaff;color:#1a4a9c}
.verdict-wait{background:#e8e8ee;color:#445}
.verdict-bad{color:#a4160b;font-weight:bold}
table{border-collapse:collapse;width:100%;margin:4px 0}
th{text-align:left;font-weight:600;color:#556;border-bottom:2px solid #dde;padding:4px 8px}
td{border-bottom:1px solid #eef;padding:4px 8px;vertical-align:top}
code{font:12px ui-monospace,SFMono-Regular,Menlo,monospace;word-break:break-all}
.sev{display:inline-block;padding:0 6px;border-radius:3px;font-size:12px;font-weight:600}
.sev-critical{background:#a4160b;color:#fff}.sev-warning{background:#f0b400;color:#241a00}
.sev-info{background:#3b6fd1;color:#fff}
.state{font-weight:600}.state-up{color:#176a2a}.state-down{color:#a4160b}
.state-auth_failed{color:#8a5a00}.state-unknown{color:#667}
.reason{color:#667;font-size:12px}.muted{color:#667}.ok{color:#176a2a}.bad{color:#a4160b;
font-weight:600}.error-line{color:#a4160b;font-weight:600}
.grid{display:grid;grid-template-columns:repeat(auto-fit,minmax(320px,1fr));gap:16px}
.n{white-space:nowrap}
footer{color:#889;padding:0 24px 24px;font-size:12px}
"""


def render(docs: Sequence[Mapping[str, Any]], telemetry_path: str, now: float | None = None) -> str:
    """The page for the clusters' JSON documents (render.jsondoc.cluster_json)."""
    now = time.time() if now is None else now
    path = e(telemetry_path)
    clusters = "".join(_cluster(doc, now) for doc in docs) or "<p>No cluster configured.</p>"
    return f"""<!DOCTYPE html>
<html lang="en"><head><meta charset="utf-8">
<meta http-equiv="refresh" content="{REFRESH_SECONDS}">
<meta name="viewport" content="width=device-width, initial-scale=1">
<title>etcd-inspector</title>
<style>{CSS}</style></head>
<body>
<header><h1>etcd-inspector {e(__version__)}</h1>
<nav><a href="{path}">Metrics</a><a href="/api/v1/status">Status JSON</a>
<a href="/-/healthy">Health</a><a href="/-/ready">Readiness</a></nav>
<span class="updated">as of {e(rfc3339(now)[:19].replace('T', ' '))} UTC · refreshes every
{REFRESH_SECONDS}s</span></header>
<main>{clusters}</main>
<footer>The same data as <a href="/api/v1/status">/api/v1/status</a> and
<code>etcd-inspector inspect --output json</code>; alert thresholds from the monitoring mixin.
</footer>
</body></html>
"""
