"""The exporter's own endpoint, secured and bounded: the real `etcd-inspector run` with
--web.config.file (TLS + basic auth) in front of a real 3-member etcd, scraped by curl-like
clients and by a real Prometheus; and a slow-loris flood against its connection limits.

Everything listens on 127.0.0.1 and every wait is bounded.
"""

from __future__ import annotations

import base64
import contextlib
import errno
import http.client
import os
import resource
import selectors
import socket
import ssl
import time
import urllib.error
import urllib.request
from collections.abc import Iterator
from dataclasses import dataclass
from pathlib import Path

import bcrypt
import pytest

from certs import Pki, make_pki
from etcd_inspector.demo.localcluster import LocalCluster
from harness import (
    ExporterProcess,
    all_members_up,
    endpoints_flag,
    parse_scrape,
    run_exporter,
)
from promserver import run_prometheus

pytestmark = pytest.mark.etcd

USER, PASSWORD = "prometheus", "correct horse battery staple"
PROMETHEUS_TIMEOUT_SECONDS = 60.0


def basic(user: str, password: str) -> dict[str, str]:
    token = base64.b64encode(f"{user}:{password}".encode()).decode()
    return {"Authorization": f"Basic {token}"}


@dataclass(frozen=True)
class Secured:
    exporter: ExporterProcess
    pki: Pki
    client_tls: ssl.SSLContext


@pytest.fixture(scope="module")
def secured(
    shared_cluster: LocalCluster, tmp_path_factory: pytest.TempPathFactory
) -> Iterator[Secured]:
    """The exporter with TLS (a test CA's server cert) and one basic-auth user."""
    tmp = tmp_path_factory.mktemp("secured")
    pki = make_pki(tmp / "pki")
    hashed = bcrypt.hashpw(PASSWORD.encode(), bcrypt.gensalt(10)).decode()
    web_config = tmp / "web.yml"
    web_config.write_text(
        "tls_server_config:\n"
        "  cert_file: pki/server.crt\n"  # relative to the web config file
        "  key_file: pki/server.key\n"
        "http_server_config:\n"
        "  headers: {X-Content-Type-Options: nosniff}\n"
        f"basic_auth_users:\n  {USER}: '{hashed}'\n"
    )
    client_tls = ssl.create_default_context(cafile=str(pki.ca))
    with run_exporter(
        tmp,
        endpoints_flag(shared_cluster),
        "--inspection.interval=1s",
        f"--web.config.file={web_config}",
        "--web.read-header-timeout=2s",
        tls=client_tls,
        headers=basic(USER, PASSWORD),
    ) as exporter:
        exporter.wait_for(all_members_up, "all three members up over https with basic auth")
        yield Secured(exporter, pki, client_tls)


def test_basic_auth_over_tls(secured: Secured) -> None:
    exporter = secured.exporter
    no_auth = {"Authorization": ""}
    status, body, _ = exporter.get("/metrics", headers=no_auth)
    assert (status, body) == (401, "Unauthorized\n")
    assert exporter.get("/metrics", headers=basic(USER, "wrong"))[0] == 401
    assert exporter.get("/metrics", headers=basic("mallory", PASSWORD))[0] == 401
    # Every path but /-/healthy needs credentials: the landing page lists members, 404s
    # would tell which paths exist.
    for path in ("/", "/-/ready", "/no-such-page"):
        assert exporter.get(path, headers=no_auth)[0] == 401, path
    assert exporter.get("/-/healthy", headers=no_auth)[:2] == (200, "Healthy.\n")

    scrape = parse_scrape(*exporter.get("/metrics", headers=basic(USER, PASSWORD)))
    assert scrape.status == 200
    assert all_members_up(scrape)

    # The 401 names the scheme, and the configured header is on every response.
    request = urllib.request.Request(exporter.base_url + "/metrics")
    with pytest.raises(urllib.error.HTTPError) as info:
        urllib.request.urlopen(request, timeout=10, context=secured.client_tls)
    assert info.value.headers["WWW-Authenticate"] == "Basic"
    assert info.value.headers["X-Content-Type-Options"] == "nosniff"
    # Neither the password nor its hash reach the log.
    log = exporter.log()
    assert PASSWORD not in log and "$2b$" not in log


def test_tls_only(secured: Secured) -> None:
    exporter = secured.exporter
    # Plain HTTP to the TLS port gets no HTTP answer at all.
    conn = http.client.HTTPConnection("127.0.0.1", exporter.port, timeout=5)
    with pytest.raises((http.client.HTTPException, ConnectionError)):
        conn.request("GET", "/-/healthy")
        conn.getresponse()
    conn.close()
    # A client that does not trust the test CA refuses the server.
    with pytest.raises(urllib.error.URLError) as info:
        urllib.request.urlopen(f"https://127.0.0.1:{exporter.port}/-/healthy", timeout=5)
    assert isinstance(info.value.reason, ssl.SSLCertVerificationError)


def test_silent_tls_connection_is_closed_after_the_read_header_timeout(secured: Secured) -> None:
    """A client that connects and never sends a ClientHello holds nothing for long."""
    with socket.create_connection(("127.0.0.1", secured.exporter.port), timeout=10) as sock:
        start = time.monotonic()
        assert _wait_closed(sock, 10) is True
        assert 1.5 < time.monotonic() - start < 5  # --web.read-header-timeout=2s


@pytest.mark.prometheus
def test_prometheus_scrapes_over_https_with_basic_auth(secured: Secured, tmp_path: Path) -> None:
    password_file = tmp_path / "password"
    password_file.write_text(PASSWORD)
    target = {"targets": [f"127.0.0.1:{secured.exporter.port}"]}
    https = {"scheme": "https", "tls_config": {"ca_file": str(secured.pki.ca)}}
    config = {
        "global": {"scrape_interval": "1s", "scrape_timeout": "1s"},
        "scrape_configs": [
            {"job_name": "secured", **https, "honor_labels": True, "static_configs": [target],
             "basic_auth": {"username": USER, "password_file": str(password_file)}},
            {"job_name": "wrong-password", **https, "static_configs": [target],
             "basic_auth": {"username": USER, "password": "wrong"}},
        ],
    }  # fmt: skip
    with run_prometheus(config, tmp_path / "prometheus") as prometheus:
        deadline = time.monotonic() + PROMETHEUS_TIMEOUT_SECONDS
        while True:
            up = {s["metric"]["job"]: s["value"][1] for s in prometheus.query("up")}
            members = prometheus.query('etcd_inspector_member_up{job="secured"} == 1')
            if up == {"secured": "1", "wrong-password": "0"} and len(members) == 3:
                break
            assert time.monotonic() < deadline, f"up={up} members={members}\n{prometheus.log()}"
            time.sleep(0.5)
        targets = prometheus.api("targets")["activeTargets"]
        errors = {t["labels"]["job"]: t["lastError"] for t in targets}
        assert errors["secured"] == ""
        assert "401 Unauthorized" in errors["wrong-password"]


def test_client_certificates_required(shared_cluster: LocalCluster, tmp_path: Path) -> None:
    pki = make_pki(tmp_path / "pki")
    web_config = tmp_path / "web.yml"
    web_config.write_text(
        "tls_server_config:\n"
        f"  cert_file: {pki.server_cert}\n"
        f"  key_file: {pki.server_key}\n"
        "  client_auth_type: RequireAndVerifyClientCert\n"
        f"  client_ca_file: {pki.ca}\n"
    )
    with_cert = ssl.create_default_context(cafile=str(pki.ca))
    with_cert.load_cert_chain(pki.client_cert, pki.client_key)
    with run_exporter(
        tmp_path, endpoints_flag(shared_cluster), f"--web.config.file={web_config}", tls=with_cert
    ) as exporter:
        assert exporter.get("/metrics")[0] == 200
        without = ssl.create_default_context(cafile=str(pki.ca))
        with pytest.raises((urllib.error.URLError, ssl.SSLError, ConnectionError)):
            # TLS 1.3 reports the missing certificate on the first read.
            urllib.request.urlopen(exporter.base_url + "/-/healthy", timeout=5, context=without)


# --------------------------------------------------------------------------- limits

MAX_CONNECTIONS = 100
FLOOD = 3000  # the incident: 3,000 idle connections held 3,019 descriptors
READ_HEADER_TIMEOUT = 2.0
IDLE_TIMEOUT = 3.0
# Longer than the flood takes (about 3 s here), so the first connections are still open
# when the last ones are refused.
FLOOD_READ_HEADER_TIMEOUT = 8.0


def _open_fds(pid: int) -> int:
    return len(os.listdir(f"/proc/{pid}/fd"))


def _closed_by_peer(sock: socket.socket) -> bool:
    timeout = sock.gettimeout()
    sock.settimeout(0)  # with a timeout, recv would wait for data first
    try:
        return sock.recv(1, socket.MSG_PEEK) == b""
    except BlockingIOError:
        return False
    except ConnectionError:
        return True
    finally:
        sock.settimeout(timeout)


def _wait_closed(sock: socket.socket, timeout: float) -> bool:
    """True once the server closed `sock` (EOF or reset), False if still open at `timeout`."""
    deadline = time.monotonic() + timeout
    with selectors.DefaultSelector() as sel:
        sel.register(sock, selectors.EVENT_READ)
        while time.monotonic() < deadline:
            if sel.select(timeout=0.05) and _closed_by_peer(sock):
                return True
    return False


class KeptAliveScraper:
    """One HTTP/1.1 connection reused for every scrape, as Prometheus keeps it."""

    def __init__(self, port: int) -> None:
        self.conn = http.client.HTTPConnection("127.0.0.1", port, timeout=10)
        self.conn.connect()
        self.sock = self.conn.sock

    def scrape(self) -> int:
        self.conn.request("GET", "/metrics")
        resp = self.conn.getresponse()
        resp.read()
        assert self.conn.sock is self.sock, "the scrape connection was dropped"
        return resp.status


def _raise_fd_limit(needed: int) -> None:
    soft, hard = resource.getrlimit(resource.RLIMIT_NOFILE)
    if soft < needed:
        assert hard == resource.RLIM_INFINITY or hard >= needed, f"RLIMIT_NOFILE hard {hard}"
        resource.setrlimit(resource.RLIMIT_NOFILE, (needed, hard))


def _connect(port: int) -> socket.socket | None:
    """A connection, or None when the server refused it at once (closed or reset)."""
    try:
        sock = socket.create_connection(("127.0.0.1", port), timeout=5)
    except ConnectionError:
        return None
    return sock


def test_slow_loris_flood_is_bounded_and_scrapes_go_on(
    shared_cluster: LocalCluster, tmp_path: Path
) -> None:
    """3,000 idle connections and half-sent headers against --web.max-connections=100.

    The exporter keeps its default fd limit (1024 here or on a typical host): the cap, not
    a raised limit, is what bounds it. The test process raises its own limit for the flood.
    """
    _raise_fd_limit(FLOOD + 500)
    with run_exporter(
        tmp_path,
        endpoints_flag(shared_cluster),
        "--inspection.interval=1s",
        f"--web.max-connections={MAX_CONNECTIONS}",
        f"--web.read-header-timeout={FLOOD_READ_HEADER_TIMEOUT:g}s",
        f"--web.idle-timeout={FLOOD_READ_HEADER_TIMEOUT:g}s",
    ) as exporter:
        exporter.wait_for(all_members_up, "all three members up")
        scraper = KeptAliveScraper(exporter.port)
        assert scraper.scrape() == 200
        time.sleep(0.5)  # let the probes' own connections settle
        baseline = _open_fds(exporter.pid)

        flood: list[socket.socket] = []
        refused_at_connect = 0
        start = time.monotonic()
        try:
            for i in range(FLOOD):
                sock = _connect(exporter.port)
                if sock is None:
                    refused_at_connect += 1
                    continue
                flood.append(sock)
                if i % 2 == 0:
                    # Half the flood starts a request and never finishes its headers.
                    with contextlib.suppress(OSError):
                        sock.sendall(b"GET /metrics HTTP/1.1\r\nHost: 127.0.0.1\r\nX-Slow: ")
                if i % 500 == 0:
                    assert scraper.scrape() == 200
            flood_seconds = time.monotonic() - start
            assert flood_seconds < FLOOD_READ_HEADER_TIMEOUT - 1.5

            # Past the cap, connections are closed at once: the cap is full (the scraper
            # holds one connection), everything else was closed.
            time.sleep(0.5)
            still_open = [s for s in flood if not _closed_by_peer(s)]
            assert len(still_open) == MAX_CONNECTIONS - 1
            assert refused_at_connect + len(flood) - len(still_open) == FLOOD - len(still_open)
            fds = _open_fds(exporter.pid)
            assert baseline + len(still_open) <= fds <= baseline + MAX_CONNECTIONS + 5
            # The established scrape connection keeps working meanwhile.
            for _ in range(3):
                assert scraper.scrape() == 200

            # Idle and half-sent connections are closed by the read-header timeout.
            deadline = start + flood_seconds + FLOOD_READ_HEADER_TIMEOUT + 2.0
            for sock in still_open:
                assert _wait_closed(sock, max(0.0, deadline - time.monotonic())), (
                    "a flood connection outlived --web.read-header-timeout"
                )
            assert scraper.scrape() == 200
        finally:
            for sock in flood:
                sock.close()

        # Capacity is back: a new connection gets an answer, the descriptors are released.
        status, _, _ = exporter.get("/-/healthy")
        assert status == 200
        assert _open_fds(exporter.pid) <= baseline + 5
        scrape = parse_scrape(*exporter.get("/metrics"))
        closed = {
            s.labels["reason"]: s.value
            for s in scrape.samples("etcd_inspector_web_connections_closed_total")
        }
        assert closed["limit"] == FLOOD - (MAX_CONNECTIONS - 1) - refused_at_connect
        assert closed["header_timeout"] == MAX_CONNECTIONS - 1
        assert scraper.scrape() == 200


def test_idle_and_slow_requests_are_closed(shared_cluster: LocalCluster, tmp_path: Path) -> None:
    with run_exporter(
        tmp_path,
        endpoints_flag(shared_cluster),
        f"--web.read-header-timeout={READ_HEADER_TIMEOUT:g}s",
        f"--web.idle-timeout={IDLE_TIMEOUT:g}s",
    ) as exporter:
        # A kept-alive connection is closed IDLE_TIMEOUT after its last response, also when
        # its next request is half sent.
        for second_request in (b"", b"GET /metrics HTTP/1.1\r\nHost: x\r\n"):
            conn = http.client.HTTPConnection("127.0.0.1", exporter.port, timeout=10)
            conn.request("GET", "/-/healthy")
            resp = conn.getresponse()
            assert resp.status == 200
            resp.read()
            answered = time.monotonic()
            assert conn.sock is not None
            conn.sock.sendall(second_request)
            assert _wait_closed(conn.sock, IDLE_TIMEOUT + 3)
            assert IDLE_TIMEOUT - 0.5 < time.monotonic() - answered < IDLE_TIMEOUT + 3
            conn.close()

        # Headers trickled a byte at a time: closed at the read-header timeout, long before
        # they would be complete.
        with socket.create_connection(("127.0.0.1", exporter.port), timeout=10) as sock:
            start = time.monotonic()
            request = b"GET /-/healthy HTTP/1.1\r\nHost: 127.0.0.1\r\n" + b"X-Pad: " + b"a" * 100
            closed = False
            for byte in request:
                try:
                    sock.sendall(bytes([byte]))
                except OSError as e:
                    assert e.errno in (errno.EPIPE, errno.ECONNRESET)
                    closed = True
                    break
                if _wait_closed(sock, 0.2):
                    closed = True
                    break
            assert closed
            assert READ_HEADER_TIMEOUT - 0.5 < time.monotonic() - start < READ_HEADER_TIMEOUT + 2
