"""RuntimeSet.apply_clusters and ConfigReloader without etcd: which clusters start, stop or
restart, the readiness latch, and a refused file (tests/test_reload.py proves the same on a
real cluster through SIGHUP and POST /-/reload)."""

from __future__ import annotations

import asyncio
import logging
from dataclasses import dataclass, field
from typing import Any

import pytest

from etcd_inspector.config import ClusterConfig, Config, ConfigError, parse_config
from etcd_inspector.probes import REGISTRY
from etcd_inspector.runtime.reload import ConfigReloader, ReloadStatus, RuntimeSet


@dataclass
class FakeScheduler:
    first_round: asyncio.Event = field(default_factory=asyncio.Event)
    started: bool = False

    def start(self) -> None:
        self.started = True


@dataclass
class FakeRuntime:
    config: ClusterConfig
    scheduler: FakeScheduler = field(default_factory=FakeScheduler)
    closed: bool = False

    @property
    def name(self) -> str:
        return self.config.name

    async def close(self) -> None:
        self.closed = True


def config(*names: str, bigvalue_top_n: int = 10) -> Config:
    raw = {
        "inspection": {"probes": {"bigvalue": {"top_n": bigvalue_top_n}}},
        "clusters": [{"name": n, "endpoints": [f"http://{n}.example:2379"]} for n in names],
    }
    return parse_config(raw, REGISTRY)


def runtime_set(initial: Config) -> tuple[RuntimeSet, list[FakeRuntime]]:
    built: list[FakeRuntime] = []

    def build(cluster: ClusterConfig, _config: Config) -> Any:
        rt = FakeRuntime(cluster)
        built.append(rt)
        return rt

    running = RuntimeSet(initial, build=build)
    running.start()
    return running, built


async def test_added_start_removed_stop_unchanged_stay() -> None:
    running, built = runtime_set(config("a", "b"))
    a, b = built
    changes = await running.apply_clusters(config("b", "c"))
    assert (changes.added, changes.removed, changes.restarted) == (("c",), ("a",), ())
    assert [rt.name for rt in running.runtimes] == ["b", "c"]
    assert a.closed and not b.closed
    assert running.runtimes[0] is b  # untouched, not rebuilt
    assert running.runtimes[1].scheduler.started  # type: ignore[attr-defined]


async def test_changed_probe_options_restart_the_cluster() -> None:
    running, built = runtime_set(config("a", "b"))
    changes = await running.apply_clusters(config("a", "b", bigvalue_top_n=20))
    assert set(changes.restarted) == {"a", "b"}
    assert all(rt.closed for rt in built[:2])
    assert [rt.name for rt in running.runtimes] == ["a", "b"]
    assert running.config.probes_for("a")["bigvalue"].options.top_n == 20


async def test_ready_once_the_first_clusters_had_a_round() -> None:
    running, built = runtime_set(config("a"))
    assert not running.ready
    built[0].scheduler.first_round.set()
    assert running.ready
    await running.apply_clusters(config("a", "b"))  # b has had no round yet
    assert running.ready


async def test_a_refused_file_changes_nothing(caplog: pytest.LogCaptureFixture) -> None:
    running, built = runtime_set(config("a"))
    status = ReloadStatus()
    loaded_at = status.success_timestamp

    def bad() -> Config:
        raise ConfigError(["clusters[0].name: missing", "top level: unknown key 'x'"], "c.yml")

    with caplog.at_level(logging.ERROR):
        result = await ConfigReloader(running, bad, status).reload()
    assert not result.ok
    assert result.error == "c.yml: clusters[0].name: missing; top level: unknown key 'x'"
    assert [r.getMessage() for r in caplog.records] == [
        "configuration reload refused; the running one stays"
    ]
    assert (status.successful, status.success_timestamp) == (False, loaded_at)
    assert running.runtimes == built and not built[0].closed

    result = await ConfigReloader(running, lambda: config("a", "b"), status).reload()
    assert result.ok and result.changes.added == ("b",)
    assert status.successful and status.success_timestamp > loaded_at


async def test_no_reload_after_close() -> None:
    running, _ = runtime_set(config("a"))
    reloader = ConfigReloader(running, lambda: config("a", "b"), ReloadStatus())
    await reloader.close()
    assert (await reloader.reload()).error == "shutting down"
    assert [rt.name for rt in running.runtimes] == ["a"]


def test_scrape_counters_of_a_removed_cluster_are_forgotten() -> None:
    """A reload that removes a cluster leaves no per-member counts behind (memory follows the
    configuration); the members still configured keep theirs."""
    from etcd_inspector.web.families import MemberCounters

    counters = MemberCounters()
    for cluster in ("kept", "gone"):
        counters.errors[(cluster, "https://m1:2379", "timeout")] += 2
        counters.fetches[(cluster, "https://m1:2379")] += 5
        counters.clashes[(cluster, "https://m1:2379", "merged")] += 1
    counters.retain({("kept", "https://m1:2379")})
    assert dict(counters.errors) == {("kept", "https://m1:2379", "timeout"): 2}
    assert dict(counters.fetches) == {("kept", "https://m1:2379"): 5}
    assert dict(counters.clashes) == {("kept", "https://m1:2379", "merged"): 1}
