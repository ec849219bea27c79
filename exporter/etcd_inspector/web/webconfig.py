"""The ``--web.config.file``: exporter-toolkit's web configuration (TLS, basic auth, headers).

Same format as every Prometheus exporter's
(https://github.com/prometheus/exporter-toolkit/blob/master/docs/web-configuration.md), with
the strictness of this package's own configuration: unknown keys are rejected by name, every
problem is reported at once, and a key of exporter-toolkit that this exporter does not implement
is rejected with "not supported" instead of being ignored (a silently ignored
``client_allowed_sans`` would be a hole). Relative file names are relative to the web config
file's directory, as in exporter-toolkit.

The file is read once at start; the certificate, key and client CA files it names are re-read
when they change (``web.tls.ServerTLS``).
"""

from __future__ import annotations

import os
import re
from collections.abc import Mapping
from typing import Annotated, Any, Literal

from pydantic import AfterValidator, Field, PlainValidator, ValidationError
from pydantic_core import InitErrorDetails

from etcd_inspector.config.durations import FROM_FILE
from etcd_inspector.config.errors import ConfigError, messages, problem, problems, type_name
from etcd_inspector.config.fields import ReadableFile, Section
from etcd_inspector.config.load import load_config_file
from etcd_inspector.web.tls import TLSFileError, build_context

TLSVersion = Literal["TLS12", "TLS13"]
ClientAuthType = Literal[
    "NoClientCert",
    "RequestClientCert",
    "RequireAnyClientCert",
    "VerifyClientCertIfGiven",
    "RequireAndVerifyClientCert",
]
VERIFYING_CLIENT_AUTH = ("VerifyClientCertIfGiven", "RequireAndVerifyClientCert")
# exporter-toolkit's list: other headers cannot be set from the file.
SETTABLE_HEADERS = (
    "Content-Security-Policy",
    "X-Frame-Options",
    "X-Content-Type-Options",
    "X-XSS-Protection",
    "Strict-Transport-Security",
)
_HEADER_VALUES = {"X-Frame-Options": ("deny", "sameorigin"), "X-Content-Type-Options": ("nosniff",)}

# exporter-toolkit keys this exporter does not implement, and what to do instead.
_NOT_SUPPORTED = {
    "cert": "use cert_file",
    "key": "use key_file",
    "client_ca": "use client_ca_file",
    "client_allowed_sans": "use a client CA that only signs allowed clients",
    "cipher_suites": "Python's ssl module uses OpenSSL's defaults for TLS 1.2",
    "curve_preferences": "Python's ssl module uses OpenSSL's defaults",
    "rate_limit": "use --web.max-connections",
}
_UNVERIFIED_CLIENT_AUTH = (
    "not supported: Python's ssl module cannot accept a client certificate without verifying "
    "it; use VerifyClientCertIfGiven or RequireAndVerifyClientCert with client_ca_file"
)
_UNVERIFIED = ("RequestClientCert", "RequireAnyClientCert")
# $2a$, $2b$, $2y$ (htpasswd), cost, 22 characters of salt and 31 of hash.
_BCRYPT_HASH = re.compile(r"\$2[aby]\$\d\d\$[./A-Za-z0-9]{53}", re.ASCII)


class _WebSection(Section):
    @classmethod
    def unknown(cls, key: object, allowed: list[str]) -> str:
        if isinstance(key, str) and key in _NOT_SUPPORTED:
            return f"{key!r} is not supported ({_NOT_SUPPORTED[key]})"
        return super().unknown(key, allowed)


def _verifiable(value: str) -> str:
    if value in _UNVERIFIED:
        raise ValueError(f"{value} is {_UNVERIFIED_CLIENT_AUTH}")
    return value


def _tls_checks(data: Mapping[str, Any]) -> list[InitErrorDetails]:
    errors = []
    auth = data.get("client_auth_type", "NoClientCert")
    ca = data.get("client_ca_file")
    if auth in VERIFYING_CLIENT_AUTH and not ca:
        errors.append(problem((), f"client_auth_type {auth} needs client_ca_file"))
    if ca and auth == "NoClientCert":
        errors.append(
            problem(
                (),
                "client_ca_file is set but client_auth_type is NoClientCert, so no client "
                "certificate would be checked (set RequireAndVerifyClientCert)",
            )
        )
    low, high = data.get("min_version", "TLS12"), data.get("max_version", "TLS13")
    if {low, high} <= {"TLS12", "TLS13"} and low > high:
        errors.append(problem((), f"min_version {low} is above max_version {high}"))
    return errors


class TLSServerConfig(_WebSection):
    cert_file: ReadableFile
    key_file: ReadableFile
    client_auth_type: Annotated[ClientAuthType, AfterValidator(_verifiable)] = "NoClientCert"
    client_ca_file: ReadableFile | None = None
    min_version: TLSVersion = "TLS12"
    max_version: TLSVersion = "TLS13"
    prefer_server_cipher_suites: bool = True

    @classmethod
    def checks(cls, data: Mapping[str, Any]) -> list[InitErrorDetails]:
        return _tls_checks(data)


def _headers(value: object) -> dict[str, str]:
    if not isinstance(value, Mapping):
        raise ValueError(f"expected a mapping, got {type_name(value)}")
    errors = []
    for name, text in value.items():
        if name not in SETTABLE_HEADERS:
            allowed = ", ".join(SETTABLE_HEADERS)
            errors.append(problem((), f"header {name!r} cannot be set (allowed: {allowed})"))
        elif not isinstance(text, str):
            errors.append(problem((name,), f"expected a string, got {type_name(text)}"))
        elif name in _HEADER_VALUES and text.lower() not in _HEADER_VALUES[name]:
            allowed = " or ".join(_HEADER_VALUES[name])
            errors.append(problem((name,), f"{text!r} is not {allowed}"))
        elif "\r" in text or "\n" in text:
            errors.append(problem((name,), "must not contain a line break"))
    if errors:
        raise problems("headers", errors)
    return {name: text for name, text in value.items() if text}  # blank = unset, as upstream


def _http2(value: object) -> bool:
    if not isinstance(value, bool):
        raise ValueError(f"expected a boolean, got {type_name(value)}")
    if value:
        raise ValueError("HTTP/2 is not supported (the exporter speaks HTTP/1.1); set false")
    return value


class HTTPServerConfig(_WebSection):
    headers: Annotated[dict[str, str], PlainValidator(_headers)] = Field(default_factory=dict)
    http2: Annotated[bool, PlainValidator(_http2)] = False


def _users(value: object) -> dict[str, str]:
    # Hashes are secrets: no message below repeats one.
    if not isinstance(value, Mapping):
        raise ValueError(f"expected a mapping, got {type_name(value)}")
    errors = []
    for user, hashed in value.items():
        if not isinstance(user, str) or not user:
            errors.append(problem((), f"user name {user!r}: expected a non-empty string"))
        elif ":" in user:
            errors.append(problem((), f"user name {user!r} must not contain ':' (basic auth)"))
        elif not isinstance(hashed, str):
            errors.append(problem((user,), f"expected a bcrypt hash, got {type_name(hashed)}"))
        elif not _BCRYPT_HASH.fullmatch(hashed):
            errors.append(
                problem(
                    (user,),
                    "not a bcrypt hash ($2a$, $2b$ or $2y$, 60 characters; "
                    "make one with htpasswd -nBC 10 \"\" | tr -d ':\\n')",
                )
            )
    if errors:
        raise problems("basic_auth_users", errors)
    return dict(value)


class WebConfigFile(_WebSection):
    """The whole file. Empty: plain HTTP, no authentication (as exporter-toolkit)."""

    tls_server_config: TLSServerConfig | None = None
    http_server_config: HTTPServerConfig = Field(default_factory=HTTPServerConfig)
    basic_auth_users: Annotated[dict[str, str], PlainValidator(_users)] = Field(
        default_factory=dict
    )

    def describe(self) -> str:
        """What it turns on, for the log and --config.check (no secrets)."""
        parts = ["TLS" if self.tls_server_config else "plain HTTP"]
        if self.tls_server_config and self.tls_server_config.client_auth_type != "NoClientCert":
            parts.append(f"client certificates: {self.tls_server_config.client_auth_type}")
        users = len(self.basic_auth_users)
        parts.append(f"basic auth: {users} user(s)" if users else "no basic auth")
        return ", ".join(parts)


class WebConfigError(ConfigError):
    """Problems in the web config file: one line per problem, each naming the file."""

    def lines(self) -> list[str]:
        return [f"{self.source}: {error}" for error in self.errors]

    def _render(self) -> str:
        return "\n".join(self.lines())


_FILE_KEYS = ("cert_file", "key_file", "client_ca_file")


def _relative_to(directory: str, raw: dict[str, Any]) -> dict[str, Any]:
    tls = raw.get("tls_server_config")
    if not isinstance(tls, Mapping):
        return raw
    tls = dict(tls)
    for key in _FILE_KEYS:
        value = tls.get(key)
        if isinstance(value, str) and value.strip() and not os.path.isabs(value):
            tls[key] = os.path.join(directory, value)
    return {**raw, "tls_server_config": tls}


def parse_web_config(raw: Mapping[str, Any], source: str = "<web config>") -> WebConfigFile:
    """Validate the file's mapping; raises WebConfigError listing every problem."""
    try:
        return WebConfigFile.model_validate(raw, context={FROM_FILE: True})
    except ValidationError as e:
        raise WebConfigError(messages(e), source) from None


def load_web_config(path: str) -> WebConfigFile:
    """Read, validate and load the TLS files of a web config file (WebConfigError if not)."""
    try:
        raw = load_config_file(path)
    except ConfigError as e:
        raise WebConfigError(e.errors, path) from None
    parsed = parse_web_config(_relative_to(os.path.dirname(path), raw), source=path)
    if parsed.tls_server_config is not None:
        try:
            build_context(parsed.tls_server_config)
        except TLSFileError as e:
            raise WebConfigError([f"tls_server_config{e.where}: {e}"], path) from None
    return parsed
