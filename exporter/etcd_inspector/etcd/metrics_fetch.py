"""Fetch members' /metrics over HTTP(S), within a deadline. The only HTTP client I/O.

One MetricsFetcher per cluster, shared by the scrape path and the quota probe: one connection
pool, one TLS context (built once, not per fetch), and the failure counts per member endpoint.
"""

from __future__ import annotations

import asyncio
import ssl
import time
from collections import Counter
from collections.abc import Mapping
from dataclasses import dataclass

import aiohttp

# A member's /metrics is ~150 KiB; anything far beyond is not etcd talking.
MAX_BODY_BYTES = 32 * 1024 * 1024
# Connections per member: concurrent scrapes beyond this wait for a free one (within their budget).
CONNECTIONS_PER_MEMBER = 4

FETCH_ERROR_REASONS = ("timeout", "connect", "http", "too_large", "parse")


@dataclass(frozen=True)
class FetchResult:
    url: str
    text: str | None
    error: str | None  # one of FETCH_ERROR_REASONS; None on success
    duration_seconds: float
    detail: str = ""


def ssl_context(
    ca_file: str | None, cert_file: str | None, key_file: str | None, insecure: bool = False
) -> ssl.SSLContext:
    ctx = ssl.create_default_context(cafile=ca_file)
    if cert_file and key_file:
        ctx.load_cert_chain(cert_file, key_file)
    if insecure:
        ctx.check_hostname = False
        ctx.verify_mode = ssl.CERT_NONE
    return ctx


async def fetch_metrics(
    session: aiohttp.ClientSession,
    url: str,
    timeout: float,
    ssl_ctx: ssl.SSLContext | None = None,
    server_name: str | None = None,
    connect_timeout: float | None = None,
) -> FetchResult:
    start = time.monotonic()

    def done(text: str | None, error: str | None, detail: str = "") -> FetchResult:
        return FetchResult(url, text, error, time.monotonic() - start, detail)

    https = url.startswith("https")
    try:
        async with asyncio.timeout(timeout):
            async with session.get(
                url,
                ssl=(ssl_ctx or True) if https else True,
                server_hostname=server_name if https else None,
                headers={"Accept": "text/plain;version=0.0.4"},
                timeout=aiohttp.ClientTimeout(total=None, sock_connect=connect_timeout),
            ) as resp:
                if resp.status != 200:
                    return done(None, "http", f"HTTP {resp.status}")
                # read(n) returns what is buffered, not n bytes: read chunks to EOF, bounded.
                chunks: list[bytes] = []
                size = 0
                async for chunk in resp.content.iter_chunked(64 * 1024):
                    size += len(chunk)
                    if size > MAX_BODY_BYTES:
                        return done(None, "too_large", f"over {MAX_BODY_BYTES} bytes")
                    chunks.append(chunk)
                return done(b"".join(chunks).decode("utf-8", errors="replace"), None)
    except TimeoutError:
        return done(None, "timeout", f"no answer within {timeout:.3g}s")
    except (aiohttp.ClientError, OSError) as err:
        return done(None, "connect", f"{type(err).__name__}: {err}")


class MetricsFetcher:
    """Every member's /metrics for one cluster, by client endpoint."""

    def __init__(
        self,
        targets: Mapping[str, str],
        ssl: ssl.SSLContext | None = None,
        server_name: str | None = None,
        dial_timeout: float | None = None,
    ) -> None:
        self.targets = dict(targets)  # client endpoint -> metrics URL
        self.ssl = ssl
        self.server_name = server_name
        self.dial_timeout = dial_timeout
        # (endpoint, reason) -> failed fetches by the scrape path since start (record_failure)
        self.errors: Counter[tuple[str, str]] = Counter()
        self._session: aiohttp.ClientSession | None = None

    def _client(self) -> aiohttp.ClientSession:
        if self._session is None or self._session.closed:
            self._session = aiohttp.ClientSession(
                connector=aiohttp.TCPConnector(limit_per_host=CONNECTIONS_PER_MEMBER),
                raise_for_status=False,
            )
        return self._session

    async def fetch(self, endpoint: str, timeout: float) -> FetchResult:
        result = await fetch_metrics(
            self._client(),
            self.targets[endpoint],
            timeout,
            self.ssl,
            self.server_name,
            connect_timeout=self.dial_timeout,
        )
        return result

    async def fetch_all(self, timeout: float) -> dict[str, FetchResult]:
        endpoints = list(self.targets)
        results = await asyncio.gather(*(self.fetch(e, timeout) for e in endpoints))
        return dict(zip(endpoints, results, strict=True))

    def record_failure(self, endpoint: str, reason: str) -> None:
        self.errors[(endpoint, reason)] += 1

    async def close(self) -> None:
        if self._session is not None:
            await self._session.close()
            self._session = None
