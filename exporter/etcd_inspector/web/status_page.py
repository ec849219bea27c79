"""The landing page at `/`: members and probes per cluster (server-rendered, no JavaScript)."""

from __future__ import annotations

import html
import time
from collections.abc import Sequence

from etcd_inspector import __version__
from etcd_inspector.cluster.runtime import ClusterRuntime


def _rows(runtimes: Sequence[ClusterRuntime]) -> str:
    now = time.time()
    rows = []
    for rt in runtimes:
        topology = rt.state.topology
        for view in topology.members:
            st = view.status
            state = "up" if st else "down"
            extra = f"leader={st.is_leader} rev={st.revision}" if st else ""
            rows.append(
                f"<tr><td>{html.escape(rt.name)}</td>"
                f"<td>{html.escape(view.name)}</td>"
                f"<td>{html.escape(view.endpoint)}</td><td>{state}</td>"
                f"<td>{html.escape(extra)}</td></tr>"
            )
        for name, outcome in sorted(rt.state.outcomes.items()):
            ago = f"{now - outcome.finished_at:.0f}s ago"
            ok = "ok" if outcome.success else html.escape(outcome.error or "failed")
            rows.append(
                f"<tr><td>{html.escape(rt.name)}</td><td colspan=2>probe {html.escape(name)}</td>"
                f"<td>{ok}</td><td>{ago}, took {outcome.duration_seconds:.2f}s</td></tr>"
            )
    return "\n".join(rows)


def render(runtimes: Sequence[ClusterRuntime], telemetry_path: str) -> str:
    path = html.escape(telemetry_path)
    return f"""<!DOCTYPE html>
<html><head><title>etcd-inspector</title></head>
<body>
<h1>etcd-inspector {html.escape(__version__)}</h1>
<p>Prometheus exporter that proxies etcd members' metrics and inspects the clusters.</p>
<ul><li><a href="{path}">Metrics</a></li><li><a href="/-/healthy">Health</a></li>
<li><a href="/-/ready">Readiness</a></li></ul>
<h2>Clusters</h2>
<table border=1 cellpadding=4>
<tr><th>cluster</th><th>member</th><th>endpoint</th><th>state</th><th>details</th></tr>
{_rows(runtimes)}
</table>
</body></html>
"""
