"""The exporter's HTTP(S) listener: aiohttp's request handling behind a bounded accept loop.

aiohttp's TCPSite accepts every connection and keeps it as long as the client likes (3,000 idle
connections held 3,019 descriptors). This listener accepts connections itself so that it can:

* cap the open connections (``max_connections``), connections still in their TLS handshake
  included; at the cap, make room rather than refuse: the oldest connection that has not yet
  sent its first request's headers (an idle or half-sent one) is closed, taken from the client
  address holding the most connections, so a flood cannot keep a scraper out. A connection that
  has sent a complete request is never closed to make room (a kept-alive Prometheus connection,
  mid-scrape or between scrapes); only when every open connection is one is the new one
  closed at once;
* cap the connections of one client address (``max_connections_per_client``): the client's own
  oldest connection without a complete request makes room, so one address cannot take every
  slot;
* close a connection that has not completed its TLS handshake and sent its first request's
  headers within ``read_header_timeout`` of being accepted (slow-loris, silent sockets);
* close a kept-alive connection whose next request's headers have not arrived within
  ``idle_timeout`` of the previous response (aiohttp's ``keepalive_timeout``, which also stops a
  half-sent second request);
* take the TLS context from ``ServerTLS`` per connection, so a rotated certificate is used
  without a restart.

Everything after the accept is aiohttp's own RequestHandler (``runner.server()``), wrapped only
to watch for the end of the first request's headers.
"""

from __future__ import annotations

import asyncio
import contextlib
import errno
import logging
import signal
import socket
import ssl
import time
from collections.abc import Callable, Iterable
from dataclasses import dataclass
from typing import Any

from aiohttp import web
from aiohttp.web_protocol import RequestHandler
from prometheus_client.core import CounterMetricFamily, GaugeMetricFamily
from prometheus_client.metrics_core import Metric
from prometheus_client.registry import Collector

from etcd_inspector.config import WebConfig
from etcd_inspector.web.tls import ServerTLS
from etcd_inspector.web.webconfig import WebConfigFile

log = logging.getLogger(__name__)

# The kernel's queue of connections not accepted yet (capped by net.core.somaxconn): deep
# enough that a burst of connections does not drop a scraper's SYN while the loop catches up.
BACKLOG = 1024
# Connections accepted per wake-up of the accept loop.
ACCEPT_BATCH = 64
SHUTDOWN_TIMEOUT_SECONDS = 5.0
# Warnings about refused connections: at most one per this many seconds.
WARN_EVERY_SECONDS = 10.0


@dataclass(frozen=True)
class ServerLimits:
    max_connections: int
    read_header_timeout: float
    idle_timeout: float
    max_connections_per_client: int = 32

    @classmethod
    def from_config(cls, web_config: WebConfig) -> ServerLimits:
        return cls(
            web_config.max_connections,
            web_config.read_header_timeout,
            web_config.idle_timeout,
            web_config.max_connections_per_client,
        )


class ConnectionStats(Collector):
    """The listener's counters, exposed with the exporter's own metrics."""

    REASONS = ("limit", "client_limit", "evicted", "header_timeout", "tls_handshake")

    def __init__(self) -> None:
        self.count_open: Callable[[], int] = lambda: 0
        self.closed: dict[str, int] = dict.fromkeys(self.REASONS, 0)

    def collect(self) -> Iterable[Metric]:
        yield GaugeMetricFamily(
            "etcd_inspector_web_connections",
            "Open connections to the exporter's HTTP endpoint, TLS handshakes included.",
            value=self.count_open(),
        )
        counter = CounterMetricFamily(
            "etcd_inspector_web_connections_closed",
            "Connections the exporter closed early: new ones refused at --web.max-connections "
            "(limit) or --web.max-connections-per-client (client_limit) because every open one "
            "had sent a request, ones without a complete request closed to make room for a new "
            "one (evicted), headers not received within --web.read-header-timeout "
            "(header_timeout), failed or timed out TLS handshake (tls_handshake).",
            labels=["reason"],
        )
        for reason, count in self.closed.items():
            counter.add_metric([reason], count)
        yield counter


def _end_of_headers(data: bytes) -> bool:
    return b"\n\r\n" in data or b"\n\n" in data


class _FirstRequestDeadline(asyncio.Protocol):
    """aiohttp's RequestHandler, closed if the first request's headers are not in by the
    deadline (counted from the accept, so a TLS handshake uses up the same time)."""

    def __init__(self, handler: RequestHandler, deadline: float, stats: ConnectionStats) -> None:
        self._handler = handler
        self._deadline = deadline
        self._stats = stats
        self._timer: asyncio.TimerHandle | None = None
        self._tail = b""
        self.transport: asyncio.BaseTransport | None = None
        # The first request's headers are in: from now on a real HTTP client, never evicted.
        self.request_seen = False

    def connection_made(self, transport: asyncio.BaseTransport) -> None:
        self.transport = transport
        self._handler.connection_made(transport)
        self._timer = asyncio.get_running_loop().call_at(self._deadline, self._expired)

    def data_received(self, data: bytes) -> None:
        if self._timer is not None:
            # The last two bytes are kept: the blank line may straddle two reads.
            if _end_of_headers(self._tail + data):
                self._timer.cancel()
                self._timer = None
                self.request_seen = True
            self._tail = (self._tail + data)[-2:]
        self._handler.data_received(data)

    def eof_received(self) -> None:
        self._handler.eof_received()

    def connection_lost(self, exc: Exception | None) -> None:
        if self._timer is not None:
            self._timer.cancel()
            self._timer = None
        self._handler.connection_lost(exc)

    def pause_writing(self) -> None:
        self._handler.pause_writing()

    def resume_writing(self) -> None:
        self._handler.resume_writing()

    def _expired(self) -> None:
        self._timer = None
        self._stats.closed["header_timeout"] += 1
        if self.transport is not None:
            self.transport.close()


@dataclass(eq=False)
class _Connection:
    """One accepted connection, from the accept until its socket is closed."""

    sock: socket.socket
    client: str
    protocol: _FirstRequestDeadline
    task: asyncio.Task[None] | None = None

    @property
    def closed(self) -> bool:
        return self.sock.fileno() == -1

    @property
    def evictable(self) -> bool:
        return not self.protocol.request_seen

    def evict(self) -> None:
        transport = self.protocol.transport
        if isinstance(transport, asyncio.WriteTransport):
            transport.abort()  # nothing of a request to answer: free the descriptor now
        elif self.task is not None:
            self.task.cancel()  # still in its TLS handshake (or not started): see _connected


def bind(host: str | None, port: int) -> list[socket.socket]:
    """Listening sockets for host (None: every interface, IPv4 and IPv6) and port."""
    infos = socket.getaddrinfo(
        host, port, family=socket.AF_UNSPEC, type=socket.SOCK_STREAM, flags=socket.AI_PASSIVE
    )
    sockets: list[socket.socket] = []
    try:
        for family, kind, proto, _name, address in dict.fromkeys(infos):
            sock = socket.socket(family, kind, proto)
            sockets.append(sock)
            sock.setsockopt(socket.SOL_SOCKET, socket.SO_REUSEADDR, 1)
            if family == socket.AF_INET6:
                sock.setsockopt(socket.IPPROTO_IPV6, socket.IPV6_V6ONLY, 1)
            sock.bind(address)
            sock.listen(BACKLOG)
            sock.setblocking(False)
    except OSError:
        for sock in sockets:
            sock.close()
        raise
    return sockets


class Listener:
    """Accepts connections for ``runner`` (set up already) within ``limits``."""

    def __init__(
        self,
        runner: web.BaseRunner,
        host: str | None,
        port: int,
        limits: ServerLimits,
        tls: ServerTLS | None = None,
        stats: ConnectionStats | None = None,
    ) -> None:
        self._runner = runner
        self._host, self._port = host, port
        self.limits = limits
        self._tls = tls
        self.stats = stats or ConnectionStats()
        self.stats.count_open = lambda: self.open_connections
        self._listening: list[socket.socket] = []
        self._accepting: list[asyncio.Task[None]] = []
        self._handshakes: set[asyncio.Task[None]] = set()
        # Every accepted connection until its socket is closed (the transports close them),
        # oldest first.
        self._open: dict[socket.socket, _Connection] = {}
        self._refused_since_warning = 0
        self._last_warning = 0.0

    @property
    def ports(self) -> list[int]:
        return [int(s.getsockname()[1]) for s in self._listening]

    @property
    def open_connections(self) -> int:
        for sock in [sock for sock, conn in self._open.items() if conn.closed]:
            del self._open[sock]
        return len(self._open)

    async def start(self) -> None:
        self._listening = bind(self._host, self._port)
        for sock in self._listening:
            self._accepting.append(asyncio.create_task(self._accept_loop(sock)))

    async def stop(self) -> None:
        """Stop accepting and abandon TLS handshakes; the runner's cleanup closes the rest."""
        for task in (*self._accepting, *self._handshakes):
            task.cancel()
        for task in (*self._accepting, *self._handshakes):
            with contextlib.suppress(asyncio.CancelledError):
                await task
        for sock in self._listening:
            sock.close()
        self._accepting.clear()

    async def _accept_loop(self, listening: socket.socket) -> None:
        loop = asyncio.get_running_loop()
        while True:
            try:
                sock, address = await loop.sock_accept(listening)
                self._admit(sock, str(address[0]))
                # Then whatever else is queued, without a trip through the selector each: a
                # flood must not overflow the backlog, where a scraper's SYN would be dropped
                # (and retried only after a second).
                for _ in range(ACCEPT_BATCH):
                    sock, address = listening.accept()
                    sock.setblocking(False)
                    self._admit(sock, str(address[0]))
            except BlockingIOError:
                continue
            except OSError as e:
                # Out of descriptors (or a connection reset before accept): back off briefly
                # instead of spinning; open connections time out and free descriptors.
                if e.errno in (errno.EMFILE, errno.ENFILE, errno.ENOBUFS, errno.ENOMEM):
                    log.warning("cannot accept connections", extra={"err": e.strerror or str(e)})
                    await asyncio.sleep(0.1)
                continue
            await asyncio.sleep(0)  # a full batch: let the connections' handshakes run

    def _make_room(self, client: str) -> str | None:
        """Close a connection so that one from ``client`` fits; the refusal reason if none
        may go."""
        self.open_connections  # noqa: B018 -- prunes closed sockets
        held: dict[str, int] = {}
        for conn in self._open.values():
            held[conn.client] = held.get(conn.client, 0) + 1
        if held.get(client, 0) >= self.limits.max_connections_per_client:
            victims = [c for c in self._open.values() if c.client == client and c.evictable]
            reason = "client_limit"
        elif len(self._open) >= self.limits.max_connections:
            # max() keeps the first of equals: the oldest of the busiest client's.
            candidates = [c for c in self._open.values() if c.evictable]
            victims = [max(candidates, key=lambda c: held[c.client])] if candidates else []
            reason = "limit"
        else:
            return None
        if not victims:
            return reason
        victim = victims[0]
        del self._open[victim.sock]
        victim.evict()
        self.stats.closed["evicted"] += 1
        return None

    def _admit(self, sock: socket.socket, client: str) -> None:
        refused = self._make_room(client)
        if refused is not None:
            sock.close()
            self.stats.closed[refused] += 1
            self._warn_refused(refused)
            return
        loop = asyncio.get_running_loop()
        deadline = loop.time() + self.limits.read_header_timeout
        server = self._runner.server
        assert server is not None, "runner.setup() first"
        protocol = _FirstRequestDeadline(server(), deadline, self.stats)
        conn = _Connection(sock, client, protocol)
        self._open[sock] = conn
        conn.task = task = loop.create_task(self._connect(sock, protocol))
        self._handshakes.add(task)
        task.add_done_callback(self._handshakes.discard)
        task.add_done_callback(lambda t: self._connected(t, conn))

    @staticmethod
    def _connected(task: asyncio.Task[None], conn: _Connection) -> None:
        # Cancelled before a transport owned the socket (evicted before its first step, or
        # mid-handshake, where asyncio has closed it already): close it here.
        if task.cancelled() and conn.protocol.transport is None:
            conn.sock.close()

    async def _connect(self, sock: socket.socket, protocol: _FirstRequestDeadline) -> None:
        loop = asyncio.get_running_loop()
        context = self._tls.context() if self._tls else None
        try:
            await loop.connect_accepted_socket(
                lambda: protocol,
                sock,
                ssl=context,
                ssl_handshake_timeout=self.limits.read_header_timeout if context else None,
            )
        except (OSError, ssl.SSLError, TimeoutError) as e:
            # asyncio closed the socket. Plain HTTP to the TLS port ends up here too.
            self.stats.closed["tls_handshake"] += 1
            log.debug("TLS handshake failed", extra={"err": str(e) or type(e).__name__})

    def _warn_refused(self, reason: str) -> None:
        self._refused_since_warning += 1
        now = time.monotonic()
        if now - self._last_warning >= WARN_EVERY_SECONDS:
            log.warning(
                "connection limit reached and every open connection has sent a request, "
                "refusing new connections",
                extra={"reason": reason, "max_connections": self.limits.max_connections,
                       "max_connections_per_client": self.limits.max_connections_per_client,
                       "refused": self._refused_since_warning},
            )  # fmt: skip
            self._last_warning = now
            self._refused_since_warning = 0


def make_runner(app: web.Application, limits: ServerLimits, **kwargs: Any) -> web.AppRunner:
    """An AppRunner whose kept-alive connections close after ``idle_timeout``."""
    return web.AppRunner(
        app,
        access_log=None,
        keepalive_timeout=limits.idle_timeout,
        shutdown_timeout=SHUTDOWN_TIMEOUT_SECONDS,
        **kwargs,
    )


async def serve(
    app: web.Application,
    host: str | None,
    port: int,
    limits: ServerLimits,
    web_file: WebConfigFile | None = None,
) -> None:
    """Serve ``app`` until SIGINT or SIGTERM."""
    from etcd_inspector.web.app import SELF_REGISTRY
    from etcd_inspector.web.auth import secure_app

    tls = None
    if web_file is not None:
        secure_app(app, web_file)
        if web_file.tls_server_config is not None:
            tls = ServerTLS(web_file.tls_server_config)
    stats = ConnectionStats()
    app[SELF_REGISTRY].register(stats)
    runner = make_runner(app, limits)
    await runner.setup()
    listener = Listener(runner, host, port, limits, tls=tls, stats=stats)
    try:
        await listener.start()
        log.info(
            "listening",
            extra={"address": f"{host or ''}:{port}", "tls": tls is not None,
                   "basic_auth": bool(web_file and web_file.basic_auth_users),
                   "max_connections": limits.max_connections},
        )  # fmt: skip
        stop = asyncio.Event()
        loop = asyncio.get_running_loop()
        for sig in (signal.SIGINT, signal.SIGTERM):
            loop.add_signal_handler(sig, stop.set)
        await stop.wait()
    finally:
        await listener.stop()
        await runner.cleanup()
