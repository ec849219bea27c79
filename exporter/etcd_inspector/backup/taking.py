"""Taking a snapshot, the pure parts the `snapshot` command (etcd_inspector/snapshot.py) decides
with: which member to stream from, whether the stream arrived whole, which older files
retention removes."""

from __future__ import annotations

import hashlib
from collections.abc import Sequence

from etcd_inspector.backup.files import SHA256_SIZE, SnapshotFile
from etcd_inspector.cluster.topology import Topology


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
