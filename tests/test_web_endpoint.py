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
PER_CLIENT = 30
FLOOD = 3000  # the incident: 3,000 idle connections held 3,019 descriptors
# Bounds on the flood's loop: it stops at FLOOD connections or after this long.
FLOOD_SECONDS = 5.0
READ_HEADER_TIMEOUT = 2.0
IDLE_TIMEOUT = 3.0
# Longer than the flood takes (about 3 s here), so the flood is still held when fresh scrapes
# are timed.
FLOOD_READ_HEADER_TIMEOUT = 8.0
# The scraper (Prometheus) shares 127.0.0.1 with a flooder; ten more flood addresses (11 x
# PER_CLIENT > MAX_CONNECTIONS, so the global cap is reached as well); 127.0.0.2 is a fresh
# scraper. All within 127.0.0.0/8, which Linux routes to lo.
FLOOD_SOURCES = ["127.0.0.1", *(f"127.0.0.{i}" for i in range(3, 13))]
FRESH_SOURCE = "127.0.0.2"


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


def _connect(port: int, source: str = "127.0.0.1") -> socket.socket | None:
    """A connection from `source`, or None when the server refused it at once."""
    try:
        sock = socket.create_connection(("127.0.0.1", port), timeout=5, source_address=(source, 0))
    except ConnectionError:
        return None
    return sock


def _fresh_scrape(port: int, source: str) -> tuple[int, float]:
    """(status, seconds) of a scrape on a new connection from `source`, connect included."""
    start = time.monotonic()
    conn = http.client.HTTPConnection("127.0.0.1", port, timeout=5, source_address=(source, 0))
    try:
        conn.request("GET", "/metrics")
        resp = conn.getresponse()
        resp.read()
        return resp.status, time.monotonic() - start
    finally:
        conn.close()


def test_connection_flood_makes_room_for_scrapes(
    shared_cluster: LocalCluster, tmp_path: Path
) -> None:
    """3,000 idle and half-sent connections from 11 loopback addresses against
    --web.max-connections=100 and --web.max-connections-per-client=30: descriptors stay
    bounded, a fresh scrape connection from another address (and from a flooding one) is
    answered within 1 s while the flood is held, and the kept-alive scraper, though it shares
    an address with a flooder and is mid-request while the flood goes on, is never closed.

    The exporter keeps its default fd limit: the cap, not a raised limit, is what bounds it.
    The test process raises its own limit for the flood.
    """
    _raise_fd_limit(FLOOD + 500)
    with run_exporter(
        tmp_path,
        endpoints_flag(shared_cluster),
        "--inspection.interval=1s",
        f"--web.max-connections={MAX_CONNECTIONS}",
        f"--web.max-connections-per-client={PER_CLIENT}",
        f"--web.read-header-timeout={FLOOD_READ_HEADER_TIMEOUT:g}s",
        f"--web.idle-timeout={FLOOD_READ_HEADER_TIMEOUT:g}s",
    ) as exporter:
        exporter.wait_for(all_members_up, "all three members up")
        scraper = KeptAliveScraper(exporter.port)
        assert scraper.scrape() == 200
        time.sleep(0.5)  # let the probes' own connections settle
        baseline = _open_fds(exporter.pid)

        flood: list[tuple[str, socket.socket]] = []
        fresh_seconds: list[float] = []
        refused_at_connect = 0

        def one_more(i: int, source: str) -> None:
            nonlocal refused_at_connect
            sock = _connect(exporter.port, source)
            if sock is None:
                refused_at_connect += 1
                return
            flood.append((source, sock))
            if i % 2 == 0:
                # Half the flood starts a request and never finishes its headers.
                with contextlib.suppress(OSError):
                    sock.sendall(b"GET /metrics HTTP/1.1\r\nHost: 127.0.0.1\r\nX-Slow: ")

        start = time.monotonic()
        try:
            i = 0
            while i < FLOOD and time.monotonic() - start < FLOOD_SECONDS:
                one_more(i, FLOOD_SOURCES[i % len(FLOOD_SOURCES)])
                i += 1
                if i % 500 == 0:
                    # Mid-request on the kept-alive connection while its own address floods.
                    scraper.conn.request("GET", "/metrics")
                    for k in range(PER_CLIENT + 10):
                        one_more(k, "127.0.0.1")
                    resp = scraper.conn.getresponse()
                    resp.read()
                    assert resp.status == 200
                    assert scraper.conn.sock is scraper.sock, "the scraper's connection was closed"
                    status, seconds = _fresh_scrape(exporter.port, FRESH_SOURCE)
                    assert status == 200
                    fresh_seconds.append(seconds)
            flood_seconds = time.monotonic() - start
            assert i == FLOOD, f"only {i} flood connections in {FLOOD_SECONDS}s"

            # The flood is held: fresh scrapes get through, from a new address and from a
            # flooding one.
            time.sleep(0.3)
            for source in (FRESH_SOURCE, FRESH_SOURCE, FLOOD_SOURCES[1], "127.0.0.1"):
                status, seconds = _fresh_scrape(exporter.port, source)
                assert status == 200
                fresh_seconds.append(seconds)
            assert max(fresh_seconds) < 1.0, fresh_seconds
            assert scraper.scrape() == 200

            still_open = [(src, s) for src, s in flood if not _closed_by_peer(s)]
            per_source = {src: 0 for src in FLOOD_SOURCES}
            for src, _ in still_open:
                per_source[src] += 1
            # The scraper holds one slot; the rest is the flood, at most PER_CLIENT each
            # (127.0.0.1 one less, for the scraper).
            assert len(still_open) <= MAX_CONNECTIONS - 1
            assert per_source["127.0.0.1"] <= PER_CLIENT - 1
            assert max(per_source.values()) <= PER_CLIENT
            fds = _open_fds(exporter.pid)
            assert fds <= baseline + MAX_CONNECTIONS + 5

            # What was not evicted is closed by the read-header timeout.
            deadline = start + flood_seconds + FLOOD_READ_HEADER_TIMEOUT + 2.0
            for _, sock in still_open:
                assert _wait_closed(sock, max(0.0, deadline - time.monotonic())), (
                    "a flood connection outlived --web.read-header-timeout"
                )
            assert scraper.scrape() == 200
        finally:
            for _, sock in flood:
                sock.close()

        # Capacity is back: the descriptors are released.
        status, _, _ = exporter.get("/-/healthy")
        assert status == 200
        assert _open_fds(exporter.pid) <= baseline + 5
        scrape = parse_scrape(*exporter.get("/metrics"))
        closed = {
            s.labels["reason"]: s.value
            for s in scrape.samples("etcd_inspector_web_connections_closed_total")
        }
        # Nothing was refused: there was always an idle or half-sent connection to close.
        assert refused_at_connect == 0
        assert closed["limit"] == closed["client_limit"] == 0
        assert closed["evicted"] == len(flood) - len(still_open)
        assert closed["header_timeout"] == len(still_open)
        assert scraper.scrape() == 200
        print(
            f"flood {len(flood)} connections in {flood_seconds:.2f}s; fresh scrapes "
            f"max {max(fresh_seconds) * 1000:.0f} ms, median "
            f"{sorted(fresh_seconds)[len(fresh_seconds) // 2] * 1000:.0f} ms over "
            f"{len(fresh_seconds)}; fds baseline {baseline}, held {fds}; "
            f"evicted {closed['evicted']:.0f}, still open {len(still_open)}"
        )


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
