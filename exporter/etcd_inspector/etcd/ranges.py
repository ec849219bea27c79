"""Key ranges and pages as etcd serves them; apart from etcd/client.py (which re-exports both)
so that the probes' modules page and watch by prefix without loading grpc."""

from __future__ import annotations

# A page with large values can exceed gRPC's 4 MiB default. Pages that still exceed this are
# retried smaller by the callers (RESOURCE_EXHAUSTED -> EtcdError.kind == "too_large").
MAX_RECEIVE_BYTES = 64 * 1024 * 1024


def prefix_range_end(prefix: bytes) -> bytes:
    """etcd's range_end for 'every key starting with prefix' (b'\\0' for the whole keyspace)."""
    if not prefix:
        return b"\0"
    end = bytearray(prefix)
    for i in range(len(end) - 1, -1, -1):
        if end[i] < 0xFF:
            end[i] += 1
            return bytes(end[: i + 1])
    return b"\0"
