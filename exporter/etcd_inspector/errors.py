"""Why something failed, as a small closed set of kinds: stable label values, never parsed text.

An etcd call's failure (etcd/errors.py) and a probe run's failure (ProbeError) both carry one
ErrorKind, so the scheduler, the report and the status page decide on the kind, never on a
message or an exception's class name.
"""

from __future__ import annotations

from enum import StrEnum
from typing import Any


class ErrorKind(StrEnum):
    # An etcd call (etcd/errors.py classifies gRPC errors into these).
    TIMEOUT = "timeout"
    UNAVAILABLE = "unavailable"
    TOO_LARGE = "too_large"
    COMPACTED = "compacted"
    FUTURE_REVISION = "future_revision"
    INVALID_TOKEN = "invalid_token"
    AUTH_FAILED = "auth_failed"
    PERMISSION_DENIED = "permission_denied"
    TLS = "tls"  # a TLS problem: certificates, names, TLS spoken to a plain port or the reverse
    CANCELLED = "cancelled"
    ERROR = "error"
    # Status timed out, but the member answered /metrics at once: alive, and slow (status.py).
    SLOW = "slow"
    # A probe run as a whole.
    NO_ANSWER = "no_answer"  # no member answered what the probe needs
    NOT_COMPARABLE = "not_comparable"  # fewer than two members to compare
    WATCH_DOWN = "watch_down"  # the watch is down or behind
    SCAN_FAILED = "scan_failed"  # no member could serve the scan
    INTERNAL = "internal"  # a bug: the exception was logged with its traceback

    @property
    def is_finding(self) -> bool:
        """Whether a probe that failed this way is a finding of its own. A comparison that
        could not be made because members are down is not: the down members are."""
        return self is not ErrorKind.NOT_COMPARABLE

    @property
    def is_auth(self) -> bool:
        """The member answered, and refused us: it is up, our credentials are the problem."""
        return self in (ErrorKind.INVALID_TOKEN, ErrorKind.AUTH_FAILED,
                        ErrorKind.PERMISSION_DENIED)  # fmt: skip

    @property
    def reason(self) -> str:
        """The kind in words, for people (reports, the status page, one-line errors)."""
        return _REASONS.get(self, self.value.replace("_", " "))


_REASONS = {
    ErrorKind.TIMEOUT: "timed out",
    ErrorKind.UNAVAILABLE: "unreachable (connection refused, reset or no route)",
    ErrorKind.TLS: "TLS handshake failed",
    ErrorKind.INVALID_TOKEN: "authentication required (no credentials given, or the token "
    "expired): give --etcd.username and --etcd.password-file",
    ErrorKind.AUTH_FAILED: "authentication failed (wrong user name or password)",
    ErrorKind.PERMISSION_DENIED: "authentication failed: permission denied (the user lacks a "
    "role for this call)",
    ErrorKind.TOO_LARGE: "response too large",
    ErrorKind.SLOW: "slow, not down (its Status timed out; its /metrics answered)",
    ErrorKind.NO_ANSWER: "no member answered",
    ErrorKind.NOT_COMPARABLE: "too few members to compare",
    ErrorKind.WATCH_DOWN: "the watch is down",
    ErrorKind.SCAN_FAILED: "no member could serve the scan",
    ErrorKind.INTERNAL: "internal error (a bug: see the log)",
}


class ProbeError(Exception):
    """A probe run that could not produce a result, with the kind of reason."""

    def __init__(self, kind: ErrorKind, message: str, *, partial: Any = None) -> None:
        super().__init__(message)
        self.kind = kind
        self.message = message
        # What the probe still knows despite the failure, in its result type (e.g. the watch's
        # counters and lag while it is behind): /metrics exports it next to probe_success 0;
        # reports and findings still treat the run as failed.
        self.partial = partial


class UsageError(Exception):
    """A command line that cannot work (exit code 2); the message is one line for the user."""
