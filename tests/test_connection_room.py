"""The listener's connection cap makes room (web/server.py), in process with real loopback
sockets and no etcd: at the cap the oldest connection without a complete request goes, a
connection that has sent a request never does, and one address cannot take every slot."""

from __future__ import annotations

import asyncio
import contextlib
from collections.abc import AsyncIterator

import pytest
from aiohttp import web

from etcd_inspector.web.server import Listener, ServerLimits, make_runner

HALF_SENT = b"GET / HTTP/1.1\r\nHost: x\r\nX-Slow: "


class Client:
    def __init__(self, reader: asyncio.StreamReader, writer: asyncio.StreamWriter) -> None:
        self.reader, self.writer = reader, writer

    async def closed_by_server(self, within: float = 2.0) -> bool:
        try:
            async with asyncio.timeout(within):
                while await self.reader.read(65536):
                    pass
            return True
        except ConnectionError:
            return True
        except TimeoutError:
            return False

    async def get(self) -> bytes:
        """One complete request, kept alive; the response's status line."""
        self.writer.write(b"GET / HTTP/1.1\r\nHost: x\r\n\r\n")
        async with asyncio.timeout(2):
            status = await self.reader.readline()
            while await self.reader.readline() not in (b"\r\n", b""):
                pass
            await self.reader.readexactly(3)  # "ok\n"
        return status


@pytest.fixture
async def listener() -> AsyncIterator[Listener]:
    app = web.Application()

    async def ok(_request: web.Request) -> web.Response:
        return web.Response(text="ok\n")

    app.router.add_get("/", ok)
    limits = ServerLimits(
        max_connections=4, read_header_timeout=30, idle_timeout=30, max_connections_per_client=3
    )
    runner = make_runner(app, limits)
    await runner.setup()
    server = Listener(runner, "127.0.0.1", 0, limits)
    await server.start()
    yield server
    await server.stop()
    await runner.cleanup()


async def connect(listener: Listener, source: str, send: bytes = b"") -> Client:
    reader, writer = await asyncio.open_connection(
        "127.0.0.1", listener.ports[0], local_addr=(source, 0)
    )
    if send:
        writer.write(send)
        await writer.drain()
    await asyncio.sleep(0.05)  # accepted, and what was sent read, before the next one
    return Client(reader, writer)


async def test_at_the_cap_the_oldest_unfinished_connection_of_the_busiest_address_goes(
    listener: Listener,
) -> None:
    a1 = await connect(listener, "127.0.0.3")
    b1 = await connect(listener, "127.0.0.4", HALF_SENT)
    a2 = await connect(listener, "127.0.0.3", HALF_SENT)
    b2 = await connect(listener, "127.0.0.4")
    assert listener.open_connections == 4
    # Full; 127.0.0.3 and .4 hold two each: the oldest of the first-found busiest goes.
    fresh = await connect(listener, "127.0.0.2")
    assert await fresh.get() == b"HTTP/1.1 200 OK\r\n"
    assert await a1.closed_by_server()
    for still in (b1, a2, b2):
        assert not await still.closed_by_server(within=0.1)
    assert listener.stats.closed["evicted"] == 1
    assert listener.open_connections == 4


async def test_a_connection_that_sent_a_request_is_never_evicted(listener: Listener) -> None:
    served = [await connect(listener, f"127.0.0.{i}") for i in range(3, 7)]
    for client in served:
        assert await client.get() == b"HTTP/1.1 200 OK\r\n"
    # Every slot holds a real client: the newcomer is refused, nobody is evicted.
    refused = await connect(listener, "127.0.0.2")
    assert await refused.closed_by_server()
    assert listener.stats.closed["limit"] == 1
    assert listener.stats.closed["evicted"] == 0
    for client in served:
        assert await client.get() == b"HTTP/1.1 200 OK\r\n"


async def test_one_address_cannot_take_every_slot(listener: Listener) -> None:
    scraper = await connect(listener, "127.0.0.3")
    assert await scraper.get() == b"HTTP/1.1 200 OK\r\n"
    flood = [await connect(listener, "127.0.0.3", HALF_SENT if i % 2 else b"") for i in range(6)]
    # 127.0.0.3 holds 3 at most (its scraper and its two newest), a slot is left for others.
    open_flood = [c for c in flood if not await c.closed_by_server(within=0.05)]
    assert open_flood == flood[-2:]
    assert listener.stats.closed["evicted"] == 4
    other = await connect(listener, "127.0.0.2")
    assert await other.get() == b"HTTP/1.1 200 OK\r\n"
    assert await scraper.get() == b"HTTP/1.1 200 OK\r\n"
    assert listener.stats.closed["evicted"] == 4
    for client in (*flood, scraper, other):
        client.writer.close()
        with contextlib.suppress(ConnectionError):
            await client.writer.wait_closed()
