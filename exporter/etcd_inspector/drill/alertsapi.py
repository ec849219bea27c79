"""The alerts a Prometheus or an Alertmanager says are firing now: one GET, with a timeout.

Prometheus: `GET <url>/api/v1/alerts` lists pending and firing alerts; only `firing` counts.
Alertmanager: `GET <url>/api/v2/alerts` lists the alerts it holds; every one it returns is
firing (`active`, `unprocessed`, or `suppressed` by a silence or an inhibition, which still
fired); resolved alerts are not listed. Failures carry a kind (no answer, or an answer that is
not an alerts API), never a parsed message.
"""

from __future__ import annotations

import json
import socket
import ssl
import urllib.error
import urllib.parse
import urllib.request
from dataclasses import dataclass
from enum import StrEnum
from typing import Any

from etcd_inspector.drill.httpconfig import HttpClientConfig

__all__ = ["AlertsApi", "ApiError", "ApiErrorKind", "FiringAlert", "check_base_url"]


class ApiErrorKind(StrEnum):
    UNREACHABLE = "unreachable"  # no answer: refused, timeout, DNS, TLS, HTTP 5xx
    NOT_AN_ALERTS_API = "not_an_alerts_api"  # HTTP 404, not JSON, not the expected shape
    REFUSED = "refused"  # HTTP 401 or 403: the credentials


class ApiError(Exception):
    def __init__(self, kind: ApiErrorKind, message: str) -> None:
        super().__init__(message)
        self.kind = kind


@dataclass(frozen=True)
class FiringAlert:
    """One firing alert: its name and its labels (alertname left out)."""

    name: str
    labels: tuple[tuple[str, str], ...]

    @classmethod
    def from_labels(cls, labels: dict[str, Any]) -> FiringAlert:
        name = str(labels.get("alertname", ""))
        rest = tuple(sorted((str(k), str(v)) for k, v in labels.items() if k != "alertname"))
        return cls(name, rest)


def check_base_url(url: str, flag: str) -> str:
    """An http(s) URL without credentials (they belong in --http.config.file); returns it
    without a trailing slash. Raises ValueError with a one-line reason."""
    parts = urllib.parse.urlsplit(url)
    if parts.scheme not in ("http", "https") or not parts.hostname:
        raise ValueError(f"{flag} must be an http:// or https:// URL, got {url!r}")
    if parts.username is not None or parts.password is not None:
        raise ValueError(
            f"{flag} must not carry credentials; put them in --http.config.file (basic_auth)"
        )
    if parts.query or parts.fragment:
        raise ValueError(f"{flag} must be the server's base URL, without ?query or #fragment")
    return url.rstrip("/")


class AlertsApi:
    """GET the firing alerts of a Prometheus (`kind` prometheus) or an Alertmanager."""

    def __init__(
        self, kind: str, base_url: str, http: HttpClientConfig, timeout_seconds: float
    ) -> None:
        if kind not in ("prometheus", "alertmanager"):
            raise ValueError(f"unknown alerts API {kind!r}")
        self.kind = kind
        self.base_url = base_url
        self.path = "/api/v1/alerts" if kind == "prometheus" else "/api/v2/alerts"
        self.url = base_url + self.path
        self.http = http
        self.timeout_seconds = timeout_seconds
        self._context = http.ssl_context() if base_url.startswith("https:") else None

    @property
    def name(self) -> str:
        return "Prometheus" if self.kind == "prometheus" else "Alertmanager"

    def firing(self) -> list[FiringAlert]:
        body = self._get()
        if self.kind == "prometheus":
            return self._prometheus(body)
        return self._alertmanager(body)

    def _get(self) -> Any:
        request = urllib.request.Request(
            self.url, headers={"Accept": "application/json", **self.http.headers()}
        )
        where = f"{self.name} at {self.base_url}"
        try:
            with urllib.request.urlopen(
                request, timeout=self.timeout_seconds, context=self._context
            ) as response:
                raw = response.read()
        except urllib.error.HTTPError as err:
            if err.code in (401, 403):
                raise ApiError(
                    ApiErrorKind.REFUSED,
                    f"{where} refused the request (HTTP {err.code}): check the credentials "
                    "of --http.config.file",
                ) from None
            if err.code >= 500:
                raise ApiError(
                    ApiErrorKind.UNREACHABLE, f"{where} answered HTTP {err.code} on {self.path}"
                ) from None
            raise ApiError(
                ApiErrorKind.NOT_AN_ALERTS_API,
                f"{where}: no alerts API at {self.path} (HTTP {err.code}); "
                f"is it the {self.name} base URL?",
            ) from None
        except (urllib.error.URLError, OSError, ssl.SSLError) as err:
            reason = err.reason if isinstance(err, urllib.error.URLError) else err
            if isinstance(reason, socket.timeout | TimeoutError):
                text = f"no answer within {self.timeout_seconds:g}s"
            elif isinstance(reason, OSError) and reason.strerror:
                text = reason.strerror
            else:
                text = str(reason) or type(reason).__name__
            raise ApiError(ApiErrorKind.UNREACHABLE, f"cannot reach {where}: {text}") from None
        try:
            return json.loads(raw)
        except ValueError:
            raise ApiError(
                ApiErrorKind.NOT_AN_ALERTS_API,
                f"{where}: {self.path} did not answer JSON; is it the {self.name} base URL?",
            ) from None

    def _shape_error(self) -> ApiError:
        return ApiError(
            ApiErrorKind.NOT_AN_ALERTS_API,
            f"{self.name} at {self.base_url}: {self.path} did not answer a list of alerts; "
            f"is it the {self.name} base URL?",
        )

    def _prometheus(self, body: Any) -> list[FiringAlert]:
        if not isinstance(body, dict) or body.get("status") != "success":
            raise self._shape_error()
        data = body.get("data")
        alerts = data.get("alerts") if isinstance(data, dict) else None
        if not isinstance(alerts, list):
            raise self._shape_error()
        return [
            FiringAlert.from_labels(alert.get("labels") or {})
            for alert in alerts
            if isinstance(alert, dict) and alert.get("state") == "firing"
        ]

    def _alertmanager(self, body: Any) -> list[FiringAlert]:
        if not isinstance(body, list):
            raise self._shape_error()
        return [
            FiringAlert.from_labels(alert.get("labels") or {})
            for alert in body
            if isinstance(alert, dict)
        ]
