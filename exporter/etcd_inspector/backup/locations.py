"""What the backup probe knows about one location: the newest snapshot, whether it is whole,
how old it is, whether it holds the cluster's data, and whether it restores (the model, pure)."""

from __future__ import annotations

from dataclasses import dataclass
from enum import StrEnum

from etcd_inspector.backup.files import SnapshotCheck


class Comparison(StrEnum):
    """The newest whole snapshot against the live cluster."""

    MATCH = "match"  # the cluster had as many keys at the snapshot's revision
    KEYS_DIFFER = "keys_differ"  # it had a different number of keys at that revision
    AHEAD = "ahead"  # the snapshot is at a revision the cluster has not reached
    COMPACTED = "compacted"  # the revision is compacted away: its key count cannot be asked
    UNKNOWN = "unknown"  # no member could answer


@dataclass(frozen=True)
class DataCheck:
    comparison: Comparison
    cluster_revision: int | None = None
    cluster_keys: int | None = None  # live keys at the snapshot's revision, from a member

    @property
    def matches(self) -> bool | None:
        """True/False where the data could be compared, else None."""
        if self.comparison is Comparison.MATCH:
            return True
        if self.comparison in (Comparison.KEYS_DIFFER, Comparison.AHEAD):
            return False
        return None


@dataclass(frozen=True)
class RestoreDrill:
    success: bool
    seconds: float
    keys: int | None = None  # live keys the restored member served
    revision: int | None = None
    problem: str | None = None
    snapshot: str = ""  # path of the snapshot restored
    ran_at: float = 0.0


@dataclass(frozen=True)
class LocationState:
    location: str
    exists: bool
    snapshots: int  # snapshot files found (0: missing)
    newest: SnapshotCheck | None = None
    data: DataCheck | None = None
    restore: RestoreDrill | None = None
    error: str | None = None  # the location could not be listed

    def age(self, now: float) -> float | None:
        return None if self.newest is None else max(0.0, now - self.newest.file.taken_at)


@dataclass(frozen=True)
class BackupResult:
    max_age: float  # seconds; from the cluster's backup section
    locations: tuple[LocationState, ...]
    checked_at: float
    configured: bool = True
