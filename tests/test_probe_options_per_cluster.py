"""Probe options per cluster: `clusters[].probes` overrides `inspection.probes` per probe and
per key, for that cluster only, and the probes the runtime builds carry the result. A probe's
context names its cluster; it holds no other probe's settings. No etcd needed: the runtimes
are built, not started."""

from __future__ import annotations

import asyncio
import dataclasses
from typing import Any

import pytest

from etcd_inspector.config import ClusterConfig, Config, ConfigError, parse_config
from etcd_inspector.inspect import cluster_probes, selected_probes
from etcd_inspector.probes import REGISTRY
from etcd_inspector.probes.base import ProbeContext
from etcd_inspector.runtime.runtime import ClusterRuntime, build_runtime

A = {"name": "a", "endpoints": ["http://127.0.0.1:2379"], "request_timeout": "7s"}
B = {"name": "b", "endpoints": ["http://127.0.0.1:2479"]}


def config(**raw: Any) -> Config:
    return parse_config(raw, REGISTRY)


def built(cfg: Config) -> dict[str, ClusterRuntime]:
    """The runtimes as `run` builds them (closed again at once)."""

    async def build() -> dict[str, ClusterRuntime]:
        runtimes = {c.name: build_runtime(c, cfg) for c in cfg.clusters}
        for rt in runtimes.values():
            await rt.close()
        return runtimes

    return asyncio.run(build())


def test_a_clusters_own_option_wins_for_that_cluster_only() -> None:
    cfg = config(
        inspection={"probes": {"bigvalue": {"top_n": 5, "page_size": 500, "interval": "20m"}}},
        clusters=[{**A, "probes": {"bigvalue": {"top_n": 20, "interval": "1h"}}}, B],
    )
    runtimes = built(cfg)
    a, b = runtimes["a"].probes["bigvalue"], runtimes["b"].probes["bigvalue"]
    # Per key: a's top_n and interval are its own, its page_size is the global one.
    assert (a.probe.options.top_n, a.probe.options.page_size, a.interval) == (20, 500, 3600.0)
    assert (b.probe.options.top_n, b.probe.options.page_size, b.interval) == (5, 500, 1200.0)
    # The timeout is resolved once, by the loader: the spec's, capped by neither interval.
    spec = REGISTRY["bigvalue"]
    assert a.timeout == b.timeout == spec.default_timeout
    assert cfg.probes["bigvalue"].options.top_n == 5  # the global settings are unchanged
    assert cfg.probes_for("b") is cfg.probes


def test_a_probe_enabled_for_one_cluster_only() -> None:
    cfg = config(
        inspection={"probes": {"hotkeys": {"enabled": False}}},
        clusters=[{**A, "probes": {"hotkeys": {"enabled": True, "top_n": 3}}}, B],
    )
    runtimes = built(cfg)
    assert runtimes["a"].probes["hotkeys"].probe.options.top_n == 3
    assert "hotkeys" not in runtimes["b"].probes


def test_inspect_runs_a_probe_only_where_its_cluster_enables_it() -> None:
    """`inspect` without --probes follows each cluster's own `enabled` (it used to run a probe on
    every cluster as soon as one enabled it); --probes names them for every cluster."""
    cfg = config(clusters=[{**A, "probes": {"consistency": {"enabled": False}}}, B])
    wanted, _ = selected_probes(cfg, None, None)
    assert "consistency" in wanted
    assert "consistency" not in cluster_probes(cfg, "a", wanted, None)
    assert "consistency" in cluster_probes(cfg, "b", wanted, None)
    assert "status" in cluster_probes(cfg, "a", wanted, None)  # the topology always runs
    named, _ = selected_probes(cfg, None, ["consistency"])
    assert cluster_probes(cfg, "a", named, ["consistency"]) == {"status", "consistency"}


def test_backup_locations_per_cluster_reach_the_built_probe() -> None:
    cfg = config(
        inspection={"probes": {"backup": {"max_age": "2h", "compare_keys": False}}},
        clusters=[{**A, "probes": {"backup": {"locations": ["/backups/a"]}}}, B],
    )
    runtimes = built(cfg)
    a, b = runtimes["a"].probes["backup"].probe, runtimes["b"].probes["backup"].probe
    assert (a.options.locations, a.options.max_age, a.options.compare_keys) == (
        ("/backups/a",), 7200.0, False,
    )  # fmt: skip
    assert (b.options.locations, b.options.max_age) == ((), 7200.0)


def test_the_context_names_the_cluster_and_nothing_else_of_its_config() -> None:
    cfg = config(clusters=[A])
    ctx = built(cfg)["a"].scheduler.context_for("quota")
    assert (ctx.cluster, ctx.request_timeout) == ("a", 7.0)
    # No field holds a configuration object (another probe's options would be a step away).
    types = [str(f.type) for f in dataclasses.fields(ProbeContext)]
    assert not [t for t in types if "Config" in t], types
    assert not any(isinstance(getattr(ctx, f.name), ClusterConfig | Config)
                   for f in dataclasses.fields(ProbeContext))  # fmt: skip


@pytest.mark.parametrize(
    ("own", "expected"),
    [
        ({"bigvalue": {"top_n": "5"}},
         "clusters[0].probes.bigvalue.top_n: expected an integer, got string"),
        ({"bigvalue": {"intreval": "1m"}},
         "clusters[0].probes.bigvalue: unknown key 'intreval' (did you mean 'interval'?)"),
        ({"bigvalues": {}},
         "clusters[0].probes: unknown probe 'bigvalues' (did you mean 'bigvalue'?); known "
         "probes: backup, bigvalue, certs, consistency, hotkeys, leases, performance, quota, "
         "status"),
        ({"backup": {"max_age": 60}},
         "clusters[0].probes.backup.max_age: '60' has no unit; write e.g. '60s'"),
    ],
)  # fmt: skip
def test_errors_in_a_clusters_probes_name_where_they_are(own: dict, expected: str) -> None:
    with pytest.raises(ConfigError) as info:
        config(clusters=[{**A, "probes": own}])
    assert info.value.errors == [expected]


def test_a_merge_that_breaks_a_probes_own_check_is_reported_on_the_cluster() -> None:
    # Each section is valid alone; merged, the cluster's capacity is below the global top_n.
    with pytest.raises(ConfigError) as info:
        config(
            inspection={"probes": {"hotkeys": {"top_n": 50, "capacity": 100}}},
            clusters=[B, {**A, "probes": {"hotkeys": {"capacity": 20}}}],
        )
    assert info.value.errors == ["clusters[1].probes.hotkeys: capacity must be at least top_n"]
