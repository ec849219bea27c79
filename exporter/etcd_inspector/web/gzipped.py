"""gzip of a response body, compressed in pieces on several cores at once.

zlib lets go of the GIL, so pieces of the body deflated in threads run in parallel with the
one the event loop's thread deflates meanwhile (a thread's wake-up costs more than the CRC,
so the loop does that too: 0.5-0.6 ms for a 0.5 MB body on two cores, 1.06 ms in one
thread, 0.76-0.9 ms with every piece and the CRC in threads). Each
piece is raw deflate ended by a sync flush (byte-aligned, not final), so the pieces join into
one deflate stream; an empty final block, the CRC-32 and the length close the gzip member
(RFC 1952). Level 1: ~3x cheaper than level 6 on a scrape's ~0.5 MB body, ~10% larger.
"""

from __future__ import annotations

import asyncio
import os
import struct
import zlib

LEVEL = 1
# Pieces are at least this long: a compressor costs ~30 us to set up and starts with an
# empty dictionary.
MIN_PIECE_BYTES = 128 * 1024
# ID1 ID2, CM deflate, no flags, MTIME 0, XFL 4 (fastest), OS 255 (unknown)
_HEADER = b"\x1f\x8b\x08\x00\x00\x00\x00\x00\x04\xff"
_LAST_BLOCK = b"\x03\x00"  # an empty fixed-Huffman block with BFINAL set


def split(body: bytes, pieces: int) -> list[memoryview]:
    """`body` in up to `pieces` slices of about equal length, cut after a newline."""
    view = memoryview(body)
    out: list[memoryview] = []
    start = 0
    for i in range(1, pieces):
        cut = body.find(b"\n", max(start, len(body) * i // pieces)) + 1
        if cut <= start:
            break
        out.append(view[start:cut])
        start = cut
    out.append(view[start:])
    return out


def deflate(piece: memoryview) -> bytes:
    compressor = zlib.compressobj(LEVEL, zlib.DEFLATED, -zlib.MAX_WBITS)
    return compressor.compress(piece) + compressor.flush(zlib.Z_SYNC_FLUSH)


def trailer(body: bytes) -> bytes:
    return struct.pack("<II", zlib.crc32(body), len(body) & 0xFFFFFFFF)


def assemble(deflated: list[bytes], tail: bytes) -> bytes:
    return b"".join([_HEADER, *deflated, _LAST_BLOCK, tail])


def gzip_now(body: bytes, pieces: int = 1) -> bytes:
    """The same bytes as `gzip_body`, in the calling thread."""
    return assemble([deflate(p) for p in split(body, pieces)], trailer(body))


async def gzip_body(body: bytes) -> bytes:
    """`body` as one gzip member, deflated in up to one piece per core: the last piece and
    the CRC in this thread, the others in the loop's executor meanwhile."""
    pieces = split(body, max(1, min(os.cpu_count() or 1, len(body) // MIN_PIECE_BYTES)))
    loop = asyncio.get_running_loop()
    jobs = [loop.run_in_executor(None, deflate, piece) for piece in pieces[:-1]]
    last = deflate(pieces[-1])
    tail = trailer(body)
    return assemble([*await asyncio.gather(*jobs), last], tail)
