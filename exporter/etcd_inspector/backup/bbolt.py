"""A small read-only reader of etcd's backend file (bbolt), for checking snapshots.

It answers what `etcdctl snapshot status` answers (the revision and the number of bucket
entries) plus the number of live keys, without an etcd binary, and reads the file one page at a
time with pread: memory stays at a page (or one key's overflow run) plus one 64-bit hash per
live key, whatever the file's size.

The layout (etcd-io/bbolt, internal/common/page.go and meta.go; little-endian on every
platform etcd ships for):

  page header (16 bytes)   id u64, flags u16, count u16, overflow u32; a page spans
                           (overflow + 1) * page_size bytes
  meta page (0 and 1)      after the header: magic u32 (0xED0CDAED), version u32 (2),
                           page_size u32, flags u32, root bucket (root u64, sequence u64),
                           freelist u64, pgid u64 (high-water mark), txid u64, checksum u64
                           (FNV-64a of the 56 bytes before it); the valid one with the higher
                           txid is current
  branch element (16)      pos u32, ksize u32, pgid u64; pos counts from the element itself
  leaf element (16)        flags u32 (1: the value is a bucket), pos u32, ksize u32, vsize u32
  bucket value             root u64, sequence u64; root 0 means an inline bucket whose page
                           follows in the value itself
  freelist page            count u16 in the header (0xFFFF: the first u64 holds it), then
                           count page ids

etcd's `key` bucket maps revision keys (main u64 BE, '_', sub u64 BE, and 't' when the
revision deletes the key) to a marshalled mvccpb.KeyValue whose field 1 is the user key.

Besides decoding, `read_snapshot` checks what bbolt's own consistency check (tx.Check) checks:
every page lies below the high-water mark and inside the file, says its own id, has a known
type, and is used once (by the tree, the freelist or as a meta page); every page below the
high-water mark is accounted for; keys within a page are in order.
"""

from __future__ import annotations

import os
import struct
from collections.abc import Iterator
from dataclasses import dataclass

MAGIC = 0xED0CDAED
VERSION = 2

_PAGE_HEADER = struct.Struct("<QHHI")
_META = struct.Struct("<IIIIQQQQQQ")  # magic .. checksum
_META_CHECKSUMMED = 56  # the bytes before the checksum field
_BRANCH_ELEMENT = struct.Struct("<IIQ")
_LEAF_ELEMENT = struct.Struct("<IIII")
_BUCKET = struct.Struct("<QQ")
_U64 = struct.Struct("<Q")
_ELEMENT_SIZE = 16
_HEADER_SIZE = 16

BRANCH_PAGE, LEAF_PAGE, META_PAGE, FREELIST_PAGE = 0x01, 0x02, 0x04, 0x10
BUCKET_LEAF = 0x01
NO_FREELIST = 0xFFFFFFFFFFFFFFFF

_PAGE_SIZES_TO_TRY = (4096, 8192, 16384, 32768, 65536, 1024, 2048)
_MAX_DEPTH = 64  # a B+tree this deep is a loop in a corrupt file
REVISION_KEY_SIZE = 17
KEY_BUCKET = b"key"
META_BUCKET = b"meta"
FINISHED_COMPACT_REV = b"finishedCompactRev"


class SnapshotCorrupt(Exception):
    """The file is not a whole bbolt database; the message says where it broke."""


@dataclass(frozen=True)
class SnapshotStats:
    revision: int  # main revision of the last entry of the `key` bucket (etcdctl's `revision`)
    total_keys: int  # entries in every bucket (etcdctl's `totalKey`)
    live_keys: int  # user keys whose last revision in the file is not a deletion
    compact_revision: int  # finishedCompactRev of the `meta` bucket; 0 when never compacted
    page_size: int
    pages: int  # the high-water mark: pages in use (etcdctl's totalSize / page_size)
    txid: int
    buckets: tuple[str, ...]

    @property
    def db_size(self) -> int:
        """etcdctl's `totalSize`."""
        return self.pages * self.page_size


def fnv64a(data: bytes) -> int:
    h = 0xCBF29CE484222325
    for b in data:
        h = ((h ^ b) * 0x100000001B3) & 0xFFFFFFFFFFFFFFFF
    return h


def revision_main(key: bytes) -> int:
    """The main revision of a `key` bucket key (bytesToRev(k).main)."""
    return int.from_bytes(key[:8], "big")


def is_tombstone(key: bytes) -> bool:
    return len(key) == REVISION_KEY_SIZE + 1 and key[REVISION_KEY_SIZE] == ord("t")


def _varint(data: bytes, pos: int) -> tuple[int, int]:
    value = shift = 0
    while True:
        if pos >= len(data) or shift > 63:
            raise SnapshotCorrupt("truncated varint in a key-value record")
        b = data[pos]
        pos += 1
        value |= (b & 0x7F) << shift
        if b < 0x80:
            return value, pos
        shift += 7


def user_key(record: bytes) -> bytes:
    """Field 1 (key) of a marshalled mvccpb.KeyValue."""
    pos = 0
    while pos < len(record):
        tag, pos = _varint(record, pos)
        field, wire = tag >> 3, tag & 7
        if wire == 0:
            _, pos = _varint(record, pos)
        elif wire == 2:
            length, pos = _varint(record, pos)
            if field == 1:
                return record[pos : pos + length]
            pos += length
        elif wire == 1:
            pos += 8
        elif wire == 5:
            pos += 4
        else:
            raise SnapshotCorrupt(f"unexpected wire type {wire} in a key-value record")
    raise SnapshotCorrupt("a key-value record has no key")


@dataclass(frozen=True)
class _Meta:
    page_size: int
    root: int
    freelist: int
    pgid: int
    txid: int


def _parse_meta(buf: bytes, offset: int) -> _Meta | str:
    """The meta at `offset` (a page start), or why it is not valid."""
    if len(buf) < offset + _HEADER_SIZE + _META.size:
        return "file too short for a meta page"
    _id, flags, _count, _overflow = _PAGE_HEADER.unpack_from(buf, offset)
    magic, version, page_size, _flags, root, _seq, freelist, pgid, txid, checksum = (
        _META.unpack_from(buf, offset + _HEADER_SIZE)
    )
    if magic != MAGIC:
        return f"bad magic {magic:#x}"
    if version != VERSION:
        return f"unsupported version {version}"
    start = offset + _HEADER_SIZE
    if fnv64a(buf[start : start + _META_CHECKSUMMED]) != checksum:
        return "meta checksum mismatch"
    if flags != META_PAGE:
        return f"meta page has flags {flags:#x}"
    return _Meta(page_size, root, freelist, pgid, txid)


class BoltReader:
    """One open snapshot file; `stats()` walks it once."""

    def __init__(self, path: str | os.PathLike[str], data_size: int | None = None) -> None:
        """`data_size`: the bytes that belong to the database (etcd's snapshot appends 32
        bytes of SHA-256, which bbolt does not know about); the file's size when None."""
        self._fd = os.open(path, os.O_RDONLY)
        try:
            self.size = os.fstat(self._fd).st_size if data_size is None else data_size
            self.meta = self._current_meta()
        except BaseException:
            os.close(self._fd)
            raise
        self.page_size = self.meta.page_size
        # One byte per page below the high-water mark: 1 once something uses it.
        self._used = bytearray(self.meta.pgid)

    def close(self) -> None:
        os.close(self._fd)

    def __enter__(self) -> BoltReader:
        return self

    def __exit__(self, *exc: object) -> None:
        self.close()

    # ----------------------------------------------------------------------- pages

    def _pread(self, length: int, offset: int) -> bytes:
        data = os.pread(self._fd, length, offset)
        if len(data) != length:
            raise SnapshotCorrupt(f"file ends at byte {offset + len(data)}, inside a page")
        return data

    def _current_meta(self) -> _Meta:
        head = os.pread(self._fd, 4096, 0)
        first = _parse_meta(head, 0)
        sizes = [first.page_size] if isinstance(first, _Meta) else list(_PAGE_SIZES_TO_TRY)
        found: list[_Meta] = [first] if isinstance(first, _Meta) else []
        reasons = [] if isinstance(first, _Meta) else [f"meta 0: {first}"]
        for size in sizes:
            second = _parse_meta(os.pread(self._fd, 4096, size), 0)
            if isinstance(second, _Meta) and second.page_size == size:
                found.append(second)
                break
            if isinstance(second, str):
                reasons.append(f"meta 1: {second}")
        if not found:
            raise SnapshotCorrupt("not a bbolt database (" + "; ".join(reasons[:2]) + ")")
        meta = max(found, key=lambda m: m.txid)
        if meta.page_size < 512 or meta.page_size & (meta.page_size - 1):
            raise SnapshotCorrupt(f"implausible page size {meta.page_size}")
        if meta.pgid * meta.page_size > self.size:
            raise SnapshotCorrupt(
                f"truncated: the database needs {meta.pgid * meta.page_size} bytes "
                f"({meta.pgid} pages), the file holds {self.size}"
            )
        if meta.root >= meta.pgid:
            raise SnapshotCorrupt(f"root page {meta.root} above the high-water mark")
        return meta

    def _page(self, pgid: int, expect: int) -> tuple[bytes, int]:
        """(page bytes including its overflow, element count); marks the pages used."""
        if pgid < 2 or pgid >= self.meta.pgid:
            raise SnapshotCorrupt(f"page {pgid} is outside 2..{self.meta.pgid - 1}")
        head = self._pread(self.page_size, pgid * self.page_size)
        pid, flags, count, overflow = _PAGE_HEADER.unpack_from(head)
        if pid != pgid:
            raise SnapshotCorrupt(f"page {pgid} says it is page {pid}")
        if flags != expect and not (expect == BRANCH_PAGE | LEAF_PAGE and flags in (1, 2)):
            raise SnapshotCorrupt(f"page {pgid} has flags {flags:#x}, expected {expect:#x}")
        if pgid + overflow >= self.meta.pgid:
            raise SnapshotCorrupt(f"page {pgid}'s overflow runs past the high-water mark")
        for p in range(pgid, pgid + overflow + 1):
            if self._used[p]:
                raise SnapshotCorrupt(f"page {p} is used twice")
            self._used[p] = 1
        data = head
        if overflow:
            data += self._pread(overflow * self.page_size, (pgid + 1) * self.page_size)
        return data, count

    # ----------------------------------------------------------------------- trees

    def _entries(
        self, page: bytes, count: int, depth: int, pgid: int
    ) -> Iterator[tuple[bytes, bytes, int]]:
        """(key, value, flags) of every leaf element below `page`, in key order."""
        if depth > _MAX_DEPTH:
            raise SnapshotCorrupt(f"tree below page {pgid} is deeper than {_MAX_DEPTH}")
        flags = _PAGE_HEADER.unpack_from(page)[1]
        try:
            if flags == BRANCH_PAGE:
                for i in range(count):
                    at = _HEADER_SIZE + i * _ELEMENT_SIZE
                    _pos, _ksize, child = _BRANCH_ELEMENT.unpack_from(page, at)
                    data, n = self._page(child, BRANCH_PAGE | LEAF_PAGE)
                    yield from self._entries(data, n, depth + 1, child)
                return
            previous: bytes | None = None
            for i in range(count):
                at = _HEADER_SIZE + i * _ELEMENT_SIZE
                eflags, pos, ksize, vsize = _LEAF_ELEMENT.unpack_from(page, at)
                k_at = at + pos
                if k_at + ksize + vsize > len(page):
                    raise SnapshotCorrupt(f"element {i} of page {pgid} runs past the page")
                key = page[k_at : k_at + ksize]
                if previous is not None and key <= previous:
                    raise SnapshotCorrupt(f"keys out of order in page {pgid}")
                previous = key
                yield key, page[k_at + ksize : k_at + ksize + vsize], eflags
        except struct.error:
            raise SnapshotCorrupt(f"page {pgid} is cut short") from None

    def _bucket(self, value: bytes, name: bytes, depth: int) -> Iterator[tuple[bytes, bytes, int]]:
        if len(value) < _BUCKET.size:
            raise SnapshotCorrupt(f"bucket {name!r} has a {len(value)}-byte header")
        root, _seq = _BUCKET.unpack_from(value)
        if root == 0:  # inline: the page follows the header in the value
            inline = value[_BUCKET.size :]
            if len(inline) < _HEADER_SIZE:
                raise SnapshotCorrupt(f"inline bucket {name!r} is cut short")
            _pid, flags, count, _ov = _PAGE_HEADER.unpack_from(inline)
            if flags != LEAF_PAGE:
                raise SnapshotCorrupt(f"inline bucket {name!r} has flags {flags:#x}")
            return self._entries(inline, count, depth, 0)
        data, count = self._page(root, BRANCH_PAGE | LEAF_PAGE)
        return self._entries(data, count, depth, root)

    def _freelist(self) -> None:
        if self.meta.freelist == NO_FREELIST:
            return
        page, count = self._page(self.meta.freelist, FREELIST_PAGE)
        start = _HEADER_SIZE
        if count == 0xFFFF:
            count = _U64.unpack_from(page, start)[0]
            start += 8
        if start + count * 8 > len(page):
            raise SnapshotCorrupt("the freelist runs past its pages")
        for (pgid,) in _U64.iter_unpack(page[start : start + count * 8]):
            if pgid < 2 or pgid >= self.meta.pgid:
                raise SnapshotCorrupt(f"free page {pgid} is outside the database")
            if self._used[pgid]:
                raise SnapshotCorrupt(f"page {pgid} is both free and in use")
            self._used[pgid] = 1

    # ----------------------------------------------------------------------- the walk

    def stats(self) -> SnapshotStats:
        root, count = self._page(self.meta.root, BRANCH_PAGE | LEAF_PAGE)
        total = revision = compact = 0
        live: set[int] = set()
        last_rev_key = b""
        names: list[str] = []
        for name, value, flags in list(self._entries(root, count, 0, self.meta.root)):
            if not flags & BUCKET_LEAF:
                raise SnapshotCorrupt(f"top-level key {name!r} is not a bucket")
            names.append(name.decode(errors="replace"))
            for key, record, eflags in self._bucket(value, name, 1):
                if eflags & BUCKET_LEAF:
                    continue  # etcd has no nested buckets; etcdctl does not count them either
                total += 1
                if name == KEY_BUCKET:
                    if len(key) not in (REVISION_KEY_SIZE, REVISION_KEY_SIZE + 1):
                        raise SnapshotCorrupt(f"{len(key)}-byte key in the key bucket")
                    last_rev_key = key
                    # A 64-bit hash per key instead of the key: the odds of two of a million
                    # keys colliding are ~3e-8, and the set stays small.
                    k = hash(user_key(record))
                    if is_tombstone(key):
                        live.discard(k)
                    else:
                        live.add(k)
                elif name == META_BUCKET and key == FINISHED_COMPACT_REV:
                    compact = revision_main(record)
        if last_rev_key:
            revision = revision_main(last_rev_key)
        self._freelist()
        self._used[0] = self._used[1] = 1
        # Without a synced freelist (bbolt's NoFreelistSync) the unused pages are the free ones.
        missing = self._used.find(0) if self.meta.freelist != NO_FREELIST else -1
        if missing >= 0:
            raise SnapshotCorrupt(f"page {missing} is neither in use nor free")
        return SnapshotStats(
            revision=revision,
            total_keys=total,
            live_keys=len(live),
            compact_revision=compact,
            page_size=self.page_size,
            pages=self.meta.pgid,
            txid=self.meta.txid,
            buckets=tuple(names),
        )


def read_snapshot(path: str | os.PathLike[str], data_size: int | None = None) -> SnapshotStats:
    """Walk a snapshot file; raises SnapshotCorrupt (or OSError) when it is not whole."""
    with BoltReader(path, data_size) as reader:
        return reader.stats()
