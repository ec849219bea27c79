"""An etcd call's failure: EtcdError with an ErrorKind, and the one place that classifies them."""

from __future__ import annotations

from collections.abc import Awaitable
from typing import TYPE_CHECKING, TypeVar

from etcd_inspector.errors import ErrorKind

if TYPE_CHECKING:  # grpc loads with the client (etcd/client.py), not with every probe module
    import grpc

T = TypeVar("T")


class EtcdError(Exception):
    """A failed etcd call. `kind` is stable and safe to use as a label value."""

    def __init__(self, endpoint: str, kind: ErrorKind, detail: str) -> None:
        super().__init__(f"{endpoint}: {kind}: {detail}")
        self.endpoint = endpoint
        self.kind = kind
        self.detail = detail


class WatchCompacted(EtcdError):
    """The watch's start revision is compacted; `compact_revision` is the oldest one left."""

    def __init__(self, endpoint: str, compact_revision: int) -> None:
        super().__init__(endpoint, ErrorKind.COMPACTED, f"compacted at {compact_revision}")
        self.compact_revision = compact_revision


def classify(err: grpc.aio.AioRpcError) -> ErrorKind:
    import grpc

    code = err.code()
    details = (err.details() or "").lower()
    if code == grpc.StatusCode.DEADLINE_EXCEEDED:
        return ErrorKind.TIMEOUT
    if code == grpc.StatusCode.UNAVAILABLE:
        return ErrorKind.UNAVAILABLE
    if code == grpc.StatusCode.RESOURCE_EXHAUSTED:
        return ErrorKind.TOO_LARGE
    if "compacted" in details:
        return ErrorKind.COMPACTED
    if "future revision" in details:
        return ErrorKind.FUTURE_REVISION
    # Before the code-based checks: etcd >= 3.4 sends an expired or unknown token (a restarted
    # member has forgotten its simple tokens) as UNAUTHENTICATED, older ones as INVALID_ARGUMENT;
    # "user name is empty" means we sent none. All three are cured by logging in again, and so
    # is a token older than the last auth change (`user passwd`, a role granted): etcd says
    # "revision of auth store is old" until the client logs in again, as clientv3 does.
    if (
        "invalid auth token" in details
        or "user name is empty" in details
        or "revision of auth store is old" in details
    ):
        return ErrorKind.INVALID_TOKEN
    if "authentication failed" in details:
        return ErrorKind.AUTH_FAILED  # wrong user or password: INVALID_ARGUMENT on every version
    # HashKV and friends as a non-root user: UNKNOWN "auth: permission denied".
    if code in (grpc.StatusCode.PERMISSION_DENIED, grpc.StatusCode.UNAUTHENTICATED) or (
        "permission denied" in details
    ):
        return ErrorKind.PERMISSION_DENIED
    if code == grpc.StatusCode.CANCELLED:
        return ErrorKind.CANCELLED
    return ErrorKind.ERROR


async def attempt(call: Awaitable[T]) -> tuple[T | None, ErrorKind | None]:
    """(value, None) or (None, why): for callers that carry on without one member's answer."""
    try:
        return await call, None
    except EtcdError as err:
        return None, err.kind
