"""Named fakes: the only stand-ins allowed in the tests. Everything else is a real etcd.

Each fake is a small aiohttp server on 127.0.0.1 that plays one misbehaving /metrics endpoint.
It runs its own event loop in a thread, so both blocking tests (the exporter is a subprocess)
and asyncio tests can use it.
"""

from __future__ import annotations

import asyncio
import threading
from collections.abc import Awaitable, Callable

from aiohttp import web

# Looks like the start of an exposition, then stops making sense: the text parser must reject it
# (a label block that never closes, a value that is not a number).
GARBAGE_EXPOSITION = (
    "# HELP etcd_server_has_leader Whether or not a leader exists.\n"
    "# TYPE etcd_server_has_leader gauge\n"
    'etcd_server_has_leader{broken="yes 1\n'
    "etcd_server_is_leader not-a-number\n"
)


class _ThreadedServer:
    """An aiohttp app served from a background thread; use as a context manager."""

    def __init__(self, handler: Callable[[web.Request], Awaitable[web.StreamResponse]]) -> None:
        self._handler = handler
        self._loop = asyncio.new_event_loop()
        self._thread = threading.Thread(target=self._loop.run_forever, daemon=True)
        self._runner: web.AppRunner | None = None
        self.port = 0
        self.requests = 0

    @property
    def url(self) -> str:
        return f"http://127.0.0.1:{self.port}/metrics"

    async def _handle(self, request: web.Request) -> web.StreamResponse:
        self.requests += 1
        return await self._handler(request)

    async def _start(self) -> None:
        app = web.Application()
        app.router.add_get("/metrics", self._handle)
        self._runner = web.AppRunner(app, access_log=None)
        await self._runner.setup()
        site = web.TCPSite(self._runner, "127.0.0.1", 0)
        await site.start()
        self.port = self._runner.addresses[0][1]

    async def _stop(self) -> None:
        if self._runner is not None:
            await self._runner.cleanup()

    def start(self) -> None:
        self._thread.start()
        asyncio.run_coroutine_threadsafe(self._start(), self._loop).result(timeout=10)

    def stop(self) -> None:
        try:
            asyncio.run_coroutine_threadsafe(self._stop(), self._loop).result(timeout=10)
        finally:
            self._loop.call_soon_threadsafe(self._loop.stop)
            self._thread.join(timeout=10)
            self._loop.close()

    def __enter__(self):
        self.start()
        return self

    def __exit__(self, *exc: object) -> None:
        self.stop()


class GarbageMetricsServer(_ThreadedServer):
    """A 'member' whose /metrics answers 200 with broken exposition text."""

    def __init__(self, body: str = GARBAGE_EXPOSITION) -> None:
        async def garbage(_request: web.Request) -> web.Response:
            return web.Response(text=body, content_type="text/plain")

        super().__init__(garbage)


class DribblingMetricsServer(_ThreadedServer):
    """A 'member' that sends a valid exposition in pieces with pauses in between, the way a
    busy etcd's /metrics arrives over several TCP segments."""

    def __init__(self, body: str, pieces: int = 4, pause_seconds: float = 0.1) -> None:
        data = body.encode()
        step = -(-len(data) // pieces)

        async def dribble(request: web.Request) -> web.StreamResponse:
            resp = web.StreamResponse(headers={"Content-Type": "text/plain; version=0.0.4"})
            await resp.prepare(request)
            for i in range(0, len(data), step):
                await resp.write(data[i : i + step])
                await asyncio.sleep(pause_seconds)
            await resp.write_eof()
            return resp

        super().__init__(dribble)
