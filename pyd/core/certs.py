"""Certificates for remote management: CA, server and client certificates, CRLs, roles (layer: core).

Pure functions over the C{cryptography} library: they build and parse certificates and return PEM
bytes; they never touch files (the C{pyd tls} command does) nor the network.

B{Where the role travels.} A client certificate made by C{pyd tls client --role R} carries R in an
organizational unit of its subject, spelled C{pyd-role:R} (for example
C{OU=pyd-role:viewer,CN=alice}). OpenSSL shows it and can make one too
(C{-subj "/CN=alice/OU=pyd-role:viewer"}). A certificate without such an OU (like those made with
openssl as Docker's documentation shows) has no role; the daemon gives it C{tls-default-role}.
"""

from __future__ import annotations

import datetime
import ipaddress
from collections.abc import Iterable, Sequence

import attrs
from cryptography import x509
from cryptography.hazmat.primitives import hashes, serialization
from cryptography.hazmat.primitives.asymmetric import ec, rsa
from cryptography.x509.oid import ExtendedKeyUsageOID, NameOID

ROLES = ("viewer", "operator", "admin")
ROLE_PREFIX = "pyd-role:"
CA_DAYS = 5 * 365
SERVER_DAYS = 397
CLIENT_DAYS = 397
CRL_DAYS = 365

PrivateKey = ec.EllipticCurvePrivateKey | rsa.RSAPrivateKey


def _now() -> datetime.datetime:
    return datetime.datetime.now(datetime.UTC)


def new_key() -> ec.EllipticCurvePrivateKey:
    """A fresh P-256 key (fast to make; every Docker client speaks ECDSA)."""
    return ec.generate_private_key(ec.SECP256R1())


def key_pem(key: PrivateKey) -> bytes:
    """PEM (PKCS#8, unencrypted) of a private key."""
    return key.private_bytes(
        serialization.Encoding.PEM,
        serialization.PrivateFormat.PKCS8,
        serialization.NoEncryption(),
    )


def cert_pem(cert: x509.Certificate) -> bytes:
    """PEM of a certificate."""
    return cert.public_bytes(serialization.Encoding.PEM)


def load_key(pem: bytes) -> PrivateKey:
    """Parse a PEM private key (EC or RSA). @raise ValueError: not a usable key."""
    key = serialization.load_pem_private_key(pem, password=None)
    if not isinstance(key, ec.EllipticCurvePrivateKey | rsa.RSAPrivateKey):
        raise ValueError("unsupported key type")
    return key


def load_cert(pem: bytes) -> x509.Certificate:
    """Parse one PEM certificate. @raise ValueError: not a certificate."""
    return x509.load_pem_x509_certificate(pem)


def load_crl(pem: bytes) -> x509.CertificateRevocationList:
    """Parse a PEM CRL. @raise ValueError: not a CRL."""
    return x509.load_pem_x509_crl(pem)


@attrs.frozen
class Issued:
    """A new certificate and its key."""

    cert: x509.Certificate
    key: PrivateKey

    @property
    def cert_pem(self) -> bytes:
        """The certificate as PEM."""
        return cert_pem(self.cert)

    @property
    def key_pem(self) -> bytes:
        """The key as PEM."""
        return key_pem(self.key)


def _validity(
    builder: x509.CertificateBuilder, days: int, now: datetime.datetime | None
) -> x509.CertificateBuilder:
    start = (now or _now()) - datetime.timedelta(minutes=5)  # tolerate small clock skew
    return builder.not_valid_before(start).not_valid_after(start + datetime.timedelta(days=days))


def make_ca(
    common_name: str = "pyd CA", days: int = CA_DAYS, now: datetime.datetime | None = None
) -> Issued:
    """A self-signed CA that may sign server and client certificates (path length 0)."""
    key = new_key()
    name = x509.Name([x509.NameAttribute(NameOID.COMMON_NAME, common_name)])
    builder = (
        x509.CertificateBuilder()
        .subject_name(name)
        .issuer_name(name)
        .public_key(key.public_key())
        .serial_number(x509.random_serial_number())
        .add_extension(x509.BasicConstraints(ca=True, path_length=0), critical=True)
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
        .add_extension(x509.SubjectKeyIdentifier.from_public_key(key.public_key()), critical=False)
    )
    cert = _validity(builder, days, now).sign(key, hashes.SHA256())
    return Issued(cert, key)


def _leaf_usage() -> x509.KeyUsage:
    return x509.KeyUsage(
        digital_signature=True,
        content_commitment=False,
        key_encipherment=True,
        data_encipherment=False,
        key_agreement=False,
        key_cert_sign=False,
        crl_sign=False,
        encipher_only=False,
        decipher_only=False,
    )


def _leaf(
    ca: Issued,
    subject: x509.Name,
    eku: x509.ObjectIdentifier,
    days: int,
    now: datetime.datetime | None,
    sans: Sequence[x509.GeneralName] = (),
) -> Issued:
    key = new_key()
    builder = (
        x509.CertificateBuilder()
        .subject_name(subject)
        .issuer_name(ca.cert.subject)
        .public_key(key.public_key())
        .serial_number(x509.random_serial_number())
        .add_extension(x509.BasicConstraints(ca=False, path_length=None), critical=True)
        .add_extension(_leaf_usage(), critical=True)
        .add_extension(x509.ExtendedKeyUsage([eku]), critical=False)
        .add_extension(
            x509.AuthorityKeyIdentifier.from_issuer_public_key(ca.key.public_key()), critical=False
        )
    )
    if sans:
        builder = builder.add_extension(x509.SubjectAlternativeName(list(sans)), critical=False)
    cert = _validity(builder, days, now).sign(ca.key, hashes.SHA256())
    return Issued(cert, key)


def make_server(
    ca: Issued,
    hosts: Iterable[str],
    ips: Iterable[str],
    days: int = SERVER_DAYS,
    now: datetime.datetime | None = None,
) -> Issued:
    """A server certificate whose SANs are C{hosts} (DNS names) and C{ips}.

    @raise ValueError: no name at all, or a bad IP address.
    """
    names = list(hosts)
    addrs = [ipaddress.ip_address(i) for i in ips]
    if not names and not addrs:
        raise ValueError("a server certificate needs at least one --host or --ip")
    sans: list[x509.GeneralName] = [x509.DNSName(n) for n in names]
    sans += [x509.IPAddress(a) for a in addrs]
    cn = names[0] if names else str(addrs[0])
    subject = x509.Name([x509.NameAttribute(NameOID.COMMON_NAME, cn)])
    return _leaf(ca, subject, ExtendedKeyUsageOID.SERVER_AUTH, days, now, sans)


def make_client(
    ca: Issued,
    name: str,
    role: str | None,
    days: int = CLIENT_DAYS,
    now: datetime.datetime | None = None,
) -> Issued:
    """A client certificate C{CN=name}, carrying C{role} (see the module docstring).

    @raise ValueError: unknown role.
    """
    attrs_: list[x509.NameAttribute[str]] = [x509.NameAttribute(NameOID.COMMON_NAME, name)]
    if role is not None:
        if role not in ROLES:
            raise ValueError(f"unknown role {role!r} (use one of {', '.join(ROLES)})")
        attrs_.append(x509.NameAttribute(NameOID.ORGANIZATIONAL_UNIT_NAME, ROLE_PREFIX + role))
    return _leaf(ca, x509.Name(attrs_), ExtendedKeyUsageOID.CLIENT_AUTH, days, now)


def make_crl(
    ca: Issued,
    revoked: Iterable[tuple[int, datetime.datetime]],
    days: int = CRL_DAYS,
    now: datetime.datetime | None = None,
) -> x509.CertificateRevocationList:
    """A CRL signed by C{ca} listing C{(serial, revocation time)} pairs."""
    t = now or _now()
    builder = (
        x509.CertificateRevocationListBuilder()
        .issuer_name(ca.cert.subject)
        .last_update(t - datetime.timedelta(minutes=5))
        .next_update(t + datetime.timedelta(days=days))
    )
    for serial, when in revoked:
        entry = x509.RevokedCertificateBuilder().serial_number(serial).revocation_date(when).build()
        builder = builder.add_revoked_certificate(entry)
    return builder.sign(ca.key, hashes.SHA256())


def crl_pem(crl: x509.CertificateRevocationList) -> bytes:
    """PEM of a CRL."""
    return crl.public_bytes(serialization.Encoding.PEM)


def role_of(cert: x509.Certificate) -> str | None:
    """The role a certificate carries, or None (an unknown role value counts as none).

    When several role OUs are present the least powerful one wins.
    """
    found = [
        str(a.value)[len(ROLE_PREFIX) :]
        for a in cert.subject.get_attributes_for_oid(NameOID.ORGANIZATIONAL_UNIT_NAME)
        if str(a.value).startswith(ROLE_PREFIX)
    ]
    known = [r for r in found if r in ROLES]
    if not known:
        return None
    return min(known, key=ROLES.index)


def subject_of(cert: x509.Certificate) -> str:
    """The subject as an RFC 4514 string (e.g. C{OU=pyd-role:viewer,CN=alice})."""
    return cert.subject.rfc4514_string()


def common_name(cert: x509.Certificate) -> str:
    """The subject's CN, or '' if it has none."""
    cns = cert.subject.get_attributes_for_oid(NameOID.COMMON_NAME)
    return str(cns[0].value) if cns else ""


def sans_of(cert: x509.Certificate) -> list[str]:
    """The DNS and IP subject alternative names, as text."""
    try:
        ext = cert.extensions.get_extension_for_class(x509.SubjectAlternativeName).value
    except x509.ExtensionNotFound:
        return []
    out = [f"DNS:{n}" for n in ext.get_values_for_type(x509.DNSName)]
    out += [f"IP:{a}" for a in ext.get_values_for_type(x509.IPAddress)]
    return out


def describe(cert: x509.Certificate, now: datetime.datetime | None = None) -> dict[str, str]:
    """What C{pyd tls show} prints for one certificate."""
    t = now or _now()
    left = cert.not_valid_after_utc - t
    try:
        is_ca = cert.extensions.get_extension_for_class(x509.BasicConstraints).value.ca
    except x509.ExtensionNotFound:
        is_ca = False
    return {
        "subject": subject_of(cert),
        "issuer": cert.issuer.rfc4514_string(),
        "serial": format(cert.serial_number, "x"),
        "kind": "CA" if is_ca else ("server" if sans_of(cert) else "client"),
        "role": role_of(cert) or "",
        "sans": ",".join(sans_of(cert)),
        "not_before": cert.not_valid_before_utc.strftime("%Y-%m-%d %H:%M UTC"),
        "not_after": cert.not_valid_after_utc.strftime("%Y-%m-%d %H:%M UTC"),
        "expires_in": f"{left.days}d" if left.total_seconds() > 0 else "EXPIRED",
    }
