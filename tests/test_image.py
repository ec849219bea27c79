"""The container image: the project's Dockerfile built with podman and run against real etcd.

scripts/build-image builds it (a debootstrapped stand-in for python:3.11-slim, made once, then
`podman build --isolation=chroot --pull=never`; podman's layer cache makes a second build take
seconds). The container runs the way the chart runs it: with the args `helm template` renders, as
the image's user 65532, on a read-only root filesystem, with the client certificate of a mutual-TLS
cluster mounted where the chart mounts its TLS Secret (--etcd.tls-dir). It serves every member's
metrics and its own, and `inspect` in the image exits as the installed CLI does. Build time and
size are printed (-s) and recorded in BENCHMARKS.md. podman missing is a failure: scripts/bootstrap
installs it.
"""

from __future__ import annotations

import hashlib
import os
import shutil
import subprocess
import time
import urllib.error
import urllib.request
from collections.abc import Iterator
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import pytest

import test_chart as chart
from etcd_inspector.demo.localcluster import LocalCluster, start_cluster
from etcd_inspector.demo.pki import PKI, make_pki
from etcd_inspector.ports import free_ports
from harness import MEMBERS, exporter_command, parse_scrape

pytestmark = [pytest.mark.etcd, pytest.mark.helm]

REPO = Path(__file__).resolve().parents[1]
# One tag per checkout: worktrees on one machine share podman's image store.
TAG = f"localhost/etcd-inspector:test-{hashlib.sha1(str(REPO).encode()).hexdigest()[:8]}"
IMAGE_UID = 65532
CONTAINERS_CONF = REPO / "scripts" / "containers.conf"
BUILD_TIMEOUT_SECONDS = 1200  # the first build debootstraps the base image
START_TIMEOUT_SECONDS = 60.0


@dataclass(frozen=True)
class BuiltImage:
    tag: str
    base_seconds: int
    build_seconds: int
    size_bytes: int


def podman_env() -> dict[str, str]:
    return {**os.environ, "CONTAINERS_CONF": str(CONTAINERS_CONF)}


def podman(*args: str, timeout: float = 120) -> subprocess.CompletedProcess[str]:
    """podman with runc: crun refuses this machine's hybrid cgroups."""
    if not shutil.which("podman"):
        pytest.fail("podman not found: run scripts/bootstrap (Debian's podman, runc, debootstrap)")
    return subprocess.run(
        ["podman", "--runtime", "runc", *args],
        capture_output=True, text=True, timeout=timeout, env=podman_env(), check=False,
    )  # fmt: skip


@pytest.fixture(scope="module")
def image() -> BuiltImage:
    out = subprocess.run(
        [str(REPO / "scripts" / "build-image"), TAG],
        capture_output=True, text=True, timeout=BUILD_TIMEOUT_SECONDS, env=podman_env(),
        check=False,
    )  # fmt: skip
    assert out.returncode == 0, out.stderr[-4000:]
    numbers = dict(line.split() for line in out.stdout.splitlines() if line.count(" ") == 1)
    built = BuiltImage(
        TAG, int(numbers["base-seconds"]), int(numbers["build-seconds"]),
        int(numbers["image-bytes"]),
    )  # fmt: skip
    print(f"\nimage {TAG}: {built.size_bytes / 1e6:.0f} MB, base {built.base_seconds} s, "
          f"build {built.build_seconds} s")  # fmt: skip
    return built


@pytest.fixture(scope="module")
def pki(tmp_path_factory: pytest.TempPathFactory) -> PKI:
    return make_pki(tmp_path_factory.mktemp("pki"))


@pytest.fixture(scope="module")
def mtls_cluster(
    etcd_binary: str, pki: PKI, tmp_path_factory: pytest.TempPathFactory
) -> Iterator[LocalCluster]:
    cluster = start_cluster(
        3, base_dir=tmp_path_factory.mktemp("image-etcd"), binary=etcd_binary, pki=pki
    )
    yield cluster
    cluster.stop()


@pytest.fixture(scope="module")
def tls_dir(pki: PKI, tmp_path_factory: pytest.TempPathFactory) -> Path:
    """The client certificate laid out as a mounted kubernetes.io/tls Secret with its CA, owned
    by the image's user and readable by it only (what the chart's fsGroup and mode 0440 give)."""
    directory = tmp_path_factory.mktemp("tls")
    for source, name in ((pki.ca_file, "ca.crt"), (pki.client_cert, "tls.crt"),
                         (pki.client_key, "tls.key")):  # fmt: skip
        shutil.copy(source, directory / name)
        os.chown(directory / name, IMAGE_UID, IMAGE_UID)
        os.chmod(directory / name, 0o400)
    os.chmod(directory, 0o755)
    return directory


def run_args(tls_dir: Path, mount_path: str = "/etc/etcd-inspector/tls") -> list[str]:
    """How the chart runs the container: read-only root (and no tmpfs podman would add), every
    capability dropped, no privilege escalation; the host network reaches etcd on loopback."""
    return [
        "--network=host", "--read-only", "--read-only-tmpfs=false", "--cap-drop=ALL",
        "--security-opt=no-new-privileges", f"--volume={tls_dir}:{mount_path}:ro",
    ]  # fmt: skip


def etcd_flags(cluster: LocalCluster) -> list[str]:
    return [
        f"--etcd.endpoints={','.join(cluster.endpoints)}",
        f"--etcd.metrics-urls={','.join(m.metrics_url for m in cluster.members)}",
        "--etcd.tls-dir=/etc/etcd-inspector/tls",
    ]


def test_the_image_runs_as_its_non_root_user(image: BuiltImage) -> None:
    out = podman("run", "--rm", "--network=host", "--entrypoint=id", image.tag)
    assert out.returncode == 0, out.stderr
    assert out.stdout.startswith(f"uid={IMAGE_UID}(inspector) gid={IMAGE_UID}"), out.stdout
    version = podman("run", "--rm", "--network=host", image.tag, "--version")
    assert version.returncode == 0, version.stderr
    assert "0.1.0" in version.stdout


def chart_container(cluster: LocalCluster, port: int) -> dict[str, Any]:
    """The exporter container the Helm chart renders for this cluster (its args and mounts)."""
    objects = chart.render(
        chart.CHART / "ci" / "default-values.yaml",
        sets=(
            f"etcd.endpoints={{{','.join(cluster.endpoints)}}}",
            f"etcd.metricsUrls={{{','.join(m.metrics_url for m in cluster.members)}}}",
            f"service.port={port}",
            "extraArgs={--inspection.interval=1s}",
        ),
    )
    return chart.container(chart.workload(objects)["spec"]["template"]["spec"])


def test_the_container_serves_a_real_clusters_metrics(
    image: BuiltImage, mtls_cluster: LocalCluster, tls_dir: Path
) -> None:
    """The container runs with the args and the Secret mount path the Helm chart gives it."""
    (port,) = free_ports(1)
    spec = chart_container(mtls_cluster, port)
    (tls_mount,) = spec["volumeMounts"]
    assert chart.flag(spec["args"], "--etcd.tls-dir") == tls_mount["mountPath"]
    assert spec["securityContext"]["runAsUser"] == IMAGE_UID
    name = f"etcd-inspector-test-{os.getpid()}"
    started = podman(
        "run", "--detach", "--rm", f"--name={name}", *run_args(tls_dir, tls_mount["mountPath"]),
        image.tag, *spec["args"],
    )  # fmt: skip
    assert started.returncode == 0, started.stderr
    try:
        scrape = None
        deadline = time.monotonic() + START_TIMEOUT_SECONDS
        while time.monotonic() < deadline:
            try:
                with urllib.request.urlopen(f"http://127.0.0.1:{port}/metrics", timeout=5) as r:
                    scrape = parse_scrape(r.status, r.read().decode(), 0.0)
            except (urllib.error.URLError, ConnectionError):
                scrape = None
            if scrape and scrape.by_member("etcd_inspector_member_up") == dict.fromkeys(
                MEMBERS, 1.0
            ):
                break
            time.sleep(1)
        logs = podman("logs", name).stderr
        assert scrape is not None, f"no /metrics from the container:\n{logs}"
        assert scrape.by_member("etcd_inspector_member_up") == dict.fromkeys(MEMBERS, 1.0), logs
        # The members' own metrics, proxied with a member label.
        assert scrape.by_member("etcd_server_has_leader") == dict.fromkeys(MEMBERS, 1.0)
        assert sum(scrape.by_member("etcd_server_is_leader").values()) == 1.0
        # The exporter process (pid 1 in the container) runs as 65532, not only the image.
        status = podman("exec", name, "cat", "/proc/1/status")
        assert status.returncode == 0, status.stderr
        (uid_line,) = [line for line in status.stdout.splitlines() if line.startswith("Uid:")]
        assert uid_line.split()[1:] == [str(IMAGE_UID)] * 4
    finally:
        podman("rm", "--force", "--time=5", name)


def test_inspect_in_the_image_exits_as_the_cli_does(
    image: BuiltImage, mtls_cluster: LocalCluster, pki: PKI, tls_dir: Path
) -> None:
    in_image = podman(
        "run", "--rm", *run_args(tls_dir), image.tag, "inspect", *etcd_flags(mtls_cluster),
        timeout=180,
    )  # fmt: skip
    on_host = subprocess.run(
        [*exporter_command(), "inspect", *etcd_flags(mtls_cluster)[:2],
         f"--etcd.ca-file={pki.ca_file}", f"--etcd.cert-file={pki.client_cert}",
         f"--etcd.key-file={pki.client_key}"],
        capture_output=True, text=True, timeout=180, check=False,
    )  # fmt: skip
    assert in_image.returncode in (0, 1), in_image.stdout + in_image.stderr
    assert in_image.returncode == on_host.returncode, (in_image.stdout, on_host.stdout)
    assert "Members" in in_image.stdout
    for member in MEMBERS:
        assert member in in_image.stdout


def test_inspect_in_the_image_without_a_client_certificate_exits_2(
    image: BuiltImage, mtls_cluster: LocalCluster, pki: PKI, tmp_path: Path
) -> None:
    """A Secret with the CA but no client certificate: the cluster requires one, so `inspect`
    cannot inspect it: one line naming the cluster, exit 2, no traceback."""
    ca_only = tmp_path / "tls"
    ca_only.mkdir()
    shutil.copy(pki.ca_file, ca_only / "ca.crt")
    os.chmod(ca_only / "ca.crt", 0o444)
    out = podman(
        "run", "--rm", *run_args(ca_only), image.tag, "inspect", *etcd_flags(mtls_cluster),
        timeout=120,
    )  # fmt: skip
    assert out.returncode == 2, out.stdout + out.stderr
    assert "Traceback" not in out.stderr
    (line,) = out.stderr.strip().splitlines()
    assert line.startswith("etcd-inspector: could not inspect cluster"), line
