"""Size-limited tmpfs mounts for members' data dirs (the full-disk fault)."""

from __future__ import annotations

import os
import subprocess
from pathlib import Path

from etcd_inspector.demo.faults.owned import FaultError, owned_name, owner_pid, pid_alive


def mount_tmpfs(mountpoint: Path, size_bytes: int, label: str) -> str:
    """Mount a tmpfs of `size_bytes` at `mountpoint`; its source names the harness and owner."""
    source = owned_name("tmpfs", label)
    mountpoint.mkdir(parents=True, exist_ok=True)
    out = subprocess.run(
        ["mount", "-t", "tmpfs", "-o", f"size={size_bytes},mode=0700", source, str(mountpoint)],
        capture_output=True, text=True, timeout=10, check=False,
    )  # fmt: skip
    if out.returncode != 0:
        raise FaultError(f"cannot mount tmpfs at {mountpoint}: {out.stderr.strip()}")
    return source


def unmount(mountpoint: Path) -> None:
    # Lazy: a process still holding a file there cannot keep the mount alive past its exit.
    out = subprocess.run(
        ["umount", "--lazy", str(mountpoint)], capture_output=True, text=True, timeout=10,
        check=False,
    )  # fmt: skip
    if out.returncode != 0 and is_mounted(mountpoint):
        raise FaultError(f"cannot unmount {mountpoint}: {out.stderr.strip()}")


def harness_mounts() -> list[tuple[str, Path]]:
    """(source, mountpoint) of every harness tmpfs in this mount namespace."""
    found = []
    for line in Path("/proc/self/mounts").read_text().splitlines():
        source, mountpoint = line.split()[:2]
        if owner_pid(source) is not None:
            found.append((source, Path(mountpoint.replace("\\040", " "))))
    return found


def is_mounted(mountpoint: Path) -> bool:
    return any(mp == mountpoint for _, mp in harness_mounts())


def stale_mounts(include_own: bool = False) -> list[Path]:
    out = []
    for source, mountpoint in harness_mounts():
        pid = owner_pid(source)
        assert pid is not None
        if (include_own and pid == os.getpid()) or not pid_alive(pid):
            out.append(mountpoint)
    return out
