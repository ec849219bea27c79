"""Userspace TCP proxies on etcd's peer traffic, one per member, on one asyncio loop in a thread.

Each member advertises its proxy's port and listens on another; every peer connection to a member
passes its proxy. rafthttp decides what a connection carries: member A's stream reader for B dials
B's URL and B *writes* its messages to A on the response, while A's pipeline (and snapshot) POSTs
to B carry A's messages in the request. So on a connection dialed by D to target T:

    request bytes  (D -> T) are D's outgoing and T's incoming messages,
    response bytes (T -> D) are T's outgoing and D's incoming messages.

The proxy learns D from the kernel: the connection's source port names a socket in
/proc/net/tcp whose inode is held by one member's process. Failing that (a member restarted in
between), from the `X-Server-From` header rafthttp sets on stream, pipeline and snapshot requests
(not on its prober's), with the member IDs from `GET /members` on a peer listener. A rule on
member X then applies to every connection with T == X or D == X, in the directions that carry X's
incoming ("in"), outgoing ("out") or all ("both") messages: "slow X" delays X's own links and
nothing between the others, and "X cut off" leaves the others' links alone.

Like etcd's pkg/proxy (tests/robustness) there is no netem or iptables: delay is added per chunk
(order kept, no bandwidth cap), a lossy link aborts connections, a blackhole holds connections
open and forwards nothing, which is what a partition looks like to a TCP peer.
"""

from __future__ import annotations

import asyncio
import contextlib
import functools
import json
import os
import random
import threading
import urllib.request
from collections.abc import Callable, Coroutine, Mapping
from dataclasses import dataclass, field
from typing import Any, Literal, TypeVar

T = TypeVar("T")
Direction = Literal["in", "out", "both"]

HEAD_LIMIT = 64 * 1024
HEAD_TIMEOUT_SECONDS = 10.0
CONNECT_TIMEOUT_SECONDS = 5.0
CALL_TIMEOUT_SECONDS = 10.0
CHUNK = 64 * 1024


@dataclass(frozen=True)
class LinkRule:
    """What the network does to one member's peer traffic."""

    delay: float = 0.0  # seconds added to each chunk, one way
    jitter: float = 0.0  # +- uniformly, seconds
    loss: float = 0.0  # chance that a chunk kills its connection, and that a new one is refused
    blackhole: bool = False
    direction: Direction = "both"

    def applies(self, incoming: bool) -> bool:
        return self.direction == "both" or (self.direction == "in") == incoming


@dataclass
class ProxyStats:
    accepted: int = 0
    refused: int = 0  # dropped at accept by `loss`
    aborted: int = 0  # killed mid-stream by `loss`, or when a blackhole began or ended
    held: int = 0  # blackholed at accept
    unknown_dialer: int = 0


@dataclass(eq=False)
class _Conn:
    target: str
    dialer: str | None  # member name, from /proc
    dialer_id: str | None = None  # hex member ID, from the request header
    writers: list[asyncio.StreamWriter] = field(default_factory=list)
    held: bool = False

    def abort(self) -> None:
        for w in self.writers:
            w.transport.abort()


def parse_dialer(head: bytes) -> str | None:
    """The member ID (hex) of the peer that sent this HTTP request head, if it says."""
    for line in head.split(b"\r\n")[1:]:
        name, _, value = line.partition(b":")
        if name.strip().lower() == b"x-server-from":
            return value.strip().decode("ascii", "replace").lower()
    return None


def socket_owner(local_port: int, remote_port: int, pids: Mapping[int, str]) -> str | None:
    """The name in `pids` of the process holding the loopback TCP socket from `local_port` to
    `remote_port` (this network namespace's /proc/net/tcp, then each process's fds)."""
    inode = None
    for table in ("/proc/net/tcp", "/proc/net/tcp6"):
        with contextlib.suppress(OSError), open(table) as f:
            next(f)
            for line in f:
                fields = line.split()
                if (
                    int(fields[1].rsplit(":", 1)[1], 16) == local_port
                    and int(fields[2].rsplit(":", 1)[1], 16) == remote_port
                ):
                    inode = fields[9]
                    break
        if inode:
            break
    if not inode or inode == "0":
        return None
    wanted = f"socket:[{inode}]"
    for pid, name in pids.items():
        with contextlib.suppress(OSError):
            for fd in os.listdir(f"/proc/{pid}/fd"):
                with contextlib.suppress(OSError):
                    if os.readlink(f"/proc/{pid}/fd/{fd}") == wanted:
                        return name
    return None


def fetch_member_ids(listen_peer_url: str, timeout: float = 5.0) -> dict[str, str]:
    """hex member ID -> name, from a member's own peer listener (`GET /members`)."""
    with urllib.request.urlopen(listen_peer_url + "/members", timeout=timeout) as resp:
        members = json.loads(resp.read())
    # JSON carries the ID as a number; rafthttp's header as types.ID.String(), i.e. hex.
    return {f"{int(m['id']):x}": str(m["name"]) for m in members}


class PeerNetwork:
    """The proxies of one cluster: `routes` maps member name -> (proxy port, etcd's listen port);
    `processes` returns the members' current PIDs (pid -> name)."""

    def __init__(
        self,
        routes: Mapping[str, tuple[int, int]],
        processes: Callable[[], Mapping[int, str]] = dict,
        seed: int | None = None,
    ) -> None:
        self.routes = dict(routes)
        self.processes = processes
        self.rules: dict[str, LinkRule] = {}
        self.ids: dict[str, str] = {}
        self.stats = {name: ProxyStats() for name in routes}
        self._conns: set[_Conn] = set()
        self._random = random.Random(seed)
        self._loop = asyncio.new_event_loop()
        self._thread = threading.Thread(
            target=self._loop.run_forever, name="peer-proxies", daemon=True
        )
        self._servers: list[asyncio.Server] = []

    # -- the test thread's side --------------------------------------------------------------

    def start(self) -> None:
        self._thread.start()
        self._call(self._start_servers())

    def close(self) -> None:
        if self._thread.ident is None:  # never started
            self._loop.close()
            return
        if not self._thread.is_alive():
            return
        with contextlib.suppress(Exception):
            self._call(self._close())
        self._loop.call_soon_threadsafe(self._loop.stop)
        self._thread.join(timeout=CALL_TIMEOUT_SECONDS)
        if not self._thread.is_alive():
            self._loop.close()

    def learn_ids(self, ids: Mapping[str, str]) -> None:
        self._loop.call_soon_threadsafe(self.ids.update, dict(ids))

    def set_rule(self, member: str, rule: LinkRule | None) -> None:
        """Apply (None: clear) `member`'s rule; it takes effect on live connections too."""
        if member not in self.routes:
            raise KeyError(f"no proxy for member {member!r}")
        self._call(self._set_rule(member, rule))

    def connections(self) -> list[tuple[str, str | None, bool]]:
        """(target, dialer name or None, held) of every open proxied connection."""

        async def snapshot() -> list[tuple[str, str | None, bool]]:
            return [(c.target, self._dialer(c), c.held) for c in self._conns]

        return self._call(snapshot())

    def _call(self, coro: Coroutine[Any, Any, T]) -> T:
        future = asyncio.run_coroutine_threadsafe(coro, self._loop)
        return future.result(timeout=CALL_TIMEOUT_SECONDS)

    # -- the loop's side ---------------------------------------------------------------------

    async def _start_servers(self) -> None:
        for name, (port, upstream) in self.routes.items():
            server = await asyncio.start_server(
                functools.partial(self._serve_until_closed, name, upstream),
                host="127.0.0.1",  # loopback only, never another address
                port=port,
                reuse_address=True,
            )
            self._servers.append(server)

    async def _close(self) -> None:
        for server in self._servers:
            server.close()
        for conn in list(self._conns):
            conn.abort()
        self._conns.clear()
        tasks = [t for t in asyncio.all_tasks() if t is not asyncio.current_task()]
        for task in tasks:
            task.cancel()
        await asyncio.gather(*tasks, return_exceptions=True)

    async def _set_rule(self, member: str, rule: LinkRule | None) -> None:
        before = self.rules.get(member)
        if rule is None:
            self.rules.pop(member, None)
        else:
            self.rules[member] = rule
        was_hole = before is not None and before.blackhole
        is_hole = rule is not None and rule.blackhole
        for conn in list(self._conns):
            if member not in (conn.target, self._dialer(conn)):
                continue
            if is_hole and not conn.held:
                self._abort(conn)  # a partition starts: live streams die, re-dials are held
            elif was_hole and not is_hole and conn.held:
                self._abort(conn)  # it ends: held connections go, etcd dials afresh
            elif rule is not None and rule.loss and not conn.held:
                if self._random.random() < rule.loss:
                    self._abort(conn)

    def _dialer(self, conn: _Conn) -> str | None:
        if conn.dialer is not None:
            return conn.dialer
        return self.ids.get(conn.dialer_id) if conn.dialer_id else None

    def _rules_for(self, conn: _Conn) -> list[tuple[LinkRule, bool]]:
        """(rule, True when the rule's member is the target) for the connection's two ends."""
        found = []
        if conn.target in self.rules:
            found.append((self.rules[conn.target], True))
        dialer = self._dialer(conn)
        if dialer is not None and dialer in self.rules and dialer != conn.target:
            found.append((self.rules[dialer], False))
        return found

    def _link(self, conn: _Conn, request: bool) -> tuple[float, float, bool]:
        """(delay, loss, blackhole) for bytes flowing in one direction of `conn`."""
        delay, survive, hole = 0.0, 1.0, False
        for rule, is_target in self._rules_for(conn):
            # Request bytes are incoming for the target, outgoing for the dialer.
            if not rule.applies(incoming=(request == is_target)):
                continue
            delay += max(0.0, rule.delay + self._random.uniform(-rule.jitter, rule.jitter))
            survive *= 1.0 - rule.loss
            hole = hole or rule.blackhole
        return delay, 1.0 - survive, hole

    def _abort(self, conn: _Conn) -> None:
        self.stats[conn.target].aborted += 1
        conn.abort()
        self._conns.discard(conn)

    async def _serve_until_closed(
        self, target: str, upstream: int, reader: asyncio.StreamReader, writer: asyncio.StreamWriter
    ) -> None:
        # close() cancels every connection's task; a handler task that ends cancelled makes
        # asyncio's StreamReaderProtocol log an "exception in callback" (Python 3.11).
        with contextlib.suppress(asyncio.CancelledError):
            await self._serve(target, upstream, reader, writer)

    async def _serve(
        self, target: str, upstream: int, reader: asyncio.StreamReader, writer: asyncio.StreamWriter
    ) -> None:
        stats = self.stats[target]
        stats.accepted += 1
        peer = writer.get_extra_info("peername")
        port = self.routes[target][0]
        dialer = socket_owner(peer[1], port, self.processes()) if peer else None
        conn = _Conn(target, dialer, writers=[writer])
        self._conns.add(conn)
        try:
            try:
                async with asyncio.timeout(HEAD_TIMEOUT_SECONDS):
                    head = await reader.readuntil(b"\r\n\r\n")
            except (asyncio.IncompleteReadError, asyncio.LimitOverrunError, TimeoutError, OSError):
                return
            conn.dialer_id = parse_dialer(head)
            if self._dialer(conn) is None:
                stats.unknown_dialer += 1
            _, loss_up, hole_up = self._link(conn, request=True)
            _, loss_down, hole_down = self._link(conn, request=False)
            if hole_up or hole_down:
                stats.held += 1
                conn.held = True
                while await reader.read(CHUNK):
                    pass  # swallowed: the peer sees a connection that never answers
                return
            if self._random.random() < 1.0 - (1.0 - loss_up) * (1.0 - loss_down):
                stats.refused += 1
                return
            try:
                async with asyncio.timeout(CONNECT_TIMEOUT_SECONDS):
                    up_reader, up_writer = await asyncio.open_connection("127.0.0.1", upstream)
            except (OSError, TimeoutError):
                return
            conn.writers.append(up_writer)
            pumps = [
                asyncio.create_task(self._pump(conn, reader, up_writer, True, head)),
                asyncio.create_task(self._pump(conn, up_reader, writer, False, b"")),
            ]
            _, pending = await asyncio.wait(pumps, return_when=asyncio.FIRST_COMPLETED)
            for task in pending:
                task.cancel()
            await asyncio.gather(*pending, return_exceptions=True)
        finally:
            self._conns.discard(conn)
            conn.abort()

    async def _pump(
        self,
        conn: _Conn,
        src: asyncio.StreamReader,
        dst: asyncio.StreamWriter,
        request: bool,
        first: bytes,
    ) -> None:
        """Copy `first`, then src, to dst; each chunk leaves `delay` after it came, in order."""
        loop = asyncio.get_running_loop()
        chunks = asyncio.Queue[tuple[float, bytes] | None]()

        async def read() -> None:
            last, pending = 0.0, first
            try:
                while data := pending or await src.read(CHUNK):
                    pending = b""
                    if request and self._dialer(conn) is None:
                        # A connection opened by rafthttp's prober (no header) is later reused
                        # by the same peer's pipeline, whose requests do say who sends them.
                        conn.dialer_id = parse_dialer(data[data.find(b"\r\n") :])
                    delay, loss, hole = self._link(conn, request)
                    if hole or (loss and self._random.random() < loss):
                        self._abort(conn)
                        break
                    last = max(last, loop.time() + delay)
                    chunks.put_nowait((last, data))
            except OSError:
                pass
            chunks.put_nowait(None)

        reader = asyncio.create_task(read())
        try:
            while (item := await chunks.get()) is not None:
                at, data = item
                if (wait := at - loop.time()) > 0:
                    await asyncio.sleep(wait)
                dst.write(data)
                await dst.drain()
        except OSError:
            pass
        finally:
            reader.cancel()
            await asyncio.gather(reader, return_exceptions=True)
