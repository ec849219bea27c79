"""Fetch one member's /metrics over HTTP(S), within a deadline. The only HTTP client I/O."""

from __future__ import annotations

import asyncio
import ssl
import time
from dataclasses import dataclass

import aiohttp

# A member's /metrics is ~150 KiB; anything far beyond is not etcd talking.
MAX_BODY_BYTES = 32 * 1024 * 1024


@dataclass(frozen=True)
class FetchResult:
    url: str
    text: str | None
    error: str | None  # timeout | connect | http | too_large ; None on success
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
) -> FetchResult:
    start = time.monotonic()

    def done(text: str | None, error: str | None, detail: str = "") -> FetchResult:
        return FetchResult(url, text, error, time.monotonic() - start, detail)

    try:
        async with asyncio.timeout(timeout):
            async with session.get(
                url,
                ssl=ssl_ctx if url.startswith("https") else None,
                server_hostname=server_name if url.startswith("https") else None,
                headers={"Accept": "text/plain;version=0.0.4"},
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
