"""What every probe is: one module, one class, one signature.

A probe is built once per cluster (it may keep state between runs, e.g. a watch), `run()` is
called by the scheduler in the background with a deadline and returns a frozen result, and
`metrics()` turns that result into metric families. `metrics()` is pure: it runs inside the
scrape and must never do I/O.
"""

from __future__ import annotations

import abc
from collections.abc import Callable, Iterable, Sequence
from dataclasses import dataclass, field
from typing import TYPE_CHECKING, Any, Generic, TypeVar

from prometheus_client.metrics_core import Metric

if TYPE_CHECKING:
    from etcd_inspector.cluster.state import ClusterState
    from etcd_inspector.config import ClusterConfig
    from etcd_inspector.etcd.client import MemberClient

ResultT = TypeVar("ResultT")
OptionsT = TypeVar("OptionsT")

CACHED = "Cached: computed by a background probe, not at scrape time."


@dataclass(frozen=True)
class NoOptions:
    pass


@dataclass(frozen=True)
class ProbeContext:
    cluster: ClusterConfig
    members: Sequence[MemberClient]
    state: ClusterState
    key_labels: str = "full"
    # Publishes an intermediate result (e.g. scan progress) that scrapes show while run() works.
    progress: Callable[[Any], None] = field(default=lambda _r: None)

    def member_name(self, endpoint: str) -> str:
        return self.state.member_name(endpoint)


class Probe(abc.ABC, Generic[OptionsT, ResultT]):
    def __init__(self, options: OptionsT) -> None:
        self.options = options

    @abc.abstractmethod
    async def run(self, ctx: ProbeContext) -> ResultT: ...

    @abc.abstractmethod
    def metrics(self, cluster: str, result: ResultT) -> Iterable[Metric]: ...

    def progress_metrics(self, cluster: str, progress: Any) -> Iterable[Metric]:
        """Metrics for an intermediate result published with ctx.progress()."""
        return ()

    async def close(self) -> None:
        """Release what the probe holds between runs (watch streams, tasks)."""


@dataclass(frozen=True)
class ProbeSpec:
    name: str
    probe_type: Callable[[Any], Probe[Any, Any]]
    description: str
    options_type: type = NoOptions
    default_enabled: bool = True
    default_interval: float = 30.0
    default_timeout: float = 20.0
    # In sidecar mode only the instance whose local member leads runs cluster-wide probes.
    cluster_wide: bool = False
