"""TLS to etcd members: loading the files, and saying in one line why a handshake fails.

gRPC reports every TLS failure as "unavailable" with a C-core string ("Unwrap failed",
"Socket closed"); etcdctl users expect "certificate signed by unknown authority". So when a
call fails, `handshake()` repeats the TLS handshake with Python's ssl module, whose errors name
the cause, and reads the member's serving certificate (its expiry is a metric). It sends no
request: it connects, shakes hands, waits a moment for a rejection alert, and closes.
"""

from __future__ import annotations

import asyncio
import contextlib
import datetime
import ssl
from dataclasses import dataclass
from urllib.parse import urlsplit

from etcd_inspector.errors import ErrorKind
from etcd_inspector.etcd.types import TLSFiles

# After the handshake, how long to wait for the member to reject our certificate (TLS 1.3
# servers send that alert after the client thinks the handshake is done).
REJECTION_WAIT_SECONDS = 0.3


class TLSFileError(ValueError):
    """A CA, certificate or key file that cannot be used; the message names the file."""


def _pem_problem(err: ssl.SSLError, what: str, path: str) -> str:
    reason = (err.reason or str(err)).upper()
    if "KEY_VALUES_MISMATCH" in reason:
        return f"{what} {path!r} does not match its certificate"
    if "NO_CERTIFICATE_OR_CRL_FOUND" in reason or "NO_START_LINE" in reason or "PEM" in reason:
        return f"{what} {path!r} is not a PEM file"
    return f"{what} {path!r}: {err.reason or err}"


def client_context(files: TLSFiles) -> ssl.SSLContext:
    """A verifying client context from the files; TLSFileError names a file that is unusable."""
    try:
        ctx = ssl.create_default_context(cafile=files.ca_file)
    except ssl.SSLError as err:
        raise TLSFileError(_pem_problem(err, "ca_file", files.ca_file or "")) from None
    except OSError as err:
        raise TLSFileError(f"ca_file {files.ca_file!r}: {err.strerror or err}") from None
    if files.cert_file and files.key_file:
        try:
            ctx.load_cert_chain(files.cert_file, files.key_file)
        except ssl.SSLError as err:
            reason = (err.reason or "").upper()
            if "KEY_VALUES_MISMATCH" in reason:
                raise TLSFileError(
                    f"key_file {files.key_file!r} does not match cert_file {files.cert_file!r}"
                ) from None
            # load_cert_chain does not say which of the two it could not read.
            which = _unreadable_pem(files.cert_file, files.key_file)
            raise TLSFileError(which or _pem_problem(err, "cert_file", files.cert_file)) from None
        except OSError as err:
            raise TLSFileError(f"cert_file/key_file: {err.strerror or err}") from None
    return ctx


def _unreadable_pem(cert_file: str, key_file: str) -> str | None:
    from cryptography import x509  # here: config loading needs no x509 until a file is bad

    try:
        x509.load_pem_x509_certificate(open(cert_file, "rb").read())
    except (ValueError, OSError):
        return f"cert_file {cert_file!r} is not a PEM certificate"
    try:
        text = open(key_file, "rb").read()
    except OSError as err:
        return f"key_file {key_file!r}: {err.strerror or err}"
    if b"PRIVATE KEY-----" not in text:
        return f"key_file {key_file!r} is not a PEM private key"
    return None


def not_after(pem_or_der: bytes) -> float:
    """A certificate's expiry, seconds since the epoch."""
    from cryptography import x509  # here: cryptography costs 20 ms of every command's start

    if pem_or_der.lstrip().startswith(b"-----"):
        cert = x509.load_pem_x509_certificate(pem_or_der)
    else:
        cert = x509.load_der_x509_certificate(pem_or_der)
    return cert.not_valid_after_utc.timestamp()


def file_not_after(path: str) -> float:
    with open(path, "rb") as f:
        return not_after(f.read())


def check_files(files: TLSFiles) -> list[str]:
    """Every problem with the files (unusable, or our own certificate expired), for the config
    loader and --config.check."""
    if not (files.ca_file or files.cert_file or files.key_file):
        # Nothing to check, and the system CAs' context costs ~50 ms of every start-up here.
        return []
    try:
        client_context(files)
    except TLSFileError as err:
        return [str(err)]
    if files.cert_file:
        expiry = file_not_after(files.cert_file)
        if expiry < datetime.datetime.now(datetime.UTC).timestamp():
            when = datetime.datetime.fromtimestamp(expiry, datetime.UTC).strftime("%Y-%m-%d")
            return [f"cert_file {files.cert_file!r} expired on {when}"]
    return []


@dataclass(frozen=True)
class Handshake:
    """What a TLS handshake with a member showed."""

    ok: bool
    kind: ErrorKind | None = None  # TLS (a TLS problem), UNAVAILABLE (no connection)
    message: str = ""  # one line for the operator
    peer_not_after: float | None = None  # the member's serving certificate, when it sent one


def _verify_message(err: ssl.SSLCertVerificationError, host: str, files: TLSFiles) -> str:
    msg = (err.verify_message or str(err)).lower()
    if "expired" in msg:
        return "the member's certificate has expired"
    if "not yet valid" in msg:
        return "the member's certificate is not valid yet (clock skew?)"
    if "mismatch" in msg or "hostname" in msg:
        name = files.server_name or host
        return f"the member's certificate is not valid for {name!r} (set server_name?)"
    if "self-signed" in msg or "local issuer" in msg or "unknown" in msg:
        where = f"ca_file {files.ca_file!r}" if files.ca_file else "the system CAs"
        return f"certificate signed by unknown authority (not by {where})"
    return f"certificate verify failed: {err.verify_message or err}"


def _alert_message(err: ssl.SSLError, files: TLSFiles) -> str:
    reason = (err.reason or str(err)).upper()
    if "CERTIFICATE_REQUIRED" in reason or ("BAD_CERTIFICATE" in reason and not files.cert_file):
        return "the member requires a client certificate (set cert_file and key_file)"
    if "UNKNOWN_CA" in reason or "BAD_CERTIFICATE" in reason:
        return "the member rejected our client certificate (not signed by a CA it trusts?)"
    if "CERTIFICATE_EXPIRED" in reason:
        return "the member rejected our client certificate as expired"
    if "WRONG_VERSION_NUMBER" in reason or "RECORD_LAYER" in reason:
        return "the member does not speak TLS on this port (use http://)"
    return f"TLS handshake failed: {err.reason or err}"


async def _open(host: str, port: int, ctx: ssl.SSLContext | None, server_hostname: str | None,
                timeout: float) -> tuple[asyncio.StreamReader, asyncio.StreamWriter]:  # fmt: skip
    async with asyncio.timeout(timeout):
        return await asyncio.open_connection(
            host, port, ssl=ctx, server_hostname=server_hostname if ctx else None
        )


async def handshake(url: str, files: TLSFiles, timeout: float) -> Handshake:
    """Connect to a member's client URL as gRPC would and say what happens."""
    parts = urlsplit(url)
    host, port = parts.hostname or "", parts.port or 2379
    if parts.scheme != "https":
        # A plain URL: does the member speak TLS there?
        probe = ssl.create_default_context()
        probe.check_hostname, probe.verify_mode = False, ssl.CERT_NONE
        try:
            _, writer = await _open(host, port, probe, host, timeout)
        except ssl.SSLError as err:
            # A server that asks for a client certificate may reject us with an alert before
            # the handshake looks done: that is TLS too. Anything else means it is not TLS.
            if "ALERT" not in (err.reason or str(err)).upper():
                return Handshake(ok=True)
            return Handshake(
                False, ErrorKind.TLS, "the member speaks TLS on this port (use https://)"
            )
        except (OSError, TimeoutError):
            return Handshake(ok=True)  # not TLS: the failure is not about TLS
        writer.close()
        with contextlib.suppress(Exception):
            await writer.wait_closed()
        return Handshake(False, ErrorKind.TLS, "the member speaks TLS on this port (use https://)")
    try:
        ctx = client_context(files)
    except TLSFileError as err:
        return Handshake(False, ErrorKind.TLS, str(err))
    peer = await _peer_certificate(host, port, files, timeout)
    try:
        reader, writer = await _open(host, port, ctx, files.server_name or host, timeout)
    except ssl.SSLCertVerificationError as err:
        return Handshake(False, ErrorKind.TLS, _verify_message(err, host, files), peer)
    except ssl.SSLError as err:
        return Handshake(False, ErrorKind.TLS, _alert_message(err, files), peer)
    except (OSError, TimeoutError) as err:
        return Handshake(False, ErrorKind.UNAVAILABLE, f"cannot connect: {err}", peer)
    try:
        # A rejected client certificate shows as an alert on the first read.
        with contextlib.suppress(TimeoutError):
            async with asyncio.timeout(REJECTION_WAIT_SECONDS):
                await reader.read(1)
    except ssl.SSLError as err:
        return Handshake(False, ErrorKind.TLS, _alert_message(err, files), peer)
    except OSError:
        pass
    finally:
        writer.close()
        with contextlib.suppress(Exception):
            await writer.wait_closed()
    return Handshake(True, None, "", peer)


async def serving_not_after(url: str, files: TLSFiles, timeout: float) -> float | None:
    """When the certificate a member serves at an https URL expires (None: no answer)."""
    parts = urlsplit(url)
    return await _peer_certificate(parts.hostname or "", parts.port or 2379, files, timeout)


async def _peer_certificate(host: str, port: int, files: TLSFiles, timeout: float) -> float | None:
    """The serving certificate's expiry, read without verifying it (nothing is sent)."""
    ctx = ssl.create_default_context()
    ctx.check_hostname, ctx.verify_mode = False, ssl.CERT_NONE
    if files.cert_file and files.key_file:
        with contextlib.suppress(ssl.SSLError, OSError):
            ctx.load_cert_chain(files.cert_file, files.key_file)
    try:
        _, writer = await _open(host, port, ctx, files.server_name or host, timeout)
    except (ssl.SSLError, OSError, TimeoutError):
        return None
    try:
        ssl_object = writer.get_extra_info("ssl_object")
        der = ssl_object.getpeercert(binary_form=True) if ssl_object else None
        return not_after(der) if der else None
    finally:
        writer.close()
        with contextlib.suppress(Exception):
            await writer.wait_closed()
