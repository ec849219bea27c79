"""Logging in to etcd, once per cluster: the password read at every login, and a backoff after
a wrong one.

Every member client of a cluster shares one AuthGate. A login (Authenticate) costs the members a
bcrypt check and, with simple tokens, a raft proposal, so a wrong password must not be retried
by every probe at every interval: after "authentication failed" the gate refuses further logins
for an exponential backoff with jitter (the calls fail at once with auth_failed), logs the
failure once per streak, and lets a login through early when the password file changes. The
password file is read at every login, so a rotated secret is used without a restart. Logins of
one cluster go one at a time, so concurrent callers learn of a failure before trying again.
"""

from __future__ import annotations

import asyncio
import logging
import os
import random
import time
from dataclasses import dataclass

log = logging.getLogger(__name__)

BACKOFF_MIN_SECONDS = 2.0
BACKOFF_MAX_SECONDS = 120.0
JITTER = 0.2


@dataclass(frozen=True)
class Credentials:
    """A user and a password given as is (tests, benchmarks); the exporter uses password files."""

    username: str
    password: str


def read_password(path: str) -> str:
    with open(path, encoding="utf-8") as f:
        # A trailing newline is an editor's, not part of the password.
        return f.read().rstrip("\r\n")


def _stamp(path: str | None) -> tuple[int, int] | None:
    if path is None:
        return None
    try:
        st = os.stat(path)
    except OSError:
        return None
    return st.st_mtime_ns, st.st_size


class AuthGate:
    def __init__(
        self,
        username: str,
        *,
        password_file: str | None = None,
        password: str | None = None,
        cluster: str = "",
    ) -> None:
        if (password_file is None) == (password is None):
            raise ValueError("give exactly one of password_file and password")
        self.username = username
        self.password_file = password_file
        self._password = password
        self.cluster = cluster
        self.failures = 0  # consecutive failed logins
        self.logins = 0  # Authenticate calls made, successful or not
        self._not_before = 0.0
        self._failed_stamp: tuple[int, int] | None = None
        # One login at a time: probes starting together would otherwise each send a wrong
        # password before the first failure starts the backoff: 19 logins in 45s without this,
        # 5 with it (tests/test_reliability.py, every probe at 1s).
        self.lock = asyncio.Lock()

    def password(self) -> str:
        if self.password_file is not None:
            return read_password(self.password_file)
        assert self._password is not None
        return self._password

    def wait_seconds(self) -> float:
        """How long until the next login may be tried (0: now). A changed password file ends
        the wait: it is likely the fix."""
        if self.failures == 0:
            return 0.0
        if self.password_file is not None and _stamp(self.password_file) != self._failed_stamp:
            return 0.0
        return max(0.0, self._not_before - time.monotonic())

    def attempted(self) -> None:
        self.logins += 1

    def failed(self, endpoint: str, detail: str) -> None:
        self.failures += 1
        backoff = min(BACKOFF_MAX_SECONDS, BACKOFF_MIN_SECONDS * 2 ** (self.failures - 1))
        backoff *= 1 + random.uniform(-JITTER, JITTER)
        self._not_before = time.monotonic() + backoff
        self._failed_stamp = _stamp(self.password_file)
        if self.failures == 1:
            log.error(
                "etcd authentication failed; retrying with backoff",
                extra={"cluster": self.cluster, "endpoint": endpoint, "user": self.username,
                       "err": detail},
            )  # fmt: skip

    def succeeded(self) -> None:
        if self.failures:
            log.info(
                "etcd authentication works again",
                extra={"cluster": self.cluster, "user": self.username, "failures": self.failures},
            )
        self.failures = 0
        self._not_before = 0.0
