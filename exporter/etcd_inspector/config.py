"""Strict YAML configuration for etcd-inspector.

Modeled on blackbox_exporter's config loading: every mapping rejects unknown keys (a typo
must not silently fall back to a default) and all problems are collected before raising,
so one ``--config.check`` run shows the whole list instead of one fix-and-retry at a time.

Conventions shared by every section:

* An optional key that is absent or explicitly ``null`` takes its default, because a bare
  ``timeout:`` line in YAML is almost always a half-finished edit rather than a request
  for "no value".
* Durations are Prometheus-style strings ("500ms", "1m30s"); bare numbers are rejected
  because "timeout: 5" reads as seconds to some people and milliseconds to others.
* Relative file paths (TLS files, password_file) are checked against the process's
  working directory, which is also where the etcd adapter will open them.
"""

from __future__ import annotations

import copy
import dataclasses
import difflib
import os
import re
import stat
import types
from collections.abc import Iterable, Mapping
from dataclasses import dataclass, field
from typing import (
    Annotated,
    Any,
    Literal,
    Protocol,
    Union,
    get_args,
    get_origin,
    get_type_hints,
)
from urllib.parse import urlsplit, urlunsplit

import yaml

__all__ = [
    "KEY_LABEL_MODES",
    "LOG_FORMATS",
    "LOG_LEVELS",
    "ClusterConfig",
    "Config",
    "ConfigError",
    "Duration",
    "EndpointConfig",
    "ProbeConfig",
    "ProbeSpecLike",
    "ScrapeConfig",
    "TLSConfig",
    "WebConfig",
    "load_config_file",
    "merge_raw",
    "parse_config",
    "parse_duration",
]

_DURATION_MARK = "duration"
# Marker for probe option fields that accept duration strings ("30s") and hold seconds.
Duration = Annotated[float, _DURATION_MARK]

LOG_LEVELS = ("debug", "info", "warn", "error")
LOG_FORMATS = ("logfmt", "json")
KEY_LABEL_MODES = ("full", "prefix", "hash")

_TOP_KEYS = ("log", "web", "scrape", "inspection", "clusters")
_LOG_KEYS = ("level", "format")
_WEB_KEYS = ("listen_address", "telemetry_path")
_SCRAPE_KEYS = ("timeout", "timeout_offset", "metrics_allow", "metrics_deny")
_INSPECTION_KEYS = ("interval", "timeout", "key_labels", "probes")
_PROBE_KEYS = ("enabled", "interval", "timeout")
_CLUSTER_KEYS = (
    "name",
    "endpoints",
    "tls",
    "metrics_tls",
    "username",
    "password_file",
    "dial_timeout",
    "request_timeout",
    "local_member",
)
_ENDPOINT_KEYS = ("url", "metrics_url")
_TLS_KEYS = ("ca_file", "cert_file", "key_file", "server_name", "insecure_skip_verify")

_CLUSTER_NAME_RE = re.compile(r"[a-zA-Z0-9_.:-]+")


# --------------------------------------------------------------------------- errors


class ConfigError(Exception):
    """Every problem found in one configuration source, each prefixed with its YAML path."""

    def __init__(self, errors: Iterable[str], source: str = "<config>") -> None:
        self.errors: list[str] = list(errors)
        self.source = source
        super().__init__(self._render())

    def _render(self) -> str:
        n = len(self.errors)
        noun = "problem" if n == 1 else "problems"
        lines = "".join(f"\n  - {e}" for e in self.errors)
        return f"{n} {noun} in {self.source}:{lines}"

    def __str__(self) -> str:
        return self._render()

    def __reduce__(self) -> tuple[Any, ...]:
        # The default reduce would call ConfigError(message) and lose the list.
        return (type(self), (self.errors, self.source))


# --------------------------------------------------------------------------- durations

# Same grammar as Prometheus' model.ParseDuration: integer amounts, units largest first,
# each unit at most once.
_DURATION_RE = re.compile(
    r"(?:(\d+)y)?(?:(\d+)w)?(?:(\d+)d)?(?:(\d+)h)?(?:(\d+)m)?(?:(\d+)s)?(?:(\d+)ms)?",
    re.ASCII,
)
_UNIT_MS = (365 * 86_400_000, 7 * 86_400_000, 86_400_000, 3_600_000, 60_000, 1000, 1)
_BARE_NUMBER_RE = re.compile(r"\d+(?:\.\d*)?|\.\d+", re.ASCII)


def _unit_suggestion(number: str) -> str:
    value = float(number)
    if value.is_integer():
        return f"'{int(value)}s'"
    # Prometheus durations have no fractions, so 1.5 becomes 1500ms rather than 1.5s.
    return f"'{round(value * 1000)}ms'"


def parse_duration(text: str) -> float:
    """Parse a Prometheus duration ("500ms", "15s", "1m30s", "2h", "1d") into seconds."""
    if isinstance(text, bool) or not isinstance(text, str):
        raise ValueError(f"expected a duration string like '15s', got {_type_name(text)}")
    s = text.strip()
    if _BARE_NUMBER_RE.fullmatch(s):
        raise ValueError(f"{text!r} has no unit; write e.g. {_unit_suggestion(s)}")
    m = _DURATION_RE.fullmatch(s)
    if not s or m is None:
        raise ValueError(
            f"{text!r} is not a duration (use e.g. '500ms', '15s', '1m30s', '2h', '1d')"
        )
    total_ms = sum(
        int(g) * unit for g, unit in zip(m.groups(), _UNIT_MS, strict=True) if g is not None
    )
    return total_ms / 1000


# --------------------------------------------------------------------------- dataclasses


@dataclass(frozen=True)
class TLSConfig:
    ca_file: str | None = None
    cert_file: str | None = None
    key_file: str | None = None
    server_name: str | None = None
    insecure_skip_verify: bool = False

    @property
    def enabled(self) -> bool:
        """Whether a custom TLS context is needed (https with system CAs needs none)."""
        return bool(self.ca_file or self.cert_file or self.key_file or self.insecure_skip_verify)


@dataclass(frozen=True)
class EndpointConfig:
    url: str
    metrics_url: str


@dataclass(frozen=True)
class ClusterConfig:
    """One etcd cluster.

    ``metrics_tls`` is ``None`` when the YAML has no ``metrics_tls`` section; that means
    "use ``tls`` for https metrics URLs too". It is left unresolved so consumers can tell
    an explicit metrics TLS setup from the inherited one.
    ``password_file`` is only checked for readability; its content is read by the etcd
    adapter at connect time so that rotating the secret needs no config reload.
    """

    name: str
    endpoints: tuple[EndpointConfig, ...]
    tls: TLSConfig = field(default_factory=TLSConfig)
    metrics_tls: TLSConfig | None = None
    username: str | None = None
    password_file: str | None = None
    dial_timeout: float = 2.0
    request_timeout: float = 5.0
    local_member: str | None = None


@dataclass(frozen=True)
class ScrapeConfig:
    """Budget and filters for proxying members' /metrics.

    ``metrics_allow``/``metrics_deny`` are meant for ``fullmatch`` on metric family names.
    """

    timeout: float = 10.0
    timeout_offset: float = 0.5
    metrics_allow: re.Pattern[str] | None = None
    metrics_deny: re.Pattern[str] | None = None


@dataclass(frozen=True)
class WebConfig:
    listen_address: str = ":9979"
    telemetry_path: str = "/metrics"


@dataclass(frozen=True)
class ProbeConfig:
    enabled: bool
    interval: float
    timeout: float
    options: Any


@dataclass(frozen=True)
class Config:
    clusters: tuple[ClusterConfig, ...]
    web: WebConfig
    scrape: ScrapeConfig
    # Every registered probe has an entry, also the ones the YAML never mentions.
    probes: Mapping[str, ProbeConfig]
    key_labels: str = "full"
    log_level: str = "info"
    log_format: str = "logfmt"


class ProbeSpecLike(Protocol):
    """What the loader needs from a probe registry entry."""

    @property
    def name(self) -> str: ...

    @property
    def options_type(self) -> type: ...

    @property
    def default_enabled(self) -> bool: ...

    @property
    def default_interval(self) -> float: ...

    @property
    def default_timeout(self) -> float: ...


# --------------------------------------------------------------------------- small helpers

_MISSING: Any = object()
_INVALID: Any = object()


def _type_name(value: Any) -> str:
    if value is None:
        return "null"
    if isinstance(value, bool):
        return "boolean"
    if isinstance(value, int):
        return "integer"
    if isinstance(value, float):
        return "number"
    if isinstance(value, str):
        return "string"
    if isinstance(value, Mapping):
        return "mapping"
    if isinstance(value, list | tuple):
        return "list"
    return type(value).__name__


def _at(path: str, message: str) -> str:
    return f"{path}: {message}" if path else f"top level: {message}"


def _join(path: str, key: str) -> str:
    return f"{path}.{key}" if path else key


def _did_you_mean(key: Any, allowed: Iterable[str]) -> str:
    close = difflib.get_close_matches(key, list(allowed), n=1) if isinstance(key, str) else []
    return f" (did you mean {close[0]!r}?)" if close else ""


def _unknown_key_hint(key: Any, allowed: Iterable[str]) -> str:
    allowed = list(allowed)
    hint = _did_you_mean(key, allowed)
    if hint or not allowed:
        return hint
    return f" (allowed: {', '.join(allowed)})"


def _check_keys(
    node: Mapping[Any, Any], allowed: Iterable[str], path: str, errs: list[str]
) -> None:
    allowed = tuple(allowed)
    for key in node:
        if key not in allowed:
            errs.append(_at(path, f"unknown key {key!r}{_unknown_key_hint(key, allowed)}"))


def _as_mapping(value: Any, path: str, errs: list[str]) -> Mapping[Any, Any]:
    """An optional section: absent/null means empty, anything but a mapping is an error."""
    if value is None:
        return {}
    if not isinstance(value, Mapping):
        errs.append(_at(path, f"expected a mapping, got {_type_name(value)}"))
        return {}
    return value


def _get(node: Mapping[Any, Any], key: str) -> Any:
    value = node.get(key, _MISSING)
    return _MISSING if value is None else value


def _opt_str(
    node: Mapping[Any, Any], key: str, path: str, errs: list[str], default: str | None = None
) -> str | None:
    value = _get(node, key)
    if value is _MISSING:
        return default
    if not isinstance(value, str):
        errs.append(f"{_join(path, key)}: expected a string, got {_type_name(value)}")
        return default
    if not value.strip():
        errs.append(f"{_join(path, key)}: must not be empty")
        return default
    return value


def _bool(node: Mapping[Any, Any], key: str, path: str, errs: list[str], default: bool) -> bool:
    value = _get(node, key)
    if value is _MISSING:
        return default
    if not isinstance(value, bool):
        errs.append(f"{_join(path, key)}: expected a boolean, got {_type_name(value)}")
        return default
    return value


def _choice(
    node: Mapping[Any, Any],
    key: str,
    path: str,
    errs: list[str],
    choices: tuple[str, ...],
    default: str,
) -> str:
    value = _opt_str(node, key, path, errs)
    if value is None:
        return default
    if value not in choices:
        errs.append(f"{_join(path, key)}: {value!r} is not one of {', '.join(choices)}")
        return default
    return value


def _duration(
    node: Mapping[Any, Any],
    key: str,
    path: str,
    errs: list[str],
    default: float | None,
    *,
    allow_zero: bool = False,
) -> float | None:
    value = _get(node, key)
    if value is _MISSING:
        return default
    where = _join(path, key)
    if isinstance(value, int | float) and not isinstance(value, bool):
        # Route numbers through parse_duration so the user gets the "add a unit" hint.
        value = str(value)
    try:
        seconds = parse_duration(value)
    except ValueError as e:
        errs.append(f"{where}: {e}")
        return default
    if seconds < 0 or (seconds == 0 and not allow_zero):
        bound = "0 or more" if allow_zero else "greater than 0"
        errs.append(f"{where}: must be {bound}, got {value!r}")
        return default
    return seconds


def _regex(node: Mapping[Any, Any], key: str, path: str, errs: list[str]) -> re.Pattern[str] | None:
    text = _opt_str(node, key, path, errs)
    if text is None:
        return None
    try:
        return re.compile(text)
    except re.error as e:
        errs.append(f"{_join(path, key)}: invalid regex {text!r}: {e}")
        return None


def _readable_file_problem(file_path: str) -> str | None:
    try:
        st = os.stat(file_path)
    except OSError as e:
        return f"cannot read {file_path!r}: {e.strerror or e}"
    # Opening a FIFO or device would block or read something surprising; only plain files.
    if not stat.S_ISREG(st.st_mode):
        return f"cannot read {file_path!r}: not a regular file"
    try:
        with open(file_path, "rb"):
            pass
    except OSError as e:
        return f"cannot read {file_path!r}: {e.strerror or e}"
    return None


def _file(node: Mapping[Any, Any], key: str, path: str, errs: list[str]) -> str | None:
    file_path = _opt_str(node, key, path, errs)
    if file_path is not None:
        problem = _readable_file_problem(file_path)
        if problem:
            errs.append(f"{_join(path, key)}: {problem}")
    return file_path


# --------------------------------------------------------------------------- URLs


def _split_http_url(text: str) -> Any:
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


def _client_url(text: str) -> str:
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


# --------------------------------------------------------------------------- sections


def _parse_log(node: Mapping[Any, Any], errs: list[str]) -> tuple[str, str]:
    _check_keys(node, _LOG_KEYS, "log", errs)
    level = _choice(node, "level", "log", errs, LOG_LEVELS, "info")
    fmt = _choice(node, "format", "log", errs, LOG_FORMATS, "logfmt")
    return level, fmt


def _listen_address_problem(address: str) -> str | None:
    host, sep, port = address.rpartition(":")
    if not sep or not re.fullmatch(r"\d{1,5}", port, re.ASCII) or int(port) > 65535:
        return f"{address!r} is not a [host]:port address (e.g. ':9979')"
    if ":" in host and not (host.startswith("[") and host.endswith("]")):
        return f"{address!r}: IPv6 hosts must be in brackets (e.g. '[::1]:9979')"
    return None


def _parse_web(node: Mapping[Any, Any], errs: list[str]) -> WebConfig:
    _check_keys(node, _WEB_KEYS, "web", errs)
    defaults = WebConfig()
    listen = _opt_str(node, "listen_address", "web", errs, defaults.listen_address)
    problem = _listen_address_problem(listen) if listen else None
    if problem:
        errs.append(f"web.listen_address: {problem}")
    telemetry = _opt_str(node, "telemetry_path", "web", errs, defaults.telemetry_path)
    if telemetry is not None and (not telemetry.startswith("/") or telemetry == "/"):
        # "/" is the landing page; the exporter needs it for the index.
        errs.append(f"web.telemetry_path: {telemetry!r} must start with '/' and must not be '/'")
    return WebConfig(listen_address=listen or defaults.listen_address, telemetry_path=telemetry)


def _parse_scrape(node: Mapping[Any, Any], errs: list[str]) -> ScrapeConfig:
    _check_keys(node, _SCRAPE_KEYS, "scrape", errs)
    defaults = ScrapeConfig()
    return ScrapeConfig(
        timeout=_duration(node, "timeout", "scrape", errs, defaults.timeout),
        timeout_offset=_duration(
            node, "timeout_offset", "scrape", errs, defaults.timeout_offset, allow_zero=True
        ),
        metrics_allow=_regex(node, "metrics_allow", "scrape", errs),
        metrics_deny=_regex(node, "metrics_deny", "scrape", errs),
    )


# --------------------------------------------------------------------------- probes


def _is_seconds_float(hint: Any, name: str) -> bool:
    return hint is float and name.endswith("_seconds")


def _convert_duration(value: Any, path: str, errs: list[str], *, bare_seconds: bool) -> Any:
    if bare_seconds and isinstance(value, int | float) and not isinstance(value, bool):
        seconds = float(value)
    else:
        if isinstance(value, int | float) and not isinstance(value, bool):
            value = str(value)
        try:
            seconds = parse_duration(value)
        except ValueError as e:
            errs.append(f"{path}: {e}")
            return _INVALID
    if seconds < 0:
        errs.append(f"{path}: must not be negative, got {value!r}")
        return _INVALID
    return seconds


def _convert(value: Any, hint: Any, path: str, errs: list[str], *, seconds: bool) -> Any:
    """Check ``value`` against a probe option annotation; returns _INVALID after an error.

    ``seconds`` is True for float fields named ``*_seconds``: they take a plain number of
    seconds (the name says the unit) or a duration string.
    """
    origin = get_origin(hint)
    if origin is Annotated:
        base, *meta = get_args(hint)
        if _DURATION_MARK in meta:
            return _convert_duration(value, path, errs, bare_seconds=seconds)
        return _convert(value, base, path, errs, seconds=seconds)
    if origin is Union or origin is types.UnionType:
        args = get_args(hint)
        if value is None and type(None) in args:
            return None
        choices = [a for a in args if a is not type(None)]
        if len(choices) == 1:
            return _convert(value, choices[0], path, errs, seconds=seconds)
        for choice in choices:
            scratch: list[str] = []
            result = _convert(value, choice, path, scratch, seconds=seconds)
            if not scratch:
                return result
        errs.append(f"{path}: {value!r} does not match any of the accepted types")
        return _INVALID
    if origin is Literal:
        allowed = get_args(hint)
        # type() check so that True does not pass for Literal[1] and 1 not for Literal[True].
        if any(type(value) is type(a) and value == a for a in allowed):
            return value
        listed = ", ".join(repr(a) for a in allowed)
        errs.append(f"{path}: {value!r} is not one of {listed}")
        return _INVALID
    if origin is tuple:
        args = get_args(hint)
        if len(args) != 2 or args[1] is not Ellipsis:
            raise TypeError(f"{path}: unsupported probe option type {hint!r}")
        if not isinstance(value, list | tuple):
            errs.append(f"{path}: expected a list, got {_type_name(value)}")
            return _INVALID
        items = [
            _convert(v, args[0], f"{path}[{i}]", errs, seconds=False) for i, v in enumerate(value)
        ]
        return _INVALID if any(x is _INVALID for x in items) else tuple(items)
    if hint is Any:
        return value
    if seconds and hint is float:
        return _convert_duration(value, path, errs, bare_seconds=True)
    checks: dict[Any, tuple[type | tuple[type, ...], str]] = {
        bool: (bool, "a boolean"),
        int: (int, "an integer"),
        float: ((int, float), "a number"),
        str: (str, "a string"),
    }
    if hint not in checks:
        raise TypeError(f"{path}: unsupported probe option type {hint!r}")
    accepted, described = checks[hint]
    # bool is an int subclass, but "threshold_bytes: true" is a mistake, not 1.
    if (isinstance(value, bool) and hint is not bool) or not isinstance(value, accepted):
        errs.append(f"{path}: expected {described}, got {_type_name(value)}")
        return _INVALID
    return float(value) if hint is float else value


def _option_fields(options_type: type) -> dict[str, Any]:
    """Settable option names -> resolved annotations (Annotated markers kept)."""
    hints = get_type_hints(options_type, include_extras=True)
    return {f.name: hints[f.name] for f in dataclasses.fields(options_type) if f.init}


def _parse_options(node: Mapping[Any, Any], options_type: type, path: str, errs: list[str]) -> Any:
    before = len(errs)
    kwargs: dict[str, Any] = {}
    for name, hint in _option_fields(options_type).items():
        if name not in node or name in _PROBE_KEYS:
            continue
        where = _join(path, name)
        value = _convert(node[name], hint, where, errs, seconds=_is_seconds_float(hint, name))
        if value is not _INVALID:
            kwargs[name] = value
    if len(errs) > before:
        return None
    try:
        return options_type(**kwargs)
    except (TypeError, ValueError) as e:
        # The options class may validate combinations in __post_init__.
        errs.append(f"{path}: {e}")
        return None


def _parse_probe(
    value: Any,
    spec: ProbeSpecLike,
    path: str,
    default_interval: float | None,
    default_timeout: float | None,
    errs: list[str],
) -> ProbeConfig:
    node = _as_mapping(value, path, errs)
    options_type = spec.options_type
    _check_keys(node, (*_PROBE_KEYS, *_option_fields(options_type)), path, errs)
    enabled = _bool(node, "enabled", path, errs, spec.default_enabled)
    fallback_interval = spec.default_interval if default_interval is None else default_interval
    interval = _duration(node, "interval", path, errs, fallback_interval)
    timeout = _duration(node, "timeout", path, errs, None)
    if timeout is None:
        # An implicit timeout never outlasts the interval, so runs cannot pile up;
        # an explicit one is trusted as written.
        base = spec.default_timeout if default_timeout is None else default_timeout
        timeout = min(base, interval)
    options = _parse_options(node, options_type, path, errs)
    return ProbeConfig(enabled=enabled, interval=interval, timeout=timeout, options=options)


def _parse_inspection(
    node: Mapping[Any, Any], specs: Mapping[str, ProbeSpecLike], errs: list[str]
) -> tuple[str, dict[str, ProbeConfig]]:
    path = "inspection"
    _check_keys(node, _INSPECTION_KEYS, path, errs)
    interval = _duration(node, "interval", path, errs, None)
    timeout = _duration(node, "timeout", path, errs, None)
    key_labels = _choice(node, "key_labels", path, errs, KEY_LABEL_MODES, "full")
    probes_path = "inspection.probes"
    probes_node = _as_mapping(node.get("probes"), probes_path, errs)
    known = sorted(specs)
    for name in probes_node:
        if name not in specs:
            hint = _did_you_mean(name, known)
            errs.append(
                f"{probes_path}: unknown probe {name!r}{hint}; known probes: {', '.join(known)}"
            )
    probes = {
        name: _parse_probe(
            probes_node.get(name), spec, f"{probes_path}.{name}", interval, timeout, errs
        )
        for name, spec in specs.items()
    }
    return key_labels, probes


# --------------------------------------------------------------------------- clusters


def _parse_tls(value: Any, path: str, errs: list[str]) -> TLSConfig:
    node = _as_mapping(value, path, errs)
    _check_keys(node, _TLS_KEYS, path, errs)
    tls = TLSConfig(
        ca_file=_file(node, "ca_file", path, errs),
        cert_file=_file(node, "cert_file", path, errs),
        key_file=_file(node, "key_file", path, errs),
        server_name=_opt_str(node, "server_name", path, errs),
        insecure_skip_verify=_bool(node, "insecure_skip_verify", path, errs, False),
    )
    if tls.cert_file and not tls.key_file:
        errs.append(f"{path}: cert_file is set but key_file is not (a client cert needs both)")
    if tls.key_file and not tls.cert_file:
        errs.append(f"{path}: key_file is set but cert_file is not (a client cert needs both)")
    return tls


def _parse_endpoint(item: Any, path: str, errs: list[str]) -> EndpointConfig | None:
    if isinstance(item, str):
        url_text, url_path, metrics_text = item, path, None
    elif isinstance(item, Mapping):
        _check_keys(item, _ENDPOINT_KEYS, path, errs)
        url_text, url_path = item.get("url"), _join(path, "url")
        if url_text is None:
            errs.append(f"{path}: missing required key 'url'")
            return None
        if not isinstance(url_text, str):
            errs.append(f"{url_path}: expected a string, got {_type_name(url_text)}")
            return None
        metrics_text = _opt_str(item, "metrics_url", path, errs)
    else:
        errs.append(
            f"{path}: expected a URL string or a mapping with url/metrics_url, "
            f"got {_type_name(item)}"
        )
        return None
    try:
        url = _client_url(url_text)
    except ValueError as e:
        errs.append(f"{url_path}: {e}")
        return None
    if metrics_text is None:
        return EndpointConfig(url=url, metrics_url=f"{url}/metrics")
    try:
        return EndpointConfig(url=url, metrics_url=_metrics_url(metrics_text))
    except ValueError as e:
        errs.append(f"{_join(path, 'metrics_url')}: {e}")
        return None


def _parse_endpoints(value: Any, path: str, errs: list[str]) -> tuple[EndpointConfig, ...]:
    if value is None or value == []:
        errs.append(f"{path}: at least one endpoint is required")
        return ()
    if not isinstance(value, list):
        errs.append(f"{path}: expected a list, got {_type_name(value)}")
        return ()
    endpoints: list[EndpointConfig] = []
    seen: dict[str, int] = {}
    for i, item in enumerate(value):
        endpoint = _parse_endpoint(item, f"{path}[{i}]", errs)
        if endpoint is None:
            continue
        if endpoint.url in seen:
            errs.append(
                f"{path}[{i}]: duplicate endpoint {endpoint.url!r} "
                f"(same as endpoints[{seen[endpoint.url]}])"
            )
            continue
        seen[endpoint.url] = i
        endpoints.append(endpoint)
    return tuple(endpoints)


def _check_cluster_name(name: Any, path: str, errs: list[str]) -> None:
    # The name becomes a label value and part of log lines, hence the restricted alphabet.
    if name is None:
        errs.append(f"{path}: missing required key 'name'")
    elif not isinstance(name, str):
        errs.append(f"{path}.name: expected a string, got {_type_name(name)}")
    elif not name:
        errs.append(f"{path}.name: must not be empty")
    elif not _CLUSTER_NAME_RE.fullmatch(name):
        errs.append(f"{path}.name: {name!r} must match {_CLUSTER_NAME_RE.pattern}")


def _local_member(
    text: str, endpoints: tuple[EndpointConfig, ...], path: str, errs: list[str]
) -> str:
    """Normalize the sidecar's own member URL the same way endpoint URLs are."""
    urls = [e.url for e in endpoints]
    try:
        url = _client_url(text)
    except ValueError as e:
        errs.append(f"{path}: {e}")
        return text
    if url not in urls:
        errs.append(
            f"{path}: {url!r} is not one of the cluster's endpoint urls ({', '.join(urls)})"
        )
    return url


def _parse_cluster(item: Any, path: str, errs: list[str]) -> ClusterConfig | None:
    if not isinstance(item, Mapping):
        errs.append(f"{path}: expected a mapping, got {_type_name(item)}")
        return None
    before = len(errs)
    _check_keys(item, _CLUSTER_KEYS, path, errs)
    _check_cluster_name(item.get("name"), path, errs)

    endpoints: tuple[EndpointConfig, ...] = ()
    endpoints_ok = False
    if "endpoints" not in item:
        errs.append(f"{path}: missing required key 'endpoints'")
    else:
        endpoints_before = len(errs)
        endpoints = _parse_endpoints(item["endpoints"], _join(path, "endpoints"), errs)
        endpoints_ok = len(errs) == endpoints_before

    tls = _parse_tls(item.get("tls"), _join(path, "tls"), errs)
    metrics_tls = None
    if item.get("metrics_tls") is not None:
        metrics_tls = _parse_tls(item["metrics_tls"], _join(path, "metrics_tls"), errs)

    username = _opt_str(item, "username", path, errs)
    password_file = _file(item, "password_file", path, errs)
    if username and not password_file:
        errs.append(f"{path}: username is set but password_file is not")
    if password_file and not username:
        errs.append(f"{path}: password_file is set but username is not")

    dial_timeout = _duration(item, "dial_timeout", path, errs, 2.0)
    request_timeout = _duration(item, "request_timeout", path, errs, 5.0)

    local_member = _opt_str(item, "local_member", path, errs)
    # With broken endpoints the member may well be among them; one error is enough.
    if local_member is not None and endpoints_ok:
        local_member = _local_member(local_member, endpoints, _join(path, "local_member"), errs)

    cluster = ClusterConfig(
        name=item.get("name"),
        endpoints=endpoints,
        tls=tls,
        metrics_tls=metrics_tls,
        username=username,
        password_file=password_file,
        dial_timeout=dial_timeout,
        request_timeout=request_timeout,
        local_member=local_member,
    )
    return None if len(errs) > before else cluster


def _parse_clusters(value: Any, errs: list[str]) -> tuple[ClusterConfig, ...]:
    if value is None or value == []:
        errs.append("clusters: at least one cluster is required")
        return ()
    if not isinstance(value, list):
        errs.append(f"clusters: expected a list, got {_type_name(value)}")
        return ()
    clusters: list[ClusterConfig] = []
    first_index: dict[str, int] = {}
    for i, item in enumerate(value):
        path = f"clusters[{i}]"
        # Checked on the raw name so a duplicate is reported even if the cluster has
        # other problems too.
        name = item.get("name") if isinstance(item, Mapping) else None
        if isinstance(name, str) and name:
            if name in first_index:
                errs.append(
                    f"{path}.name: duplicate cluster name {name!r} "
                    f"(also clusters[{first_index[name]}])"
                )
            else:
                first_index[name] = i
        cluster = _parse_cluster(item, path, errs)
        if cluster is not None:
            clusters.append(cluster)
    return tuple(clusters)


# --------------------------------------------------------------------------- public API


def parse_config(
    raw: Mapping[str, Any] | None,
    specs: Mapping[str, ProbeSpecLike],
    source: str = "<config>",
) -> Config:
    """Validate a raw YAML mapping into a Config; raises ConfigError listing every problem."""
    errs: list[str] = []
    if raw is None:
        raw = {}
    if not isinstance(raw, Mapping):
        raise ConfigError([_at("", f"expected a mapping, got {_type_name(raw)}")], source)
    _check_keys(raw, _TOP_KEYS, "", errs)
    log_level, log_format = _parse_log(_as_mapping(raw.get("log"), "log", errs), errs)
    web = _parse_web(_as_mapping(raw.get("web"), "web", errs), errs)
    scrape = _parse_scrape(_as_mapping(raw.get("scrape"), "scrape", errs), errs)
    inspection = _as_mapping(raw.get("inspection"), "inspection", errs)
    key_labels, probes = _parse_inspection(inspection, specs, errs)
    clusters = _parse_clusters(raw.get("clusters"), errs)
    if errs:
        raise ConfigError(errs, source)
    return Config(
        clusters=clusters,
        web=web,
        scrape=scrape,
        probes=probes,
        key_labels=key_labels,
        log_level=log_level,
        log_format=log_format,
    )


class _StrictLoader(yaml.SafeLoader):
    """SafeLoader that records duplicate mapping keys instead of keeping the last one."""

    def __init__(self, stream: str) -> None:
        super().__init__(stream)
        self.duplicate_keys: list[str] = []

    def construct_mapping(self, node: yaml.MappingNode, deep: bool = False) -> dict[Any, Any]:
        first_line: dict[tuple[str, str], int] = {}
        for key_node, _ in node.value:
            # Keys pulled in by a "<<" merge may legitimately be overridden.
            if not isinstance(key_node, yaml.ScalarNode) or key_node.tag.endswith(":merge"):
                continue
            ident = (key_node.tag, key_node.value)
            line = key_node.start_mark.line + 1
            if ident in first_line:
                self.duplicate_keys.append(
                    f"line {line}: duplicate key {key_node.value!r} "
                    f"(first defined at line {first_line[ident]})"
                )
            else:
                first_line[ident] = line
        return super().construct_mapping(node, deep=deep)


def _yaml_error_message(e: yaml.YAMLError) -> str:
    mark = getattr(e, "problem_mark", None)
    problem = getattr(e, "problem", None)
    if mark is not None and problem:
        context = getattr(e, "context", None)
        prefix = f"{context}: " if context else ""
        return f"invalid YAML: {prefix}{problem} (line {mark.line + 1}, column {mark.column + 1})"
    return f"invalid YAML: {e}"


def load_config_file(path: str, specs: Mapping[str, ProbeSpecLike] | None = None) -> dict[str, Any]:
    """Read a YAML config file into a raw mapping (not yet validated; see parse_config).

    ``specs`` is accepted so call sites mirror parse_config; the raw stage does not need it.
    An empty file gives {} so the CLI can lay flags over it.
    """
    try:
        with open(path, encoding="utf-8") as f:
            text = f.read()
    except OSError as e:
        raise ConfigError([f"cannot read config file: {e.strerror or e}"], path) from e
    except UnicodeDecodeError as e:
        raise ConfigError([f"config file is not valid UTF-8: {e}"], path) from e
    loader = _StrictLoader(text)
    try:
        data = loader.get_single_data()
    except yaml.YAMLError as e:
        raise ConfigError([_yaml_error_message(e)], path) from e
    finally:
        loader.dispose()
    if loader.duplicate_keys:
        raise ConfigError(loader.duplicate_keys, path)
    if data is None:
        return {}
    if not isinstance(data, dict):
        raise ConfigError([_at("", f"expected a mapping, got {_type_name(data)}")], path)
    return data


def merge_raw(base: Mapping[str, Any], overrides: Mapping[str, Any]) -> dict[str, Any]:
    """Deep-merge raw config mappings: overrides win, nested mappings merge, lists are replaced.

    Neither input is modified and the result shares no mutable values with them, so the
    CLI can merge flags over a loaded file and keep the file's dict for a later reload.
    """
    merged: dict[str, Any] = {k: copy.deepcopy(v) for k, v in base.items()}
    for key, value in overrides.items():
        if isinstance(value, Mapping):
            current = merged.get(key)
            merged[key] = merge_raw(current if isinstance(current, Mapping) else {}, value)
        else:
            merged[key] = copy.deepcopy(value)
    return merged
