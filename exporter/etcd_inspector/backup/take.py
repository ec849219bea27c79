"""`etcd-inspector snapshot --out DIR`: one verified snapshot file per cluster, atomically.

From a healthy member, a follower when there is one (a snapshot costs the serving member disk
reads and network; the leader has the most to lose): Maintenance.Snapshot streams the backend
into a dot-named temporary file in DIR while its SHA-256 is computed; etcd's own hash (the last
32 bytes) must match, the bbolt reader must open the file, then the file and the directory are
fsynced and the file renamed to `<cluster>-<UTC time>-r<revision>.db`. Whatever fails, the
temporary file is removed: a file with a final name is always whole.

Retention (--keep, --max-age) only ever deletes this command's own files of the same cluster,
never the one just written. --every repeats it (a sidecar); without it, one run (a CronJob).
"""

from __future__ import annotations

import argparse
import asyncio
import contextlib
import errno
import hashlib
import os
import signal
import sys
import time
from collections.abc import Sequence
from dataclasses import dataclass
from pathlib import Path

from etcd_inspector.backup.bbolt import SnapshotCorrupt, SnapshotStats, read_snapshot
from etcd_inspector.backup.files import (
    OWN_NAME,
    SHA256_SIZE,
    SnapshotFile,
    find_snapshots,
    own_snapshot_name,
)
from etcd_inspector.cluster.runtime import member_clients
from etcd_inspector.cluster.state import ClusterState
from etcd_inspector.cluster.topology import Topology
from etcd_inspector.config import ClusterConfig, Config, parse_duration
from etcd_inspector.errors import ErrorKind, ProbeError, UsageError
from etcd_inspector.etcd.client import MemberClient
from etcd_inspector.etcd.errors import EtcdError
from etcd_inspector.exitcodes import (
    EXIT_INTERRUPTED,
    EXIT_OK,
    EXIT_SNAPSHOT_CORRUPT,
    EXIT_SNAPSHOT_DESTINATION,
    EXIT_SNAPSHOT_ETCD,
    EXIT_SNAPSHOT_NO_SPACE,
)
from etcd_inspector.probes.base import NoOptions, ProbeContext
from etcd_inspector.probes.status import StatusProbe
from etcd_inspector.report.format import size

_NO_SPACE = (errno.ENOSPC, errno.EDQUOT)


class SnapshotFailed(Exception):
    """One line for the user and the exit code that says why."""

    def __init__(self, code: int, message: str) -> None:
        super().__init__(message)
        self.code = code
        self.message = message


@dataclass(frozen=True)
class Written:
    path: str
    member: str
    size: int
    stats: SnapshotStats
    seconds: float
    pruned: tuple[str, ...] = ()


# --------------------------------------------------------------------------- pure logic


def member_order(topology: Topology) -> list[str]:
    """Endpoints to stream from, best first: answering voters that carry no alarm, followers
    before the leader, the most advanced first. Learners and alarmed members are left out."""
    alarmed = {name for name, _alarm in topology.alarms or ()}
    candidates = [
        m for m in topology.answered
        if m.status is not None and not m.is_learner and m.name not in alarmed
    ]  # fmt: skip
    candidates.sort(key=lambda m: (m.is_leader, -(m.status.revision if m.status else 0)))
    return [m.endpoint for m in candidates]


def to_prune(
    files: Sequence[SnapshotFile], keep: int | None, max_age: float | None, now: float
) -> list[SnapshotFile]:
    """Which of one cluster's snapshots (newest first) retention removes: beyond the newest
    `keep`, or older than `max_age`; never the newest."""
    doomed = []
    for i, f in enumerate(files):
        if i == 0:
            continue
        if (keep is not None and i >= keep) or (max_age is not None and now - f.taken_at > max_age):
            doomed.append(f)
    return doomed


class TailHasher:
    """SHA-256 of everything but the last 32 bytes seen, which etcd sends as the hash."""

    def __init__(self) -> None:
        self.digest = hashlib.sha256()
        self.tail = b""
        self.size = 0

    def update(self, chunk: bytes) -> None:
        self.size += len(chunk)
        data = self.tail + chunk
        cut = max(0, len(data) - SHA256_SIZE)
        self.digest.update(data[:cut])
        self.tail = data[cut:]

    def matches(self) -> bool:
        return len(self.tail) == SHA256_SIZE and self.tail == self.digest.digest()


# --------------------------------------------------------------------------- I/O


def _os_failure(err: OSError, what: str) -> SnapshotFailed:
    if err.errno in _NO_SPACE:
        return SnapshotFailed(EXIT_SNAPSHOT_NO_SPACE, f"{what}: no space left ({err.strerror})")
    return SnapshotFailed(EXIT_SNAPSHOT_DESTINATION, f"{what}: {err.strerror or err}")


def check_destination(out: str) -> None:
    if not os.path.exists(out):
        raise SnapshotFailed(EXIT_SNAPSHOT_DESTINATION, f"--out {out}: no such directory")
    if not os.path.isdir(out):
        raise SnapshotFailed(EXIT_SNAPSHOT_DESTINATION, f"--out {out}: not a directory")
    if not os.access(out, os.W_OK | os.X_OK):
        raise SnapshotFailed(EXIT_SNAPSHOT_DESTINATION, f"--out {out}: not writable")


def _fsync_dir(directory: str) -> None:
    fd = os.open(directory, os.O_RDONLY | os.O_DIRECTORY)
    try:
        os.fsync(fd)
    finally:
        os.close(fd)


async def _topology(cluster: ClusterConfig, clients: list[MemberClient]) -> Topology:
    state = ClusterState(cluster.name, tuple(c.endpoint for c in clients))
    try:
        return await StatusProbe(NoOptions()).run(ProbeContext(cluster.name, clients, state))
    except ProbeError as err:
        raise SnapshotFailed(EXIT_SNAPSHOT_ETCD, f"cluster {cluster.name}: {err.message}") from None


async def _stream_into(client: MemberClient, fd: int, hasher: TailHasher, tmp: str) -> None:
    async for chunk in client.snapshot():
        hasher.update(chunk)
        view = memoryview(chunk)
        while view:
            try:
                written = os.write(fd, view)
            except OSError as err:
                raise _os_failure(err, f"writing {tmp}") from None
            view = view[written:]


async def take_snapshot(cluster: ClusterConfig, out: str) -> Written:
    """Stream, verify and publish one snapshot of `cluster` into `out`."""
    check_destination(out)
    clients = member_clients(cluster)
    try:
        topology = await _topology(cluster, clients)
        order = member_order(topology)
        if not order:
            raise SnapshotFailed(
                EXIT_SNAPSHOT_ETCD, f"cluster {cluster.name}: no healthy voting member answered"
            )
        client = next(c for c in clients if c.endpoint == order[0])
        return await _take_from(cluster, client, topology.name_of(client.endpoint), out)
    finally:
        for c in clients:
            await c.close()


async def _take_from(
    cluster: ClusterConfig, client: MemberClient, member: str, out: str
) -> Written:
    started_at = time.time()
    started = time.monotonic()
    tmp = os.path.join(out, f".{cluster.name}-{os.getpid()}-{time.monotonic_ns()}.db.part")
    try:
        # 0600: a snapshot holds every secret in the cluster.
        fd = os.open(tmp, os.O_WRONLY | os.O_CREAT | os.O_EXCL, 0o600)
    except OSError as err:
        raise _os_failure(err, f"--out {out}: cannot create a file") from None
    published = False
    try:
        hasher = TailHasher()
        try:
            await _stream_into(client, fd, hasher, tmp)
            os.fsync(fd)
        except EtcdError as err:
            hint = (
                " (Maintenance.Snapshot needs the root role)"
                if (err.kind is ErrorKind.PERMISSION_DENIED)
                else ""
            )
            raise SnapshotFailed(
                EXIT_SNAPSHOT_ETCD,
                f"snapshot stream from member {member} ({client.endpoint}) broke after "
                f"{size(hasher.size)}: {err.kind}: {err.detail}{hint}",
            ) from None
        except OSError as err:
            raise _os_failure(err, f"writing {tmp}") from None
        finally:
            os.close(fd)
        if not hasher.matches():
            raise SnapshotFailed(
                EXIT_SNAPSHOT_CORRUPT,
                f"snapshot from member {member} is not whole: its SHA-256 does not match "
                f"({size(hasher.size)} received)",
            )
        try:
            stats = await asyncio.to_thread(read_snapshot, tmp, hasher.size - SHA256_SIZE)
        except SnapshotCorrupt as err:
            raise SnapshotFailed(
                EXIT_SNAPSHOT_CORRUPT, f"snapshot from member {member} does not open: {err}"
            ) from None
        final = os.path.join(out, own_snapshot_name(cluster.name, started_at, stats.revision))
        try:
            os.rename(tmp, final)
            published = True
            _fsync_dir(out)
        except OSError as err:
            raise _os_failure(err, f"publishing {final}") from None
        return Written(final, member, hasher.size, stats, time.monotonic() - started)
    finally:
        if not published:
            with contextlib.suppress(OSError):
                os.unlink(tmp)


def prune(out: str, cluster: str, keep: int | None, max_age: float | None) -> tuple[str, ...]:
    here = Path(out).resolve()
    ours = [
        f for f in find_snapshots(out)
        if Path(f.path).parent.resolve() == here
        and (m := OWN_NAME.match(f.name)) is not None and m["cluster"] == cluster
    ]  # fmt: skip
    removed = []
    for f in to_prune(ours, keep, max_age, time.time()):
        with contextlib.suppress(FileNotFoundError):
            os.unlink(f.path)
            removed.append(f.path)
    return tuple(removed)


# --------------------------------------------------------------------------- the command


def _duration(flag: str, text: str | None) -> float | None:
    if text is None:
        return None
    try:
        seconds = parse_duration(text)
    except ValueError as err:
        raise UsageError(f"{flag}: {err}") from None
    if seconds <= 0:
        raise UsageError(f"{flag} must be greater than 0")
    return seconds


async def _run_once(config: Config, args: argparse.Namespace, max_age: float | None) -> int:
    code = EXIT_OK
    for cluster in config.clusters:
        try:
            w = await take_snapshot(cluster, args.out)
            pruned = prune(args.out, cluster.name, args.keep, max_age)
        except SnapshotFailed as err:
            print(f"etcd-inspector snapshot: {err.message}", file=sys.stderr, flush=True)
            code = code or err.code
            continue
        except OSError as err:
            print(f"etcd-inspector snapshot: {_os_failure(err, args.out).message}",
                  file=sys.stderr, flush=True)  # fmt: skip
            code = code or EXIT_SNAPSHOT_DESTINATION
            continue
        print(
            f"etcd-inspector snapshot: wrote {w.path} ({size(w.size)}, revision "
            f"{w.stats.revision}, {w.stats.live_keys} keys, from member {w.member}, "
            f"{w.seconds:.1f}s)" + (f"; removed {len(pruned)} older" if pruned else ""),
            flush=True,
        )
    return code


async def _main(
    config: Config, args: argparse.Namespace, max_age: float | None, every: float | None
) -> int:
    task = asyncio.current_task()
    assert task is not None
    # SIGTERM (a pod stopping) cancels like Ctrl-C: the partial file is removed on the way out.
    asyncio.get_running_loop().add_signal_handler(signal.SIGTERM, task.cancel)
    if every is None:
        return await _run_once(config, args, max_age)
    while True:
        started = time.monotonic()
        await _run_once(config, args, max_age)
        await asyncio.sleep(max(0.0, every - (time.monotonic() - started)))


def run_snapshot(args: argparse.Namespace, config: Config) -> int:
    if args.keep is not None and args.keep < 1:
        raise UsageError("--keep must be at least 1")
    max_age = _duration("--max-age", args.max_age)
    every = _duration("--every", args.every)
    try:
        return asyncio.run(_main(config, args, max_age, every))
    except (KeyboardInterrupt, asyncio.CancelledError):
        return EXIT_INTERRUPTED
