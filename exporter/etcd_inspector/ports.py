"""Free TCP ports on 127.0.0.1, for the local etcd the demo, the tests and the restore drill
start (a leaf module: it imports nothing of the package, so any layer may use it)."""

from __future__ import annotations

import socket


def free_ports(count: int) -> list[int]:
    """Ports the kernel hands out now; held together so they are distinct."""
    socks = []
    try:
        for _ in range(count):
            s = socket.socket(socket.AF_INET, socket.SOCK_STREAM)
            s.bind(("127.0.0.1", 0))
            socks.append(s)
        return [s.getsockname()[1] for s in socks]
    finally:
        for s in socks:
            s.close()
