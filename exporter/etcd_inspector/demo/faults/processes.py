"""Members a harness started carry OWNER_ENV=<its pid> in their environment, so the sweep can
find the etcd processes a killed test run left (stopped ones too) and kill them."""

from __future__ import annotations

import contextlib
import os
import signal
import time
from pathlib import Path

from etcd_inspector.demo.faults.owned import PREFIX, pid_alive

OWNER_ENV = "ETCDINSP_FAULT_OWNER"


def owner_env() -> dict[str, str]:
    return {OWNER_ENV: f"{PREFIX}-{os.getpid()}"}


def stale_processes(include_own: bool = False) -> list[int]:
    """PIDs of harness-started processes whose harness is gone (with include_own, also ours)."""
    marker = f"{OWNER_ENV}={PREFIX}-".encode()
    found = []
    for proc in Path("/proc").iterdir():
        if not proc.name.isdigit():
            continue
        try:
            environ = (proc / "environ").read_bytes()
        except OSError:
            continue
        for entry in environ.split(b"\0"):
            if entry.startswith(marker):
                owner = entry[len(marker) :].decode(errors="replace")
                if owner.isdigit() and (
                    (include_own and int(owner) == os.getpid()) or not pid_alive(int(owner))
                ):
                    found.append(int(proc.name))
                break
    return found


def kill(pid: int) -> None:
    """SIGKILL (which also ends a SIGSTOPped process); a zombie of ours is reaped."""
    with contextlib.suppress(ProcessLookupError):
        os.kill(pid, signal.SIGKILL)
    deadline = time.monotonic() + 2.0
    while time.monotonic() < deadline:
        try:
            if os.waitpid(pid, os.WNOHANG) != (0, 0):
                return
        except ChildProcessError:  # not ours to reap (its parent, or init, does)
            return
        time.sleep(0.01)
