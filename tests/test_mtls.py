"""Where users run etcd: client certificates required, metrics on their own plain-http port.

A real 3-member cluster with `--client-cert-auth` (a CA, server and client certificates made by
demo/pki.py), and the exporter given ONE https endpoint: it finds the other members from the
member list, proxies all three members' metrics and runs every probe against all three. TLS
mistakes an operator makes end in one line naming the problem, exit 2, in `inspect` and in
`run --config.check`. And the exporter makes no raft proposal: an idle cluster's raft index and
revision do not move while it is inspected.
"""

from __future__ import annotations

import asyncio
import shutil
import subprocess
import time
from collections.abc import Iterator
from pathlib import Path

import pytest

from etcd_inspector.demo.localcluster import LocalCluster, start_cluster
from etcd_inspector.demo.pki import PKI, make_pki
from etcd_inspector.etcd.client import MemberClient, TLSFiles
from harness import MEMBERS, exporter_command, run_exporter

pytestmark = pytest.mark.etcd

PROBES = ("status", "consistency", "quota", "bigvalue", "hotkeys", "certs")


@pytest.fixture(scope="module")
def pki(tmp_path_factory: pytest.TempPathFactory) -> PKI:
    return make_pki(tmp_path_factory.mktemp("pki"))


@pytest.fixture(scope="module")
def mtls_cluster(
    etcd_binary: str, pki: PKI, tmp_path_factory: pytest.TempPathFactory
) -> Iterator[LocalCluster]:
    cluster = start_cluster(
        3, base_dir=tmp_path_factory.mktemp("mtls-etcd"), binary=etcd_binary, pki=pki
    )
    yield cluster
    cluster.stop()


def tls_flags(pki: PKI) -> list[str]:
    return [
        f"--etcd.ca-file={pki.ca_file}",
        f"--etcd.cert-file={pki.client_cert}",
        f"--etcd.key-file={pki.client_key}",
    ]


def run_cli(*args: str) -> subprocess.CompletedProcess[str]:
    return subprocess.run(
        [*exporter_command(), *args], capture_output=True, text=True, timeout=60, check=False
    )


def test_one_https_endpoint_is_enough_for_the_whole_cluster(
    mtls_cluster: LocalCluster, pki: PKI, tmp_path: Path
) -> None:
    seed = mtls_cluster.members[0]
    assert seed.client_url.startswith("https://")
    with run_exporter(
        tmp_path,
        f"--etcd.endpoints={seed.client_url}",
        f"--etcd.metrics-urls={seed.metrics_url}",
        *tls_flags(pki),
        "--inspection.interval=1s",
    ) as exporter:

        def complete(scrape) -> bool:  # type: ignore[no-untyped-def]
            return (
                scrape.by_member("etcd_inspector_member_up") == dict.fromkeys(MEMBERS, 1.0)
                and all(
                    scrape.value("etcd_inspector_probe_success", probe=p) == 1 for p in PROBES
                )
                and set(scrape.by_member("etcd_inspector_member_keys")) == set(MEMBERS)
            )

        scrape = exporter.wait_for(complete, "all three members up, every probe ok", timeout=40)
        # The members' own metrics, the seed's from its plain metrics port, the others' from
        # their https client URLs with the client certificate.
        assert scrape.by_member("etcd_server_has_leader") == dict.fromkeys(MEMBERS, 1.0)
        assert scrape.value("etcd_inspector_consistent") == 1
        assert scrape.value("etcd_inspector_hash_check_available") == 1
        expiry = {
            (s.labels["member"], s.labels["cert"]): s.value
            for s in scrape.samples("etcd_inspector_cert_expiry_timestamp_seconds")
        }
        assert set(expiry) == {("", "client")} | {(m, "serving") for m in MEMBERS}
        # demo/pki.py issues certificates for a year.
        assert all(300 * 86400 < v - time.time() < 366 * 86400 for v in expiry.values())


# --------------------------------------------------------------------------- one line, exit 2


def _wrong_ca(pki: PKI, tmp: Path) -> list[str]:
    return [f"--etcd.ca-file={pki.other_ca_file}", f"--etcd.cert-file={pki.client_cert}",
            f"--etcd.key-file={pki.client_key}"]  # fmt: skip


def _no_client_cert(pki: PKI, tmp: Path) -> list[str]:
    return [f"--etcd.ca-file={pki.ca_file}"]


def _ca_not_pem(pki: PKI, tmp: Path) -> list[str]:
    bad = tmp / "ca.crt"
    bad.write_text("this is not a certificate\n")
    return [f"--etcd.ca-file={bad}", f"--etcd.cert-file={pki.client_cert}",
            f"--etcd.key-file={pki.client_key}"]  # fmt: skip


def _key_mismatch(pki: PKI, tmp: Path) -> list[str]:
    return [f"--etcd.ca-file={pki.ca_file}", f"--etcd.cert-file={pki.client_cert}",
            f"--etcd.key-file={pki.server_key}"]  # fmt: skip


CASES = {
    "wrong CA": (_wrong_ca, "certificate signed by unknown authority"),
    "no client certificate": (_no_client_cert, "the member requires a client certificate"),
    "CA not PEM": (_ca_not_pem, "is not a PEM file"),
    "key does not match": (_key_mismatch, "does not match cert_file"),
}


@pytest.mark.parametrize("case", CASES)
def test_tls_mistakes_are_one_line_and_exit_2(
    case: str, mtls_cluster: LocalCluster, pki: PKI, tmp_path: Path
) -> None:
    make_flags, expected = CASES[case]
    flags = [f"--etcd.endpoints={mtls_cluster.members[0].client_url}", *make_flags(pki, tmp_path)]
    for argv in (["inspect", *flags], ["run", *flags, "--config.check"]):
        out = run_cli(*argv)
        lines = out.stderr.splitlines()
        assert out.returncode == 2, (argv, out.stdout, out.stderr)
        assert len(lines) == 1 and expected in lines[0], (argv, out.stderr)
        assert "Traceback" not in out.stdout + out.stderr


def test_plain_http_to_a_tls_port_is_named(mtls_cluster: LocalCluster, pki: PKI) -> None:
    url = mtls_cluster.members[0].client_url.replace("https://", "http://")
    out = run_cli("inspect", f"--etcd.endpoints={url}")
    assert out.returncode == 2
    assert "the member speaks TLS on this port (use https://)" in out.stderr
    assert len(out.stderr.splitlines()) == 1, out.stderr


# --------------------------------------------------------------------------- no raft proposals


async def _raft_positions(cluster: LocalCluster) -> dict[str, tuple[int, int]]:
    positions = {}
    for member in cluster.members:
        client = MemberClient(member.client_url, request_timeout=5)
        try:
            st = await client.status()
            positions[member.name] = (st.raft_index, st.revision)
        finally:
            await client.close()
    return positions


def test_an_idle_cluster_stays_untouched_while_inspected(
    etcd_cluster: LocalCluster, tmp_path: Path
) -> None:
    """Every probe at a 1 s interval for 30 s, the equivalent of many minutes at the defaults:
    no raft entry and no revision may come from the exporter (the Alarm RPC, a raft proposal,
    used to add one per status round)."""
    before = asyncio.run(_raft_positions(etcd_cluster))
    with run_exporter(
        tmp_path, "--etcd.endpoints=" + etcd_cluster.endpoints[0], "--inspection.interval=1s"
    ) as exporter:
        exporter.wait_for(
            lambda s: all(s.value("etcd_inspector_probe_success", probe=p) == 1 for p in PROBES),
            "every probe ok",
            timeout=30,
        )
        time.sleep(30)
        rounds = exporter.scrape().value("etcd_inspector_member_raft_index", member="m1")
    after = asyncio.run(_raft_positions(etcd_cluster))
    assert rounds is not None
    assert after == before


def test_tls_files_of_a_kubernetes_secret_directory(
    mtls_cluster: LocalCluster, pki: PKI, tmp_path: Path
) -> None:
    secret = tmp_path / "secret"
    secret.mkdir()
    shutil.copy(pki.ca_file, secret / "ca.crt")
    shutil.copy(pki.client_cert, secret / "tls.crt")
    shutil.copy(pki.client_key, secret / "tls.key")
    host_port = mtls_cluster.members[0].client_url.removeprefix("https://")
    # etcdctl-style: no scheme; https because a TLS directory is given.
    out = run_cli("inspect", f"--etcd.endpoints={host_port}", f"--etcd.tls-dir={secret}",
                  "--output=json", "--no-progress")  # fmt: skip
    assert out.returncode in (0, 1), out.stderr
    assert '"inspected": true' in out.stdout


async def test_the_client_reaches_a_tls_member(mtls_cluster: LocalCluster, pki: PKI) -> None:
    files = TLSFiles(str(pki.ca_file), str(pki.client_cert), str(pki.client_key))
    client = MemberClient(mtls_cluster.members[1].client_url, tls=files, request_timeout=5)
    try:
        assert (await client.status()).version
    finally:
        await client.close()
