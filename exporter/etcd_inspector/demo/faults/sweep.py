"""Remove what a harness left behind: cgroup groups, etcd processes and tmpfs mounts.

Run at the start of a test session (leftovers of a killed run: their creator is dead) and at its
end with `include_own` (anything this process failed to heal). A concurrent session's live
faults are never touched: names carry their creator's PID.
"""

from __future__ import annotations

from collections.abc import Collection
from pathlib import Path

from etcd_inspector.demo.faults.cgroups import remove_group, stale_groups
from etcd_inspector.demo.faults.mounts import stale_mounts, unmount
from etcd_inspector.demo.faults.processes import kill, stale_processes


def leftovers(include_own: bool = False) -> list[Path]:
    processes = [Path(f"/proc/{pid}") for pid in stale_processes(include_own)]
    return [*stale_groups(include_own), *processes, *stale_mounts(include_own)]


KINDS = ("cgroups", "processes", "mounts")


def sweep(include_own: bool = False, kinds: Collection[str] = KINDS) -> list[Path]:
    """Remove leftovers; returns what was removed. Groups first (their tasks are thawed), then
    processes (SIGKILL; a member's data dir may be on a mount), then mounts. With
    `include_own`, sweep only what this process is done with: its clusters stopped, or
    `kinds=("cgroups",)` while they run."""
    removed = []
    if "cgroups" in kinds:
        # Deepest first, so a nested leftover goes before its parent.
        for group in sorted(stale_groups(include_own), key=lambda p: len(p.parts), reverse=True):
            remove_group(group)
            removed.append(group)
    if "processes" in kinds:
        for pid in stale_processes(include_own):
            kill(pid)
            removed.append(Path(f"/proc/{pid}"))
    if "mounts" in kinds:
        for mountpoint in stale_mounts(include_own):
            unmount(mountpoint)
            removed.append(mountpoint)
    return removed
