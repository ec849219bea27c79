"""Snapshot files in a backup location: which ones there are, which is newest, is it whole.

Three layouts are recognised, in the location itself and one directory below it:

  <cluster>-20261201T061500Z-r12345.db   `etcd-inspector snapshot` (time and revision in the name)
  anything.db                            `etcdctl snapshot save` (time: the file's mtime)
  Full-<first rev>-<last rev>-<unix time>[.gz|.zlib]
                                         gardener's etcd-backup-restore (Backup-*/ or v2/ below
                                         the location); its Incr-* deltas are not snapshots

Dot files and `*.part` are temporary files of a snapshot in progress and never count.

The check (`check_snapshot`) streams the file twice at most, in bounded memory: once for the
trailing SHA-256 (present when the size is 32 bytes over a multiple of 512, the same rule as
`etcdctl snapshot restore`), once page by page through the bbolt reader. Compressed
etcd-backup-restore snapshots are first inflated into a temporary file.
"""

from __future__ import annotations

import calendar
import contextlib
import gzip
import hashlib
import os
import re
import shutil
import tempfile
import time
import zlib
from collections.abc import Iterator
from dataclasses import dataclass
from enum import StrEnum
from pathlib import Path
from typing import BinaryIO

from etcd_inspector.backup.bbolt import SnapshotCorrupt, SnapshotStats, read_snapshot

SHA256_SIZE = 32
_CHUNK = 1 << 20

OWN_NAME = re.compile(r"^(?P<cluster>.+)-(?P<time>\d{8}T\d{6}Z)-r(?P<revision>\d+)\.db$")
FULL_NAME = re.compile(
    r"^Full-(?P<first>\d+)-(?P<revision>\d+)-(?P<unix>\d+)(?P<compression>\.gz|\.zlib|\.lz4)?$"
)
TIME_FORMAT = "%Y%m%dT%H%M%SZ"


class Layout(StrEnum):
    INSPECTOR = "etcd-inspector"
    ETCDCTL = "etcdctl"
    BACKUP_RESTORE = "etcd-backup-restore"


class Checksum(StrEnum):
    OK = "ok"
    ABSENT = "absent"  # no trailing hash (etcd-backup-restore strips it, copies of a db file)
    MISMATCH = "mismatch"


@dataclass(frozen=True)
class SnapshotFile:
    path: str
    layout: Layout
    taken_at: float  # seconds since the epoch: from the name where it says, else the mtime
    size: int
    mtime_ns: int
    name_revision: int | None = None
    compression: str | None = None

    @property
    def name(self) -> str:
        return os.path.basename(self.path)


@dataclass(frozen=True)
class SnapshotCheck:
    file: SnapshotFile
    whole: bool
    checksum: Checksum
    stats: SnapshotStats | None  # None when the file is not whole
    problem: str | None = None  # why it is not whole
    check_seconds: float = 0.0
    note: str | None = None  # what was not checked, and why (a big object: checksum only)


FileKey = tuple[str, int, int]


def file_key(f: SnapshotFile) -> FileKey:
    """A snapshot's identity for keeping its verdict: path (or URL), size and time."""
    return (f.path, f.size, f.mtime_ns)


def own_snapshot_name(cluster: str, taken_at: float, revision: int) -> str:
    return f"{cluster}-{time.strftime(TIME_FORMAT, time.gmtime(taken_at))}-r{revision}.db"


def _classify(path: str, name: str, st: os.stat_result) -> SnapshotFile | None:
    if name.startswith(".") or name.endswith(".part"):
        return None
    if m := OWN_NAME.match(name):
        taken = calendar.timegm(time.strptime(m["time"], TIME_FORMAT))
        return SnapshotFile(path, Layout.INSPECTOR, float(taken), st.st_size, st.st_mtime_ns,
                            int(m["revision"]))  # fmt: skip
    if m := FULL_NAME.match(name):
        compression = m["compression"][1:] if m["compression"] else None
        return SnapshotFile(path, Layout.BACKUP_RESTORE, float(m["unix"]), st.st_size,
                            st.st_mtime_ns, int(m["revision"]), compression)  # fmt: skip
    if name.endswith(".db"):
        return SnapshotFile(path, Layout.ETCDCTL, st.st_mtime, st.st_size, st.st_mtime_ns)
    return None


def _entries(directory: str) -> Iterator[os.DirEntry[str]]:
    with os.scandir(directory) as it:
        yield from it


def find_snapshots(location: str) -> list[SnapshotFile]:
    """Every snapshot in `location` and its direct subdirectories, newest first.
    Raises OSError when the location cannot be listed."""
    found: list[SnapshotFile] = []
    for entry in _entries(location):
        with contextlib.suppress(OSError):  # a file removed while we look is not an error
            if entry.is_dir(follow_symlinks=True) and not entry.name.startswith("."):
                for sub in _entries(entry.path):
                    if sub.is_file(follow_symlinks=True):
                        snap = _classify(sub.path, sub.name, sub.stat())
                        if snap is not None:
                            found.append(snap)
            elif entry.is_file(follow_symlinks=True):
                snap = _classify(entry.path, entry.name, entry.stat())
                if snap is not None:
                    found.append(snap)
    found.sort(key=lambda s: (s.taken_at, s.name_revision or 0, s.path), reverse=True)
    return found


# --------------------------------------------------------------------------- checks


def has_trailing_sha256(size: int) -> bool:
    """etcd's rule (snapshot restore): bbolt files are whole pages, so 32 bytes over a multiple
    of 512 are the appended hash."""
    return size % 512 == SHA256_SIZE


def verify_trailing_sha256(f: BinaryIO, size: int) -> bool:
    """Whether the last 32 bytes are the SHA-256 of everything before them (streamed)."""
    digest = hashlib.sha256()
    f.seek(0)
    remaining = size - SHA256_SIZE
    while remaining > 0:
        chunk = f.read(min(_CHUNK, remaining))
        if not chunk:
            return False
        digest.update(chunk)
        remaining -= len(chunk)
    return f.read(SHA256_SIZE) == digest.digest()


def _inflate(src: str, compression: str, dest: BinaryIO) -> None:
    if compression == "gz":
        with gzip.open(src, "rb") as z:
            shutil.copyfileobj(z, dest, _CHUNK)
        return
    d = zlib.decompressobj()
    with open(src, "rb") as f:
        while chunk := f.read(_CHUNK):
            dest.write(d.decompress(chunk))
    dest.write(d.flush())


def trailing_checksum(path: str, size: int) -> Checksum:
    if not has_trailing_sha256(size):
        return Checksum.ABSENT
    with open(path, "rb") as f:
        return Checksum.OK if verify_trailing_sha256(f, size) else Checksum.MISMATCH


def _check_plain(path: str, size: int) -> tuple[Checksum, SnapshotStats | None, str | None]:
    """(checksum, stats, problem) of an uncompressed file; raises OSError."""
    checksum = trailing_checksum(path, size)
    if checksum is Checksum.MISMATCH:
        return checksum, None, "the trailing SHA-256 does not match the content"
    data_size = size - SHA256_SIZE if checksum is Checksum.OK else size
    try:
        return checksum, read_snapshot(path, data_size), None
    except SnapshotCorrupt as err:
        return checksum, None, str(err)


def check_snapshot(snap: SnapshotFile) -> SnapshotCheck:
    """Whether `snap` is whole, and what it holds. Blocking: run it in a thread."""
    started = time.monotonic()
    checksum, stats, problem = Checksum.ABSENT, None, None
    try:
        if snap.compression == "lz4":
            problem = "lz4-compressed snapshots cannot be checked (not supported)"
        elif snap.compression:
            with tempfile.TemporaryDirectory(prefix="etcd-inspector-inflate-") as tmp:
                plain = os.path.join(tmp, "snapshot.db")
                with open(plain, "wb") as out:
                    _inflate(snap.path, snap.compression, out)
                checksum, stats, problem = _check_plain(plain, os.path.getsize(plain))
        else:
            checksum, stats, problem = _check_plain(snap.path, snap.size)
    except (OSError, EOFError, zlib.error) as err:
        problem = f"cannot read it: {err}"
    if stats is not None and snap.layout is Layout.INSPECTOR and snap.name_revision is not None:
        if stats.revision != snap.name_revision:
            problem = f"holds revision {stats.revision}, its name says {snap.name_revision}"
    whole = problem is None
    return SnapshotCheck(snap, whole, checksum, stats if whole else None, problem,
                         time.monotonic() - started)  # fmt: skip


def snapshot_age(snap: SnapshotFile, now: float) -> float:
    return max(0.0, now - snap.taken_at)


def location_exists(location: str) -> bool:
    return Path(location).is_dir()
