"""`etcd-inspector inspect` as an operator runs it: the real CLI, a real 3-member cluster.

Test data is planted with etcdctl, and where thousands of writes are needed, with this module's
own grpc.aio writer (aetcd's generated stubs): etcdctl would take a process per write.
"""

from __future__ import annotations

import asyncio
import json
import os
import pty
import select
import subprocess
import sys
import tempfile
import time
import urllib.request
from pathlib import Path

import grpc
import pytest
from aetcd import rpc

from conftest import etcdctl
from etcd_inspector.demo.localcluster import LocalCluster
from etcd_inspector.ports import free_ports
from etcd_inspector.probes.bigvalue import BigValueOptions, BigValueProbe, ScanProgress

BIG_VALUE = b"x" * 1048576
REWRITES = 2500
ORDINARY_KEYS = 5000


def inspector() -> list[str]:
    script = Path(sys.executable).with_name("etcd-inspector")
    return [str(script)] if script.exists() else [sys.executable, "-m", "etcd_inspector"]


def run_inspect(
    cluster: LocalCluster | None, *args: str, endpoints: str | None = None, timeout: float = 60
) -> subprocess.CompletedProcess[str]:
    target = endpoints or ",".join(cluster.endpoints)  # type: ignore[union-attr]
    return subprocess.run(
        [*inspector(), "inspect", "--etcd.endpoints", target, *args],
        capture_output=True, text=True, timeout=timeout, check=False,
    )  # fmt: skip


def _target(url: str) -> str:
    return url.split("://", 1)[1]


async def rewrite_key(endpoint: str, key: bytes, times: int, concurrency: int = 32) -> None:
    """`times` Puts of one key, `concurrency` in flight (a Txn may not put one key twice)."""
    async with grpc.aio.insecure_channel(_target(endpoint)) as channel:
        kv = rpc.KVStub(channel)
        sem = asyncio.Semaphore(concurrency)

        async def put(i: int) -> None:
            async with sem:
                await kv.Put(rpc.PutRequest(key=key, value=b"%d" % i), timeout=10)

        await asyncio.gather(*(put(i) for i in range(times)))


async def put_keys(endpoint: str, keys: list[bytes], value: bytes, batch: int = 128) -> None:
    """Many keys in Txns of `batch` puts (etcd's default --max-txn-ops is 128)."""
    async with grpc.aio.insecure_channel(_target(endpoint)) as channel:
        kv = rpc.KVStub(channel)

        async def txn(chunk: list[bytes]) -> None:
            ops = [rpc.RequestOp(request_put=rpc.PutRequest(key=k, value=value)) for k in chunk]
            await kv.Txn(rpc.TxnRequest(success=ops), timeout=30)

        await asyncio.gather(*(txn(keys[i : i + batch]) for i in range(0, len(keys), batch)))


def revision(cluster: LocalCluster) -> int:
    out = json.loads(etcdctl(cluster, "endpoint", "status", "-w", "json"))
    return max(e["Status"]["header"]["revision"] for e in out)


@pytest.mark.etcd
async def test_json_names_the_big_value_and_the_most_modified_key(etcd_cluster: LocalCluster):
    endpoint = etcd_cluster.endpoints[0]
    etcdctl(etcd_cluster, "put", "/big/blob", input=BIG_VALUE)
    await rewrite_key(endpoint, b"/hot/counter", REWRITES)
    ordinary = [b"/app/ns%02d/item%05d" % (i % 20, i) for i in range(ORDINARY_KEYS)]
    await put_keys(endpoint, ordinary, b"v" * 100)
    before = revision(etcd_cluster)

    proc = await asyncio.to_thread(run_inspect, etcd_cluster, "--output", "json")

    assert proc.returncode == 1, proc.stderr
    doc = json.loads(proc.stdout)
    assert doc["exit_code"] == 1
    (cluster,) = doc["clusters"]
    assert [m["up"] for m in cluster["members"]] == [True, True, True]
    assert sorted(m["name"] for m in cluster["members"]) == ["m1", "m2", "m3"]
    assert cluster["leader"] in ("m1", "m2", "m3")
    assert cluster["alarms"] == []
    keys = ORDINARY_KEYS + 2
    assert cluster["consistency"]["consistent"] is True
    assert [m["keys"] for m in cluster["consistency"]["members"]] == [keys] * 3
    assert cluster["consistency"]["hashes_agree"] is True
    scan = cluster["keyspace"]
    assert scan["keys"] == keys
    assert scan["largest_values"][0] == {"key": "/big/blob", "bytes": len(BIG_VALUE)}
    assert scan["big_values"] == 1
    assert scan["most_modified"][0] == {"key": "/hot/counter", "version": REWRITES}
    app = [p for p in scan["prefixes"] if p["prefix"].startswith("/app/")]
    assert len(app) == 20  # /app/ns00/ .. /app/ns19/ (prefix depth 2)
    assert {p["keys"] for p in app} == {ORDINARY_KEYS // 20}
    assert sum(p["bytes"] for p in app) == ORDINARY_KEYS * 100
    assert scan["prefixes"][0]["prefix"] == "/big/"  # most bytes first
    (finding,) = doc["findings"]
    assert finding["check"] == "big_value"
    assert "/big/blob" in finding["message"]
    assert all(m["used_ratio"] < 0.65 for m in cluster["quota"]["members"])
    assert "scanning" not in proc.stderr  # stderr is not a terminal: no progress line
    # inspect only reads: any write would have moved the revision on.
    assert revision(etcd_cluster) == before


@pytest.mark.etcd
def test_clean_cluster_text_report_exits_0(etcd_cluster: LocalCluster):
    for i in range(5):
        etcdctl(etcd_cluster, "put", f"/config/item{i}", f"value {i}")

    proc = run_inspect(etcd_cluster)

    assert proc.returncode == 0, proc.stdout + proc.stderr
    text = proc.stdout
    for section in (
        "Members", "Consistency (at revision", "key counts agree: yes; hashes agree: yes; "
        "cluster IDs agree: yes",
        "Quota (limit 65% used; tiers 65% info, 75% warning, 85% critical)",
        "Leases: 0 active (limit 10000)", "Keyspace scan (at revision",
        "Largest values", "Most-modified keys", "Biggest prefixes", "Hot keys: not watched",
        "Findings", "none: all clear", "Result: all clear (exit 0)",
    ):  # fmt: skip
        assert section in text, section
    for member, url in zip(("m1", "m2", "m3"), etcd_cluster.endpoints, strict=True):
        line = next(ln for ln in text.splitlines() if url in ln)
        assert line.split()[0] == member and " up " in line
    assert "/config/  5     35 B" in text  # keys and value bytes of the only prefix
    assert proc.stderr == ""


@pytest.mark.etcd
def test_a_member_down_is_a_finding(etcd_cluster: LocalCluster):
    etcdctl(etcd_cluster, "put", "/a", "1")
    etcd_cluster.member("m3").kill()
    # If m3 led, wait for the new leader: Alarm(GET) goes through raft and would wait for it.
    etcd_cluster.wait_healthy(members=[etcd_cluster.member("m1"), etcd_cluster.member("m2")])

    proc = run_inspect(etcd_cluster, "--output", "json")

    assert proc.returncode == 1, proc.stderr
    doc = json.loads(proc.stdout)
    down = [f for f in doc["findings"] if f["check"] == "member_down"]
    assert [f["member"] for f in down] == ["m3"]
    members = {m["name"]: m for m in doc["clusters"][0]["members"]}
    assert members["m3"]["up"] is False and members["m1"]["up"] is True
    # The two members still up are compared; their data agree, and the verdict says so.
    consistency = doc["clusters"][0]["consistency"]
    assert consistency["consistent"] is True
    assert (consistency["members_compared"], consistency["members_total"]) == (2, 3)
    text = run_inspect(etcd_cluster).stdout
    assert "verdict: consistent (2 of 3 members compared at revision " in text


def test_nobody_listening_exits_2_with_a_message_on_stderr():
    endpoints = ",".join(f"http://127.0.0.1:{p}" for p in free_ports(2))

    started = time.monotonic()
    proc = run_inspect(None, endpoints=endpoints)

    assert proc.returncode == 2
    assert time.monotonic() - started < 15
    first_endpoint = endpoints.split(",")[0]
    assert "could not inspect cluster 'default'" in proc.stderr
    assert "no member answered Status" in proc.stderr
    assert first_endpoint in proc.stderr
    assert "Result: could not inspect (exit 2)" in proc.stdout
    # Every member was asked: each is down for its reason, not "unknown".
    assert proc.stdout.count("DOWN (unavailable)") == 2, proc.stdout

    as_json = run_inspect(None, "--output", "json", endpoints=endpoints)
    assert as_json.returncode == 2
    doc = json.loads(as_json.stdout)
    assert doc["clusters"][0]["inspected"] is False
    assert [f["check"] for f in doc["findings"]] == ["unreachable"]
    members = doc["clusters"][0]["members"]
    assert [(m["state"], m["error"]) for m in members] == [("down", "unavailable")] * 2
    assert all("Connection refused" in m["reason"] for m in members), members


@pytest.mark.etcd
def test_bad_watch_duration_exits_2(shared_cluster: LocalCluster):
    proc = run_inspect(shared_cluster, "--watch", "soon")
    assert proc.returncode == 2
    assert "--watch" in proc.stderr and "'soon' is not a duration" in proc.stderr
    assert proc.stdout == ""


def test_unknown_probe_in_probes_is_one_line_and_exit_2():
    endpoints = f"http://127.0.0.1:{free_ports(1)[0]}"
    proc = run_inspect(None, "--probes", "status,bigvalu", endpoints=endpoints)
    assert proc.returncode == 2
    assert proc.stderr.strip().splitlines() == [
        "etcd-inspector: --probes: unknown probe 'bigvalu' (did you mean 'bigvalue'?); "
        "known probes: status, performance, consistency, quota, leases, bigvalue, hotkeys, "
        "certs, backup"
    ]
    assert proc.stdout == ""


@pytest.mark.etcd
def test_probes_and_enabled_false_choose_what_inspect_runs(
    shared_cluster: LocalCluster, tmp_path: Path
):
    cfg = tmp_path / "c.yml"
    cfg.write_text("inspection:\n  probes:\n    consistency:\n      enabled: false\n")
    proc = run_inspect(shared_cluster, "--config.file", str(cfg), "--output", "json")
    ran = {n: p["ran"] for n, p in json.loads(proc.stdout)["clusters"][0]["probes"].items()}
    assert ran["consistency"] is False and ran["bigvalue"] is True and ran["status"] is True
    # --probes wins over the file; status always runs
    proc = run_inspect(shared_cluster, "--config.file", str(cfg), "--probes", "consistency")
    assert proc.returncode in (0, 1), proc.stderr
    assert "Consistency (at revision" in proc.stdout
    assert "Keyspace scan: not run (skipped" in proc.stdout
    assert "Members" in proc.stdout


@pytest.mark.etcd
def test_mixin_values_set_the_thresholds_findings_compare_with(
    shared_cluster: LocalCluster, tmp_path: Path
):
    """The values file the alerts are rendered with (generate --values) gives `inspect` the
    same thresholds: any use of the quota is over a 0.000001 warning tier."""
    values = tmp_path / "values.yaml"
    values.write_text("quota_used_ratio_tiers: [{severity: warning, ratio: 0.000001}]\n")
    proc = run_inspect(shared_cluster, "--mixin.values", str(values), "--probes", "quota",
                       "--output", "json")  # fmt: skip
    doc = json.loads(proc.stdout)
    quota = [f for f in doc["findings"] if f["check"] == "quota"]
    assert len(quota) == 3 and all(f["threshold"] == 0.000001 for f in quota), doc["findings"]
    assert quota[0]["runbook"] == "etcdinspectorquotaheadroomlow" and proc.returncode == 1
    assert doc["clusters"][0]["quota"]["used_ratio_limit"] == 0.000001

    values.write_text("quota_used_ratio_warnin: 0.5\n")
    proc = run_inspect(shared_cluster, "--mixin.values", str(values))
    assert proc.returncode == 2 and proc.stdout == ""
    assert proc.stderr.strip().splitlines() == [
        f"etcd-inspector: --mixin.values: {values}: unknown value name: quota_used_ratio_warnin "
        "(known names are those of config.libsonnet)"
    ]


def watchers(cluster: LocalCluster) -> int:
    """Watchers open on the members, from etcd's own /metrics (nobody else watches here)."""
    total = 0
    for m in cluster.members:
        with urllib.request.urlopen(m.metrics_url, timeout=5) as resp:
            for line in resp.read().decode().splitlines():
                if line.startswith("etcd_debugging_mvcc_watcher_total "):
                    total += int(float(line.split()[1]))
    return total


@pytest.mark.etcd
async def test_watch_finds_the_hot_key(etcd_cluster: LocalCluster):
    endpoint = etcd_cluster.endpoints[0]
    etcdctl(etcd_cluster, "put", "/calm/key", "1")
    assert watchers(etcd_cluster) == 0
    inspect = asyncio.create_task(
        asyncio.to_thread(run_inspect, etcd_cluster, "--output", "json", "--watch", "4s")
    )
    # Write once the watch is open, so that every write falls inside the window.
    for _ in range(200):
        if watchers(etcd_cluster):
            break
        await asyncio.sleep(0.05)
    await rewrite_key(endpoint, b"/hot/lease", 600)
    proc = await inspect

    # 600 writes in a 4s window: 150/s, over the hot-key alert's 50/s, so a finding (exit 1);
    # few enough to land inside the window on a loaded machine (1500 once did not)
    assert proc.returncode == 1, proc.stdout + proc.stderr
    doc = json.loads(proc.stdout)
    hot = doc["clusters"][0]["hot_keys"]
    assert hot["watch_seconds"] == 4.0
    assert hot["events"] == 600
    assert hot["keys"][0]["key"] == "/hot/lease"
    # The row and the header use one divisor: the window (the issue saw 43.3/s vs 12.7/s).
    assert hot["keys"][0]["writes_per_second"] == hot["events_per_second"] == 150.0
    assert hot["short_window"] is True
    assert hot["prefixes"][0] == {"prefix": "/hot/", "puts": 600, "deletes": 0}
    (finding,) = doc["findings"]
    assert (finding["check"], finding["subject"], finding["value"], finding["threshold"]) == (
        "hot_key", "/hot/lease", 150.0, 50,
    )  # fmt: skip
    assert finding["runbook_url"].endswith("#etcdinspectorhotkey")


def _run_with_tty_stderr(argv: list[str], timeout: float = 60) -> tuple[int, str, str]:
    """Run with stderr on a pseudo-terminal and stdout to a file: (rc, stdout, tty output)."""
    master, slave = pty.openpty()
    with tempfile.TemporaryFile() as out:
        proc = subprocess.Popen(argv, stdout=out, stderr=slave, stdin=subprocess.DEVNULL)
        os.close(slave)
        tty = b""
        deadline = time.monotonic() + timeout
        try:
            while time.monotonic() < deadline:
                ready, _, _ = select.select([master], [], [], 0.1)
                if ready:
                    try:
                        chunk = os.read(master, 65536)
                    except OSError:  # EIO: the child closed the terminal
                        break
                    if not chunk:
                        break
                    tty += chunk
                elif proc.poll() is not None:
                    break
            rc = proc.wait(timeout=max(1.0, deadline - time.monotonic()))
        finally:
            os.close(master)
            if proc.poll() is None:
                proc.kill()
                proc.wait()
        out.seek(0)
        return rc, out.read().decode(), tty.decode(errors="replace")


@pytest.mark.etcd
async def test_progress_line_on_a_terminal_only(etcd_cluster: LocalCluster, tmp_path: Path):
    await put_keys(etcd_cluster.endpoints[0], [b"/p/k%05d" % i for i in range(3000)], b"v" * 50)
    # A slow scan (3000 keys at 2000 keys/s) so the line has time to show.
    config = tmp_path / "slow.yml"
    config.write_text(
        "inspection:\n  probes:\n    bigvalue:\n      page_size: 100\n      keys_per_second: 2000\n"
    )
    argv = [*inspector(), "inspect", "--config.file", str(config),
            "--etcd.endpoints", ",".join(etcd_cluster.endpoints)]  # fmt: skip

    rc, out, tty = await asyncio.to_thread(_run_with_tty_stderr, argv)

    assert rc == 0, out + tty
    assert "scanning: " in tty and " keys at revision " in tty and " keys/s)" in tty
    assert "\r" in tty  # rewritten in place, not one line per update
    assert "scanning" not in out  # the report on stdout stays clean
    assert "Keyspace scan (at revision" in out

    rc, out, tty = await asyncio.to_thread(_run_with_tty_stderr, [*argv, "--no-progress"])
    assert rc == 0
    assert "scanning" not in tty


def test_progress_text_from_the_scan_probes_progress():
    progress = ScanProgress(keys_done=120000, revision=5003, started_at=1000.0)
    text = BigValueProbe(BigValueOptions()).progress_text(progress, now=1001.25)
    assert text == "scanning: 120000 keys at revision 5003 (96000 keys/s)"
    starting = ScanProgress(keys_done=0, revision=0, started_at=1000.0)
    probe = BigValueProbe(BigValueOptions())
    assert probe.progress_text(starting, now=1000.0) == "scanning: 0 keys"


def test_the_watch_window_counts_down_on_the_progress_line():
    from types import SimpleNamespace

    from etcd_inspector.inspect import progress_texts

    rt = SimpleNamespace(name="c", state=SimpleNamespace(progress={}), probes={})
    assert progress_texts([rt], now=100.0, watch_ends={"c": 112.4}) == [
        "watching writes: 12s left"
    ]
    assert progress_texts([rt], now=113.0, watch_ends={"c": 112.4}) == []
