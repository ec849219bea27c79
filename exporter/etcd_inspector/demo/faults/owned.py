"""Names of what the harness creates, and the one error it raises (a leaf: the fault
modules and the sweep all use it)."""

from __future__ import annotations

import os

# Everything the harness creates (cgroup dirs, tmpfs mounts, scratch dirs) is named
# PREFIX-<pid of the creating process>-...: the sweep removes only what a dead process left,
# so concurrent test sessions on one machine never tear down each other's faults.
PREFIX = "etcdinsp-fault"


def owned_name(*parts: str) -> str:
    return "-".join((PREFIX, str(os.getpid()), *parts))


def owner_pid(name: str) -> int | None:
    """The creating process of a harness-made name, or None when it is not one."""
    if not name.startswith(PREFIX + "-"):
        return None
    pid = name[len(PREFIX) + 1 :].split("-", 1)[0]
    return int(pid) if pid.isdigit() else None


def pid_alive(pid: int) -> bool:
    try:
        os.kill(pid, 0)
    except ProcessLookupError:
        return False
    except PermissionError:
        return True
    return True


class FaultError(RuntimeError):
    """A fault could not be injected or healed; the message says why."""
