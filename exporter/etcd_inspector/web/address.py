"""`--web.listen-address` values: [host]:port (pure)."""

from __future__ import annotations

from etcd_inspector.errors import UsageError


def parse_listen_address(address: str) -> tuple[str | None, int]:
    host, sep, port = address.rpartition(":")
    if not sep or not port.isdigit():
        raise UsageError(f"--web.listen-address {address!r}: expected [host]:port, e.g. :9979")
    host = host.strip("[]")
    return (host or None), int(port)
