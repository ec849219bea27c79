"""Checking a snapshot object in a bucket, as backup/files.py checks a file: one streamed GET
in bounded memory (one chunk at a time). On the way the SHA-256 of the whole object is compared
with the stored one (`<name>.sha256`, ours) and etcd's trailing SHA-256 with the content. Up to
`full_check_max_bytes` the bytes also go to a temporary file that the bbolt reader walks page
by page (revision, keys, the same checks as for a file), then it is removed; a larger object is
checked by its checksums and listing metadata only, and the check says so. Blocking: run it in
a thread. The restore drill of an object runs on such a temporary copy (`drill_object`).
"""

from __future__ import annotations

import asyncio
import contextlib
import hashlib
import os
import tempfile
import time
from collections.abc import Callable, Iterator
from dataclasses import replace
from typing import TYPE_CHECKING, BinaryIO

from etcd_inspector.backup.bbolt import SnapshotCorrupt, SnapshotStats, read_snapshot
from etcd_inspector.backup.drill import restore_drill
from etcd_inspector.backup.files import (
    SHA256_SIZE,
    Checksum,
    FileKey,
    Layout,
    SnapshotCheck,
    SnapshotFile,
    file_key,
    has_trailing_sha256,
)
from etcd_inspector.backup.locations import LocationState, RestoreDrill
from etcd_inspector.backup.objects import (
    CHECKSUM_SUFFIX,
    Failure,
    key_of,
    parse_checksum,
    parse_location,
    redacted,
    snapshot_objects,
)
from etcd_inspector.backup.s3 import Download, S3Error, list_objects, read_small
from etcd_inspector.backup.taking import TailHasher
from etcd_inspector.report.format import size

if TYPE_CHECKING:
    from mypy_boto3_s3 import S3Client

DEFAULT_FULL_CHECK_MAX_BYTES = 4 << 30


def stored_checksum(client: S3Client, snap: SnapshotFile) -> str | None:
    """The hex SHA-256 in `<object>.sha256`, for our snapshots (None for other layouts)."""
    if snap.layout is not Layout.INSPECTOR or snap.name_revision is not None:
        return None
    bucket, key = key_of(snap.path)
    text = read_small(client, bucket, key + CHECKSUM_SUFFIX).decode("ascii", errors="replace")
    found = parse_checksum(text)
    if found is None:
        raise ValueError(f"{CHECKSUM_SUFFIX[1:]} object holds no SHA-256")
    return found


def download_to(client: S3Client, snap: SnapshotFile, out: BinaryIO | None) -> tuple[str, bool]:
    """Stream the object (into `out` when given): (SHA-256 hex of the whole, whether etcd's
    trailing hash matches)."""
    bucket, key = key_of(snap.path)
    whole = hashlib.sha256()
    tail = TailHasher()
    for chunk in Download(client, bucket, key).chunks():
        whole.update(chunk)
        tail.update(chunk)
        if out is not None:
            out.write(chunk)
    return whole.hexdigest(), tail.matches()


@contextlib.contextmanager
def local_copy(client: S3Client, snap: SnapshotFile) -> Iterator[str]:
    """The object in a temporary file (0600) for as long as the block runs (the restore drill)."""
    with tempfile.TemporaryDirectory(prefix="etcd-inspector-object-") as tmp:
        path = os.path.join(tmp, "snapshot.db")
        fd = os.open(path, os.O_WRONLY | os.O_CREAT | os.O_EXCL, 0o600)
        with os.fdopen(fd, "wb") as out:
            download_to(client, snap, out)
        yield path


def check_object(client: S3Client, snap: SnapshotFile, full_check_max_bytes: int) -> SnapshotCheck:
    """Whether the object is whole, and what it holds. Blocking."""
    started = time.monotonic()
    checksum, stats, problem, note = Checksum.ABSENT, None, None, None
    try:
        checksum, stats, problem, note = _check(client, snap, full_check_max_bytes)
    except S3Error as err:
        problem = f"cannot read it: {err}"
    except OSError as err:
        problem = f"cannot spool it: {err.strerror or err}"
    except ValueError as err:
        problem = f"its {err}"
    whole = problem is None
    return SnapshotCheck(snap, whole, checksum, stats if whole else None, problem,
                         time.monotonic() - started, note)  # fmt: skip


def _check(
    client: S3Client, snap: SnapshotFile, limit: int
) -> tuple[Checksum, SnapshotStats | None, str | None, str | None]:
    stored = stored_checksum(client, snap)
    full = snap.size <= limit and not snap.compression
    with tempfile.TemporaryDirectory(prefix="etcd-inspector-object-") as tmp:
        path = os.path.join(tmp, "snapshot.db")
        if full:
            fd = os.open(path, os.O_WRONLY | os.O_CREAT | os.O_EXCL, 0o600)
            with os.fdopen(fd, "wb") as out:
                digest, tail_ok = download_to(client, snap, out)
        else:
            digest, tail_ok = download_to(client, snap, None)
        if stored is not None and digest != stored:
            return Checksum.MISMATCH, None, "its SHA-256 does not match the stored one", None
        trailing = has_trailing_sha256(snap.size) and not snap.compression
        if trailing and not tail_ok:
            return Checksum.MISMATCH, None, "the trailing SHA-256 does not match the content", None
        checksum = Checksum.OK if (trailing or stored is not None) else Checksum.ABSENT
        if not full:
            why = ("compressed" if snap.compression
                   else f"larger than {size(limit)} (option full_check_max_bytes)")  # fmt: skip
            return checksum, None, None, f"{why}: checked by checksum and metadata only"
        data_size = snap.size - SHA256_SIZE if trailing else snap.size
        try:
            stats = read_snapshot(path, data_size)
        except SnapshotCorrupt as err:
            return checksum, None, str(err), None
    if snap.name_revision is not None and stats.revision != snap.name_revision:
        said = f"holds revision {stats.revision}, its name says {snap.name_revision}"
        return checksum, None, said, None
    return checksum, stats, None, None


async def drill_object(
    client: S3Client, check: SnapshotCheck, etcd_binary: str, timeout: float
) -> RestoreDrill:
    """The restore drill (backup/drill.py) from a temporary copy of the object, removed after."""
    started = time.monotonic()
    copy = local_copy(client, check.file)
    try:
        path = await asyncio.to_thread(copy.__enter__)
    except (S3Error, OSError) as err:
        return RestoreDrill(False, time.monotonic() - started, problem=f"download: {err}",
                            snapshot=check.file.path, ran_at=time.time())  # fmt: skip
    try:
        local = replace(check, file=replace(check.file, path=path))
        drill = await restore_drill(local, etcd_binary, timeout)
    finally:
        await asyncio.to_thread(copy.__exit__, None, None, None)
    return replace(drill, snapshot=check.file.path)


async def survey_bucket(
    location: str, client: Callable[[], S3Client], checks: dict[FileKey, SnapshotCheck],
    limit: int,
) -> tuple[LocationState, SnapshotCheck | None]:
    """The backup probe's view of one bucket location: the listing, and the newest snapshot's
    check (from `checks` while the object stays the same, else made now and kept there)."""
    try:
        loc = parse_location(location)
    except ValueError as err:  # the label, too, without what may be a secret
        return LocationState(redacted(location), False, 0, error=str(err)), None
    try:
        s3 = await asyncio.to_thread(client)
        files = snapshot_objects(loc, await asyncio.to_thread(list_objects, s3, loc))
    except S3Error as err:
        if err.kind is Failure.NO_BUCKET:
            return LocationState(location, False, 0, error="bucket does not exist"), None
        return LocationState(location, True, 0, error=f"cannot be listed: {err.kind}"), None
    if not files:
        return LocationState(location, True, 0), None
    newest = files[0]
    check = checks.get(file_key(newest))
    if check is None:
        check = await asyncio.to_thread(check_object, s3, newest, limit)
        checks[file_key(newest)] = check
    return LocationState(location, True, len(files), newest=check), check
