"""Everything one watched cluster needs at run time: clients, state, probes, scheduler."""

from __future__ import annotations

import ssl
from collections.abc import Iterable, Mapping
from dataclasses import dataclass
from typing import TYPE_CHECKING

from etcd_inspector.cluster.membership import Membership
from etcd_inspector.cluster.state import ClusterState
from etcd_inspector.cluster.supervisor import Supervisor
from etcd_inspector.config import ClusterConfig, Config
from etcd_inspector.etcd.auth import AuthGate
from etcd_inspector.etcd.client import MemberClient, TLSFiles
from etcd_inspector.probes import REGISTRY
from etcd_inspector.probes.base import ProbeContext, ProbeSpec
from etcd_inspector.report.thresholds import DEFAULT as DEFAULT_THRESHOLDS
from etcd_inspector.report.thresholds import Thresholds, load_thresholds
from etcd_inspector.runtime.scheduler import ScheduledProbe, Scheduler

if TYPE_CHECKING:  # aiohttp loads when a fetcher is made: `snapshot` only needs member_clients
    from etcd_inspector.etcd.metrics_fetch import MetricsFetcher


def tls_files(cluster: ClusterConfig) -> TLSFiles:
    return TLSFiles(
        ca_file=cluster.tls.ca_file,
        cert_file=cluster.tls.cert_file,
        key_file=cluster.tls.key_file,
        server_name=cluster.tls.server_name,
    )


def auth_gate(cluster: ClusterConfig) -> AuthGate | None:
    """One login state per cluster, shared by all its members' clients (etcd/auth.py)."""
    if not (cluster.username and cluster.password_file):
        return None
    return AuthGate(cluster.username, password_file=cluster.password_file, cluster=cluster.name)


def member_client(cluster: ClusterConfig, url: str, gate: AuthGate | None) -> MemberClient:
    return MemberClient(
        url,
        tls=tls_files(cluster),
        credentials=gate,
        request_timeout=cluster.request_timeout,
        dial_timeout=cluster.dial_timeout,
    )


def member_clients(cluster: ClusterConfig, gate: AuthGate | None = None) -> list[MemberClient]:
    gate = gate or auth_gate(cluster)
    return [member_client(cluster, e.url, gate) for e in cluster.endpoints]


def metrics_ssl_context(
    cluster: ClusterConfig, metrics_urls: Iterable[str] | None = None
) -> ssl.SSLContext | None:
    """TLS for https metrics URLs (the configured ones unless given), built once rather than
    per scrape; None when every URL is plain http."""
    urls = [e.metrics_url for e in cluster.endpoints] if metrics_urls is None else metrics_urls
    if not any(u.startswith("https") for u in urls):
        return None
    from etcd_inspector.etcd.metrics_fetch import ssl_context

    tls = cluster.metrics_tls or cluster.tls
    return ssl_context(tls.ca_file, tls.cert_file, tls.key_file, tls.insecure_skip_verify)


def metrics_fetcher(cluster: ClusterConfig, flight_timeout: float = 10.0) -> MetricsFetcher:
    from etcd_inspector.etcd.metrics_fetch import MetricsFetcher

    return MetricsFetcher(
        targets={e.url: e.metrics_url for e in cluster.endpoints},
        ssl=metrics_ssl_context(cluster),
        server_name=(cluster.metrics_tls or cluster.tls).server_name,
        dial_timeout=cluster.dial_timeout,
        # A fetch for scrapes may serve the longest budget a scrape can have.
        flight_timeout=flight_timeout,
    )


@dataclass
class ClusterRuntime:
    config: ClusterConfig
    clients: Membership
    state: ClusterState
    scheduler: Scheduler
    metrics: MetricsFetcher
    # What its findings compare with: the mixin's values, with --mixin.values applied.
    thresholds: Thresholds = DEFAULT_THRESHOLDS

    @property
    def name(self) -> str:
        return self.config.name

    @property
    def probes(self) -> Mapping[str, ScheduledProbe]:
        return self.scheduler.probes

    async def close(self) -> None:
        await self.scheduler.stop()
        await self.clients.close()
        await self.metrics.close()


def build_runtime(
    cluster: ClusterConfig,
    config: Config,
    registry: Mapping[str, ProbeSpec] = REGISTRY,
    only: set[str] | None = None,
) -> ClusterRuntime:
    """`only` restricts the probes (the one-shot `inspect` picks its own set)."""
    gate = auth_gate(cluster)
    clients = Membership(
        cluster.name,
        member_clients(cluster, gate),
        {e.url: e.metrics_url for e in cluster.endpoints},
        lambda url: member_client(cluster, url, gate),
        discover=cluster.discover,
    )
    state = ClusterState(cluster.name, tuple(e.url for e in cluster.endpoints))
    scheduled: dict[str, ScheduledProbe] = {}
    settings = config.probes_for(cluster.name)  # the loader resolved every default
    for name, spec in registry.items():
        pc = settings[name]
        if (only is None and not pc.enabled) or (only is not None and name not in only):
            continue
        probe = spec.build(pc.options)
        scheduled[name] = ScheduledProbe(
            spec=spec, probe=probe, interval=pc.interval, timeout=pc.timeout + probe.waits_seconds()
        )
    fetcher = metrics_fetcher(cluster, config.scrape.timeout)

    def follow_membership() -> None:
        fetcher.targets = clients.metrics_targets()
        if fetcher.ssl is None:  # a discovered member serves /metrics over https
            fetcher.ssl = metrics_ssl_context(cluster, fetcher.targets.values())

    clients.on_change.append(follow_membership)
    supervisor = Supervisor(cluster.name)
    ctx = ProbeContext(
        cluster=cluster.name,
        members=clients,
        request_timeout=cluster.request_timeout,
        state=state,
        key_labels=config.key_labels,
        sensitive_prefixes=config.sensitive_prefixes,
        metrics=fetcher,
        supervisor=supervisor,
    )
    scheduler = Scheduler(state, ctx, scheduled, cluster.local_member, supervisor)
    thresholds = load_thresholds(config.mixin_values)
    return ClusterRuntime(cluster, clients, state, scheduler, fetcher, thresholds)
