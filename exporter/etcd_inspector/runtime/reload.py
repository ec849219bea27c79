"""Configuration changes without a restart: the set of running clusters and the reload of it.

`RuntimeSet.apply_clusters(new_config)` is the one place the running clusters change: added
clusters start, removed ones stop (and, since every scrape is built from the running set, their
series disappear), a cluster whose settings or probe settings changed is restarted with them, so
its next round uses the new options. Anything that filters the configured clusters (sharding)
filters the Config it passes here.

`ConfigReloader` is what SIGHUP and `POST /-/reload` call, as in Prometheus: it re-reads the
configuration; a bad file is refused with one log line and the running configuration stays.
One reload runs at a time, in its own task, so a client that hangs up or a shutdown cannot
leave it half applied; `close()` waits for it (every step is bounded).
"""

from __future__ import annotations

import asyncio
import logging
import time
from collections.abc import Callable, Iterable
from dataclasses import dataclass

from prometheus_client.core import GaugeMetricFamily
from prometheus_client.metrics_core import Metric
from prometheus_client.registry import Collector

from etcd_inspector.config import ClusterConfig, Config, ConfigError
from etcd_inspector.errors import UsageError
from etcd_inspector.runtime.runtime import ClusterRuntime, build_runtime
from etcd_inspector.sharding import clusters_of_shard

log = logging.getLogger(__name__)

# Bounds: closing one cluster's runtime (frozen members included), reading the files.
CLOSE_TIMEOUT_SECONDS = 10.0
LOAD_TIMEOUT_SECONDS = 10.0


@dataclass(frozen=True)
class ClusterChanges:
    added: tuple[str, ...] = ()
    removed: tuple[str, ...] = ()
    restarted: tuple[str, ...] = ()


def _cluster_settings(config: Config, cluster: ClusterConfig) -> tuple[object, ...]:
    """Everything a cluster's runtime is built from: equal settings, nothing to restart."""
    return (
        cluster,
        dict(config.probes_for(cluster.name)),
        config.key_labels,
        config.sensitive_prefixes,
        config.mixin_values,
        config.scrape.timeout,
    )


async def close_runtime(rt: ClusterRuntime) -> None:
    try:
        async with asyncio.timeout(CLOSE_TIMEOUT_SECONDS):
            await rt.close()
    except TimeoutError:
        log.warning("cluster runtime did not close in time", extra={"cluster": rt.name})


def _share(config: Config) -> tuple[ClusterConfig, ...]:
    """The clusters this replica runs: its shard's (all of them when not sharded)."""
    return clusters_of_shard(config.clusters, config.shard.index, config.shard.total)


class RuntimeSet:
    """The running clusters. `runtimes` is one list, changed in place, that the web app reads."""

    def __init__(
        self, config: Config, build: Callable[[ClusterConfig, Config], ClusterRuntime] | None = None
    ) -> None:
        self.config = config
        self.runtimes: list[ClusterRuntime] = []
        self._build = build or build_runtime
        self._started = self._ready = False

    @property
    def ready(self) -> bool:
        """Once every cluster of the start has had its first round; a cluster added or
        restarted by a reload does not make the exporter unready again."""
        if self._started and not self._ready:
            self._ready = all(rt.scheduler.first_round.is_set() for rt in self.runtimes)
        return self._ready

    def start(self) -> None:
        for cluster in _share(self.config):
            self._start(cluster, self.config)
        self._started = True

    def _start(self, cluster: ClusterConfig, config: Config) -> None:
        rt = self._build(cluster, config)
        self.runtimes.append(rt)
        rt.scheduler.start()

    async def apply_clusters(self, new: Config) -> ClusterChanges:
        """Make the running clusters those of `new` (see the module's docstring)."""
        old_config, old = self.config, {rt.name: rt for rt in self.runtimes}
        wanted = {c.name: c for c in _share(new)}
        removed = [name for name in old if name not in wanted]
        restarted = [
            name
            for name, cluster in wanted.items()
            if name in old
            and _cluster_settings(old_config, old[name].config) != _cluster_settings(new, cluster)
        ]
        added = [name for name in wanted if name not in old]
        stopping = [old[name] for name in (*removed, *restarted)]
        # Out of the scraped set first, so no scrape reads a runtime being closed.
        self.runtimes[:] = [rt for rt in self.runtimes if rt not in stopping]
        self.config = new
        await asyncio.gather(*(close_runtime(rt) for rt in stopping))
        for name in wanted:
            if name in added or name in restarted:
                self._start(wanted[name], new)
        order = list(wanted)
        self.runtimes.sort(key=lambda rt: order.index(rt.name))
        return ClusterChanges(tuple(added), tuple(removed), tuple(restarted))

    async def close(self) -> None:
        stopping, self.runtimes[:] = list(self.runtimes), []
        await asyncio.gather(*(close_runtime(rt) for rt in stopping))


class ReloadStatus(Collector):
    """Prometheus' own names for the outcome of the last reload."""

    def __init__(self) -> None:
        self.successful = True
        self.success_timestamp = time.time()  # the start counts as a successful load

    def collect(self) -> Iterable[Metric]:
        yield GaugeMetricFamily(
            "etcd_inspector_config_last_reload_successful",
            "Whether the last configuration reload attempt was successful.",
            value=1.0 if self.successful else 0.0,
        )
        yield GaugeMetricFamily(
            "etcd_inspector_config_last_reload_success_timestamp_seconds",
            "Timestamp of the last successful configuration reload.",
            value=self.success_timestamp,
        )


@dataclass(frozen=True)
class ReloadResult:
    ok: bool
    error: str = ""
    changes: ClusterChanges = ClusterChanges()


def _one_line(err: Exception) -> str:
    if isinstance(err, ConfigError):
        return f"{err.source}: " + "; ".join(err.errors)
    return str(err) or type(err).__name__


class ConfigReloader:
    def __init__(
        self, runtimes: RuntimeSet, load: Callable[[], Config], status: ReloadStatus
    ) -> None:
        self.runtimes = runtimes
        self.load = load
        self.status = status
        self._lock = asyncio.Lock()  # one reload at a time, in the order asked
        self._tasks: set[asyncio.Task[ReloadResult]] = set()
        self._closed = False

    def _start(self) -> asyncio.Task[ReloadResult]:
        task = asyncio.get_running_loop().create_task(self._reload())
        self._tasks.add(task)
        task.add_done_callback(self._tasks.discard)
        return task

    def trigger(self) -> None:
        """SIGHUP: reload in the background (the outcome is logged and in the gauges)."""
        if not self._closed:
            self._start()

    async def reload(self) -> ReloadResult:
        """POST /-/reload: reload and say how it went."""
        if self._closed:
            return ReloadResult(False, "shutting down")
        # Shielded: a client that hangs up does not cancel a reload half applied.
        return await asyncio.shield(self._start())

    async def _reload(self) -> ReloadResult:
        async with self._lock:
            if self._closed:
                return ReloadResult(False, "shutting down")
            return await self._reload_now()

    async def _reload_now(self) -> ReloadResult:
        try:
            async with asyncio.timeout(LOAD_TIMEOUT_SECONDS):
                new = await asyncio.to_thread(self.load)
        except (ConfigError, UsageError, OSError, TimeoutError) as err:
            self.status.successful = False
            message = _one_line(err) if not isinstance(err, TimeoutError) else "timed out"
            log.error("configuration reload refused; the running one stays",
                      extra={"err": message})  # fmt: skip
            return ReloadResult(False, message)
        if self._closed:
            return ReloadResult(False, "shutting down")
        if new.web != self.runtimes.config.web or new.log_level != self.runtimes.config.log_level:
            log.warning("web and log settings apply at the next restart only")
        changes = await self.runtimes.apply_clusters(new)
        self.status.successful = True
        self.status.success_timestamp = time.time()
        log.info(
            "configuration reloaded",
            extra={"added": ",".join(changes.added), "removed": ",".join(changes.removed),
                   "restarted": ",".join(changes.restarted)},
        )  # fmt: skip
        return ReloadResult(True, changes=changes)

    async def close(self) -> None:
        """Before the runtimes close: no new reload, and the running one finishes (bounded)."""
        self._closed = True
        pending = list(self._tasks)
        if pending:
            _done, late = await asyncio.wait(
                pending, timeout=LOAD_TIMEOUT_SECONDS + CLOSE_TIMEOUT_SECONDS + 5
            )
            for task in late:
                task.cancel()
            await asyncio.gather(*late, return_exceptions=True)
