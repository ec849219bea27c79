"""A throwaway PKI for local mTLS clusters (tests and the demo): a CA, server and client
certificates, written as PEM files. Never used by the exporter itself."""

from __future__ import annotations

import datetime
import ipaddress
from dataclasses import dataclass
from pathlib import Path

from cryptography import x509
from cryptography.hazmat.primitives import hashes, serialization
from cryptography.hazmat.primitives.asymmetric import ec
from cryptography.x509.oid import ExtendedKeyUsageOID, NameOID

CertKey = tuple[x509.Certificate, ec.EllipticCurvePrivateKey]


def _now() -> datetime.datetime:
    return datetime.datetime.now(datetime.UTC)


def _name(cn: str) -> x509.Name:
    return x509.Name([x509.NameAttribute(NameOID.COMMON_NAME, cn)])


def make_ca(cn: str = "etcd-inspector test CA", days: int = 3650) -> CertKey:
    key = ec.generate_private_key(ec.SECP256R1())
    now = _now()
    cert = (
        x509.CertificateBuilder()
        .subject_name(_name(cn))
        .issuer_name(_name(cn))
        .public_key(key.public_key())
        .serial_number(x509.random_serial_number())
        .not_valid_before(now - datetime.timedelta(minutes=5))
        .not_valid_after(now + datetime.timedelta(days=days))
        .add_extension(x509.BasicConstraints(ca=True, path_length=None), critical=True)
        .add_extension(
            x509.KeyUsage(
                digital_signature=True,
                content_commitment=False,
                key_encipherment=False,
                data_encipherment=False,
                key_agreement=False,
                key_cert_sign=True,
                crl_sign=True,
                encipher_only=False,
                decipher_only=False,
            ),
            critical=True,
        )
        .sign(key, hashes.SHA256())
    )
    return cert, key


def issue(
    ca: CertKey,
    cn: str,
    *,
    hosts: tuple[str, ...] = (),
    server: bool = True,
    client: bool = True,
    not_after: datetime.datetime | None = None,
    not_before: datetime.datetime | None = None,
) -> CertKey:
    ca_cert, ca_key = ca
    key = ec.generate_private_key(ec.SECP256R1())
    now = _now()
    usages = ([ExtendedKeyUsageOID.SERVER_AUTH] if server else []) + (
        [ExtendedKeyUsageOID.CLIENT_AUTH] if client else []
    )
    sans: list[x509.GeneralName] = []
    for host in hosts:
        try:
            sans.append(x509.IPAddress(ipaddress.ip_address(host)))
        except ValueError:
            sans.append(x509.DNSName(host))
    builder = (
        x509.CertificateBuilder()
        .subject_name(_name(cn))
        .issuer_name(ca_cert.subject)
        .public_key(key.public_key())
        .serial_number(x509.random_serial_number())
        .not_valid_before(not_before or now - datetime.timedelta(minutes=5))
        .not_valid_after(not_after or now + datetime.timedelta(days=365))
        .add_extension(x509.BasicConstraints(ca=False, path_length=None), critical=True)
        .add_extension(x509.ExtendedKeyUsage(usages), critical=False)
    )
    if sans:
        builder = builder.add_extension(x509.SubjectAlternativeName(sans), critical=False)
    return builder.sign(ca_key, hashes.SHA256()), key


def write_pair(pair: CertKey, cert_path: Path, key_path: Path) -> None:
    cert, key = pair
    cert_path.write_bytes(cert.public_bytes(serialization.Encoding.PEM))
    key_path.write_bytes(
        key.private_bytes(
            serialization.Encoding.PEM,
            serialization.PrivateFormat.PKCS8,
            serialization.NoEncryption(),
        )
    )
    key_path.chmod(0o600)


@dataclass(frozen=True)
class PKI:
    """PEM files: the CA, the members' serving certificate, a client certificate, and a second,
    unrelated CA (for "wrong CA" cases)."""

    dir: Path
    ca_file: Path
    server_cert: Path
    server_key: Path
    client_cert: Path
    client_key: Path
    other_ca_file: Path


def make_pki(
    directory: Path,
    hosts: tuple[str, ...] = ("127.0.0.1", "localhost"),
    server_not_after: datetime.datetime | None = None,
    client_not_after: datetime.datetime | None = None,
) -> PKI:
    directory.mkdir(parents=True, exist_ok=True)
    ca = make_ca()
    other = make_ca("an unrelated CA")
    paths = PKI(
        dir=directory,
        ca_file=directory / "ca.crt",
        server_cert=directory / "server.crt",
        server_key=directory / "server.key",
        client_cert=directory / "client.crt",
        client_key=directory / "client.key",
        other_ca_file=directory / "other-ca.crt",
    )
    paths.ca_file.write_bytes(ca[0].public_bytes(serialization.Encoding.PEM))
    paths.other_ca_file.write_bytes(other[0].public_bytes(serialization.Encoding.PEM))
    write_pair(
        issue(ca, "etcd", hosts=hosts, not_after=server_not_after),
        paths.server_cert,
        paths.server_key,
    )
    write_pair(
        issue(ca, "etcd-inspector", server=False, not_after=client_not_after),
        paths.client_cert,
        paths.client_key,
    )
    return paths
