"""The fault harness (etcd_inspector.demo.faults) on one real 3-member cluster.

Every fault has a measured effect on the member it targets (and not on the others), goes away
after heal, and leaves no cgroup, mount or proxy behind. The members' peer URLs pass through the
harness's proxies; m3's data dir is on a 160 MiB tmpfs (for the full-disk fault).
"""

from __future__ import annotations

import base64
import json
import signal
import statistics
import subprocess
import time
import urllib.request
from collections.abc import Callable, Iterator
from pathlib import Path

import pytest

from etcd_inspector.demo.faults import (
    PREFIX,
    CpuQuota,
    DiskFull,
    DiskThrottle,
    FaultCluster,
    FaultError,
    Kill,
    Pause,
    PeerBlackhole,
    PeerDelay,
    PeerLoss,
    leftovers,
    sweep,
)
from etcd_inspector.demo.faults.cgroups import controller_root, current_group, stale_groups
from etcd_inspector.demo.faults.measure import (
    member_status,
    observed_between,
    quantile_between,
    read_metrics,
    timed_get,
)
from etcd_inspector.demo.faults.mounts import is_mounted, stale_mounts, unmount
from etcd_inspector.demo.faults.processes import OWNER_ENV
from etcd_inspector.demo.localcluster import LocalMember

pytestmark = pytest.mark.etcd

MiB = 1 << 20
TMPFS_MEMBER = "m3"
WAL_FSYNC = "etcd_disk_wal_fsync_duration_seconds"


def put(member: LocalMember, key: str, value: str, timeout: float = 5.0) -> None:
    """One write through `member`'s grpc-gateway (tests may write; the exporter never does)."""
    body = json.dumps(
        {
            "key": base64.b64encode(key.encode()).decode(),
            "value": base64.b64encode(value.encode()).decode(),
        }
    ).encode()
    req = urllib.request.Request(member.client_url + "/v3/kv/put", data=body, method="POST")
    with urllib.request.urlopen(req, timeout=timeout) as resp:
        resp.read()


def median_put_seconds(member: LocalMember, count: int = 15) -> float:
    took = []
    for i in range(count):
        start = time.monotonic()
        put(member, f"latency/{i}", "x")
        took.append(time.monotonic() - start)
    return statistics.median(took)


def write_for(member: LocalMember, seconds: float, value_bytes: int = 100) -> int:
    """Write as fast as one client can for `seconds`; returns the number of writes."""
    deadline, count = time.monotonic() + seconds, 0
    while time.monotonic() < deadline:
        put(member, f"load/{count % 64}", "v" * value_bytes)
        count += 1
    return count


def wait_until(condition: Callable[[], bool], what: str, timeout: float = 10.0) -> None:
    deadline = time.monotonic() + timeout
    while True:
        try:
            if condition():
                return
        except OSError:
            pass
        if time.monotonic() > deadline:
            raise AssertionError(f"not within {timeout}s: {what}")
        time.sleep(0.1)


def has_leader(member: LocalMember) -> bool:
    return read_metrics(member, timeout=1.0).value("etcd_server_has_leader") == 1


# grpc-gateway's JSON leaves out fields at their zero value (`leader` when there is none).


def revision(member: LocalMember) -> int:
    return int(member_status(member)["header"]["revision"])


def caught_up(fc: FaultCluster, name: str) -> bool:
    return revision(fc.member(name)) == revision(fc.member(fc.leader()))


def settled(fc: FaultCluster) -> bool:
    return all(fc.member(n).healthy() and has_leader(fc.member(n)) for n in fc.names)


def median_metrics_get(member: LocalMember, count: int = 7) -> float:
    return statistics.median(timed_get(member.metrics_url) for _ in range(count))


def plain_follower(fc: FaultCluster) -> str:
    """A follower whose data dir is on the real disk (not the tmpfs member)."""
    return next(n for n in fc.followers() if n != TMPFS_MEMBER)


@pytest.fixture(scope="module")
def fc(etcd_binary: str, tmp_path_factory: pytest.TempPathFactory) -> Iterator[FaultCluster]:
    cluster = FaultCluster.build(
        3,
        base_dir=tmp_path_factory.mktemp("fault-harness"),
        binary=etcd_binary,
        tmpfs_bytes={TMPFS_MEMBER: 160 * MiB},
    )
    cluster.start()
    mountpoint = cluster.mounts[TMPFS_MEMBER]
    try:
        yield cluster
    finally:
        cluster.stop()
    # Nothing left: no mount, no proxy listening, no etcd process, no cgroup.
    assert not is_mounted(mountpoint)
    assert leftovers(include_own=True) == []
    for m in cluster.cluster.members:
        assert m.process is None
        with pytest.raises(OSError):
            urllib.request.urlopen(m.peer_url + "/members", timeout=1)


@pytest.fixture(autouse=True)
def settled_and_clean(fc: FaultCluster) -> Iterator[None]:
    wait_until(lambda: settled(fc), "every member healthy with a leader", timeout=20)
    yield
    assert fc.active == [] and fc.network.rules == {}, "a fault was left injected"
    assert stale_groups(include_own=True) == [], "a fault left a cgroup behind"
    assert stale_mounts(include_own=True) == [fc.mounts[TMPFS_MEMBER]], "a stray mount"


def test_every_peer_connection_is_attributed_to_its_dialer(fc: FaultCluster) -> None:
    # rafthttp: each member dials each peer (stream readers, pipeline, prober); the proxy in
    # front of the target names the dialing member, so rules can follow a member's own links.
    pairs = {(target, dialer) for target, dialer, _ in fc.network.connections()}
    assert pairs == {(t, d) for t in fc.names for d in fc.names if t != d}


def test_peer_delay_on_the_leader_slows_writes_on_a_follower_does_not(fc: FaultCluster) -> None:
    leader = fc.member(fc.leader())
    before = median_put_seconds(leader)
    with PeerDelay(fc, leader.name, delay=0.1, jitter=0.01).injected():
        # A commit needs the leader's append out and a follower's ack back: two delayed legs.
        slow = median_put_seconds(leader)
    with PeerDelay(fc, plain_follower(fc), delay=0.2).injected():
        # The other follower still makes a quorum with the leader at full speed.
        one_slow_follower = median_put_seconds(leader)
    after = median_put_seconds(leader)
    assert slow - before >= 0.17, (before, slow)
    assert one_slow_follower < before + 0.05, (before, one_slow_follower)
    assert after < before + 0.05, (before, after)


def test_blackholed_follower_loses_its_leader_the_others_keep_quorum(fc: FaultCluster) -> None:
    leader, cut = fc.leader(), plain_follower(fc)
    others = [n for n in fc.names if n != cut]
    member = fc.member(cut)
    term_before = int(member_status(member)["raftTerm"])
    with PeerBlackhole(fc, cut).injected():
        wait_until(
            lambda: member_status(member).get("leader", "0") == "0", f"{cut} has no leader", 5
        )
        assert not has_leader(member)
        put(fc.member(leader), "partition/write", "ok")  # quorum without the cut-off member
        assert fc.leader(among=others) in others
        links = fc.network.connections()
        assert all(held for t, d, held in links if cut in (t, d))
        assert not any(held for t, d, held in links if cut not in (t, d))
    wait_until(lambda: has_leader(member), f"{cut} rejoins", 10)
    wait_until(lambda: caught_up(fc, cut), f"{cut} catches up", 10)
    if fc.cluster.version.startswith("3.4."):
        # Cut off, it campaigned in vain (3.4 has no pre-vote by default; 3.5 has): its higher
        # term forced an election when it came back. (Status reports the term of applied
        # entries, so the campaign shows only afterwards.)
        assert int(member_status(fc.member(fc.leader()))["raftTerm"]) > term_before


def test_lossy_links_break_connections_until_healed(fc: FaultCluster) -> None:
    lossy = plain_follower(fc)
    leader = fc.member(fc.leader())

    def broken() -> int:
        return sum(s.aborted + s.refused for s in fc.network.stats.values())

    def send_failures() -> float:
        return sum(
            read_metrics(fc.member(n)).value("etcd_network_peer_sent_failures_total")
            for n in fc.names
        )

    broken_before, failures_before = broken(), send_failures()
    with PeerLoss(fc, lossy, share=0.3).injected():
        writes = write_for(leader, 3.0)
    assert writes > 50  # the cluster kept writing
    assert broken() - broken_before >= 10
    assert send_failures() - failures_before >= 1  # etcd saw messages it could not send
    wait_until(lambda: has_leader(fc.member(lossy)), f"{lossy} has a leader", 10)
    healed = broken()
    write_for(leader, 1.5)
    assert broken() == healed


def test_disk_throttle_raises_wal_fsync_p99_on_that_member_only(fc: FaultCluster) -> None:
    leader, slow = fc.member(fc.leader()), plain_follower(fc)
    throttle = DiskThrottle(fc, slow, write_iops=5)
    with throttle.injected():
        assert throttle.group.path is not None and throttle.group.path.is_dir()
        before = {n: read_metrics(fc.member(n)) for n in fc.names}
        write_for(leader, 4.0)
        time.sleep(1.0)  # let the throttled fsyncs finish and be observed
        after = {n: read_metrics(fc.member(n)) for n in fc.names}
    group = throttle.group
    assert group.path is None
    p99 = {n: quantile_between(before[n], after[n], WAL_FSYNC, 0.99) for n in fc.names}
    assert observed_between(before[slow], after[slow], WAL_FSYNC) >= 1
    healthy = max(v for n, v in p99.items() if n != slow)
    assert p99[slow] >= 0.5 and p99[slow] >= 4 * healthy, p99

    # Healed: once the fsyncs queued behind the throttle are done, the member's typical fsync is
    # fast again (the median: one straggler from the backlog would make a short window's p99).
    time.sleep(1.0)
    before_heal = read_metrics(fc.member(slow))
    write_for(leader, 3.0)
    assert quantile_between(before_heal, read_metrics(fc.member(slow)), WAL_FSYNC, 0.5) < 0.1


def test_cpu_quota_slows_that_member_only(fc: FaultCluster) -> None:
    starved = plain_follower(fc)
    quota = CpuQuota(fc, starved, share=0.02)
    with quota.injected():
        time.sleep(0.3)
        took = {n: median_metrics_get(fc.member(n)) for n in fc.names}
        throttled = quota.throttled_seconds()
    others = max(v for n, v in took.items() if n != starved)
    assert took[starved] >= 0.05 and took[starved] >= 5 * others, took
    assert throttled > 0
    assert median_metrics_get(fc.member(starved)) < 0.05


@pytest.mark.parametrize("method", ["sigstop", "freezer"])
def test_paused_member_times_out_while_its_process_lives(fc: FaultCluster, method: str) -> None:
    paused = plain_follower(fc)
    member = fc.member(paused)
    pause = Pause(fc, paused, method)  # type: ignore[arg-type]
    with pause.injected():
        with pytest.raises(OSError):  # TimeoutError or URLError(timeout)
            member_status(member, timeout=1.0)
        assert member.running
        if method == "freezer":
            assert pause.group.read("freezer.state").strip() == "FROZEN"
        put(fc.member(fc.leader()), "pause/write", "ok")
    assert member_status(member, timeout=5.0)["header"]["member_id"]


def test_killed_member_restarts_and_catches_up(fc: FaultCluster) -> None:
    victim = plain_follower(fc)
    member = fc.member(victim)
    with Kill(fc, victim).injected():
        assert member.process is None
        with pytest.raises(OSError):
            member_status(member, timeout=1.0)
        put(fc.member(fc.leader()), "kill/write", "ok")
    assert member.running and member.healthy()
    wait_until(lambda: caught_up(fc, victim), f"{victim} catches up", 10)


def test_faults_refuse_what_the_cluster_cannot_take(fc: FaultCluster) -> None:
    on_tmpfs = DiskThrottle(fc, TMPFS_MEMBER, write_iops=5)
    with pytest.raises(FaultError, match="on no block device"):
        on_tmpfs.inject()
    assert not on_tmpfs.active
    with pytest.raises(FaultError, match="not on a harness tmpfs"):
        DiskFull(fc, plain_follower(fc)).inject()
    paused, other = plain_follower(fc), fc.leader()
    with Pause(fc, paused).injected():
        # A second silenced member would leave 1 of 3: the cluster cannot take it.
        with pytest.raises(FaultError, match="no quorum"):
            PeerBlackhole(fc, other).inject()
        with pytest.raises(FaultError, match="already on this member"):
            Pause(fc, paused).inject()
        with PeerDelay(fc, other, delay=0.01).injected():  # a slow member still votes
            assert [f.name for f in fc.active] == [f"pause-sigstop:{paused}", f"peer-delay:{other}"]
    assert fc.active == []


def test_full_disk_stops_that_member_the_others_keep_writing(fc: FaultCluster) -> None:
    full = fc.member(TMPFS_MEMBER)
    writer = fc.member(next(n for n in fc.names if n != TMPFS_MEMBER))
    disk = DiskFull(fc, TMPFS_MEMBER)
    with disk.injected():
        assert disk.free_bytes() == 0
        value = "v" * 10_000
        written = 0
        deadline = time.monotonic() + 20
        while full.running and time.monotonic() < deadline:
            try:
                put(writer, f"full/{written % 500}", value)
                written += 1
            except OSError:
                time.sleep(0.1)  # an election when the full member was the leader
        assert not full.running, f"{TMPFS_MEMBER} still running after {written} writes"
        assert "no space left on device" in full.log_tail(50)
        wait_until(lambda: put(writer, "full/after", "ok") is None, "writes without m3", 10)
    assert full.running and full.healthy()
    wait_until(lambda: caught_up(fc, TMPFS_MEMBER), f"{TMPFS_MEMBER} catches up", 15)


def test_sweep_removes_what_only_a_dead_harness_left(tmp_path: Path) -> None:
    gone = subprocess.Popen(["true"])
    gone.wait()
    sleeper = subprocess.Popen(["sleep", "60"])
    # A member the dead harness started, left SIGSTOPped.
    orphan = subprocess.Popen(["sleep", "60"], env={OWNER_ENV: f"{PREFIX}-{gone.pid}"})
    orphan.send_signal(signal.SIGSTOP)
    try:
        home = current_group(sleeper.pid, "freezer")
        parent = controller_root("freezer") / home.lstrip("/")
        group = parent / f"{PREFIX}-{gone.pid}-test-freezer"
        group.mkdir()
        (group / "cgroup.procs").write_text(str(sleeper.pid))
        (group / "freezer.state").write_text("FROZEN")
        mountpoint = tmp_path / "mnt"
        mountpoint.mkdir()
        source = f"{PREFIX}-{gone.pid}-tmpfs-test"
        mount = ["mount", "-t", "tmpfs", "-o", "size=1m", source, str(mountpoint)]
        subprocess.run(mount, check=True, timeout=10)
        try:
            orphan_proc = Path(f"/proc/{orphan.pid}")
            assert {group, orphan_proc, mountpoint} <= set(leftovers())
            removed = sweep()
            assert {group, orphan_proc, mountpoint} <= set(removed)
            wait_until(lambda: not orphan_proc.exists(), "the orphan killed and reaped", 5)
            assert not group.exists() and not is_mounted(mountpoint)
            # The frozen task was thawed and moved back, alive.
            assert sleeper.poll() is None
            assert current_group(sleeper.pid, "freezer") == home
        finally:
            if is_mounted(mountpoint):
                unmount(mountpoint)
            if group.exists():
                sweep()
    finally:
        for process in (sleeper, orphan):
            process.kill()
            process.wait()


def test_sweep_with_include_own_heals_a_fault_nobody_healed(fc: FaultCluster) -> None:
    starved = plain_follower(fc)
    pid = fc.member(starved).process.pid  # type: ignore[union-attr]
    home = current_group(pid, "cpu")
    quota = CpuQuota(fc, starved, share=0.5)
    quota.inject()  # and never healed, as if a test crashed
    assert current_group(pid, "cpu") != home
    assert sweep() == []  # its creator (this process) is alive: not someone else's leftover
    removed = sweep(include_own=True, kinds=("cgroups",))  # the cluster still runs
    assert len(removed) == 1 and not removed[0].exists()
    assert current_group(pid, "cpu") == home
    quota.heal()  # after a sweep, healing is harmless
    assert fc.active == []


def test_a_body_that_raises_still_heals(fc: FaultCluster) -> None:
    cut = plain_follower(fc)
    fault = PeerBlackhole(fc, cut)
    with pytest.raises(RuntimeError), fault.injected():
        raise RuntimeError("test body failed")
    assert not fault.active and cut not in fc.network.rules
