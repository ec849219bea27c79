"""How `drill` logs in to Prometheus or Alertmanager: Prometheus' HTTP client configuration file.

The same YAML `promtool --http.config.file` and `amtool --http.config.file` read
(prometheus/common config.HTTPClientConfig), the part of it an API client needs:

    basic_auth: {username: U, password: P | password_file: F}
    authorization: {type: Bearer, credentials: T | credentials_file: F}
    bearer_token: T | bearer_token_file: F         # the older spelling of authorization
    tls_config: {ca_file: F, cert_file: F, key_file: F, insecure_skip_verify: B}

Unknown keys are an error (a typo would otherwise silently send no credentials). Relative file
names are relative to the configuration file, as in Prometheus. Secrets are read once here and
only ever go into the request header: `repr` and error messages name files, never contents.
"""

from __future__ import annotations

import base64
import ssl
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import yaml

__all__ = ["HttpClientConfig", "HttpConfigError", "load_http_config"]

_TOP_KEYS = {"basic_auth", "authorization", "bearer_token", "bearer_token_file", "tls_config"}
_BASIC_KEYS = {"username", "password", "password_file"}
_AUTHORIZATION_KEYS = {"type", "credentials", "credentials_file"}
_TLS_KEYS = {"ca_file", "cert_file", "key_file", "insecure_skip_verify"}


class HttpConfigError(Exception):
    """A --http.config.file the drill cannot use; the message is one line."""


@dataclass(frozen=True)
class HttpClientConfig:
    """Headers and TLS settings for every request; the Authorization value is never shown."""

    authorization: str | None = field(default=None, repr=False)
    ca_file: Path | None = None
    cert_file: Path | None = None
    key_file: Path | None = None
    insecure_skip_verify: bool = False

    def headers(self) -> dict[str, str]:
        return {"Authorization": self.authorization} if self.authorization else {}

    def ssl_context(self) -> ssl.SSLContext:
        context = ssl.create_default_context(cafile=str(self.ca_file) if self.ca_file else None)
        if self.cert_file:
            context.load_cert_chain(str(self.cert_file), str(self.key_file or self.cert_file))
        if self.insecure_skip_verify:
            context.check_hostname = False
            context.verify_mode = ssl.CERT_NONE
        return context


def _mapping(value: Any, where: str, allowed: set[str], origin: str) -> dict[str, Any]:
    if value is None:
        return {}
    if not isinstance(value, dict):
        raise HttpConfigError(f"{origin}: {where} must be a mapping")
    unknown = sorted(str(k) for k in value if k not in allowed)
    if unknown:
        raise HttpConfigError(
            f"{origin}: unknown key{'s' if len(unknown) > 1 else ''} in {where}: "
            f"{', '.join(unknown)} (known: {', '.join(sorted(allowed))})"
        )
    return value


def _string(section: dict[str, Any], key: str, where: str, origin: str) -> str | None:
    value = section.get(key)
    if value is None:
        return None
    if not isinstance(value, str) or not value:
        raise HttpConfigError(f"{origin}: {where}.{key} must be a non-empty string")
    return value


def _secret(
    section: dict[str, Any], inline: str, file_key: str, where: str, base: Path, origin: str
) -> str | None:
    value = _string(section, inline, where, origin)
    path = _string(section, file_key, where, origin)
    if value is not None and path is not None:
        raise HttpConfigError(f"{origin}: {where}: give {inline} or {file_key}, not both")
    if path is None:
        return value
    try:
        return (base / path).read_text(encoding="utf-8").strip()
    except OSError as exc:
        raise HttpConfigError(
            f"{origin}: {where}.{file_key}: cannot read {base / path}: {exc.strerror}"
        ) from exc


def _file(section: dict[str, Any], key: str, base: Path, origin: str) -> Path | None:
    name = _string(section, key, "tls_config", origin)
    if name is None:
        return None
    path = base / name
    if not path.is_file():
        raise HttpConfigError(f"{origin}: tls_config.{key}: {path} is not a readable file")
    return path


def load_http_config(path: Path) -> HttpClientConfig:
    origin = str(path)
    try:
        data = yaml.safe_load(path.read_text(encoding="utf-8"))
    except OSError as exc:
        raise HttpConfigError(f"{origin}: cannot read: {exc.strerror}") from exc
    except yaml.YAMLError as exc:
        raise HttpConfigError(f"{origin}: not valid YAML: {str(exc).splitlines()[0]}") from exc
    top = _mapping(data, "the file", _TOP_KEYS, origin)
    base = path.parent
    basic = _mapping(top.get("basic_auth"), "basic_auth", _BASIC_KEYS, origin)
    auth = _mapping(top.get("authorization"), "authorization", _AUTHORIZATION_KEYS, origin)
    tls = _mapping(top.get("tls_config"), "tls_config", _TLS_KEYS, origin)
    bearer = _secret(top, "bearer_token", "bearer_token_file", "the file", base, origin)
    methods = [name for name, used in (("basic_auth", basic), ("authorization", auth),
                                       ("bearer_token", bearer)) if used]  # fmt: skip
    if len(methods) > 1:
        raise HttpConfigError(f"{origin}: give one of {', '.join(methods)}, not several")
    authorization = None
    if basic:
        username = _string(basic, "username", "basic_auth", origin)
        if username is None:
            raise HttpConfigError(f"{origin}: basic_auth needs a username")
        password = _secret(basic, "password", "password_file", "basic_auth", base, origin) or ""
        token = base64.b64encode(f"{username}:{password}".encode()).decode("ascii")
        authorization = f"Basic {token}"
    elif auth:
        scheme = _string(auth, "type", "authorization", origin) or "Bearer"
        credentials = _secret(
            auth, "credentials", "credentials_file", "authorization", base, origin
        )
        if credentials is None:
            raise HttpConfigError(f"{origin}: authorization needs credentials or credentials_file")
        authorization = f"{scheme} {credentials}"
    elif bearer is not None:
        authorization = f"Bearer {bearer}"
    skip = tls.get("insecure_skip_verify", False)
    if not isinstance(skip, bool):
        raise HttpConfigError(f"{origin}: tls_config.insecure_skip_verify must be true or false")
    cert, key = _file(tls, "cert_file", base, origin), _file(tls, "key_file", base, origin)
    if (cert is None) != (key is None):
        raise HttpConfigError(f"{origin}: tls_config needs both cert_file and key_file")
    return HttpClientConfig(
        authorization=authorization,
        ca_file=_file(tls, "ca_file", base, origin),
        cert_file=cert,
        key_file=key,
        insecure_skip_verify=skip,
    )
