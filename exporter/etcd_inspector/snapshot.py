"""`etcd-inspector snapshot --out DIR`: one verified snapshot file per cluster, atomically.

From a healthy member, a follower when there is one (a snapshot costs the serving member disk
reads and network; the leader has the most to lose): Maintenance.Snapshot streams the backend
into a dot-named temporary file in DIR while its SHA-256 is computed; etcd's own hash (the last
32 bytes) must match, the bbolt reader must open the file, then the file and the directory are
fsynced and the file renamed to `<cluster>-<UTC time>-r<revision>.db`. Whatever fails, the
temporary file is removed: a file with a final name is always whole.

Retention (--keep, --max-age) only ever deletes this command's own files of the same cluster,
never the one just written. --every repeats it (a sidecar); without it, one run (a CronJob).

`--out s3://BUCKET/PREFIX` streams the snapshot into one multipart upload (one part buffered at
a time), completes it only when etcd's SHA-256 matched, then writes `<name>.sha256`, which
publishes it (backup/objects.py says why). Any failure aborts the upload: the bucket's newest
snapshot stays the previous one. Retention deletes this command's objects in the bucket.
"""

from __future__ import annotations

import argparse
import asyncio
import contextlib
import ctypes
import errno
import os
import signal
import sys
import time
from concurrent.futures import ThreadPoolExecutor
from dataclasses import dataclass
from pathlib import Path
from typing import TYPE_CHECKING

from etcd_inspector.backup.bbolt import SnapshotCorrupt, SnapshotStats, read_snapshot
from etcd_inspector.backup.files import OWN_NAME, SHA256_SIZE, find_snapshots, own_snapshot_name
from etcd_inspector.backup.objects import (
    CHECKSUM_SUFFIX,
    BucketLocation,
    Failure,
    checksum_text,
    is_s3,
    key_of,
    object_name,
    own_objects,
    parse_location,
)
from etcd_inspector.backup.s3 import (
    MultipartUpload,
    S3Error,
    delete,
    list_objects,
    put_small,
    shared_client,
)
from etcd_inspector.backup.taking import TailHasher, member_order, to_prune
from etcd_inspector.cluster.topology import Topology
from etcd_inspector.config import ClusterConfig, Config, parse_duration
from etcd_inspector.errors import ErrorKind, ProbeError, UsageError
from etcd_inspector.etcd.client import MemberClient
from etcd_inspector.etcd.errors import EtcdError
from etcd_inspector.exitcodes import (
    EXIT_INTERRUPTED,
    EXIT_OK,
    EXIT_SNAPSHOT_ACCESS_DENIED,
    EXIT_SNAPSHOT_CORRUPT,
    EXIT_SNAPSHOT_CREDENTIALS,
    EXIT_SNAPSHOT_CREDENTIALS_EXPIRED,
    EXIT_SNAPSHOT_DESTINATION,
    EXIT_SNAPSHOT_ENDPOINT,
    EXIT_SNAPSHOT_ETCD,
    EXIT_SNAPSHOT_NO_BUCKET,
    EXIT_SNAPSHOT_NO_SPACE,
    EXIT_SNAPSHOT_UPLOAD_BROKE,
)
from etcd_inspector.probes.status import read_topology
from etcd_inspector.report.format import size
from etcd_inspector.runtime.runtime import member_clients

if TYPE_CHECKING:
    from mypy_boto3_s3 import S3Client

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
    stats: SnapshotStats | None  # None for a bucket: the probe reads it there
    seconds: float
    pruned: tuple[str, ...] = ()
    sha256: str = ""


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
    try:
        return await read_topology(clients)
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


# --------------------------------------------------------------------------- into a bucket

_EXIT_OF = {
    Failure.NO_BUCKET: EXIT_SNAPSHOT_NO_BUCKET,
    Failure.ACCESS_DENIED: EXIT_SNAPSHOT_ACCESS_DENIED,
    Failure.CREDENTIALS: EXIT_SNAPSHOT_CREDENTIALS,
    Failure.EXPIRED: EXIT_SNAPSHOT_CREDENTIALS_EXPIRED,
    Failure.ENDPOINT: EXIT_SNAPSHOT_ENDPOINT,
    Failure.NETWORK: EXIT_SNAPSHOT_UPLOAD_BROKE,
}


# While a part uploads, the stream is not read; gRPC's BDP probing would keep growing the
# receive window meanwhile (tens of MiB buffered). A fixed window bounds it (~10 MiB less peak
# memory, the same speed on loopback: docs/decisions.md).
_BUCKET_STREAM_OPTIONS: tuple[tuple[str, str | int], ...] = (("grpc.http2.bdp_probe", 0),)


def _bucket_failure(err: S3Error, loc: BucketLocation, what: str, started: bool) -> SnapshotFailed:
    code = _EXIT_OF.get(err.kind, EXIT_SNAPSHOT_DESTINATION)
    if started and err.kind in (Failure.ENDPOINT, Failure.NETWORK):
        code = EXIT_SNAPSHOT_UPLOAD_BROKE  # the endpoint went away mid-upload
    detail = f" ({err.detail})" if err.detail and err.detail != str(err.kind) else ""
    return SnapshotFailed(code, f"{loc.url}: {what}: {err.kind}{detail}")


async def take_snapshot_to_bucket(cluster: ClusterConfig, out: str, endpoint_url: str) -> Written:
    """Stream one snapshot of `cluster` into the bucket, publish it, or leave nothing."""
    loc = parse_location(out)
    try:
        client = await asyncio.to_thread(shared_client, endpoint_url)
        # Up front: the bucket, the credentials and the endpoint, before etcd is asked.
        existing = {o.key for o in await asyncio.to_thread(list_objects, client, loc)}
    except S3Error as err:
        raise _bucket_failure(err, loc, "cannot list", started=False) from None
    clients = member_clients(cluster)
    for c in clients:
        c.channel_options = _BUCKET_STREAM_OPTIONS
    try:
        topology = await _topology(cluster, clients)
        order = member_order(topology)
        if not order:
            raise SnapshotFailed(
                EXIT_SNAPSHOT_ETCD, f"cluster {cluster.name}: no healthy voting member answered"
            )
        member = next(c for c in clients if c.endpoint == order[0])
        return await _upload_from(cluster, member, topology.name_of(member.endpoint), client, loc,
                                  existing)  # fmt: skip
    finally:
        for c in clients:
            await c.close()


async def _upload_from(
    cluster: ClusterConfig, client: MemberClient, member: str, s3: S3Client, loc: BucketLocation,
    existing: set[str],
) -> Written:
    started_at = time.time()
    name = object_name(cluster.name, started_at)
    while loc.key(name) in existing:  # names have one second's resolution: never overwrite
        await asyncio.sleep(1.0 - started_at % 1.0)
        started_at = time.time()
        name = object_name(cluster.name, started_at)
    started = time.monotonic()
    upload = MultipartUpload(s3, loc.bucket, loc.key(name))
    hasher = TailHasher()
    published = False
    try:
        try:
            await asyncio.to_thread(upload.start)
            async for chunk in client.snapshot():
                hasher.update(chunk)
                if upload.buffer(chunk):
                    await asyncio.to_thread(upload.flush)
            if upload.pending:
                await asyncio.to_thread(upload.flush)  # the last part; complete() publishes
        except EtcdError as err:
            hint = (" (Maintenance.Snapshot needs the root role)"
                    if err.kind is ErrorKind.PERMISSION_DENIED else "")  # fmt: skip
            raise SnapshotFailed(
                EXIT_SNAPSHOT_ETCD,
                f"snapshot stream from member {member} ({client.endpoint}) broke after "
                f"{size(hasher.size)}: {err.kind}: {err.detail}{hint}",
            ) from None
        except S3Error as err:
            raise _bucket_failure(err, loc, f"uploading {name} (after {size(hasher.size)})",
                                  started=True) from None  # fmt: skip
        if not hasher.matches():
            raise SnapshotFailed(
                EXIT_SNAPSHOT_CORRUPT,
                f"snapshot from member {member} is not whole: its SHA-256 does not match "
                f"({size(hasher.size)} received)",
            )
        sha256 = upload.sha256.hexdigest()
        try:
            await asyncio.to_thread(upload.complete)
            published = True
            await asyncio.to_thread(put_small, s3, loc, loc.key(name) + CHECKSUM_SUFFIX,
                                    checksum_text(sha256, name).encode())  # fmt: skip
        except S3Error as err:
            raise _bucket_failure(err, loc, f"publishing {name}", started=True) from None
        return Written(loc.object_url(loc.key(name)), member, hasher.size, None,
                       time.monotonic() - started, sha256=sha256)  # fmt: skip
    except BaseException:
        # Not published: abort the upload; a completed object without its checksum is removed
        # (best effort: retention removes what is left once it is old).
        await asyncio.shield(asyncio.to_thread(_undo, upload, published))
        raise


def _undo(upload: MultipartUpload, completed: bool) -> None:
    if not completed:
        upload.abort()
        return
    with contextlib.suppress(S3Error):
        delete(upload.client, upload.bucket, [upload.key])


def prune_bucket(
    out: str, endpoint_url: str, cluster: str, keep: int | None, max_age: float | None
) -> tuple[str, ...]:
    """Retention in the bucket (blocking): this command's objects of `cluster` only."""
    loc = parse_location(out)
    client = shared_client(endpoint_url)
    now = time.time()
    published, abandoned = own_objects(loc, cluster, list_objects(client, loc), now)
    doomed = [key_of(f.path)[1] for f in to_prune(published, keep, max_age, now)]
    keys = [k for d in doomed for k in (d + CHECKSUM_SUFFIX, d)] + abandoned
    if keys:
        delete(client, loc.bucket, keys)
    return tuple(loc.object_url(k) for k in doomed)


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


async def _take_and_prune(
    cluster: ClusterConfig, args: argparse.Namespace, max_age: float | None
) -> tuple[Written, tuple[str, ...]]:
    if not is_s3(args.out):
        w = await take_snapshot(cluster, args.out)
        return w, prune(args.out, cluster.name, args.keep, max_age)
    w = await take_snapshot_to_bucket(cluster, args.out, args.s3_endpoint_url)
    try:
        pruned = await asyncio.to_thread(
            prune_bucket, args.out, args.s3_endpoint_url, cluster.name, args.keep, max_age
        )
    except S3Error as err:
        loc = parse_location(args.out)
        raise _bucket_failure(err, loc, f"wrote {w.path}, but retention failed",
                              started=False) from None  # fmt: skip
    return w, pruned


def _written_line(w: Written) -> str:
    if w.stats is None:
        what = f"SHA-256 {w.sha256[:16]}..."
    else:
        what = f"revision {w.stats.revision}, {w.stats.live_keys} keys"
    return (f"wrote {w.path} ({size(w.size)}, {what}, from member {w.member}, "
            f"{w.seconds:.1f}s)")  # fmt: skip


async def _run_once(config: Config, args: argparse.Namespace, max_age: float | None) -> int:
    code = EXIT_OK
    for cluster in config.clusters:
        try:
            w, pruned = await _take_and_prune(cluster, args, max_age)
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
            f"etcd-inspector snapshot: {_written_line(w)}"
            + (f"; removed {len(pruned)} older" if pruned else ""),
            flush=True,
        )
    return code


def _fix_mmap_threshold() -> None:
    """glibc raises its mmap threshold each time a large block is freed (up to 32 MiB), and
    blocks of a part's size then come from the heaps and stay in them. A fixed threshold (setting
    it turns the raising off) keeps every block over 64 KiB mmapped and returned when freed:
    3-4 MiB less peak memory for a snapshot into a bucket (BENCHMARKS.md). Not glibc: nothing."""
    with contextlib.suppress(OSError, AttributeError):
        ctypes.CDLL(None).mallopt(-3, 64 << 10)  # M_MMAP_THRESHOLD (malloc.h)


async def _main(
    config: Config, args: argparse.Namespace, max_age: float | None, every: float | None
) -> int:
    task = asyncio.current_task()
    assert task is not None
    # One worker thread for every blocking call (S3 requests, the bbolt check): they run one at
    # a time anyway, and each extra thread would keep a malloc arena of freed part buffers.
    asyncio.get_running_loop().set_default_executor(ThreadPoolExecutor(1, "snapshot-io"))
    _fix_mmap_threshold()
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
    if is_s3(args.out):
        try:
            parse_location(args.out)
        except ValueError as err:
            raise UsageError(f"--out {err}") from None
    try:
        return asyncio.run(_main(config, args, max_age, every))
    except (KeyboardInterrupt, asyncio.CancelledError):
        return EXIT_INTERRUPTED
