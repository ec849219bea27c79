"""The restore drill: restore a snapshot the way an operator would, and see it serve.

`etcdutl snapshot restore` (etcd >= 3.5; `etcdctl snapshot restore` on 3.4) into a temporary
directory, a throwaway single-member etcd on loopback ports the kernel hands out, one count of
its keys through the read-only client, then the process is stopped and the directory removed,
whatever happened. The drill never talks to the live cluster.
"""

from __future__ import annotations

import asyncio
import contextlib
import os
import shutil
import tempfile
import time
from pathlib import Path

from etcd_inspector.backup.files import Checksum, SnapshotCheck
from etcd_inspector.backup.locations import RestoreDrill
from etcd_inspector.etcd.errors import EtcdError
from etcd_inspector.ports import free_ports

_STOP_SECONDS = 10.0


class DrillFailed(Exception):
    pass


def find_tools(etcd_binary: str) -> tuple[str, str]:
    """(etcd, restore tool): the configured etcd or $ETCD_BIN or `etcd` on PATH; etcdutl beside
    it or on PATH, else etcdctl beside it or on PATH."""
    etcd = etcd_binary or os.environ.get("ETCD_BIN") or shutil.which("etcd") or ""
    if not etcd or not os.access(etcd, os.X_OK):
        raise DrillFailed("no etcd binary (set the backup probe's etcd_binary option)")
    here = Path(etcd).parent
    for tool in ("etcdutl", "etcdctl"):
        beside = here / tool
        if beside.exists() and os.access(beside, os.X_OK):
            return etcd, str(beside)
    for tool in ("etcdutl", "etcdctl"):
        found = shutil.which(tool)
        if found:
            return etcd, found
    raise DrillFailed(f"neither etcdutl nor etcdctl found beside {etcd} or on PATH")


async def _run(args: list[str], timeout: float, env: dict[str, str]) -> None:
    proc = await asyncio.create_subprocess_exec(
        *args, stdout=asyncio.subprocess.PIPE, stderr=asyncio.subprocess.STDOUT,
        stdin=asyncio.subprocess.DEVNULL, env=env,
    )  # fmt: skip
    try:
        async with asyncio.timeout(timeout):
            out, _ = await proc.communicate()
    except BaseException:
        with contextlib.suppress(ProcessLookupError):
            proc.kill()
        await proc.wait()
        raise
    if proc.returncode != 0:
        last = (out or b"").decode(errors="replace").strip().splitlines()[-1:] or [""]
        raise DrillFailed(f"{Path(args[0]).name} snapshot restore failed: {last[0][:300]}")


async def _stop(proc: asyncio.subprocess.Process) -> None:
    if proc.returncode is not None:
        return
    with contextlib.suppress(ProcessLookupError):
        proc.terminate()
    try:
        async with asyncio.timeout(_STOP_SECONDS):
            await proc.wait()
    except TimeoutError:
        with contextlib.suppress(ProcessLookupError):
            proc.kill()
        await proc.wait()


async def _count_when_up(
    url: str, proc: asyncio.subprocess.Process, deadline: float
) -> tuple[int, int]:
    # Imported here: the backup probe's spec loads with every command, the drill's client only when
    # a drill runs (grpc and aetcd are a third of the CLI's start-up).
    from etcd_inspector.etcd.client import MemberClient

    client = MemberClient(url, request_timeout=2.0)
    try:
        while True:
            if proc.returncode is not None:
                raise DrillFailed(f"the restored etcd exited with code {proc.returncode}")
            try:
                return await client.count_keys(serializable=True)
            except EtcdError as err:
                if time.monotonic() > deadline:
                    raise DrillFailed(f"the restored etcd did not answer: {err.kind}") from None
            await asyncio.sleep(0.2)
    finally:
        await client.close()


async def restore_drill(check: SnapshotCheck, etcd_binary: str, timeout: float) -> RestoreDrill:
    """Restore `check`'s snapshot, start it, count its keys; never raises for a failed drill."""
    started = time.monotonic()
    deadline = started + timeout
    snapshot = check.file.path
    try:
        etcd, tool = find_tools(etcd_binary)
        if check.file.compression:
            raise DrillFailed("compressed snapshots are not restored by the drill")
        with tempfile.TemporaryDirectory(prefix="etcd-inspector-drill-") as tmp:
            keys, revision = await _drill(check, etcd, tool, Path(tmp), deadline)
    except (DrillFailed, OSError, TimeoutError) as err:
        why = str(err) or type(err).__name__
        return RestoreDrill(False, time.monotonic() - started, problem=why, snapshot=snapshot,
                            ran_at=time.time())  # fmt: skip
    expected = check.stats.live_keys if check.stats else None
    problem: str | None = None
    if expected is not None and keys != expected:
        problem = f"the restored member serves {keys} keys, the snapshot holds {expected}"
    return RestoreDrill(problem is None, time.monotonic() - started, keys, revision, problem,
                        snapshot, time.time())  # fmt: skip


async def _drill(
    check: SnapshotCheck, etcd: str, tool: str, tmp: Path, deadline: float
) -> tuple[int, int]:
    client_port, peer_port = free_ports(2)
    peer = f"http://127.0.0.1:{peer_port}"
    client = f"http://127.0.0.1:{client_port}"
    data_dir = tmp / "drill.etcd"
    env = {**os.environ, "ETCDCTL_API": "3"}
    restore = [
        tool, "snapshot", "restore", check.file.path, "--data-dir", str(data_dir),
        "--name", "drill", "--initial-cluster", f"drill={peer}",
        "--initial-cluster-token", "etcd-inspector-restore-drill",
        "--initial-advertise-peer-urls", peer,
    ]  # fmt: skip
    if check.checksum is not Checksum.OK:
        restore.append("--skip-hash-check")  # a file without etcd's trailing hash
    await _run(restore, max(1.0, deadline - time.monotonic()), env)
    log = await asyncio.to_thread(open, tmp / "etcd.log", "wb")
    proc = await asyncio.create_subprocess_exec(
        etcd, "--name", "drill", "--data-dir", str(data_dir),
        "--listen-client-urls", client, "--advertise-client-urls", client,
        "--listen-peer-urls", peer, "--initial-advertise-peer-urls", peer,
        "--initial-cluster", f"drill={peer}", "--logger", "zap", "--log-level", "error",
        stdout=log, stderr=log, stdin=asyncio.subprocess.DEVNULL,
    )  # fmt: skip
    try:
        return await _count_when_up(client, proc, deadline)
    finally:
        await _stop(proc)
        log.close()
