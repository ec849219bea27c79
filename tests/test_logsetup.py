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
