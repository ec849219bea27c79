"""logsetup.py: logfmt and JSON lines on stderr."""

from __future__ import annotations

import json
import logging
import re
from collections.abc import Iterator

import pytest

from etcd_inspector.logsetup import JSONFormatter, LogfmtFormatter, _logfmt_value, setup_logging


def record(msg: str, level: int = logging.WARNING, exc_info=None, **extra) -> logging.LogRecord:
    logger = logging.getLogger("etcd_inspector.test")
    return logger.makeRecord(logger.name, level, "f.py", 1, msg, (), exc_info, extra=extra)


@pytest.mark.parametrize(
    ("value", "rendered"),
    [
        ("plain", "plain"),
        (42, "42"),
        (1.5, "1.5"),
        ("", '""'),
        ("two words", '"two words"'),
        ("a=b", '"a=b"'),
        ('say "hi"', '"say \\"hi\\""'),
        ("line1\nline2", '"line1\\nline2"'),
        ("tab\there", '"tab\there"'),
        ('back\\slash "q"', '"back\\\\slash \\"q\\""'),
        (None, "None"),
    ],
)
def test_logfmt_value_quoting(value: object, rendered: str) -> None:
    assert _logfmt_value(value) == rendered


def test_logfmt_line_has_fields_in_order_and_extra() -> None:
    line = LogfmtFormatter().format(
        record("probe run failed", cluster="prod", probe="status", err="timed out after 1s")
    )
    assert re.fullmatch(
        r"ts=\d{4}-\d\d-\d\dT\d\d:\d\d:\d\d\.\d{3}Z level=warn logger=etcd_inspector\.test "
        r'msg="probe run failed" cluster=prod probe=status err="timed out after 1s"',
        line,
    ), line


def test_json_line_fields_and_extra() -> None:
    line = JSONFormatter().format(
        record("member metrics fetch failed", level=logging.INFO, member="m3", count=2, obj={1})
    )
    fields = json.loads(line)
    assert fields.pop("ts").endswith("Z")
    assert fields == {
        "level": "info",
        "logger": "etcd_inspector.test",
        "msg": "member metrics fetch failed",
        "member": "m3",
        "count": 2,
        "obj": "{1}",  # anything JSON cannot hold is logged as its str()
    }


def test_exception_goes_into_err() -> None:
    try:
        raise ValueError("boom")
    except ValueError:
        import sys

        rec = record("probe metrics failed", level=logging.ERROR, exc_info=sys.exc_info())
    fields = json.loads(JSONFormatter().format(rec))
    assert fields["level"] == "error"
    assert "Traceback" in fields["err"] and "ValueError: boom" in fields["err"]
    line = LogfmtFormatter().format(rec)
    assert "\n" not in line and "ValueError: boom" in line


@pytest.fixture
def restore_logging() -> Iterator[None]:
    root = logging.getLogger()
    handlers, level = root.handlers[:], root.level
    access = logging.getLogger("aiohttp.access").level
    yield
    root.handlers[:] = handlers
    root.setLevel(level)
    logging.getLogger("aiohttp.access").setLevel(access)


@pytest.mark.usefixtures("restore_logging")
def test_setup_logging_levels_and_format(capsys: pytest.CaptureFixture[str]) -> None:
    setup_logging("warn", "json")
    log = logging.getLogger("etcd_inspector.somewhere")
    log.info("not shown")
    log.warning("shown", extra={"cluster": "c"})
    lines = capsys.readouterr().err.splitlines()
    assert [json.loads(line)["msg"] for line in lines] == ["shown"]
    assert json.loads(lines[0])["level"] == "warn"
    assert logging.getLogger("aiohttp.access").getEffectiveLevel() == logging.WARNING

    setup_logging("debug", "logfmt")
    log.debug("now shown", extra={"cluster": "c"})
    err = capsys.readouterr().err
    assert "level=debug" in err and 'msg="now shown" cluster=c' in err


@pytest.mark.usefixtures("restore_logging")
def test_grpc_is_quiet_even_at_debug_and_its_core_is_silenced_before_import(
    capsys: pytest.CaptureFixture[str],
) -> None:
    import os

    import etcd_inspector  # noqa: F401 -- sets the environment gRPC's core reads

    assert os.environ["GRPC_VERBOSITY"] in ("NONE", os.environ.get("GRPC_VERBOSITY"))
    setup_logging("debug", "json")
    logging.getLogger("grpc._cython.cygrpc").debug("Loaded running loop")
    logging.getLogger("grpc._cython.cygrpc").warning("a real gRPC warning")
    lines = capsys.readouterr().err.splitlines()
    assert [json.loads(line)["msg"] for line in lines] == ["a real gRPC warning"]


def test_grpc_core_prints_nothing_of_its_own_in_a_failing_tls_call(tmp_path) -> None:
    """A TLS server whose CA we do not trust: gRPC's core would print its handshake errors raw
    to stderr; every stderr line of the process must be ours (JSON), up to the final one."""
    import socket
    import ssl
    import subprocess
    import sys
    import threading

    from certs import make_pki

    pki = make_pki(tmp_path / "pki")
    context = ssl.SSLContext(ssl.PROTOCOL_TLS_SERVER)
    context.load_cert_chain(pki.server_cert, pki.server_key)
    server = socket.socket()
    server.bind(("127.0.0.1", 0))
    server.listen(16)
    server.settimeout(0.2)
    port = server.getsockname()[1]
    stop = threading.Event()

    def serve() -> None:
        while not stop.is_set():
            try:
                conn, _ = server.accept()
            except OSError:
                continue
            try:
                with context.wrap_socket(conn, server_side=True):
                    pass
            except (OSError, ssl.SSLError):
                conn.close()

    thread = threading.Thread(target=serve)
    thread.start()
    try:
        out = subprocess.run(
            [sys.executable, "-m", "etcd_inspector", "inspect", "--no-progress",
             "--log.format=json", "--log.level=debug",
             f"--etcd.endpoints=https://localhost:{port}"],
            capture_output=True, text=True, timeout=90, check=False,
        )  # fmt: skip
    finally:
        stop.set()
        thread.join(timeout=5)
        server.close()
    assert out.returncode == 2
    lines = [line for line in out.stderr.splitlines() if line.strip()]
    not_ours = [line for line in lines[:-1] if not line.startswith("{")]
    assert not_ours == [], out.stderr[-3000:]
    assert lines[-1].startswith("etcd-inspector: could not inspect cluster")
    assert "certificate" in lines[-1].lower() or "tls" in lines[-1].lower(), lines[-1]
    assert "Loaded running loop" not in out.stderr
