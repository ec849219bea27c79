"""What every probe is: one module (or sub-package), one class, one signature.

A probe is built once per cluster (it may keep state between runs, e.g. a watch). The scheduler
calls `run()` in the background with a deadline; it returns a frozen result or raises (a
ProbeError with an ErrorKind, an EtcdError, or TimeoutError). Everything else is pure and reads
only that result:

  metrics()       metric families for /metrics (runs inside the scrape: never any I/O)
  findings()      what an operator should act on (inspect's exit code, the status page)
  report_json()   the probe's keys in the cluster's JSON document (inspect, /api/v1/status)
  report_text()   the probe's section of inspect's text report

Its ProbeSpec declares the rest: `view`, its sections of the status page (report/view.py, read
from the JSON it wrote); `checks`, each kind of finding with the mixin alert that fires on the
same condition (the finding's runbook link and unit derive from it) and the config.libsonnet
thresholds both compare with; `stale_seconds`, its entry in the mixin's probe_stale_seconds.

So adding a probe is one module plus one line in probes/__init__.py: the scheduler, the scrape
path, inspect, the report, the status page and the CLI work from the ProbeSpec and these methods
alone (tests/test_thresholds.py checks the mixin has the alerts, runbooks and staleness).
"""

from __future__ import annotations

import abc
from collections.abc import Awaitable, Callable, Iterable, Mapping, Sequence
from dataclasses import dataclass, field
from enum import Enum
from typing import TYPE_CHECKING, Any, Generic, TypeVar

from prometheus_client.metrics_core import Metric

from etcd_inspector.cluster.members import fallback_name
from etcd_inspector.cluster.own_load import OwnLoad
from etcd_inspector.config.fields import Section
from etcd_inspector.keyspace.keys import DEFAULT_SENSITIVE_PREFIXES
from etcd_inspector.report.findings import Finding
from etcd_inspector.report.thresholds import DEFAULT as DEFAULT_THRESHOLDS
from etcd_inspector.report.thresholds import Thresholds
from etcd_inspector.report.view import Format, View, no_view

if TYPE_CHECKING:
    from etcd_inspector.cluster.state import ClusterState
    from etcd_inspector.cluster.supervisor import Supervisor
    from etcd_inspector.cluster.topology import Topology
    from etcd_inspector.etcd.interfaces import Member
    from etcd_inspector.etcd.metrics_fetch import MetricsFetcher

ResultT = TypeVar("ResultT")
OptionsT = TypeVar("OptionsT")

CACHED = "Cached: computed by a background probe, not at scrape time."


class NoOptions(Section):
    pass


class InspectMode(Enum):
    ONCE = "once"  # `inspect` runs it once
    WATCH = "watch"  # `inspect --watch D` runs it twice, D apart (a probe that observes over time)
    NEVER = "never"


@dataclass(frozen=True)
class ProbeFlag:
    """A command-line flag that sets one option of the probe, e.g. --scan.keys-per-second."""

    flag: str
    option: str
    type: Callable[[str], Any]
    metavar: str
    help: str
    # Given more than once, it sets a list option (--backup.location A --backup.location B).
    repeatable: bool = False


def _no_progress(_progress: object) -> None:
    return None


@dataclass(frozen=True)
class ProbeContext:
    """What a run may use besides the probe's own options: no other probe's settings."""

    cluster: str  # the cluster's name
    members: Sequence[Member]
    state: ClusterState
    # The cluster's deadline for one etcd request (clusters[].request_timeout).
    request_timeout: float = 5.0
    key_labels: str = "full"
    # Keys under these prefixes are labelled by hash even with key_labels `full` (keys.py).
    sensitive_prefixes: tuple[str, ...] = DEFAULT_SENSITIVE_PREFIXES
    # Publishes an intermediate result (e.g. scan progress) that scrapes show while run() works.
    progress: Callable[[Any], None] = field(default=_no_progress)
    # The cluster's one fetcher of members' /metrics (shared with the scrape path).
    metrics: MetricsFetcher | None = None
    # Keeps a probe's long-running tasks (a watch) alive; None outside a runtime.
    supervisor: Supervisor | None = None
    # `inspect` only: returns once the cluster's other probes have ended, so that a probe
    # measuring over a window (Probe.waits_seconds) makes its first window span the inspection.
    others_done: Callable[[], Awaitable[object]] | None = None
    # The cluster's heavy requests of our own (HashKV), shared by its probes: the scan's pacer
    # does not count slowdowns they caused as the cluster's (cluster/own_load.py).
    own_load: OwnLoad = field(default_factory=OwnLoad)

    @property
    def topology(self) -> Topology:
        return self.state.topology

    def member_name(self, endpoint: str) -> str:
        return self.state.member_name(endpoint)


@dataclass(frozen=True)
class ReportContext:
    """What a probe's report methods may know besides its result."""

    cluster: str
    endpoints: tuple[str, ...]
    member_names: Mapping[str, str]
    watch_seconds: float | None = None
    inspected: bool = True
    # The exporter's view: probes that observe over time (a watch) have been watching all along,
    # so they report without a --watch window.
    live: bool = False
    # The mixin's values (with the operator's --mixin.values) that findings compare with.
    thresholds: Thresholds = DEFAULT_THRESHOLDS

    def member(self, endpoint: str) -> str:
        return self.member_names.get(endpoint) or fallback_name(endpoint)


class Probe(abc.ABC, Generic[OptionsT, ResultT]):
    def __init__(self, options: OptionsT) -> None:
        self.options = options

    @abc.abstractmethod
    async def run(self, ctx: ProbeContext) -> ResultT: ...

    @abc.abstractmethod
    def metrics(self, cluster: str, result: ResultT) -> Iterable[Metric]:
        """The families of one result, a function of `cluster` and `result` alone (no clock, no
        live state): the scrape encodes them once per published outcome and serves that text
        until the next one (web/own_text.py, OutcomeCache)."""

    def progress_metrics(self, cluster: str, progress: Any) -> Iterable[Metric]:
        """Metrics for an intermediate result published with ctx.progress(). While the run is in
        progress, these families stand for metrics()' families of the same names."""
        return ()

    def progress_text(self, progress: Any, now: float) -> str | None:
        """One line for inspect's progress display, from a published intermediate result."""
        return None

    def findings(self, result: ResultT, rc: ReportContext) -> Iterable[Finding]:
        return ()

    def report_json(self, result: ResultT | None, rc: ReportContext) -> dict[str, Any]:
        """This probe's keys in a cluster's JSON document; with `result` None (not run, failed)
        every key is still there, as null."""
        return {}

    def report_text(self, result: ResultT | None, rc: ReportContext) -> list[str]:
        """This probe's section of the text report. The report calls it with a result, except
        for the topology probe of a cluster that did not answer (it then shows what it knows)."""
        return []

    def waits_seconds(self) -> float:
        """Seconds a run spends waiting by design (a measurement window), on top of its
        configured timeout (runtime.py adds them). A probe that waits is given
        ProbeContext.others_done in `inspect`, and is not among the probes it waits for."""
        return 0.0

    async def close(self) -> None:
        """Release what the probe holds between runs (watch streams, tasks)."""


@dataclass(frozen=True)
class Check:
    """A kind of finding (Finding.check) and the mixin alert that fires on the same condition."""

    kind: str
    alert: str  # its name in rules/alerts.libsonnet; the runbook is its heading in docs/mixin.md
    unit: Format = Format.NUMBER  # of the finding's value and threshold
    # The config.libsonnet names the alert compares with (and the finding, report/thresholds.py).
    thresholds: tuple[str, ...] = ()


@dataclass(frozen=True)
class ProbeSpec:
    name: str
    probe_type: Callable[[Any], Probe[Any, Any]]
    description: str
    options_type: type[Section] = NoOptions
    default_enabled: bool = True
    default_interval: float = 30.0
    default_timeout: float = 20.0
    # In sidecar mode only the instance whose local member leads runs cluster-wide probes.
    cluster_wide: bool = False
    # Its result is the cluster's Topology: it runs first, and the others wait for its first run.
    provides_topology: bool = False
    inspect: InspectMode = InspectMode.ONCE
    # The heading of its text section, used when there is no result to show ("Quota: failed").
    title: str = ""
    flags: tuple[ProbeFlag, ...] = ()
    # Its sections of the status page, from the cluster's JSON document (report/view.py).
    view: View = no_view
    # The kinds of finding it makes, each with its alert.
    checks: tuple[Check, ...] = ()
    # Seconds without a success before EtcdInspectorProbeStale fires: its entry in
    # config.libsonnet's probe_stale_seconds (0: none declared, which a test rejects).
    stale_seconds: float = 0.0

    def default_options(self) -> Any:
        return self.options_type()

    def build(self, options: Any = None) -> Probe[Any, Any]:
        return self.probe_type(self.default_options() if options is None else options)
