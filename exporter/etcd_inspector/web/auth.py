"""Basic authentication and response headers from the web config file.

bcrypt is slow on purpose (a cost-10 check takes ~50-100 ms of CPU), so, as in
exporter-toolkit, a successful check is cached, keyed by a SHA-256 of user, hash and password
(the password itself is never kept). Checks that miss the cache run one at a time in a worker
thread: the event loop keeps serving cached clients, and a flood of wrong passwords costs at
most one CPU core. An unknown user is checked against a real hash too, so the time taken does
not tell which user names exist. Passwords and hashes are never logged.
"""

from __future__ import annotations

import asyncio
import binascii
import hashlib
import logging
from collections import OrderedDict
from collections.abc import Mapping

import bcrypt
from aiohttp import BasicAuth, hdrs, web
from aiohttp.typedefs import Handler, Middleware

from etcd_inspector.web.webconfig import WebConfigFile

log = logging.getLogger(__name__)

# Liveness probes must work without credentials (a kubelet has none).
UNAUTHENTICATED_PATHS = frozenset({"/-/healthy"})
CACHE_SIZE = 256


class BasicAuthChecker:
    def __init__(self, users: Mapping[str, str], cache_size: int = CACHE_SIZE) -> None:
        self._users = {user: hashed.encode() for user, hashed in users.items()}
        # Any real hash: an unknown user then costs as much as a known one.
        self._decoy = next(iter(self._users.values()))
        self._verified: OrderedDict[bytes, None] = OrderedDict()
        self._cache_size = cache_size
        self._bcrypt_lock = asyncio.Lock()
        self.bcrypt_checks = 0

    def _cache_key(self, user: str, hashed: bytes, password: str) -> bytes:
        h = hashlib.sha256()
        for part in (user.encode(), hashed, password.encode()):
            h.update(len(part).to_bytes(4, "big") + part)
        return h.digest()

    def _bcrypt(self, password: bytes, hashed: bytes) -> bool:
        self.bcrypt_checks += 1
        try:
            return bcrypt.checkpw(password, hashed)
        except ValueError:  # e.g. bcrypt >= 5 refuses passwords over 72 bytes
            return False

    async def check(self, authorization: str | None) -> str | None:
        """The authenticated user for an Authorization header, else None."""
        if not authorization:
            return None
        try:
            credentials = BasicAuth.decode(authorization, encoding="utf-8")
        except (ValueError, binascii.Error):
            return None
        user: str = credentials.login
        password: str = credentials.password
        hashed = self._users.get(user)
        known = hashed is not None
        hashed = hashed if hashed is not None else self._decoy
        key = self._cache_key(user, hashed, password)
        if known and key in self._verified:
            self._verified.move_to_end(key)
            return user
        async with self._bcrypt_lock:
            ok = await asyncio.to_thread(self._bcrypt, password.encode(), hashed)
        if not (ok and known):
            return None
        self._verified[key] = None
        if len(self._verified) > self._cache_size:
            self._verified.popitem(last=False)
        return user


def auth_middleware(checker: BasicAuthChecker) -> Middleware:
    @web.middleware
    async def require_basic_auth(request: web.Request, handler: Handler) -> web.StreamResponse:
        if request.path in UNAUTHENTICATED_PATHS:
            return await handler(request)
        if await checker.check(request.headers.get(hdrs.AUTHORIZATION)) is None:
            log.debug("unauthorized request", extra={"path": request.path,
                                                     "remote": request.remote or ""})  # fmt: skip
            return web.Response(
                status=401, text="Unauthorized\n", headers={hdrs.WWW_AUTHENTICATE: "Basic"}
            )
        return await handler(request)

    return require_basic_auth


def secure_app(app: web.Application, web_file: WebConfigFile) -> None:
    """Add basic auth and the configured headers to an app that is not frozen yet."""
    if web_file.basic_auth_users:
        # First in the chain: nothing runs for a request without valid credentials.
        app.middlewares.insert(0, auth_middleware(BasicAuthChecker(web_file.basic_auth_users)))
    headers = dict(web_file.http_server_config.headers)
    if headers:

        async def add_headers(_request: web.Request, response: web.StreamResponse) -> None:
            response.headers.update(headers)

        app.on_response_prepare.append(add_headers)
