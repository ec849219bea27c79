"""The fault suite: what broke (or nearly did) under faults, against real etcd clusters.

  * a backlog of big values written while the watch could not read: every member restarted
    while the exporter was paused, or the watched member frozen then killed. The watch must
    catch up with no event lost, and report itself behind (probe_success 0, the lag exported)
    until it has;
  * a rotated password file and rotated client certificates, used without a restart;
  * a wrong password: a few logins a minute, one log line per failure streak;
  * a leader changing under writes (no watch event lost), the leader killed mid-scan, NOSPACE
    and its recovery, hostile keys.

The exporter is the real CLI subprocess where the operator's view matters (tests/harness.py),
the runtime in-process where a count inside it is the point. `make faults` runs this file and
tests/test_faults.py. Values are big where that is the fault, and few: the suite shares 2 cores.
"""

from __future__ import annotations

import asyncio
import datetime
import json
import logging
import os
import signal
import subprocess
import time
from concurrent.futures import ThreadPoolExecutor
from pathlib import Path

import grpc
import pytest
import yaml
from aetcd import rpc
from cryptography.hazmat.primitives.serialization import Encoding

from conftest import etcdctl, etcdctl_binary
from etcd_inspector.config import parse_config
from etcd_inspector.demo.localcluster import LocalCluster, start_cluster
from etcd_inspector.demo.pki import PKI, CertKey, issue, make_ca, write_pair
from etcd_inspector.etcd.auth import AuthGate
from etcd_inspector.etcd.client import MemberClient
from etcd_inspector.ports import free_ports
from etcd_inspector.probes import REGISTRY
from etcd_inspector.runtime.runtime import build_runtime
from exposition import assert_promtool_clean
from harness import (
    MEMBERS,
    ExporterProcess,
    Scrape,
    all_members_up,
    enable_auth_with_read_only_user,
    run_exporter,
)

pytestmark = pytest.mark.etcd

# What the fault suite wrote: 60 values of 1.45 MB, 87 MB in all, more than the 64 MiB gRPC
# receive limit as one watch response; each fits etcd's default --max-request-bytes (1.5 MiB).
BIG_VALUES = 60
BIG_VALUE_BYTES = 1_450_000
CATCH_UP_TIMEOUT = 60.0


# --------------------------------------------------------------------------- helpers


def write_config(
    tmp_path: Path, cluster: LocalCluster, probes: dict, *, proxy: bool = True, **cluster_keys
) -> Path:
    """A config file with only `probes` enabled (short intervals: the suite must stay lean).
    proxy=False points the members' metrics URLs at a closed port: scrapes then carry only the
    exporter's own series and stay quick on a busy machine (for tests that scrape in a loop)."""
    every = {name: {"enabled": False} for name in REGISTRY}
    every.update({name: {"enabled": True, **opts} for name, opts in probes.items()})
    closed = f"http://127.0.0.1:{free_ports(1)[0]}/metrics"
    raw = {
        "inspection": {"probes": every},
        "clusters": [
            {
                "name": "faults",
                "endpoints": [
                    {"url": m.client_url, "metrics_url": m.metrics_url if proxy else closed}
                    for m in cluster.members
                ],
                "request_timeout": "2s",
                **cluster_keys,
            }
        ],
    }
    path = tmp_path / f"config-{time.monotonic_ns()}.yml"
    path.write_text(yaml.safe_dump(raw))
    return path


# Explicit timeouts: an implicit one is capped at the interval, too short on 2 busy cores.
WATCH_PROBES = {
    "status": {"interval": "1s", "timeout": "4s"},
    "hotkeys": {"interval": "1s", "timeout": "4s", "stall_seconds": "5s"},
}
# For the backlogs: runs every 100ms, so that some land while the backlog is replayed (0.7-3s
# here; a run only snapshots counters), and a stall period three times CATCH_UP_SECONDS as in
# production (60s): a frozen member is then reported behind before the watch gives up on it.
BACKLOG_PROBES = {
    "status": {"interval": "1s", "timeout": "4s"},
    "hotkeys": {"interval": "100ms", "timeout": "4s", "stall_seconds": "15s"},
}


def watch_up(s: Scrape) -> bool:
    return (
        s.value("etcd_inspector_probe_success", probe="status") == 1
        and hotkeys_state(s, "/")[0] == 1
    )


def leader_of(cluster: LocalCluster) -> str:
    """The leader's name, as `etcdctl endpoint status` says."""
    out = json.loads(etcdctl(cluster, "endpoint", "status", "-w", "json"))
    by_url = {m.client_url: m.name for m in cluster.members}
    for e in out:
        if e["Status"]["leader"] == e["Status"]["header"]["member_id"]:
            return by_url[e["Endpoint"]]
    raise AssertionError("no leader")


def alive(cluster: LocalCluster) -> list[str]:
    return [m.client_url for m in cluster.members if m.running and not m.frozen]


async def put_big_values(endpoints: list[str], prefix: bytes, count: int, size: int) -> int:
    """`count` puts of `size` bytes, each retried on another member if one fails; the last
    revision. Every key is new, so the watch must count exactly `count` puts under `prefix`."""
    channels = [grpc.aio.insecure_channel(u.split("://", 1)[1]) for u in endpoints]
    stubs = [rpc.KVStub(c) for c in channels]
    value = b"B" * size
    revision = 0
    try:
        for i in range(count):
            for attempt in range(20):
                kv = stubs[(i + attempt) % len(stubs)]
                try:
                    r = await kv.Put(rpc.PutRequest(key=prefix + b"%03d" % i, value=value),
                                     timeout=10)  # fmt: skip
                    revision = r.header.revision
                    break
                except grpc.aio.AioRpcError:
                    await asyncio.sleep(0.2)
            else:
                raise AssertionError(f"put {i} failed 20 times")
    finally:
        for c in channels:
            await c.close()
    return revision


def hotkeys_state(s: Scrape, prefix: str) -> tuple[float | None, float | None, float | None]:
    """(probe_success, prefix puts, watch lag) of one scrape."""
    return (
        s.value("etcd_inspector_probe_success", probe="hotkeys"),
        s.value("etcd_inspector_prefix_writes_total", prefix=prefix, op="put"),
        s.value("etcd_inspector_watch_lag_revisions"),
    )


def watch_until_caught_up(
    exporter: ExporterProcess, prefix: str, last_revision: int, timeout: float = CATCH_UP_TIMEOUT
) -> tuple[Scrape, list[tuple[float, float | None, float | None]]]:
    """Scrape in a loop until the watch has seen `last_revision` and succeeds again; returns the
    last scrape and every (success, prefix puts, lag) seen on the way."""
    seen: list[tuple[float, float | None, float | None]] = []
    deadline = time.monotonic() + timeout
    while True:
        s = exporter.scrape(1)
        success, puts, lag = hotkeys_state(s, prefix)
        if success is not None:
            seen.append((success, puts, lag))
        revision = s.value("etcd_inspector_watch_revision")
        if success == 1 and revision is not None and revision >= last_revision:
            return s, seen
        if time.monotonic() > deadline:
            raise AssertionError(
                f"watch not caught up within {timeout}s: revision {revision} of {last_revision}, "
                f"last states {seen[-5:]}\n{exporter.log()[-3000:]}"
            )
        time.sleep(0.05)


def assert_exact_and_reported_behind(
    final: Scrape, seen: list, prefix: str, events_before: float, log: str
) -> None:
    assert final.value("etcd_inspector_prefix_writes_total", prefix=prefix, op="put") == BIG_VALUES
    assert final.value("etcd_inspector_watch_events_total") == events_before + BIG_VALUES
    assert final.value("etcd_inspector_watch_missed_windows_total") == 0
    # Every failed run is logged; the behind ones as such.
    assert 'probe=hotkeys reason=watch_down err="watch behind by' in log, log[-3000:]
    # And a scrape saw it at least once, with the lag still exported while it was.
    behind = [(puts, lag) for success, puts, lag in seen if success == 0]
    assert behind, f"no scrape saw it behind: {seen}"
    assert any(lag is not None and lag > 0 for _, lag in behind), behind


# --------------------------------------------------------------------------- big backlog


def test_backlog_of_big_values_after_every_member_restarted_under_a_paused_exporter(
    etcd_cluster: LocalCluster, tmp_path: Path
) -> None:
    config = write_config(tmp_path, etcd_cluster, BACKLOG_PROBES, proxy=False)
    with run_exporter(tmp_path, f"--config.file={config}") as exporter:
        before = exporter.wait_for(watch_up, "watch up")
        events_before = before.value("etcd_inspector_watch_events_total") or 0.0
        exporter.signal(signal.SIGSTOP)
        try:
            for m in etcd_cluster.members:
                m.stop()
            etcd_cluster.start()
            started = time.monotonic()
            last = asyncio.run(
                put_big_values(etcd_cluster.endpoints, b"/big/v/", BIG_VALUES, BIG_VALUE_BYTES)
            )
            written = time.monotonic() - started
        finally:
            exporter.signal(signal.SIGCONT)
        resumed = time.monotonic()
        final, seen = watch_until_caught_up(exporter, "/big/v/", last)
        caught_up = time.monotonic() - resumed
    print(f"backlog written in {written:.1f}s, caught up {caught_up:.1f}s after SIGCONT")
    assert_exact_and_reported_behind(final, seen, "/big/v/", events_before, exporter.log())
    assert "too_large" not in exporter.log()


def test_backlog_of_big_values_while_the_watched_member_is_frozen_then_killed(
    etcd_cluster: LocalCluster, tmp_path: Path
) -> None:
    # The watch streams from the first follower in configuration order (watch.py's watch_order).
    leader = leader_of(etcd_cluster)
    watched = next(m for m in etcd_cluster.members if m.name != leader)
    config = write_config(tmp_path, etcd_cluster, BACKLOG_PROBES, proxy=False)
    with run_exporter(tmp_path, f"--config.file={config}") as exporter:
        before = exporter.wait_for(watch_up, "watch up")
        events_before = before.value("etcd_inspector_watch_events_total") or 0.0
        watched.freeze()
        frozen_at = time.monotonic()
        try:
            writer = ThreadPoolExecutor(1).submit(
                asyncio.run,
                put_big_values(alive(etcd_cluster), b"/big/f/", BIG_VALUES, BIG_VALUE_BYTES),
            )
            # Scrape while the writes go on: within about one stall period (5s here) of the
            # first write the member's peers have moved on, and the run fails.
            first_failure = lag = None
            while not writer.done() or first_failure is None:
                s = exporter.scrape(1)
                if first_failure is None and hotkeys_state(s, "/big/f/")[0] == 0:
                    first_failure = time.monotonic() - frozen_at
                    lag = s.value("etcd_inspector_watch_lag_revisions")
                assert time.monotonic() - frozen_at < 30, "a frozen watched member went unnoticed"
                time.sleep(0.2)
            last = writer.result()
        finally:
            watched.kill()
        final, seen = watch_until_caught_up(exporter, "/big/f/", last)
    print(f"reported behind {first_failure:.1f}s after the freeze (lag {lag})")
    # Before the watch gives up on the member (stall_seconds): CATCH_UP_SECONDS after a status
    # round that saw the others move on, that round itself slowed by the frozen member's Status.
    assert first_failure is not None and first_failure < 15
    assert_exact_and_reported_behind(
        final, [*seen, (0.0, None, lag)], "/big/f/", events_before, exporter.log()
    )


# --------------------------------------------------------------------------- credentials


def test_rotated_password_file_is_used_without_a_restart(
    etcd_cluster: LocalCluster, tmp_path: Path
) -> None:
    enable_auth_with_read_only_user(etcd_cluster, "inspector", "first-pw")
    password_file = tmp_path / "password"
    password_file.write_text("first-pw\n")
    config = write_config(
        tmp_path, etcd_cluster, WATCH_PROBES, username="inspector",
        password_file=str(password_file),
    )  # fmt: skip
    with run_exporter(tmp_path, f"--config.file={config}") as exporter:

        def all_good(s: Scrape) -> bool:
            return (
                all_members_up(s)
                and hotkeys_state(s, "/")[0] == 1
                and (s.value("etcd_inspector_probe_success", probe="status") == 1)
            )

        exporter.wait_for(all_good, "status and watch succeed with the first password")
        # A client in here too, logged in with the first password, for the case without a
        # restart: its token outlives the change, and etcd refuses it as "old".
        gate = AuthGate("inspector", password_file=str(password_file))

        async def rotate_under_a_logged_in_client() -> None:
            client = MemberClient(etcd_cluster.endpoints[0], credentials=gate)
            try:
                await client.count_keys()
                # The operator's rotation: the secret file first (a kubelet-mounted Secret
                # changes on its own schedule), then etcd.
                password_file.write_text("second-pw\n")
                await asyncio.to_thread(
                    etcdctl, etcd_cluster, "--user=root:root-pw", "user", "passwd", "inspector",
                    "--interactive=false", input=b"second-pw\n",
                )  # fmt: skip
                assert gate.logins == 1
                # Each member drops the user's tokens when it applies the change: the next call
                # there is refused and the client logs in again, reading the rotated file.
                deadline = time.monotonic() + 10
                while gate.logins == 1 and time.monotonic() < deadline:
                    await client.count_keys()
                    await asyncio.sleep(0.1)
            finally:
                await client.close()

        asyncio.run(rotate_under_a_logged_in_client())
        assert gate.logins == 2 and gate.failures == 0
        for m in etcd_cluster.members:
            m.stop()
        etcd_cluster.start()
        rotated_at = time.time()
        scrape = exporter.wait_for(
            lambda s: (
                all_good(s)
                and all(
                    (s.value("etcd_inspector_probe_last_success_timestamp_seconds", probe=p) or 0)
                    > rotated_at + 1
                    for p in ("status", "hotkeys")
                )
            ),
            "status and watch succeed again with the rotated password",
            timeout=30,
        )
        # And it is the new password that works: the old one no longer does.
        with pytest.raises(AssertionError, match="authentication failed"):
            etcdctl(etcd_cluster, "--user=inspector:first-pw", "get", "x")
        assert scrape.value("etcd_inspector_probe_success", probe="hotkeys") == 1
        assert exporter.process is not None and exporter.process.poll() is None


WRONG_PASSWORD_SECONDS = 20.0


async def test_wrong_password_costs_a_few_logins_a_minute_and_one_log_line(
    etcd_cluster: LocalCluster, tmp_path: Path, caplog: pytest.LogCaptureFixture
) -> None:
    await asyncio.to_thread(enable_auth_with_read_only_user, etcd_cluster, "inspector", "right")
    password_file = tmp_path / "password"
    password_file.write_text("wrong")
    # Every probe, every second, against every member: the fault suite counted 35 logins in
    # 45s before the backoff (~15 in 20s).
    raw = {
        "inspection": {"interval": "1s"},
        "clusters": [{"name": "faults", "endpoints": etcd_cluster.endpoints,
                      "username": "inspector", "password_file": str(password_file),
                      "request_timeout": "2s"}],
    }  # fmt: skip
    config = parse_config(raw, REGISTRY)
    runtime = build_runtime(config.clusters[0], config)
    gate = runtime.clients[0].auth
    assert isinstance(gate, AuthGate) and all(c.auth is gate for c in runtime.clients)
    caplog.set_level(logging.INFO, logger="etcd_inspector.etcd.auth")
    runtime.scheduler.start()
    try:
        await asyncio.sleep(WRONG_PASSWORD_SECONDS)
    finally:
        await runtime.close()
    # Backoff 2s, 4s, 8s, 16s (+-20%): logins at about 0, 2, 6, 14s.
    print(f"{gate.logins} logins in {WRONG_PASSWORD_SECONDS:g}s")
    assert 3 <= gate.logins <= 5, gate.logins
    assert gate.failures == gate.logins
    failures = [r for r in caplog.records if r.getMessage().startswith("etcd authentication")]
    assert [r.getMessage() for r in failures] == [
        "etcd authentication failed; retrying with backoff"
    ]
    outcome = runtime.state.outcomes["status"]
    assert not outcome.success and outcome.error_kind == "no_answer"
    assert "authentication failed" in (outcome.error or "")


def short_lived_pki(directory: Path, client_seconds: float) -> tuple[PKI, CertKey]:
    """make_pki's files, but the CA is kept (to issue the rotated client certificate) and the
    first client certificate expires `client_seconds` from now."""
    directory.mkdir(parents=True, exist_ok=True)
    ca, other = make_ca(), make_ca("an unrelated CA")
    pki = PKI(
        dir=directory, ca_file=directory / "ca.crt",
        server_cert=directory / "server.crt", server_key=directory / "server.key",
        client_cert=directory / "client.crt", client_key=directory / "client.key",
        other_ca_file=directory / "other-ca.crt",
    )  # fmt: skip
    pki.ca_file.write_bytes(ca[0].public_bytes(Encoding.PEM))
    pki.other_ca_file.write_bytes(other[0].public_bytes(Encoding.PEM))
    write_pair(issue(ca, "etcd", hosts=("127.0.0.1", "localhost")), pki.server_cert, pki.server_key)
    expires = datetime.datetime.now(datetime.UTC) + datetime.timedelta(seconds=client_seconds)
    write_pair(issue(ca, "etcd-inspector", server=False, not_after=expires),
               pki.client_cert, pki.client_key)  # fmt: skip
    return pki, ca


def test_rotated_client_certificates_are_used_without_a_restart(
    etcd_binary: str, tmp_path: Path
) -> None:
    pki, ca = short_lived_pki(tmp_path / "pki", client_seconds=20)
    expires_at = time.monotonic() + 20
    # The exporter reads its own copies, as from a mounted Secret; the originals stay for etcdctl.
    certs = tmp_path / "client"
    certs.mkdir()
    for name in ("ca.crt", "client.crt", "client.key"):
        (certs / name).write_bytes((pki.dir / name).read_bytes())
    cluster = start_cluster(3, base_dir=tmp_path / "etcd", binary=etcd_binary, pki=pki)
    try:
        config = write_config(
            tmp_path, cluster, WATCH_PROBES,
            tls={"ca_file": str(certs / "ca.crt"), "cert_file": str(certs / "client.crt"),
                 "key_file": str(certs / "client.key")},
        )  # fmt: skip
        with run_exporter(tmp_path, f"--config.file={config}") as exporter:

            def answering(s: Scrape) -> bool:
                return all_members_up(s) and hotkeys_state(s, "/")[0] == 1

            exporter.wait_for(answering, "status and watch succeed over mTLS")
            # cert-manager's rotation: new files in place, the old certificate still valid.
            fresh = certs / "fresh"
            fresh.mkdir()
            write_pair(issue(ca, "etcd-inspector", server=False),
                       fresh / "client.crt", fresh / "client.key")  # fmt: skip
            os.replace(fresh / "client.key", certs / "client.key")
            os.replace(fresh / "client.crt", certs / "client.crt")
            time.sleep(max(0.0, expires_at - time.monotonic()) + 1)
            # The first certificate is dead now: a handshake with it fails ...
            with pytest.raises(AssertionError, match=r"certificate|tls|deadline|context"):
                etcdctl_tls(cluster, pki.client_cert, pki.client_key, "get", "x")
            # ... and every connection is made anew: only the rotated certificate can answer.
            for m in cluster.members:
                m.stop()
            cluster.start()
            restarted_at = time.time()
            exporter.wait_for(
                lambda s: (
                    answering(s)
                    and all(
                        (
                            s.value("etcd_inspector_probe_last_success_timestamp_seconds", probe=p)
                            or 0
                        )
                        > restarted_at + 1
                        for p in ("status", "hotkeys")
                    )
                ),
                "status and watch succeed again after the restart, with the rotated certificate",
                timeout=30,
            )
            assert exporter.process is not None and exporter.process.poll() is None
    finally:
        cluster.stop()


def etcdctl_tls(cluster: LocalCluster, cert: Path, key: Path, *args: str) -> str:
    ca = cert.parent / "ca.crt"
    out = subprocess.run(
        [etcdctl_binary(), "--endpoints", cluster.endpoints[0], "--cacert", str(ca),
         "--cert", str(cert), "--key", str(key), "--dial-timeout=2s", "--command-timeout=3s",
         *args],
        capture_output=True, env={**os.environ, "ETCDCTL_API": "3"}, timeout=30, check=False,
    )  # fmt: skip
    if out.returncode != 0:
        raise AssertionError(f"etcdctl {' '.join(args)} failed: {out.stderr.decode()}")
    return out.stdout.decode()


# --------------------------------------------------------------------------- the rest of the suite


def test_leader_changes_under_writes_lose_no_watch_event(
    etcd_cluster: LocalCluster, tmp_path: Path
) -> None:
    config = write_config(tmp_path, etcd_cluster, WATCH_PROBES)
    with run_exporter(tmp_path, f"--config.file={config}") as exporter:
        exporter.wait_for(lambda s: hotkeys_state(s, "/")[0] == 1, "watch up")
        stop = asyncio.Event()
        writer = ThreadPoolExecutor(1).submit(asyncio.run, write_until(etcd_cluster, stop))
        try:
            ids = {m["name"]: m["ID"] for m in json.loads(
                etcdctl(etcd_cluster, "member", "list", "-w", "json"))["members"]}  # fmt: skip
            for _ in range(2):  # hand leadership over twice, then kill the leader
                time.sleep(1)
                leader = leader_of(etcd_cluster)
                other = next(n for n in ids if n != leader)
                etcdctl_at(etcd_cluster.member(leader).client_url, "move-leader",
                           f"{ids[other]:x}")  # fmt: skip
            time.sleep(1)
            victim = etcd_cluster.member(leader_of(etcd_cluster))
            victim.kill()
            time.sleep(2)
            victim.start()
            etcd_cluster.wait_healthy(members=[victim])
            time.sleep(1)
        finally:
            stop.set()
            written = writer.result()
        # Each key was put once (a failed put is never retried under the same key), so the
        # keys present are exactly the put events, also for puts whose answer was lost.
        present = int(json.loads(etcdctl(etcd_cluster, "get", "--prefix", "/lc/", "--limit=1",
                                         "-w", "json"))["count"])  # fmt: skip
        assert present >= written > 100
        final = exporter.wait_for(
            lambda s: (
                s.value("etcd_inspector_prefix_writes_total", prefix="/lc/k/", op="put") == present
            ),
            f"the watch counts all {present} puts",
            timeout=20,
        )
    assert final.value("etcd_inspector_watch_missed_windows_total") == 0


async def write_until(cluster: LocalCluster, stop: asyncio.Event | None) -> int:
    """Small puts of fresh keys round-robin over the members until `stop`; the acknowledged
    count. `stop` is set from another thread: polled, not awaited."""
    channels = [grpc.aio.insecure_channel(u.split("://", 1)[1]) for u in cluster.endpoints]
    stubs = [rpc.KVStub(c) for c in channels]
    acknowledged = i = 0
    try:
        while stop is None or not stop.is_set():
            i += 1
            try:
                await stubs[i % 3].Put(rpc.PutRequest(key=b"/lc/k/%06d" % i, value=b"v"),
                                       timeout=2)  # fmt: skip
                acknowledged += 1
            except grpc.aio.AioRpcError:
                await asyncio.sleep(0.05)
    finally:
        for c in channels:
            await c.close()
    return acknowledged


def etcdctl_at(endpoint: str, *args: str) -> str:
    out = subprocess.run(
        [etcdctl_binary(), "--endpoints", endpoint, *args],
        capture_output=True, env={**os.environ, "ETCDCTL_API": "3"}, timeout=30, check=False,
    )  # fmt: skip
    if out.returncode != 0:
        raise AssertionError(f"etcdctl {' '.join(args)} failed: {out.stderr.decode()}")
    return out.stdout.decode()


async def test_leader_killed_mid_scan_resumes_on_another_member(etcd_cluster: LocalCluster) -> None:
    from test_probe_bigvalue import bigvalue, put_many

    await put_many(etcd_cluster.endpoints[0], ((b"/s/%04d" % i, b"v" * 100) for i in range(1000)))
    leader = etcd_cluster.member(await asyncio.to_thread(leader_of, etcd_cluster))
    # The leader first: with no status round yet, the scan starts on the first endpoint.
    endpoints = [leader.client_url, *(e for e in etcd_cluster.endpoints if e != leader.client_url)]
    revisions: set[int] = set()

    def kill_the_leader(progress) -> None:
        revisions.add(progress.revision)
        if progress.keys_done == 300:
            leader.kill()

    async with bigvalue(endpoints, keys_per_second=4000, page_size=100) as (probe, ctx, _rt):
        from dataclasses import replace

        result = await probe.run(replace(ctx, progress=kill_the_leader))
    assert not leader.running
    assert result.keys == 1000
    assert revisions == {result.revision}  # the same revision, on another member
    assert result.member != leader.name


def test_nospace_alarm_is_exported_and_its_recovery_too(etcd_binary: str, tmp_path: Path) -> None:
    cluster = start_cluster(3, base_dir=tmp_path / "etcd", binary=etcd_binary,
                            quota_backend_bytes=8 * 1024 * 1024)  # fmt: skip
    try:
        config = write_config(tmp_path, cluster, WATCH_PROBES)
        with run_exporter(tmp_path, f"--config.file={config}") as exporter:
            exporter.wait_for(lambda s: hotkeys_state(s, "/")[0] == 1, "watch up")
            for i in range(40):
                try:
                    etcdctl(cluster, "put", f"/fill/{i}", input=b"F" * 500_000)
                except AssertionError as err:
                    assert "database space exceeded" in str(err)
                    break
            else:
                raise AssertionError("never ran out of space")

            def nospace(s: Scrape) -> dict[str, float]:
                return s.by_member("etcd_inspector_member_alarm", alarm="NOSPACE")

            # Raised by the members that ran out (each alarm names its member), one at least.
            full = exporter.wait_for(lambda s: 1.0 in nospace(s).values(), "NOSPACE raised")
            assert set(nospace(full)) == set(MEMBERS)
            assert full.value("etcd_inspector_probe_success", probe="status") == 1
            assert full.value("etcd_inspector_probe_success", probe="hotkeys") == 1
            # The operator's recovery: compact, defragment, disarm.
            revision = json.loads(etcdctl(cluster, "endpoint", "status", "-w", "json"))[0][
                "Status"]["header"]["revision"]  # fmt: skip
            etcdctl(cluster, "del", "--prefix", "/fill/")
            etcdctl(cluster, "compact", str(revision))
            etcdctl(cluster, "defrag")
            etcdctl(cluster, "alarm", "disarm")
            etcdctl(cluster, "put", "/after/k/1", input=b"v")
            exporter.wait_for(
                lambda s: (
                    nospace(s) == dict.fromkeys(MEMBERS, 0.0)
                    and s.value("etcd_inspector_prefix_writes_total", prefix="/after/k/", op="put")
                    == 1
                    and s.value("etcd_inspector_probe_success", probe="hotkeys") == 1
                ),
                "alarm cleared, writes accepted and watched again",
            )
    finally:
        cluster.stop()


HOSTILE_KEYS = [
    b'/hostile/"quoted"',
    b"/hostile/back\\slash",
    b"/hostile/new\nline",
    b"/hostile/\xff\xfe\x00nul",
    b'/hostile/} 1\netcd_fake{x="',
    "/hostile/\u2028unicode-line-separator".encode(),
    b"/hostile/" + b"L" * 4000,
]


@pytest.mark.promtool
def test_hostile_keys_keep_the_exposition_valid(etcd_cluster: LocalCluster, tmp_path: Path) -> None:
    probes = {
        **WATCH_PROBES,
        "hotkeys": {**WATCH_PROBES["hotkeys"], "min_rate": 0.0},
        "bigvalue": {"interval": "2s", "timeout": "4s", "threshold_bytes": 10},
    }
    config = write_config(tmp_path, etcd_cluster, probes)
    with run_exporter(tmp_path, f"--config.file={config}") as exporter:
        exporter.wait_for(lambda s: hotkeys_state(s, "/")[0] == 1, "watch up")

        async def put_hostile() -> None:
            async with grpc.aio.insecure_channel(etcd_cluster.endpoints[0].split("://")[1]) as ch:
                kv = rpc.KVStub(ch)
                for _ in range(3):
                    for key in HOSTILE_KEYS:
                        await kv.Put(rpc.PutRequest(key=key, value=b"hostile value"), timeout=5)

        asyncio.run(put_hostile())
        scrape = exporter.wait_for(
            lambda s: (
                s.value("etcd_inspector_probe_success", probe="bigvalue") == 1
                and (s.value("etcd_inspector_watch_events_total") or 0) >= 3 * len(HOSTILE_KEYS)
                and len(s.samples("etcd_inspector_hot_key_writes_per_second")) > 0
            ),
            "the scan and the watch have seen the hostile keys",
            timeout=30,
        )
        assert exporter.get("/")[0] == 200  # the status page too
    ours = "\n".join(
        line for line in scrape.text.splitlines()
        if line.startswith(("etcd_inspector_", "# HELP etcd_inspector_", "# TYPE etcd_inspector_"))
    )  # fmt: skip
    assert_promtool_clean(ours + "\n")
    labels = {
        s.labels.get("key") for s in scrape.samples("etcd_inspector_hot_key_writes_per_second")
    }
    labels |= {s.labels.get("key") for s in scrape.samples("etcd_inspector_value_size_top_bytes")}
    assert any(label and '"quoted"' in label for label in labels), labels
    assert not any(label and "\n" in label for label in labels), labels
