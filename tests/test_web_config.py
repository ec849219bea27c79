"""The --web.config.file (exporter-toolkit format): every bad file gives its exact one-line
messages and exit 2; basic auth and TLS reloading work on their own (no network)."""

from __future__ import annotations

import asyncio
import base64
import os
import shutil
import ssl
import subprocess
import sys
import time
from pathlib import Path

import bcrypt
import pytest
from cryptography.hazmat.primitives import serialization
from cryptography.hazmat.primitives.asymmetric import ec

from certs import Pki, issue, make_ca, make_pki
from etcd_inspector.cli import main
from etcd_inspector.web.auth import BasicAuthChecker
from etcd_inspector.web.tls import ServerTLS
from etcd_inspector.web.webconfig import (
    TLSServerConfig,
    WebConfigError,
    load_web_config,
)

TESTDATA = Path(__file__).parent / "testdata" / "webconfig"
NOT_SUPPORTED_UNVERIFIED = (
    "not supported: Python's ssl module cannot accept a client certificate without verifying "
    "it; use VerifyClientCertIfGiven or RequireAndVerifyClientCert with client_ca_file"
)

INVALID: list[tuple[str, list[str]]] = [
    ("invalid-unknown-key.yml",
     ["tls_server_config: unknown key 'client_auth' (did you mean 'client_auth_type'?)"]),
    ("invalid-top-level-key.yml",
     ["top level: unknown key 'basic_auth_user' (did you mean 'basic_auth_users'?)"]),
    ("invalid-cipher-suites.yml",
     ["tls_server_config: 'cipher_suites' is not supported "
      "(Python's ssl module uses OpenSSL's defaults for TLS 1.2)"]),
    ("invalid-rate-limit.yml",
     ["top level: 'rate_limit' is not supported (use --web.max-connections)"]),
    ("invalid-client-auth-unverified.yml",
     [f"tls_server_config.client_auth_type: RequireAnyClientCert is {NOT_SUPPORTED_UNVERIFIED}"]),
    ("invalid-client-auth-type.yml",
     ["tls_server_config.client_auth_type: 'VerifyClientCert' is not one of NoClientCert, "
      "RequestClientCert, RequireAnyClientCert, VerifyClientCertIfGiven, "
      "RequireAndVerifyClientCert"]),
    ("invalid-verify-without-ca.yml",
     ["tls_server_config: client_auth_type RequireAndVerifyClientCert needs client_ca_file"]),
    ("invalid-ca-without-client-auth.yml",
     ["tls_server_config: client_ca_file is set but client_auth_type is NoClientCert, so no "
      "client certificate would be checked (set RequireAndVerifyClientCert)"]),
    ("invalid-min-version.yml",
     ["tls_server_config.min_version: 'TLS11' is not one of TLS12, TLS13"]),
    ("invalid-min-above-max.yml",
     ["tls_server_config: min_version TLS13 is above max_version TLS12"]),
    ("invalid-missing-key-file.yml",
     ["tls_server_config: missing required key 'key_file'"]),
    ("invalid-missing-cert.yml",
     ["tls_server_config.cert_file: cannot read 'missing.crt': No such file or directory"]),
    ("invalid-cert-not-pem.yml",
     ["tls_server_config.cert_file: 'not-pem.crt' holds no valid PEM certificate"]),
    ("invalid-cert-is-a-key.yml",
     ["tls_server_config.cert_file: 'server.key' holds no valid PEM certificate"]),
    ("invalid-key-not-pem.yml",
     ["tls_server_config.key_file: 'not-pem.key' holds no PEM private key"]),
    ("invalid-key-mismatch.yml",
     ["tls_server_config: key_file 'other.key' does not match cert_file 'server.crt'"]),
    ("invalid-key-encrypted.yml",
     ["tls_server_config.key_file: 'encrypted.key' is encrypted "
      "(not supported: the key must be unencrypted)"]),
    ("invalid-client-ca-not-pem.yml",
     ["tls_server_config.client_ca_file: 'not-pem.crt' holds no valid PEM certificate"]),
    ("invalid-bcrypt-hash.yml",
     ["basic_auth_users.prometheus: not a bcrypt hash ($2a$, $2b$ or $2y$, 60 characters; "
      "make one with htpasswd -nBC 10 \"\" | tr -d ':\\n')"]),
    ("invalid-user-name.yml",
     ["basic_auth_users: user name 'team:prometheus' must not contain ':' (basic auth)"]),
    ("invalid-header.yml",
     ["http_server_config.headers: header 'Server' cannot be set (allowed: "
      "Content-Security-Policy, X-Frame-Options, X-Content-Type-Options, X-XSS-Protection, "
      "Strict-Transport-Security)"]),
    ("invalid-x-frame-options.yml",
     ["http_server_config.headers.X-Frame-Options: 'allow-from https://example.com' is not "
      "deny or sameorigin"]),
    ("invalid-http2.yml",
     ["http_server_config.http2: HTTP/2 is not supported (the exporter speaks HTTP/1.1); "
      "set false"]),
    ("invalid-yaml.yml",
     ["invalid YAML: mapping values are not allowed here (line 3, column 12)"]),
    ("invalid-duplicate-key.yml",
     ["line 3: duplicate key 'prometheus' (first defined at line 2)"]),
    ("invalid-many.yml",
     ["tls_server_config: 'curve_preferences' is not supported "
      "(Python's ssl module uses OpenSSL's defaults)",
      "tls_server_config.min_version: 'TLS10' is not one of TLS12, TLS13",
      "http_server_config.http2: HTTP/2 is not supported (the exporter speaks HTTP/1.1); "
      "set false",
      "basic_auth_users.prometheus: not a bcrypt hash ($2a$, $2b$ or $2y$, 60 characters; "
      "make one with htpasswd -nBC 10 \"\" | tr -d ':\\n')"]),
]  # fmt: skip


def _write_key(key: ec.EllipticCurvePrivateKey, path: Path, password: bytes | None = None) -> None:
    encryption = (
        serialization.BestAvailableEncryption(password)
        if password
        else serialization.NoEncryption()
    )
    path.write_bytes(
        key.private_bytes(serialization.Encoding.PEM, serialization.PrivateFormat.PKCS8, encryption)
    )


@pytest.fixture
def webconfig_dir(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> Path:
    """The testdata files beside a fresh PKI and some broken files; the working directory."""
    make_pki(tmp_path)
    (tmp_path / "not-pem.crt").write_text("this is not a certificate\n")
    (tmp_path / "not-pem.key").write_text("this is not a key\n")
    _write_key(ec.generate_private_key(ec.SECP256R1()), tmp_path / "other.key")
    _write_key(ec.generate_private_key(ec.SECP256R1()), tmp_path / "encrypted.key", b"pw")
    for path in TESTDATA.glob("*.yml"):
        shutil.copy(path, tmp_path / path.name)
    monkeypatch.chdir(tmp_path)
    return tmp_path


def test_every_invalid_file_is_in_the_table() -> None:
    assert sorted(p.name for p in TESTDATA.glob("invalid-*.yml")) == sorted(f for f, _ in INVALID)


@pytest.mark.parametrize(("filename", "expected"), INVALID, ids=[f for f, _ in INVALID])
def test_invalid_web_config_exits_2_with_one_line_per_problem(
    webconfig_dir: Path, filename: str, expected: list[str], capsys: pytest.CaptureFixture[str]
) -> None:
    code = main(
        ["run", "--etcd.endpoints=http://127.0.0.1:2379", f"--web.config.file={filename}",
         "--config.check"]
    )  # fmt: skip
    out = capsys.readouterr()
    assert code == 2
    assert out.out == ""
    assert out.err.splitlines() == [f"etcd-inspector: {filename}: {line}" for line in expected]


def test_secrets_never_appear_in_messages(webconfig_dir: Path) -> None:
    with pytest.raises(WebConfigError) as info:
        load_web_config("invalid-bcrypt-hash.yml")
    assert "my-plaintext-password" not in str(info.value)


def test_relative_files_are_relative_to_the_web_config_file(
    webconfig_dir: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    monkeypatch.chdir("/")
    with pytest.raises(WebConfigError) as info:
        load_web_config(str(webconfig_dir / "invalid-missing-cert.yml"))
    assert info.value.lines() == [
        f"{webconfig_dir}/invalid-missing-cert.yml: tls_server_config.cert_file: "
        f"cannot read '{webconfig_dir}/missing.crt': No such file or directory"
    ]
    loaded = load_web_config(str(webconfig_dir / "valid-full.yml"))
    assert loaded.tls_server_config is not None
    assert loaded.tls_server_config.cert_file == f"{webconfig_dir}/server.crt"


def test_valid_full_file(webconfig_dir: Path) -> None:
    loaded = load_web_config("valid-full.yml")
    tls = loaded.tls_server_config
    assert tls is not None
    assert (tls.client_auth_type, tls.min_version, tls.max_version) == (
        "RequireAndVerifyClientCert", "TLS12", "TLS13",
    )  # fmt: skip
    assert sorted(loaded.basic_auth_users) == ["alice", "prometheus"]
    assert loaded.http_server_config.headers["X-Frame-Options"] == "deny"
    assert loaded.describe() == (
        "TLS, client certificates: RequireAndVerifyClientCert, basic auth: 2 user(s)"
    )
    assert load_web_config("valid-empty.yml").describe() == "plain HTTP, no basic auth"


def test_config_check_reports_the_web_config(
    webconfig_dir: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    code = main(["run", "--etcd.endpoints=http://127.0.0.1:2379",
                 "--web.config.file=valid-full.yml", "--config.check"])  # fmt: skip
    assert code == 0
    assert capsys.readouterr().out.splitlines() == [
        "flags: configuration OK (1 cluster(s))",
        "valid-full.yml: web configuration OK "
        "(TLS, client certificates: RequireAndVerifyClientCert, basic auth: 2 user(s))",
    ]


def test_cli_subprocess_exits_2_without_traceback(webconfig_dir: Path) -> None:
    """The installed entry point, not just main(): no traceback for a missing file either."""
    env = {**os.environ, "PYTHONPATH": os.pathsep.join(sys.path)}
    for args, expected in [
        (["--web.config.file=invalid-key-mismatch.yml"],
         "etcd-inspector: invalid-key-mismatch.yml: tls_server_config: key_file 'other.key' "
         "does not match cert_file 'server.crt'\n"),
        (["--web.config.file=nowhere.yml"],
         "etcd-inspector: flags: web.config_file: cannot read 'nowhere.yml': "
         "No such file or directory\n"),
    ]:  # fmt: skip
        out = subprocess.run(
            [sys.executable, "-m", "etcd_inspector", "run", "--etcd.endpoints=http://127.0.0.1:1",
             *args],
            capture_output=True, text=True, env=env, timeout=60, check=False,
        )  # fmt: skip
        assert (out.returncode, out.stderr) == (2, expected)


@pytest.mark.parametrize(
    ("flag", "expected"),
    [
        ("--web.max-connections=0", "web.max_connections: must be at least 1, got 0"),
        (
            "--web.read-header-timeout=10",
            "web.read_header_timeout: '10' has no unit; write e.g. '10s'",
        ),
        ("--web.idle-timeout=0s", "web.idle_timeout: must be greater than 0, got '0s'"),
    ],
)
def test_limit_flags_are_validated(
    flag: str, expected: str, capsys: pytest.CaptureFixture[str]
) -> None:
    code = main(["run", "--etcd.endpoints=http://127.0.0.1:2379", flag, "--config.check"])
    assert code == 2
    assert capsys.readouterr().err == f"etcd-inspector: flags: {expected}\n"


# --------------------------------------------------------------------------- basic auth


def _basic(user: str, password: str) -> str:
    return "Basic " + base64.b64encode(f"{user}:{password}".encode()).decode()


async def test_basic_auth_caches_successes_only() -> None:
    hashed = bcrypt.hashpw(b"right", bcrypt.gensalt(4)).decode()
    checker = BasicAuthChecker({"prometheus": hashed})
    assert await checker.check(_basic("prometheus", "right")) == "prometheus"
    assert await checker.check(_basic("prometheus", "right")) == "prometheus"
    assert checker.bcrypt_checks == 1  # the second check was a cache hit
    assert await checker.check(_basic("prometheus", "wrong")) is None
    assert await checker.check(_basic("prometheus", "wrong")) is None
    assert checker.bcrypt_checks == 3  # failures are checked every time
    # An unknown user costs a bcrypt check too (no timing difference), even with the
    # password of a real user.
    assert await checker.check(_basic("mallory", "right")) is None
    assert checker.bcrypt_checks == 4
    for header in (None, "", "Bearer abc", "Basic !!!", _basic("prometheus", "x" * 100)):
        assert await checker.check(header) is None


async def test_bcrypt_checks_do_not_block_the_event_loop() -> None:
    hashed = bcrypt.hashpw(b"right", bcrypt.gensalt(10)).decode()
    checker = BasicAuthChecker({"prometheus": hashed})
    ticks = 0

    async def ticker() -> None:
        nonlocal ticks
        while True:
            ticks += 1
            await asyncio.sleep(0.005)

    task = asyncio.create_task(ticker())
    start = time.perf_counter()
    assert await checker.check(_basic("prometheus", "wrong")) is None
    elapsed = time.perf_counter() - start
    task.cancel()
    # The loop kept ticking while bcrypt ran in a thread. Run on the loop, the check would have
    # no await point: the ticker could not have ticked at all before it returned. (Not a rate
    # of ticks: on a loaded machine the loop's wake-ups are late, and the count says nothing.)
    assert ticks >= 2, (ticks, elapsed)


# --------------------------------------------------------------------------- TLS reload


def _served_subject(tls: ServerTLS, pki: Pki) -> str:
    """The certificate a client is shown, through a real in-memory handshake."""
    server_in, server_out, client_in, client_out = (ssl.MemoryBIO() for _ in range(4))
    server = tls.context().wrap_bio(server_in, server_out, server_side=True)
    client_ctx = ssl.create_default_context(cafile=str(pki.ca))
    client = client_ctx.wrap_bio(client_in, client_out, server_hostname="localhost")
    for _ in range(10):
        for side in (client, server):
            try:
                side.do_handshake()
            except ssl.SSLWantReadError:
                pass
        server_in.write(client_out.read())
        client_in.write(server_out.read())
    cert = client.getpeercert()
    assert cert is not None
    return str(cert["serialNumber"])


def test_certificates_are_reloaded_when_their_files_change(tmp_path: Path) -> None:
    pki = make_pki(tmp_path)
    tls = ServerTLS(TLSServerConfig(cert_file=str(pki.server_cert), key_file=str(pki.server_key)))
    first = _served_subject(tls, pki)
    assert tls.reloads == 0
    # Rotation in two steps: the new cert is written first, then its key. In between the
    # pair does not match; the old context keeps serving.
    ca_cert, ca_key = make_ca()
    new_cert, new_key = issue(ca_cert, ca_key, "localhost", server=True)
    pki.ca.write_bytes(ca_cert.public_bytes(serialization.Encoding.PEM))
    time.sleep(0.01)
    pki.server_cert.write_bytes(new_cert.public_bytes(serialization.Encoding.PEM))
    old_context = tls.context()
    assert tls.reloads == 0
    _write_key(new_key, pki.server_key)
    assert tls.context() is not old_context
    assert tls.reloads == 1
    second = _served_subject(tls, pki)
    assert int(second, 16) == new_cert.serial_number != int(first, 16)
