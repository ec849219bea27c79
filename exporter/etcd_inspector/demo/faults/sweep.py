"""Remove what a harness left behind: cgroup groups and tmpfs mounts by name prefix.

Run at the start of a test session (leftovers of a killed run: their creator is dead) and at its
end with `include_own` (anything this process failed to heal). A concurrent session's live
faults are never touched: names carry their creator's PID.
"""

from __future__ import annotations

from pathlib import Path

from etcd_inspector.demo.faults.cgroups import remove_group, stale_groups
from etcd_inspector.demo.faults.mounts import stale_mounts, unmount


def leftovers(include_own: bool = False) -> list[Path]:
    return [*stale_groups(include_own), *stale_mounts(include_own)]


def sweep(include_own: bool = False, mounts: bool = True) -> list[Path]:
    """Remove leftovers; returns what was removed. Groups first: their tasks are thawed.
    With `include_own`, call it only when this process's clusters are stopped (or pass
    `mounts=False`): a running member's data dir may be on one of its tmpfs mounts."""
    removed = []
    # Deepest first, so a nested leftover goes before its parent.
    for group in sorted(stale_groups(include_own), key=lambda p: len(p.parts), reverse=True):
        remove_group(group)
        removed.append(group)
    for mountpoint in stale_mounts(include_own) if mounts else []:
        unmount(mountpoint)
        removed.append(mountpoint)
    return removed
