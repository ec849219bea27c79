"""cgroup v1 groups for one process: made under the process's own group of that controller,
removed after moving the process back. The sweep removes groups a dead harness left."""

from __future__ import annotations

import contextlib
import os
import time
from pathlib import Path

from etcd_inspector.demo.faults.owned import FaultError, owned_name, owner_pid, pid_alive

CGROUP_ROOT = Path("/sys/fs/cgroup")
CONTROLLERS = ("blkio", "cpu", "freezer")


def controller_root(controller: str) -> Path:
    return CGROUP_ROOT / controller


def controller_missing(controller: str) -> str | None:
    """Why cgroup v1 `controller` cannot be used here (None: it can)."""
    root = controller_root(controller)
    if not (root / "cgroup.procs").exists():
        return f"cgroup v1 controller {controller!r} is not mounted at {root}"
    if not os.access(root, os.W_OK):
        return f"no write access to {root} (the harness needs root)"
    return None


def current_group(pid: int, controller: str) -> str:
    """The group of `pid` in the v1 hierarchy that carries `controller` ('/' is the root)."""
    for line in Path(f"/proc/{pid}/cgroup").read_text().splitlines():
        _, controllers, path = line.split(":", 2)
        if controller in controllers.split(","):
            return path
    raise FaultError(f"process {pid} has no {controller} cgroup (not cgroup v1?)")


class ProcessCgroup:
    """A child group of `controller` holding one process while a fault lasts."""

    def __init__(self, controller: str, label: str) -> None:
        self.controller = controller
        self.label = label
        self.path: Path | None = None
        self.parent: Path | None = None
        self.pid: int | None = None

    def enter(self, pid: int) -> Path:
        parent = controller_root(self.controller) / current_group(pid, self.controller).lstrip("/")
        path = parent / owned_name(self.label, self.controller)
        path.mkdir()
        self.path, self.parent = path, parent
        (path / "cgroup.procs").write_text(str(pid))  # v1: moves every thread of pid
        self.pid = pid
        return path

    def write(self, knob: str, value: str) -> None:
        assert self.path is not None
        (self.path / knob).write_text(value)

    def read(self, knob: str) -> str:
        assert self.path is not None
        return (self.path / knob).read_text()

    def remove(self) -> None:
        if self.path is not None and self.path.exists():  # a sweep may have removed it
            remove_group(self.path)
        self.path = None


def remove_group(path: Path, timeout: float = 5.0) -> None:
    """Thaw, move every task to the parent, rmdir (retrying while tasks are on their way out)."""
    freezer_state = path / "freezer.state"
    if freezer_state.exists():
        with contextlib.suppress(OSError):
            freezer_state.write_text("THAWED")
    deadline = time.monotonic() + timeout
    while True:
        for pid in (path / "cgroup.procs").read_text().split():
            with contextlib.suppress(ProcessLookupError, OSError):
                (path.parent / "cgroup.procs").write_text(pid)
        try:
            path.rmdir()
            return
        except OSError as err:
            if time.monotonic() > deadline:
                raise FaultError(f"cannot remove cgroup {path}: {err}") from err
            time.sleep(0.02)


def stale_groups(include_own: bool = False) -> list[Path]:
    """Harness groups whose creating process is gone (with include_own, also this process's)."""
    found = []
    for controller in CONTROLLERS:
        root = controller_root(controller)
        if not root.is_dir():
            continue
        # Groups are made one level under the member's own group; look two levels deep.
        for depth in ("*", "*/*", "*/*/*"):
            for path in root.glob(depth):
                pid = owner_pid(path.name)
                if pid is None or not path.is_dir():
                    continue
                if (include_own and pid == os.getpid()) or not pid_alive(pid):
                    found.append(path)
    return found
