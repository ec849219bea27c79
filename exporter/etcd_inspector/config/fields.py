"""Value types of the schema (strings, URLs, files, choices, lists) and the section wrapper.

Each type is an ``Annotated`` alias: to the type checker and to code reading a loaded
config it is the plain type (``str``, ``float``, ``tuple``); the metadata is what pydantic
applies when it validates YAML input.
"""

from __future__ import annotations

import dataclasses
import os
import re
import stat
from collections.abc import Callable, Collection, Mapping
from typing import Annotated, Any, TypeVar
from urllib.parse import SplitResult, urlsplit, urlunsplit

from pydantic import (
    AfterValidator,
    BaseModel,
    BeforeValidator,
    PlainValidator,
    StrictStr,
    ValidationError,
    ValidatorFunctionWrapHandler,
)
from pydantic_core import InitErrorDetails

from .errors import problem, problems, reraise, type_name, unknown_key_hint

T = TypeVar("T")
Check = Callable[[Mapping[str, Any]], list[InitErrorDetails]]

# --------------------------------------------------------------------------- strings


def _not_empty(value: str) -> str:
    if not value.strip():
        raise ValueError("must not be empty")
    return value


NonEmptyStr = Annotated[StrictStr, AfterValidator(_not_empty)]


def choice(allowed: tuple[str, ...]) -> PlainValidator:
    """A string from ``allowed`` ("'verbose' is not one of debug, info, warn, error")."""

    def validate(value: object) -> str:
        if not isinstance(value, str):
            raise ValueError(f"expected a string, got {type_name(value)}")
        if value not in allowed:
            raise ValueError(f"{_not_empty(value)!r} is not one of {', '.join(allowed)}")
        return value

    return PlainValidator(validate)


def _cluster_name(name: str) -> str:
    # The name becomes a label value and part of log lines, hence the restricted alphabet.
    if not name:
        raise ValueError("must not be empty")
    if not re.fullmatch(r"[a-zA-Z0-9_.:-]+", name):
        raise ValueError(f"{name!r} must match [a-zA-Z0-9_.:-]+")
    return name


ClusterName = Annotated[StrictStr, AfterValidator(_cluster_name)]


def _regex(value: object) -> re.Pattern[str]:
    if not isinstance(value, str):
        raise ValueError(f"expected a string, got {type_name(value)}")
    try:
        return re.compile(_not_empty(value))
    except re.error as e:
        raise ValueError(f"invalid regex {value!r}: {e}") from None


# Matched with ``fullmatch`` against metric family names.
Regex = Annotated[re.Pattern[str], PlainValidator(_regex)]


def _readable_file(path: str) -> str:
    """Relative paths are checked against the working directory, as they will be opened."""
    try:
        st = os.stat(path)
        # Opening a FIFO or device would block or read something surprising.
        if not stat.S_ISREG(st.st_mode):
            raise ValueError(f"cannot read {path!r}: not a regular file")
        with open(path, "rb"):
            pass
    except OSError as e:
        raise ValueError(f"cannot read {path!r}: {e.strerror or e}") from None
    return path


ReadableFile = Annotated[NonEmptyStr, AfterValidator(_readable_file)]


def _readable_dir(path: str) -> str:
    if not os.path.isdir(path):
        raise ValueError(f"{path!r} is not a directory")
    return path


ReadableDir = Annotated[NonEmptyStr, AfterValidator(_readable_dir)]


def _listen_address(address: str) -> str:
    host, sep, port = address.rpartition(":")
    if not sep or not re.fullmatch(r"\d{1,5}", port, re.ASCII) or int(port) > 65535:
        raise ValueError(f"{address!r} is not a [host]:port address (e.g. ':9979')")
    if ":" in host and not (host.startswith("[") and host.endswith("]")):
        raise ValueError(f"{address!r}: IPv6 hosts must be in brackets (e.g. '[::1]:9979')")
    return address


ListenAddress = Annotated[NonEmptyStr, AfterValidator(_listen_address)]


def _telemetry_path(path: str) -> str:
    # "/" is the landing page; the exporter needs it for the index.
    if not path.startswith("/") or path == "/":
        raise ValueError(f"{path!r} must start with '/' and must not be '/'")
    return path


TelemetryPath = Annotated[NonEmptyStr, AfterValidator(_telemetry_path)]

# --------------------------------------------------------------------------- URLs


def _split_http_url(text: str) -> SplitResult:
    """urlsplit, or ValueError with the user-facing message when it is not http(s)."""
    hint = "" if "://" in text else " (missing 'http://' or 'https://'?)"
    try:
        parts = urlsplit(text.strip())
    except ValueError:
        raise ValueError(f"{text!r} is not an http(s) URL{hint}") from None
    if parts.scheme.lower() not in ("http", "https") or not parts.hostname:
        raise ValueError(f"{text!r} is not an http(s) URL{hint}")
    try:
        port = parts.port  # urlsplit only validates the port when asked
    except ValueError:
        port = 0
    if port == 0:
        raise ValueError(f"{text!r} has an invalid port")
    if parts.username is not None or parts.password is not None:
        # Do not echo the URL: it contains a secret.
        raise ValueError("URL must not contain credentials; use username and password_file")
    if parts.fragment:
        raise ValueError(f"{text!r} must not have a fragment")
    return parts


def client_url(text: str) -> str:
    """Validate an etcd client URL and return it as scheme://host:port."""
    parts = _split_http_url(text)
    scheme = parts.scheme.lower()
    if parts.port is None:
        raise ValueError(
            f"{text!r} has no port (write it explicitly, e.g. '{scheme}://{parts.netloc}:2379')"
        )
    if parts.path not in ("", "/"):
        raise ValueError(f"{text!r} must not have a path (got {parts.path!r})")
    if parts.query:
        raise ValueError(f"{text!r} must not have a query string")
    return f"{scheme}://{parts.netloc.lower()}"


def _metrics_url(text: str) -> str:
    """Validate a metrics URL; a missing path means the conventional /metrics."""
    parts = _split_http_url(text)
    path = parts.path if parts.path not in ("", "/") else "/metrics"
    return urlunsplit((parts.scheme.lower(), parts.netloc.lower(), path, parts.query, ""))


ClientURL = Annotated[StrictStr, AfterValidator(client_url)]
# local_member: the same, but an empty string is "must not be empty".
MemberURL = Annotated[NonEmptyStr, AfterValidator(client_url)]
MetricsURL = Annotated[NonEmptyStr, AfterValidator(_metrics_url)]

# --------------------------------------------------------------------------- lists


def as_list(value: object) -> object:
    # YAML lists only: pydantic would also take a set, whose order is arbitrary.
    if not isinstance(value, list | tuple):
        raise ValueError(f"expected a list, got {type_name(value)}")
    return value


def non_empty(what: str) -> AfterValidator:
    def check(items: tuple[T, ...]) -> tuple[T, ...]:
        if not items:
            raise ValueError(f"at least one {what} is required")
        return items

    return AfterValidator(check)


# Wraps a tuple type: ``Annotated[tuple[X, ...], LIST]``.
LIST = BeforeValidator(as_list)

# --------------------------------------------------------------------------- sections


def _keys(cls: type) -> list[str]:
    if issubclass(cls, BaseModel):
        return list(cls.model_fields)
    if dataclasses.is_dataclass(cls):
        return [f.name for f in dataclasses.fields(cls) if f.init]
    return []


_EXTRA = ("extra_forbidden", "unexpected_keyword_argument", "invalid_key")


def validate_section(
    cls: type,
    data: object,
    handler: ValidatorFunctionWrapHandler,
    *,
    keep_null: Collection[str] = (),
    checks: Check | None = None,
    unknown: Callable[[object, list[str]], str] | None = None,
) -> Any:
    """The shared behaviour of every mapping in the file, for a ``mode="wrap"`` validator.

    * anything but a mapping is "expected a mapping, got ..."
    * a key that is ``null`` is left out, so it takes its default (a bare ``timeout:`` line
      is a half-finished edit rather than a request for "no value"), except ``keep_null``
    * unknown keys (``extra="forbid"``) are reported first, with a "did you mean"
    * ``checks`` (problems involving several keys) run on the input even when single
      keys failed, so everything is reported at once.
    """
    if not isinstance(data, Mapping):
        raise problems(cls.__name__, [problem((), f"expected a mapping, got {type_name(data)}")])
    allowed = _keys(cls)
    given = {k: v for k, v in data.items() if v is not None or k in keep_null}
    unknown_keys: list[InitErrorDetails] = []
    others: list[InitErrorDetails] = []
    result = None
    try:
        result = handler(given)
    except ValidationError as e:
        for error in e.errors(include_url=False):
            if error["type"] in _EXTRA and len(error["loc"]) == 1:
                # The key as written (pydantic's location has it as a string).
                key = next((k for k in given if str(k) == str(error["loc"][0])), error["loc"][0])
                text = (
                    unknown(key, allowed)
                    if unknown
                    else (f"unknown key {key!r}{unknown_key_hint(key, allowed)}")
                )
                unknown_keys.append(problem((), text))
            else:
                others.append(reraise(error))
    errors = [*unknown_keys, *others, *(checks(given) if checks else [])]
    if errors:
        raise problems(cls.__name__, errors)
    return result
