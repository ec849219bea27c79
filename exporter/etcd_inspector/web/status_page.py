"""The status page at `/`: what an SRE reads at a glance, per cluster (pure rendering).

Server-rendered HTML with its CSS inline: no JavaScript, nothing fetched from the internet, a
meta refresh keeps it current. It renders the cluster's JSON document (render/jsondoc.py's
cluster_json, the document /api/v1/status and `inspect --output json` give), never the probes'
results directly, so the page, the API and `inspect` cannot disagree.

The page names no probe and no kind of finding: each registered probe's spec declares its view
(report/view.py: sections of tables, key/value rows and lines of typed cells, read from the
probe's own keys in the document), and each finding says the unit of its value. This module
only turns those into HTML, the same way for every probe.

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
from etcd_inspector.probes import REGISTRY
from etcd_inspector.probes.base import ProbeSpec
from etcd_inspector.report.format import duration, rfc3339, size
from etcd_inspector.report.view import (
    Bullets,
    Cell,
    Column,
    Facts,
    Format,
    Line,
    Look,
    PageSection,
    Summary,
    Table,
    ViewInput,
    ViewPart,
)

REFRESH_SECONDS = 15
DASH = "-"
SEVERITY_ORDER = {"critical": 0, "warning": 1, "info": 2}


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


def _epoch(timestamp: str | float) -> float:
    if isinstance(timestamp, int | float):
        return float(timestamp)
    return float(calendar.timegm(time.strptime(timestamp[:19], "%Y-%m-%dT%H:%M:%S")))


def _ago(timestamp: str | float | None, now: float) -> str:
    if timestamp is None:
        return "never"
    return f"{duration(max(0.0, now - _epoch(timestamp)))} ago"


# --------------------------------------------------------------------------- cells

NUMERIC = {Format.NUMBER, Format.COUNT, Format.BYTES, Format.SECONDS, Format.RATIO, Format.RATE}

# Each look's CSS classes (and the tag it is wrapped in).
LOOK_CLASSES: dict[Look, str] = {
    Look.PLAIN: "",
    Look.STRONG: "",
    Look.CODE: "",
    Look.KEY: "key",
    Look.GOOD: "ok",
    Look.BAD: "bad",
    Look.MUTED: "muted",
    Look.UP: "state state-up",
    Look.DOWN: "state state-down",
    Look.CAUTION: "state state-auth_failed",
    Look.UNKNOWN: "state state-unknown",
    Look.ALERT: "sev sev-critical",
    Look.VERDICT_GOOD: "verdict-ok",
    Look.VERDICT_BAD: "verdict-bad",
}
LOOK_TAGS = {Look.STRONG: "b", Look.CODE: "code", Look.KEY: "code"}


def shown(value: object, fmt: Format | str, now: float) -> str:
    """A value as text in its format (unescaped); None is a dash."""
    if value is None:
        return DASH
    if isinstance(value, tuple):
        return " ".join(str(v) for v in value)
    if fmt == Format.AGE:
        return _ago(value if isinstance(value, str | int | float) else str(value), now)
    if isinstance(value, bool) or not isinstance(value, int | float | str):
        return str(value)
    if fmt in (Format.TIMESTAMP, Format.DATE):
        stamp = rfc3339(value) if isinstance(value, int | float) else value
        return stamp[:10] if fmt == Format.DATE else stamp[:19].replace("T", " ") + " UTC"
    if isinstance(value, str):
        return value
    if fmt == Format.BYTES:
        return size(value)
    if fmt == Format.SECONDS:
        return duration(value)
    if fmt == Format.RATIO:
        return f"{value:.1%}"
    if fmt == Format.RATE:
        return f"{value:.1f}/s"
    return f"{value:g}" if isinstance(value, float) else str(value)


def cell(c: Cell, now: float) -> str:
    """A cell as HTML: its value in its format, marked up by its look, then its note."""
    classes = " ".join(
        x for x in ("n" if c.format in NUMERIC else "", LOOK_CLASSES[c.look], c.tag or "") if x
    )
    tag = LOOK_TAGS.get(c.look, "span")
    if c.look is Look.ALERT and isinstance(c.value, tuple):
        html_ = " ".join(f'<span class="{classes}">{e(v)}</span>' for v in c.value)
    elif classes or tag != "span":
        attr = f' class="{classes}"' if classes else ""
        html_ = f"<{tag}{attr}>{e(shown(c.value, c.format, now))}</{tag}>"
    else:
        html_ = e(shown(c.value, c.format, now))
    if c.note:
        html_ += f'<div class="reason">{e(c.note)}</div>'
    return html_


# --------------------------------------------------------------------------- findings


def measured(f: Mapping[str, Any], now: float = 0.0) -> tuple[str, str]:
    """(value, threshold) of a finding in its unit."""
    unit = f.get("unit") or Format.NUMBER
    return shown(f.get("value"), unit, now), shown(f.get("threshold"), unit, now)


def _findings(findings: Sequence[Mapping[str, Any]], now: float) -> str:
    if not findings:
        return '<p class="ok">No findings: every check is within its threshold.</p>'
    ordered = sorted(findings, key=lambda f: SEVERITY_ORDER.get(f.get("severity") or "", 9))
    rows = []
    for f in ordered:
        value, threshold = measured(f, now)
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


# --------------------------------------------------------------------------- the probes' views


def why_no_result(probe: Mapping[str, Any] | None) -> str | None:
    """From the probe's entry in the document's `probes`: why it has no result, if so."""
    if probe is None:
        return "not run"
    if not probe.get("ran"):
        return "not run yet"
    if not probe.get("success"):
        return str(probe.get("error") or "failed")
    return None


def views(doc: Mapping[str, Any], registry: Mapping[str, ProbeSpec]) -> list[ViewPart]:
    """Every registered probe's view of the document, in registry order."""
    probes = doc.get("probes") or {}
    parts: list[ViewPart] = []
    for spec in registry.values():
        parts.extend(spec.view(ViewInput(doc, why_no_result(probes.get(spec.name)))))
    return parts


def _with_columns(t: Table, columns: Sequence[Column]) -> tuple[list[str], list[list[Cell]]]:
    at = len(t.headers) if t.insert_columns_at is None else t.insert_columns_at
    headers = [*t.headers[:at], *(c.header for c in columns), *t.headers[at:]]
    rows = []
    for row in t.rows:
        key = row[t.key_column].value if t.key_column < len(row) else None
        joined = [c.cells.get(str(key), Cell(None)) for c in columns]
        rows.append([*row[:at], *joined, *row[at:]])
    return headers, rows


def _block(block: object, columns: Mapping[str, list[Column]], now: float) -> str:
    if isinstance(block, Table):
        headers, rows = _with_columns(block, columns.get(block.name, []))
        table = _table(headers, ([cell(c, now) for c in row] for row in rows), block.name)
        if not table and block.empty:
            table = f"<p>{e(block.empty)}</p>"
        if block.title is None:
            return table
        caption = f" <small>({e(block.caption)})</small>" if block.caption else ""
        return f"<div><h4>{e(block.title)}{caption}</h4>{table}</div>"
    if isinstance(block, Facts):
        body = "".join(
            f'<tr><td class="k">{e(k)}</td><td>{cell(v, now)}</td></tr>' for k, v in block.rows
        )
        title = f"<h4>{e(block.title)}</h4>" if block.title else ""
        return f'<div>{title}<table class="{e(block.name)}"><tbody>{body}</tbody></table></div>'
    if isinstance(block, Line):
        return f'<p id="{e(block.name)}">' + " · ".join(cell(c, now) for c in block.cells) + "</p>"
    if isinstance(block, Bullets):
        items = "".join(f"<li>{e(i)}</li>" for i in block.items)
        return f"<ul>{items}</ul>" if items else ""
    raise TypeError(f"not a block of the view model: {block!r}")


def _sections(parts: Sequence[ViewPart], now: float) -> str:
    """Sections of the same title as one, in the order they first appear."""
    columns: dict[str, list[Column]] = {}
    merged: dict[str, list[PageSection]] = {}
    for part in parts:
        if isinstance(part, Column):
            columns.setdefault(part.table, []).append(part)
        elif isinstance(part, PageSection):
            merged.setdefault(part.title, []).append(part)
    out = []
    for title, sections in merged.items():
        blocks = [_block(b, columns, now) for s in sections for b in s.blocks]
        body = "".join(b for b in blocks if b)
        if not body:
            continue
        if any(s.grid for s in sections):
            body = f'<div class="grid">{body}</div>'
        out.append(f'<h3 id="section-{e(title.lower().replace(" ", "-"))}">{e(title)}</h3>\n{body}')
    return "\n".join(out)


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


def headline(
    doc: Mapping[str, Any], registry: Mapping[str, ProbeSpec] = REGISTRY
) -> tuple[str, str]:
    """(css class, text): healthy | findings | cannot inspect."""
    if not doc["inspected"]:
        topology = next((s.name for s in registry.values() if s.provides_topology), None)
        first = doc["probes"].get(topology) or {} if topology is not None else {}
        if not first.get("ran"):
            return "wait", f"waiting for the first {topology or 'topology'} round"
        return "error", "cannot inspect"
    found = doc["findings"]
    if not found:
        return "ok", "healthy"
    worst = min((SEVERITY_ORDER.get(f["severity"], 9) for f in found), default=9)
    cls = "error" if worst == 0 else ("warn" if worst == 1 else "info")
    return cls, f"{len(found)} finding{'s' if len(found) != 1 else ''}"


def _cluster(doc: Mapping[str, Any], now: float, registry: Mapping[str, ProbeSpec]) -> str:
    cls, text = headline(doc, registry)
    parts = views(doc, registry)
    summary = " · ".join(p.text for p in parts if isinstance(p, Summary))
    error = f'<p class="error-line">{e(doc["error"])}</p>' if doc.get("error") else ""
    return f"""
<section class="cluster" id="cluster-{e(doc["name"])}">
<h2>cluster <span class="name">{e(doc["name"])}</span>
<span class="verdict verdict-{cls}">{e(text)}</span>
<small>{e(summary)}</small></h2>
{error}
<h3>Findings</h3>
{_findings(doc["findings"], now)}
{_sections(parts, now)}
<h3>Probes</h3>
{_probes(doc["probes"], now)}
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
.n{white-space:nowrap}.k{color:#556;font-weight:600;white-space:nowrap;width:1%}
footer{color:#889;padding:0 24px 24px;font-size:12px}
"""


def render(
    docs: Sequence[Mapping[str, Any]],
    telemetry_path: str,
    now: float | None = None,
    registry: Mapping[str, ProbeSpec] = REGISTRY,
) -> str:
    """The page for the clusters' JSON documents (render.jsondoc.cluster_json)."""
    now = time.time() if now is None else now
    path = e(telemetry_path)
    clusters = "".join(_cluster(doc, now, registry) for doc in docs)
    clusters = clusters or "<p>No cluster configured.</p>"
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
<span class="updated">as of {e(rfc3339(now)[:19].replace("T", " "))} UTC · refreshes every
{REFRESH_SECONDS}s</span></header>
<main>{clusters}</main>
<footer>The same data as <a href="/api/v1/status">/api/v1/status</a> and
<code>etcd-inspector inspect --output json</code>; alert thresholds from the monitoring mixin.
</footer>
</body></html>
"""
