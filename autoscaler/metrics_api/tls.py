"""The serving certificate and the TLS context that verifies the aggregator's client cert.

The context *requests* a client certificate and verifies one if given
(``CERT_OPTIONAL``) against the front-proxy CA only: a certificate that verifies is the
aggregator's, and :class:`~autoscaler.metrics_api.auth.RequestHeaderAuthenticator` checks its
name; a client without a certificate may still present a bearer token. (Certificates of the
cluster's ``client-ca-file`` are not accepted as user credentials; clients other than the
aggregator use tokens.)

Without a configured certificate a self-signed one is generated at start-up for the given
host names; register it as the APIService's ``caBundle`` (:func:`self_signed` writes it).
"""

from __future__ import annotations

import datetime as dt
import ipaddress
import ssl
import tempfile
from dataclasses import dataclass
from pathlib import Path

from cryptography import x509
from cryptography.hazmat.primitives import hashes, serialization
from cryptography.hazmat.primitives.asymmetric import ec
from cryptography.x509.oid import ExtendedKeyUsageOID, NameOID

__all__ = ["ServingCert", "self_signed", "server_context"]


@dataclass(frozen=True, slots=True)
class ServingCert:
    cert_file: Path
    key_file: Path

    def pem(self) -> bytes:
        """The certificate (the ``caBundle`` of a self-signed one)."""
        return self.cert_file.read_bytes()


def self_signed(
    hosts: tuple[str, ...],
    directory: Path | None = None,
    *,
    days: int = 365,
) -> ServingCert:
    """Write a self-signed serving certificate for ``hosts`` (DNS names or IPs) and its key.

    The certificate is its own CA (``caBundle`` = the certificate). The key file is 0600.
    """
    if not hosts:
        raise ValueError("a serving certificate needs at least one host name")
    directory = directory or Path(tempfile.mkdtemp(prefix="llm-autoscaler-tls-"))
    directory.mkdir(parents=True, exist_ok=True)
    key = ec.generate_private_key(ec.SECP256R1())
    name = x509.Name([x509.NameAttribute(NameOID.COMMON_NAME, hosts[0])])
    sans: list[x509.GeneralName] = []
    for h in hosts:
        try:
            sans.append(x509.IPAddress(ipaddress.ip_address(h)))
        except ValueError:
            sans.append(x509.DNSName(h))
    now = dt.datetime.now(dt.UTC)
    ski = x509.SubjectKeyIdentifier.from_public_key(key.public_key())
    cert = (
        x509.CertificateBuilder()
        .subject_name(name)
        .issuer_name(name)
        .public_key(key.public_key())
        .serial_number(x509.random_serial_number())
        .not_valid_before(now - dt.timedelta(minutes=5))
        .not_valid_after(now + dt.timedelta(days=days))
        .add_extension(x509.BasicConstraints(ca=True, path_length=0), critical=True)
        .add_extension(
            x509.KeyUsage(
                digital_signature=True,
                key_cert_sign=True,
                key_encipherment=False,
                content_commitment=False,
                data_encipherment=False,
                key_agreement=False,
                crl_sign=False,
                encipher_only=False,
                decipher_only=False,
            ),
            critical=True,
        )
        .add_extension(x509.ExtendedKeyUsage([ExtendedKeyUsageOID.SERVER_AUTH]), critical=False)
        .add_extension(x509.SubjectAlternativeName(sans), critical=False)
        .add_extension(ski, critical=False)
        .add_extension(
            x509.AuthorityKeyIdentifier.from_issuer_subject_key_identifier(ski), critical=False
        )
        .sign(key, hashes.SHA256())
    )
    out = ServingCert(directory / "tls.crt", directory / "tls.key")
    out.cert_file.write_bytes(cert.public_bytes(serialization.Encoding.PEM))
    out.key_file.touch(mode=0o600)
    out.key_file.write_bytes(
        key.private_bytes(
            serialization.Encoding.PEM,
            serialization.PrivateFormat.PKCS8,
            serialization.NoEncryption(),
        )
    )
    return out


def server_context(cert: ServingCert, client_ca: str | None = None) -> ssl.SSLContext:
    """A TLS 1.2+ server context; with ``client_ca`` (PEM), client certificates signed by it
    are requested and verified, and a client without one is still let through."""
    ctx = ssl.SSLContext(ssl.PROTOCOL_TLS_SERVER)
    ctx.minimum_version = ssl.TLSVersion.TLSv1_2
    ctx.load_cert_chain(str(cert.cert_file), str(cert.key_file))
    if client_ca:
        ctx.load_verify_locations(cadata=client_ca)
        ctx.verify_mode = ssl.CERT_OPTIONAL
    return ctx
