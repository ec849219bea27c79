"""The test PKI as the web-endpoint tests use it: demo/pki.py's certificates under the names
these tests read (a CA, a server certificate for 127.0.0.1/localhost, a client certificate)."""

from __future__ import annotations

from dataclasses import dataclass
from pathlib import Path

from cryptography import x509
from cryptography.hazmat.primitives.asymmetric import ec

from etcd_inspector.demo import pki as demo_pki
from etcd_inspector.demo.pki import make_ca

__all__ = ["Pki", "issue", "make_ca", "make_pki"]


@dataclass(frozen=True)
class Pki:
    ca: Path
    server_cert: Path
    server_key: Path
    client_cert: Path
    client_key: Path


def issue(
    ca_cert: x509.Certificate,
    ca_key: ec.EllipticCurvePrivateKey,
    common_name: str,
    *,
    server: bool,
) -> tuple[x509.Certificate, ec.EllipticCurvePrivateKey]:
    hosts = ("localhost", "127.0.0.1") if server else ()
    return demo_pki.issue(
        (ca_cert, ca_key), common_name, hosts=hosts, server=server, client=not server
    )


def make_pki(directory: Path) -> Pki:
    made = demo_pki.make_pki(directory)
    return Pki(made.ca_file, made.server_cert, made.server_key, made.client_cert, made.client_key)
