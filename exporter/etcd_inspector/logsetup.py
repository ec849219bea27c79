"""Logging in logfmt (the Prometheus ecosystem's default) or JSON, to stderr."""

from __future__ import annotations

import json
import logging
import sys
import time

LEVELS = {"debug": logging.DEBUG, "info": logging.INFO, "warn": logging.WARNING,
          "error": logging.ERROR}  # fmt: skip

# Attributes every LogRecord has; anything else came in through `extra=` and is logged as a field.
_STANDARD = set(logging.makeLogRecord({}).__dict__) | {"message", "asctime", "taskName"}


def _fields(record: logging.LogRecord) -> dict[str, object]:
    out: dict[str, object] = {
        "ts": time.strftime("%Y-%m-%dT%H:%M:%S", time.gmtime(record.created))
        + f".{int(record.msecs):03d}Z",
        "level": {"WARNING": "warn"}.get(record.levelname, record.levelname.lower()),
        "logger": record.name,
        "msg": record.getMessage(),
    }
    for key, value in record.__dict__.items():
        if key not in _STANDARD:
            out[key] = value
    if record.exc_info:
        out["err"] = logging.Formatter().formatException(record.exc_info)
    return out


def _logfmt_value(value: object) -> str:
    text = str(value)
    if text == "" or any(c in text for c in ' ="\n\t'):
        return '"' + text.replace("\\", "\\\\").replace('"', '\\"').replace("\n", "\\n") + '"'
    return text


class LogfmtFormatter(logging.Formatter):
    def format(self, record: logging.LogRecord) -> str:
        return " ".join(f"{k}={_logfmt_value(v)}" for k, v in _fields(record).items())


class JSONFormatter(logging.Formatter):
    def format(self, record: logging.LogRecord) -> str:
        return json.dumps(_fields(record), default=str)


def setup_logging(level: str = "info", fmt: str = "logfmt") -> None:
    handler = logging.StreamHandler(sys.stderr)
    handler.setFormatter(JSONFormatter() if fmt == "json" else LogfmtFormatter())
    root = logging.getLogger()
    root.handlers[:] = [handler]
    root.setLevel(LEVELS.get(level, logging.INFO))
    # aiohttp logs every request at INFO; that is noise for an exporter scraped every 15s.
    logging.getLogger("aiohttp.access").setLevel(logging.WARNING)
    # gRPC's Python side logs through `grpc._cython.cygrpc` etc.: our format, but at debug it is
    # one "Loaded running loop" per call. Its warnings and errors still come through.
    for name in GRPC_LOGGERS:
        logging.getLogger(name).setLevel(logging.WARNING)


GRPC_LOGGERS = ("grpc", "grpc._cython", "grpc._cython.cygrpc", "grpc.aio")
