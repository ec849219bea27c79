"""The exporter's own metric families, built from the latest snapshots (the scrape encodes a
probe's only when its outcome changed, web/own_text.py).

Pure: reads published state, this scrape's members (`MemberScrape`) and the scrape path's
counts (`MemberCounters`), does no I/O. A member or probe that disappears from the snapshot
simply disappears from the output.
"""

from __future__ import annotations

import logging
import platform
from collections import Counter
from collections.abc import Callable, Iterable, Sequence
from dataclasses import dataclass, field
from typing import Any

from prometheus_client.core import CounterMetricFamily, GaugeMetricFamily
from prometheus_client.metrics_core import Metric

from etcd_inspector import __version__
from etcd_inspector.cluster.state import ProbeOutcome
from etcd_inspector.etcd.metrics_fetch import FETCH_ERROR_REASONS, FetchResult
from etcd_inspector.probes.base import Probe
from etcd_inspector.runtime.runtime import ClusterRuntime
from etcd_inspector.web.own_text import own_kinds
from etcd_inspector.web.proxy import CLASH_OUTCOMES
from etcd_inspector.web.relabel import MemberExposition

log = logging.getLogger(__name__)


def build_info() -> Metric:
    fam = GaugeMetricFamily(
        "etcd_inspector_build_info",
        "A metric with a constant '1' value labeled by version and Python version.",
        labels=["version", "python_version"],
    )
    fam.add_metric([__version__, platform.python_version()], 1)
    return fam


def _status_families() -> tuple[GaugeMetricFamily, GaugeMetricFamily, GaugeMetricFamily]:
    labels = ["cluster", "probe"]
    success = GaugeMetricFamily(
        "etcd_inspector_probe_success",
        "1 when the probe's last background run succeeded, else 0.",
        labels=labels,
    )
    duration = GaugeMetricFamily(
        "etcd_inspector_probe_duration_seconds",
        "How long the probe's last background run took.",
        labels=labels,
    )
    last_ok = GaugeMetricFamily(
        "etcd_inspector_probe_last_success_timestamp_seconds",
        "When the probe last succeeded, in seconds since the epoch.",
        labels=labels,
    )
    return success, duration, last_ok


def _add_outcome(
    status: tuple[GaugeMetricFamily, GaugeMetricFamily, GaugeMetricFamily],
    cluster: str,
    name: str,
    outcome: ProbeOutcome,
) -> None:
    success, duration, last_ok = status
    success.add_metric([cluster, name], 1 if outcome.success else 0)
    duration.add_metric([cluster, name], outcome.duration_seconds)
    if outcome.last_success_at is not None:
        last_ok.add_metric([cluster, name], outcome.last_success_at)


def outcome_families(
    cluster: str, name: str, probe: Probe[Any, Any], outcome: ProbeOutcome
) -> list[Metric]:
    """One probe's families for one outcome: how the run went and what it found."""
    status = _status_families()
    _add_outcome(status, cluster, name, outcome)
    results = [] if outcome.result is None else _safe(probe.metrics, cluster, outcome.result)
    return [*status, *results]


def progress_families(cluster: str, probe: Probe[Any, Any], progress: object) -> list[Metric]:
    """A run in progress (a scan's keys so far): new at every report, encoded at each scrape."""
    return _safe(probe.progress_metrics, cluster, progress)


def _safe(fn: Callable[[str, Any], Iterable[Metric]], cluster: str, result: Any) -> list[Metric]:
    # A bug in one probe's metrics() must not break the whole scrape.
    try:
        return list(fn(cluster, result))
    except Exception:
        log.exception("probe metrics failed", extra={"cluster": cluster})
        return []


@dataclass(frozen=True)
class MemberScrape:
    """One member's part of one scrape."""

    cluster: str
    endpoint: str
    member: str  # the label its samples got in this scrape
    fetch: FetchResult
    exposition: MemberExposition | None = None  # None unless the fetch and its check succeeded


@dataclass
class MemberCounters:
    """What the scrape path counts per member across scrapes, by (cluster, endpoint, ...)."""

    # (cluster, endpoint, reason) -> scrapes that got no /metrics of the member
    errors: Counter[tuple[str, str, str]] = field(default_factory=Counter)
    # (cluster, endpoint) -> fetches started for scrapes (concurrent scrapes share one)
    fetches: Counter[tuple[str, str]] = field(default_factory=Counter)
    # (cluster, endpoint, outcome) -> the member's families that met a name of another's
    clashes: Counter[tuple[str, str, str]] = field(default_factory=Counter)

    def retain(self, members: set[tuple[str, str]]) -> None:
        """Forget the counts of members no longer configured (a reload removed their
        cluster): memory follows the configuration, not its history."""
        for counts in (self.errors, self.fetches, self.clashes):
            for key in [k for k in counts if (k[0], k[1]) not in members]:
                del counts[key]


def member_families(
    runtimes: Sequence[ClusterRuntime],
    scraped: Iterable[MemberScrape],
    counters: MemberCounters,
    only: tuple[str, str] | None = None,
) -> list[Metric]:
    """Per member: up (topology and this scrape's /metrics fetch both answered) and the scrape
    path's counts. `only` = (cluster, endpoint) limits them to one member."""
    by_member = {(m.cluster, m.endpoint): m for m in scraped}
    labels = ["cluster", "member"]
    up = GaugeMetricFamily(
        "etcd_inspector_member_up",
        "1 when the member answered its last status probe (background) and this scrape's "
        "/metrics fetch, else 0.",
        labels=labels,
    )
    scrape_duration = GaugeMetricFamily(
        "etcd_inspector_member_scrape_duration_seconds",
        "How long this scrape waited for the member's /metrics.",
        labels=labels,
    )
    errors_total = CounterMetricFamily(
        "etcd_inspector_member_scrape_errors",
        "Scrapes that got no /metrics of the member, by reason "
        "(timeout, connect, http, too_large, parse).",
        labels=["cluster", "member", "reason"],
    )
    fetches_total = CounterMetricFamily(
        "etcd_inspector_member_scrape_fetches",
        "Fetches of the member's /metrics started for scrapes; concurrent scrapes share one.",
        labels=labels,
    )
    clashes_total = CounterMetricFamily(
        "etcd_inspector_member_family_clashes",
        "Metric families of the member, per scrape, whose name is also one of the exporter's "
        "own (outcome merged: same type, its samples follow the exporter's) or that came with "
        "another type than the same name from the exporter or another member (outcome "
        "dropped: left out).",
        labels=["cluster", "member", "outcome"],
    )
    for rt in runtimes:
        topology = rt.state.topology
        topology_known = any(s.spec.provides_topology for s in rt.probes.values())
        for endpoint in rt.state.endpoints:
            if only is not None and only != (rt.name, endpoint):
                continue
            this = by_member.get((rt.name, endpoint))
            # The name the member's own samples got in this scrape, so the two agree.
            member = this.member if this is not None else topology.name_of(endpoint)
            fetch = this.fetch if this is not None else None
            status_ok = topology.up(endpoint) or not topology_known
            metrics_ok = fetch is not None and fetch.error is None
            up.add_metric([rt.name, member], 1 if (status_ok and metrics_ok) else 0)
            if fetch is not None:
                scrape_duration.add_metric([rt.name, member], fetch.duration_seconds)
            # Every member gets every reason from the start, at 0: the first error is then an
            # increase that rate() sees, and a dashboard shows 0 rather than "no data".
            for reason in FETCH_ERROR_REASONS:
                count = counters.errors[(rt.name, endpoint, reason)]
                errors_total.add_metric([rt.name, member, reason], count)
            fetches = counters.fetches[(rt.name, endpoint)]
            fetches_total.add_metric([rt.name, member], fetches)
            for outcome in CLASH_OUTCOMES:
                count = counters.clashes[(rt.name, endpoint, outcome)]
                clashes_total.add_metric([rt.name, member, outcome], count)
    return [up, scrape_duration, errors_total, fetches_total, clashes_total]


# The names (and kinds) of the per-member families, taken from the families themselves: the
# scrape reserves them before it builds them (their values come from the members' answers).
MEMBER_FAMILY_KINDS = own_kinds(member_families([], [], MemberCounters()))
