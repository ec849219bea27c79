"""What every fault is: a small named object that injects, heals, and says whether a cluster can
take it (after etcd's tests/robustness/failpoint). `injected()` always heals, also when the
body raises."""

from __future__ import annotations

import contextlib
import os
from collections.abc import Iterator
from typing import ClassVar

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


class Fault:
    """A named fault on one member. Subclasses set `kind` and implement the three methods."""

    kind: ClassVar[str] = "fault"

    def __init__(self, member: str) -> None:
        self.member = member
        self.active = False

    @property
    def name(self) -> str:
        return f"{self.kind}:{self.member}"

    def unavailable(self) -> str | None:
        """Why this cluster cannot take the fault (None: it can). Checked before inject."""
        return None

    def _inject(self) -> None:
        raise NotImplementedError

    def _heal(self) -> None:
        raise NotImplementedError

    def inject(self) -> None:
        reason = self.unavailable()
        if reason is not None:
            raise FaultError(f"{self.name}: {reason}")
        self.active = True  # before _inject: a half-done inject is still healed
        self._inject()

    def heal(self) -> None:
        if self.active:
            self.active = False
            self._heal()

    @contextlib.contextmanager
    def injected(self) -> Iterator[Fault]:
        try:
            self.inject()
            yield self
        finally:
            self.heal()

    def __repr__(self) -> str:
        return f"<{type(self).__name__} {self.name}{' active' if self.active else ''}>"
