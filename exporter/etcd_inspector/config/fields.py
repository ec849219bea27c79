"""``Section``, the base of every mapping in the file, and the value types of its fields.

Each value type is an ``Annotated`` alias: to the type checker it is the plain type (``str``,
``tuple``); the metadata is what pydantic applies when it validates input.
"""

from __future__ import annotations

import os
import re
import stat
from collections.abc import Callable, Hashable, Mapping, Sequence
from typing import Annotated, Any, ClassVar, TypeVar
from urllib.parse import SplitResult, urlsplit, urlunsplit

from pydantic import (
    AfterValidator,
    BaseModel,
    ConfigDict,
    PlainValidator,
    StrictStr,
    ValidationError,
    ValidationInfo,
    ValidatorFunctionWrapHandler,
    model_validator,
)
from pydantic_core import InitErrorDetails

from .durations import FROM_FILE
from .errors import Loc, did_you_mean, problem, problems, reraise, type_name

T = TypeVar("T")
_INT64 = 2**63

# --------------------------------------------------------------------------- strings


def _not_empty(value: str) -> str:
    if not value.strip():
        raise ValueError("must not be empty")
    return value


NonEmptyStr = Annotated[StrictStr, AfterValidator(_not_empty)]


def _cluster_name(name: str) -> str:
    # The name becomes a label value and part of log lines, hence the restricted alphabet.
    if not re.fullmatch(r"[a-zA-Z0-9_.:-]+", name):
        raise ValueError(f"{name!r} must match [a-zA-Z0-9_.:-]+")
    return name


ClusterName = Annotated[NonEmptyStr, AfterValidator(_cluster_name)]


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


def duplicates(
    values: Sequence[object], what: str, listed: str, at: Loc = ()
) -> list[InitErrorDetails]:
    """The one duplicate detector: "duplicate endpoint 'x' (same as endpoints[0])" on every
    repeat, at ``(i, *at)``."""
    first: dict[Hashable, int] = {}
    found = []
    for i, value in enumerate(values):
        if not isinstance(value, Hashable) or value is None:
            continue
        if value in first:
            text = f"duplicate {what} {value!r} (same as {listed}[{first[value]}])"
            found.append(problem((i, *at), text))
        else:
            first[value] = i
    return found


def unique(what: str, listed: str, key: Callable[[Any], object] = lambda v: v) -> AfterValidator:
    def check(items: tuple[T, ...]) -> tuple[T, ...]:
        if found := duplicates([key(item) for item in items], what, listed):
            raise problems(listed, found)
        return items

    return AfterValidator(check)


def non_empty(what: str) -> AfterValidator:
    def check(items: tuple[T, ...]) -> tuple[T, ...]:
        if not items:
            raise ValueError(f"at least one {what} is required")
        return items

    return AfterValidator(check)


# --------------------------------------------------------------------------- sections


def _int64(key: str, value: object) -> list[InitErrorDetails]:
    # etcd's API fields are int64 (a page size becomes a Range limit, for one).
    items = value if isinstance(value, tuple) else (value,)
    return [
        problem(
            (key, i) if isinstance(value, tuple) else (key,),
            f"must be between {-_INT64} and {_INT64 - 1} (etcd's int64), got {item}",
        )
        for i, item in enumerate(items)
        if isinstance(item, int) and not -_INT64 <= item < _INT64
    ]


class Section(BaseModel):
    """A mapping of the file (and a probe's options). Strict types (no "5" for an integer, no
    ``1`` for a boolean, no NaN; a YAML list for a tuple; integers within int64); anything but a
    mapping is "expected a mapping"; a ``null`` key takes its default (a bare ``timeout:`` line
    is a half-finished edit), except in ``keep_null`` and in probe options; unknown keys come
    first, with a "did you mean"; ``checks`` (several keys) run even when single keys failed.
    """

    model_config = ConfigDict(
        strict=True, extra="forbid", frozen=True, allow_inf_nan=False, protected_namespaces=()
    )
    keep_null: ClassVar[Sequence[str] | bool] = ()

    @classmethod
    def prepare(cls, data: Mapping[str, Any]) -> Mapping[str, Any]:
        """The input as this section reads it (e.g. a directory standing for files)."""
        return data

    @classmethod
    def checks(cls, data: Mapping[str, Any]) -> list[InitErrorDetails]:
        return []

    @classmethod
    def unknown(cls, key: object, allowed: list[str]) -> str:
        return f"unknown key {key!r}{did_you_mean(key, allowed, or_list=True)}"

    @model_validator(mode="wrap")
    @classmethod
    def _section(
        cls, data: Any, handler: ValidatorFunctionWrapHandler, info: ValidationInfo
    ) -> Any:
        if isinstance(data, cls):
            return data
        if not isinstance(data, Mapping):
            found = [problem((), f"expected a mapping, got {type_name(data)}")]
            raise problems(cls.__name__, found)
        context = info.context or {}
        # Keys that belong to the same YAML mapping but are validated elsewhere (a probe's
        # enabled/interval/timeout beside its options).
        allowed = [*cls.model_fields, *context.get("also_allowed", ())]
        # In code, None is a value like any other.
        keep = True if context.get("keep_null") or not context.get(FROM_FILE) else cls.keep_null
        given = {
            k: tuple(v) if isinstance(v, list) else v
            for k, v in cls.prepare(data).items()
            if v is not None or keep is True or (keep and k in keep)
        }
        unknown: list[InitErrorDetails] = []
        others: list[InitErrorDetails] = []
        result = None
        try:
            result = handler(given)
        except ValidationError as e:
            for error in e.errors(include_url=False):
                if error["type"] == "extra_forbidden" and len(error["loc"]) == 1:
                    # The key as written (pydantic's location has it as a string).
                    written = str(error["loc"][0])
                    key = next((k for k in given if str(k) == written), written)
                    unknown.append(problem((), cls.unknown(key, allowed)))
                else:
                    others.append(reraise(error))
        bounds = [e for k, v in given.items() for e in _int64(str(k), v)]
        errors = [*unknown, *others, *bounds, *cls.checks(given)]
        if errors:
            raise problems(cls.__name__, errors)
        return result
