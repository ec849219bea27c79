"""Everything one watched cluster needs at run time: clients, state, probes, scheduler."""

from __future__ import annotations

import contextlib
import ssl
from collections.abc import Mapping
from dataclasses import dataclass

from etcd_inspector.cluster.scheduler import ScheduledProbe, Scheduler
from etcd_inspector.cluster.state import ClusterState
from etcd_inspector.cluster.supervisor import Supervisor
from etcd_inspector.config import ClusterConfig, Config, ProbeConfig
from etcd_inspector.etcd.client import Credentials, MemberClient, TLSFiles
from etcd_inspector.etcd.metrics_fetch import MetricsFetcher, ssl_context
from etcd_inspector.probes import REGISTRY
from etcd_inspector.probes.base import ProbeContext, ProbeSpec


def read_password(path: str) -> str:
    with open(path, encoding="utf-8") as f:
        # A trailing newline is an editor's, not part of the password.
        return f.read().rstrip("\r\n")


def member_clients(cluster: ClusterConfig) -> list[MemberClient]:
    tls = TLSFiles(
        ca_file=cluster.tls.ca_file,
        cert_file=cluster.tls.cert_file,
        key_file=cluster.tls.key_file,
        server_name=cluster.tls.server_name,
    )
    creds = (
        Credentials(cluster.username, read_password(cluster.password_file))
        if cluster.username and cluster.password_file
        else None
    )
    return [
        MemberClient(e.url, tls=tls, credentials=creds, request_timeout=cluster.request_timeout)
        for e in cluster.endpoints
    ]


def metrics_ssl_context(cluster: ClusterConfig) -> ssl.SSLContext | None:
    """TLS for https metrics URLs, built once: the files are read at start, not per scrape."""
    if not any(e.metrics_url.startswith("https") for e in cluster.endpoints):
        return None
    tls = cluster.metrics_tls or cluster.tls
    return ssl_context(tls.ca_file, tls.cert_file, tls.key_file, tls.insecure_skip_verify)


def metrics_fetcher(cluster: ClusterConfig, flight_timeout: float = 10.0) -> MetricsFetcher:
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
    clients: list[MemberClient]
    state: ClusterState
    scheduler: Scheduler
    metrics: MetricsFetcher

    @property
    def name(self) -> str:
        return self.config.name

    @property
    def probes(self) -> Mapping[str, ScheduledProbe]:
        return self.scheduler.probes

    async def close(self) -> None:
        await self.scheduler.stop()
        for client in self.clients:
            with contextlib.suppress(Exception):
                await client.close()
        await self.metrics.close()


def build_runtime(
    cluster: ClusterConfig,
    config: Config,
    registry: Mapping[str, ProbeSpec] = REGISTRY,
    only: set[str] | None = None,
) -> ClusterRuntime:
    """`only` restricts the probes (the one-shot `inspect` picks its own set)."""
    clients = member_clients(cluster)
    state = ClusterState(cluster.name, tuple(e.url for e in cluster.endpoints))
    scheduled: dict[str, ScheduledProbe] = {}
    for name, spec in registry.items():
        pc: ProbeConfig | None = config.probes.get(name)
        enabled = pc.enabled if pc is not None else spec.default_enabled
        if (only is None and not enabled) or (only is not None and name not in only):
            continue
        scheduled[name] = ScheduledProbe(
            spec=spec,
            probe=spec.build(pc.options if pc is not None else None),
            interval=pc.interval if pc is not None else spec.default_interval,
            timeout=pc.timeout if pc is not None else spec.default_timeout,
        )
    fetcher = metrics_fetcher(cluster, config.scrape.timeout)
    supervisor = Supervisor(cluster.name)
    ctx = ProbeContext(
        cluster=cluster,
        members=clients,
        state=state,
        key_labels=config.key_labels,
        metrics=fetcher,
        supervisor=supervisor,
    )
    scheduler = Scheduler(state, ctx, scheduled, cluster.local_member, supervisor)
    return ClusterRuntime(cluster, clients, state, scheduler, fetcher)
