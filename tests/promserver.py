"""A real Prometheus server (Debian's /usr/bin/prometheus) on a free loopback port, for tests.

It scrapes what the test points it at and evaluates the mixin's rule file, so dashboards and
rules are checked against the series a real Prometheus stores, not against hand-written input.
The process is always stopped by its own PID.
"""

from __future__ import annotations

import contextlib
import json
import shutil
import subprocess
import time
import urllib.error
import urllib.parse
import urllib.request
from collections.abc import Iterator, Mapping
from pathlib import Path
from typing import Any

import yaml

import heavy
from etcd_inspector.ports import free_ports

READY_TIMEOUT_SECONDS = 30.0


def prometheus_binary() -> str:
    """Prometheus on PATH (Debian's prometheus package); a missing binary is a failure."""
    found = shutil.which("prometheus")
    if not found:
        raise AssertionError("prometheus not found: install Debian's prometheus package")
    return found


class PrometheusError(AssertionError):
    """An API call that did not answer status success."""


class PrometheusServer:
    """One Prometheus process with its own config file and TSDB directory under `workdir`."""

    def __init__(self, config: Mapping[str, Any], workdir: Path) -> None:
        self.port = free_ports(1)[0]
        self.workdir = workdir
        self.config_path = workdir / "prometheus.yml"
        self.log_path = workdir / "prometheus.log"
        self.config_path.write_text(yaml.safe_dump(dict(config), sort_keys=False))
        self.args = [
            prometheus_binary(),
            f"--config.file={self.config_path}",
            f"--storage.tsdb.path={workdir / 'tsdb'}",
            f"--web.listen-address=127.0.0.1:{self.port}",
            "--log.level=warn",
        ]
        self.process: subprocess.Popen[bytes] | None = None

    @property
    def base_url(self) -> str:
        return f"http://127.0.0.1:{self.port}"

    def start(self, timeout: float = READY_TIMEOUT_SECONDS) -> None:
        heavy.require("prometheus", "starts a Prometheus server")
        with open(self.log_path, "ab") as log:
            self.process = subprocess.Popen(
                self.args, stdout=log, stderr=subprocess.STDOUT, stdin=subprocess.DEVNULL
            )
        deadline = time.monotonic() + timeout
        while time.monotonic() < deadline:
            if self.process.poll() is not None:
                raise AssertionError(
                    f"prometheus exited with {self.process.returncode}:\n{self.log()}"
                )
            with contextlib.suppress(OSError):
                with urllib.request.urlopen(self.base_url + "/-/ready", timeout=1) as resp:
                    if resp.status == 200:
                        return
            time.sleep(0.1)
        raise AssertionError(f"prometheus not ready after {timeout}s:\n{self.log()}")

    def stop(self, timeout: float = 10.0) -> None:
        if self.process is not None:
            stop_process(self.process, timeout)

    def log(self) -> str:
        try:
            return self.log_path.read_text(errors="replace")
        except OSError:
            return ""

    def api(self, path: str, **params: str) -> Any:
        """GET /api/v1/<path>; returns `data`, raises PrometheusError unless status success."""
        url = f"{self.base_url}/api/v1/{path}"
        if params:
            url += "?" + urllib.parse.urlencode(params)
        try:
            with urllib.request.urlopen(url, timeout=10) as resp:
                body = json.loads(resp.read())
        except urllib.error.HTTPError as err:
            # Bad queries answer 400/422 with a JSON error body.
            body = json.loads(err.read() or b"{}")
        if body.get("status") != "success":
            raise PrometheusError(
                f"GET {path} {params}: {body.get('errorType')}: {body.get('error')}"
            )
        return body["data"]

    def query(self, expr: str) -> list[Any]:
        """An instant query's result: a list of samples (a scalar counts as one)."""
        data = self.api("query", query=expr)
        if data["resultType"] in ("scalar", "string"):
            return [data["result"]]
        return list(data["result"])


@contextlib.contextmanager
def run_prometheus(config: Mapping[str, Any], workdir: Path) -> Iterator[PrometheusServer]:
    """Start Prometheus, wait for /-/ready, always stop it."""
    workdir.mkdir(parents=True, exist_ok=True)
    server = PrometheusServer(config, workdir)
    try:
        server.start()
        yield server
    finally:
        server.stop()


def stop_process(process: subprocess.Popen[bytes], timeout: float = 10.0) -> None:
    """SIGTERM, then SIGKILL if it has not exited within `timeout` (every server a test starts)."""
    if process.poll() is None:
        process.terminate()
        try:
            process.wait(timeout=timeout)
        except subprocess.TimeoutExpired:
            process.kill()
            process.wait(timeout=10)
