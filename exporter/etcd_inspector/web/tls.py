"""The exporter's TLS server context, built from ``tls_server_config`` and rebuilt when the
certificate, key or client CA file changes (checked on every new connection: a few stat
calls, so a rotated certificate is served from the next connection on, without a restart)."""

from __future__ import annotations

import logging
import os
import re
import ssl
from typing import Protocol


class TLSServerSettings(Protocol):
    """What a server context is built from: web.webconfig.TLSServerConfig (which builds one
    here to check its files, so this module names no type of it: no import cycle)."""

    @property
    def cert_file(self) -> str: ...
    @property
    def key_file(self) -> str: ...
    @property
    def client_ca_file(self) -> str | None: ...
    @property
    def client_auth_type(self) -> str: ...
    @property
    def min_version(self) -> str: ...
    @property
    def max_version(self) -> str: ...
    @property
    def prefer_server_cipher_suites(self) -> bool: ...

log = logging.getLogger(__name__)

_VERSIONS = {"TLS12": ssl.TLSVersion.TLSv1_2, "TLS13": ssl.TLSVersion.TLSv1_3}
_VERIFY_MODES = {
    "NoClientCert": ssl.CERT_NONE,
    "VerifyClientCertIfGiven": ssl.CERT_OPTIONAL,
    "RequireAndVerifyClientCert": ssl.CERT_REQUIRED,
}
_PEM_KEY = re.compile(rb"-----BEGIN [A-Z ]*PRIVATE KEY-----")


class TLSFileError(Exception):
    """A certificate or key that cannot be used; ``where`` is ".cert_file" or similar."""

    def __init__(self, message: str, where: str = "") -> None:
        super().__init__(message)
        self.where = where


class _EncryptedKey(Exception):
    pass


def _no_password() -> str:
    # Without a callback OpenSSL would prompt on the terminal for an encrypted key.
    raise _EncryptedKey


def _read(path: str, key: str) -> bytes:
    try:
        with open(path, "rb") as f:
            return f.read()
    except OSError as e:
        raise TLSFileError(f"cannot read {path!r}: {e.strerror or e}", f".{key}") from None


def _check_certificates(path: str, key: str) -> None:
    """At least one PEM certificate, each of which OpenSSL can parse."""
    scratch = ssl.SSLContext(ssl.PROTOCOL_TLS_CLIENT)
    try:
        scratch.load_verify_locations(cadata=_read(path, key).decode("ascii"))
    except (ssl.SSLError, UnicodeDecodeError, ValueError):
        raise TLSFileError(f"{path!r} holds no valid PEM certificate", f".{key}") from None


def build_context(config: TLSServerSettings) -> ssl.SSLContext:
    """A server SSLContext for ``config``; TLSFileError (one line) when a file is unusable."""
    _check_certificates(config.cert_file, "cert_file")
    if not _PEM_KEY.search(_read(config.key_file, "key_file")):
        raise TLSFileError(f"{config.key_file!r} holds no PEM private key", ".key_file")
    if config.client_ca_file:
        _check_certificates(config.client_ca_file, "client_ca_file")
    context = ssl.SSLContext(ssl.PROTOCOL_TLS_SERVER)
    context.minimum_version = _VERSIONS[config.min_version]
    context.maximum_version = _VERSIONS[config.max_version]
    try:
        context.load_cert_chain(config.cert_file, config.key_file, password=_no_password)
    except _EncryptedKey:
        raise TLSFileError(
            f"{config.key_file!r} is encrypted (not supported: the key must be unencrypted)",
            ".key_file",
        ) from None
    except ssl.SSLError as e:
        if e.reason == "KEY_VALUES_MISMATCH":
            raise TLSFileError(
                f"key_file {config.key_file!r} does not match cert_file {config.cert_file!r}"
            ) from None
        raise TLSFileError(
            f"cannot load cert_file {config.cert_file!r} with key_file {config.key_file!r}: "
            f"{e.reason or e}"
        ) from None
    except OSError as e:
        raise TLSFileError(f"cannot read the certificate or key: {e.strerror or e}") from None
    if config.client_ca_file:
        context.load_verify_locations(cafile=config.client_ca_file)
    context.verify_mode = _VERIFY_MODES[config.client_auth_type]
    if config.prefer_server_cipher_suites:
        context.options |= ssl.OP_CIPHER_SERVER_PREFERENCE
    context.set_alpn_protocols(["http/1.1"])
    return context


Stamp = tuple[tuple[int, int, int] | None, ...]


def _stamp(paths: tuple[str, ...]) -> Stamp:
    stamps: list[tuple[int, int, int] | None] = []
    for path in paths:
        try:
            st = os.stat(path)
        except OSError:
            stamps.append(None)
        else:
            stamps.append((st.st_mtime_ns, st.st_size, st.st_ino))
    return tuple(stamps)


class ServerTLS:
    """The current SSLContext; rebuilt when a file's mtime, size or inode changes.

    A rebuild that fails (a certificate half written during rotation, a key that does not
    match yet) is logged once and the previous context stays in use until the files change
    again, so a rotation in two steps (cert, then key) never takes the endpoint down.
    """

    def __init__(self, config: TLSServerSettings) -> None:
        self._config = config
        self._paths = tuple(
            p for p in (config.cert_file, config.key_file, config.client_ca_file) if p
        )
        self._stamp = _stamp(self._paths)
        self._context = build_context(config)
        self.reloads = 0

    def context(self) -> ssl.SSLContext:
        stamp = _stamp(self._paths)
        if stamp != self._stamp:
            self._stamp = stamp
            try:
                self._context = build_context(self._config)
            except TLSFileError as e:
                log.error(
                    "TLS files changed but cannot be loaded; keeping the previous certificate",
                    extra={"err": str(e)},
                )
            else:
                self.reloads += 1
                log.info("TLS certificate reloaded", extra={"cert_file": self._config.cert_file})
        return self._context
