"""The stack's PKI, generated with ``cryptography``: what a kubeadm cluster has, on loopback.

* a cluster CA signing the apiserver serving cert (SANs 127.0.0.1, localhost) and the admin
  client cert (``O=system:masters``);
* a separate front-proxy CA and the ``front-proxy-client`` cert the aggregator presents to
  extension API servers (the Kubernetes docs warn against reusing the client CA);
* the service-account signing key pair.
"""

from __future__ import annotations

import datetime as dt
import ipaddress
from dataclasses import dataclass
from pathlib import Path

from cryptography import x509
from cryptography.hazmat.primitives import hashes, serialization
from cryptography.hazmat.primitives.asymmetric import ec
from cryptography.x509.oid import ExtendedKeyUsageOID, NameOID

_VALIDITY = dt.timedelta(days=30)


@dataclass(frozen=True)
class Pki:
    """Paths of every file the stack's components need."""

    dir: Path

    def path(self, name: str) -> Path:
        """A file of the PKI by name, e.g. ``ca.crt`` or ``front-proxy-client.key``."""
        return self.dir / name

    ca_crt = property(lambda self: self.path("ca.crt"))
    apiserver_crt = property(lambda self: self.path("apiserver.crt"))
    apiserver_key = property(lambda self: self.path("apiserver.key"))
    admin_crt = property(lambda self: self.path("admin.crt"))
    admin_key = property(lambda self: self.path("admin.key"))
    front_proxy_ca_crt = property(lambda self: self.path("front-proxy-ca.crt"))
    front_proxy_client_crt = property(lambda self: self.path("front-proxy-client.crt"))
    front_proxy_client_key = property(lambda self: self.path("front-proxy-client.key"))
    sa_key = property(lambda self: self.path("sa.key"))
    sa_pub = property(lambda self: self.path("sa.pub"))


def _key() -> ec.EllipticCurvePrivateKey:
    return ec.generate_private_key(ec.SECP256R1())


def _write_key(path: Path, key: ec.EllipticCurvePrivateKey) -> None:
    path.write_bytes(
        key.private_bytes(
            serialization.Encoding.PEM,
            serialization.PrivateFormat.PKCS8,
            serialization.NoEncryption(),
        )
    )
    path.chmod(0o600)


def _name(cn: str, org: str | None = None) -> x509.Name:
    attrs = [x509.NameAttribute(NameOID.COMMON_NAME, cn)]
    if org:
        attrs.append(x509.NameAttribute(NameOID.ORGANIZATION_NAME, org))
    return x509.Name(attrs)


def _ca(path_stem: Path, cn: str) -> tuple[x509.Certificate, ec.EllipticCurvePrivateKey]:
    key = _key()
    now = dt.datetime.now(dt.UTC)
    cert = (
        x509.CertificateBuilder()
        .subject_name(_name(cn))
        .issuer_name(_name(cn))
        .public_key(key.public_key())
        .serial_number(x509.random_serial_number())
        .not_valid_before(now - dt.timedelta(minutes=5))
        .not_valid_after(now + _VALIDITY)
        .add_extension(x509.BasicConstraints(ca=True, path_length=None), critical=True)
        .add_extension(
            x509.KeyUsage(
                digital_signature=True,
                key_cert_sign=True,
                crl_sign=True,
                content_commitment=False,
                key_encipherment=False,
                data_encipherment=False,
                key_agreement=False,
                encipher_only=False,
                decipher_only=False,
            ),
            critical=True,
        )
        .sign(key, hashes.SHA256())
    )
    path_stem.with_suffix(".crt").write_bytes(cert.public_bytes(serialization.Encoding.PEM))
    _write_key(path_stem.with_suffix(".key"), key)
    return cert, key


def issue_cert(
    stem: Path,
    ca: tuple[x509.Certificate, ec.EllipticCurvePrivateKey],
    cn: str,
    *,
    org: str | None = None,
    server: bool = False,
    client: bool = False,
    dns: tuple[str, ...] = (),
    ips: tuple[str, ...] = (),
) -> None:
    """Write ``stem.crt``/``stem.key``: a leaf cert signed by ``ca``."""
    ca_cert, ca_key = ca
    key = _key()
    now = dt.datetime.now(dt.UTC)
    usages = []
    if server:
        usages.append(ExtendedKeyUsageOID.SERVER_AUTH)
    if client:
        usages.append(ExtendedKeyUsageOID.CLIENT_AUTH)
    builder = (
        x509.CertificateBuilder()
        .subject_name(_name(cn, org))
        .issuer_name(ca_cert.subject)
        .public_key(key.public_key())
        .serial_number(x509.random_serial_number())
        .not_valid_before(now - dt.timedelta(minutes=5))
        .not_valid_after(now + _VALIDITY)
        .add_extension(x509.BasicConstraints(ca=False, path_length=None), critical=True)
        .add_extension(x509.ExtendedKeyUsage(usages), critical=False)
    )
    sans: list[x509.GeneralName] = [x509.DNSName(d) for d in dns]
    sans += [x509.IPAddress(ipaddress.ip_address(i)) for i in ips]
    if sans:
        builder = builder.add_extension(x509.SubjectAlternativeName(sans), critical=False)
    cert = builder.sign(ca_key, hashes.SHA256())
    stem.with_suffix(".crt").write_bytes(cert.public_bytes(serialization.Encoding.PEM))
    _write_key(stem.with_suffix(".key"), key)


def load_ca(stem: Path) -> tuple[x509.Certificate, ec.EllipticCurvePrivateKey]:
    cert = x509.load_pem_x509_certificate(stem.with_suffix(".crt").read_bytes())
    key = serialization.load_pem_private_key(stem.with_suffix(".key").read_bytes(), None)
    assert isinstance(key, ec.EllipticCurvePrivateKey)
    return cert, key


def generate(directory: Path) -> Pki:
    """Create the whole PKI in ``directory`` (which must be empty or absent)."""
    directory.mkdir(parents=True, exist_ok=True)
    ca = _ca(directory / "ca", "llm-autoscaler-local-ca")
    issue_cert(
        directory / "apiserver",
        ca,
        "kube-apiserver",
        server=True,
        dns=("localhost", "kubernetes", "kubernetes.default", "kubernetes.default.svc"),
        ips=("127.0.0.1",),
    )
    issue_cert(directory / "admin", ca, "admin", org="system:masters", client=True)
    fp = _ca(directory / "front-proxy-ca", "llm-autoscaler-front-proxy-ca")
    issue_cert(directory / "front-proxy-client", fp, "front-proxy-client", client=True)
    sa = _key()
    _write_key(directory / "sa.key", sa)
    (directory / "sa.pub").write_bytes(
        sa.public_key().public_bytes(
            serialization.Encoding.PEM, serialization.PublicFormat.SubjectPublicKeyInfo
        )
    )
    return Pki(directory)
