"""Sidecar mode against a real cluster: one inspector beside each member, and only the one
beside the leader runs (and exports) the cluster-wide probes, also after leadership moves."""

import asyncio
import time

import pytest

from etcd_inspector.config import parse_config
from etcd_inspector.probes import REGISTRY
from etcd_inspector.runtime.runtime import build_runtime

pytestmark = pytest.mark.etcd


def sidecar_runtime(cluster, local_endpoint):
    raw = {
        "inspection": {
            "interval": "500ms",
            "probes": {name: {"enabled": name in ("status", "consistency")} for name in REGISTRY},
        },
        "clusters": [
            {
                "name": "side",
                "endpoints": cluster.endpoints,
                "local_member": local_endpoint,
                "request_timeout": "1s",
            }
        ],
    }
    config = parse_config(raw, REGISTRY)
    return build_runtime(config.clusters[0], config)


def leader_endpoint(rt) -> str | None:
    status = rt.state.topology
    for m in status.members if status else ():
        if m.status is not None and m.status.leader_id == m.status.member_id:
            return m.endpoint
    return None


async def wait_for(predicate, timeout=15.0):
    deadline = time.monotonic() + timeout
    while time.monotonic() < deadline:
        if predicate():
            return
        await asyncio.sleep(0.1)
    raise AssertionError("condition not reached in time")


def running_consistency(runtimes):
    return {rt.config.local_member for rt in runtimes if "consistency" in rt.state.outcomes}


async def test_only_the_leaders_sidecar_runs_cluster_wide_probes_and_hands_over(etcd_cluster):
    runtimes = [sidecar_runtime(etcd_cluster, ep) for ep in etcd_cluster.endpoints]
    try:
        for rt in runtimes:
            rt.scheduler.start()
        await wait_for(lambda: all(leader_endpoint(rt) for rt in runtimes))
        leader = leader_endpoint(runtimes[0])
        await wait_for(lambda: running_consistency(runtimes) == {leader})
        # status is not cluster-wide: every sidecar runs it
        assert all("status" in rt.state.outcomes for rt in runtimes)

        old = next(m for m in etcd_cluster.members if m.client_url == leader)
        old.stop()  # leadership moves to one of the two others
        others = [rt for rt in runtimes if rt.config.local_member != leader]
        await wait_for(
            lambda: (
                leader_endpoint(others[0]) not in (None, leader)
                and leader_endpoint(others[0]) == leader_endpoint(others[1])
            )
        )
        new_leader = leader_endpoint(others[0])
        await wait_for(lambda: running_consistency(runtimes) == {new_leader})
        old_rt = next(rt for rt in runtimes if rt.config.local_member == leader)
        assert "consistency" not in old_rt.state.outcomes  # withdrawn, not left stale
    finally:
        for rt in runtimes:
            await rt.close()
