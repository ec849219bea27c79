"""Fetch members' /metrics over HTTP(S), within a deadline. The only HTTP client I/O.

One MetricsFetcher per cluster, shared by the scrape path and the quota probe: one connection
pool, one TLS context (built once, not per fetch), and each member's recent fetch times. aiohttp
itself (~0.2 s of imports, two default TLS contexts) loads at the first fetch (http_session.py),
so a command that fetches late or never (`inspect`, `snapshot`) does not wait for it to start. What
the scrape path counts of its fetches it keeps itself (web/families.py, MemberCounters).

The scrape path fetches through `start_flight` and `fetch_shared`: one fetch in flight per
member, which every scrape that arrives meanwhile joins (N concurrent scrapers cost one fetch,
and nothing older than that fetch is served). A scrape waits for it only as long as
`wait_deadline` says: a multiple of the member's recent fetch times, or a short probe while the
member's last fetch timed out. The fetch itself goes on up to `flight_timeout` whoever stops
waiting, so a member that is merely slow is heard from again and one that is frozen holds one
connection, not one per scrape.
"""

from __future__ import annotations

import asyncio
import contextlib
import ssl
import time
from collections import defaultdict, deque
from collections.abc import Mapping, Sequence
from dataclasses import dataclass
from typing import TYPE_CHECKING, Literal

if TYPE_CHECKING:  # aiohttp (~0.2 s, two TLS contexts) loads at the first fetch, not at start
    import aiohttp

# A member's /metrics is ~150 KiB; anything far beyond is not etcd talking.
MAX_BODY_BYTES = 32 * 1024 * 1024
# Connections per member: concurrent scrapes beyond this wait for a free one (within their budget).
CONNECTIONS_PER_MEMBER = 4

FETCH_ERROR_REASONS = ("timeout", "connect", "http", "too_large", "parse")

# member_timeout "auto": this many times the slowest of the member's recent good fetches...
AUTO_FACTOR = 5.0
# ... but never less than this (a cold member, a GC pause, a busy node), ...
AUTO_FLOOR_SECONDS = 1.0
# ... over this many recent fetches. A member not heard from yet (start-up, a busy machine)
# gets this long.
AUTO_HISTORY = 16
AUTO_COLD_SECONDS = 5.0
# How long a scrape waits for a member whose last fetch timed out, until it answers again.
PROBE_SECONDS = 0.25

MemberTimeout = float | Literal["auto"]


def wait_deadline(
    recent: Sequence[float], suspect: bool, member_timeout: MemberTimeout, budget: float
) -> float:
    """How long one scrape waits for one member's /metrics (pure)."""
    if member_timeout == "auto" and not recent:
        wait = AUTO_COLD_SECONDS
    elif member_timeout == "auto":
        wait = max(AUTO_FLOOR_SECONDS, AUTO_FACTOR * max(recent))
    else:
        wait = member_timeout
    if suspect:
        wait = min(wait, PROBE_SECONDS)
    return min(wait, budget)


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
    import aiohttp  # loaded once, at the first fetch (module docstring)

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
                # identity: over a LAN, gzip costs the member and us more CPU than it saves
                # (with _QuickAckRequest; without it, identity had a 40 ms tail on loopback)
                headers={"Accept": "text/plain;version=0.0.4", "Accept-Encoding": "identity"},
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
        flight_timeout: float = 10.0,
    ) -> None:
        self.targets = dict(targets)  # client endpoint -> metrics URL
        self.ssl = ssl
        self.server_name = server_name
        self.dial_timeout = dial_timeout
        self.flight_timeout = flight_timeout
        # endpoint -> recent fetch durations (members discovered later get theirs on first use)
        self._recent: defaultdict[str, deque[float]] = defaultdict(
            lambda: deque(maxlen=AUTO_HISTORY)
        )
        self._suspect: set[str] = set()
        self._flights: dict[str, asyncio.Task[FetchResult]] = {}
        self._session: aiohttp.ClientSession | None = None

    def _client(self) -> aiohttp.ClientSession:
        if self._session is None or self._session.closed:
            from etcd_inspector.etcd.http_session import new_session

            self._session = new_session(CONNECTIONS_PER_MEMBER)
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

    def wait_deadline(self, endpoint: str, member_timeout: MemberTimeout, budget: float) -> float:
        return wait_deadline(
            self._recent[endpoint], endpoint in self._suspect, member_timeout, budget
        )

    def start_flight(self, endpoint: str) -> bool:
        """Start a fetch of the member's /metrics unless one is in flight; True if this one
        started it (what `etcd_inspector_member_scrape_fetches_total` counts)."""
        if endpoint in self._flights:
            return False
        flight = asyncio.create_task(self._flight(endpoint), name=f"metrics {endpoint}")
        self._flights[endpoint] = flight
        return True

    async def fetch_shared(self, endpoint: str, wait: float) -> FetchResult:
        """The member's /metrics from the fetch in flight (`start_flight`), or a new one; wait
        at most `wait`.

        A scrape that stops waiting gets a "timeout" result, and the next scrape waits only
        briefly for the member; the fetch goes on for others.
        """
        self.start_flight(endpoint)
        flight = self._flights[endpoint]
        start = time.monotonic()
        try:
            async with asyncio.timeout(wait):
                return await asyncio.shield(flight)
        except TimeoutError:
            self._suspect.add(endpoint)
            return FetchResult(
                self.targets[endpoint], None, "timeout", time.monotonic() - start,
                f"no answer within {wait:.3g}s",
            )  # fmt: skip

    async def _flight(self, endpoint: str) -> FetchResult:
        try:
            result = await self.fetch(endpoint, self.flight_timeout)
            if result.error is None:
                self._recent[endpoint].append(result.duration_seconds)
                self._suspect.discard(endpoint)
            elif result.error == "timeout":
                self._suspect.add(endpoint)
            return result
        finally:
            self._flights.pop(endpoint, None)

    async def close(self) -> None:
        flights = list(self._flights.values())
        for flight in flights:
            flight.cancel()
        for flight in flights:
            with contextlib.suppress(asyncio.CancelledError, Exception):
                await flight
        if self._session is not None:
            await self._session.close()
            self._session = None
