"""Certificates for a registry's TLS endpoint: check a pair, make a self-signed one.

Pure functions over PEM text (cryptography). A mismatch or unreadable PEM is a
`TLSError` naming the model field to blame, so services can turn it into a
field error as is.
"""

import datetime
import ipaddress
from dataclasses import dataclass

from cryptography import x509
from cryptography.hazmat.primitives import hashes, serialization
from cryptography.hazmat.primitives.asymmetric import ec
from cryptography.x509.oid import ExtendedKeyUsageOID, NameOID
from django.utils.translation import gettext as _

SELF_SIGNED_DAYS = 365
# Marks the pairs Ferry generated, so only those are ever regenerated.
SELF_SIGNED_ORG = "Ferry self-signed"


class TLSError(ValueError):
    def __init__(self, field: str, reason: str):
        super().__init__(reason)
        self.field = field
        self.reason = reason


@dataclass(frozen=True)
class CertInfo:
    expires_at: datetime.datetime
    names: tuple[str, ...]  # subject alternative names (DNS and IP)


def load_certificate(cert_pem: str) -> x509.Certificate:
    try:
        return x509.load_pem_x509_certificate(cert_pem.encode())
    except ValueError as exc:
        raise TLSError(
            "tls_certificate", _("not a PEM certificate (%s)") % exc
        ) from exc


def certificate_info(cert_pem: str) -> CertInfo:
    cert = load_certificate(cert_pem)
    try:
        san = cert.extensions.get_extension_for_class(x509.SubjectAlternativeName)
        names = tuple(
            str(name) for name in san.value.get_values_for_type(x509.DNSName)
        ) + tuple(str(ip) for ip in san.value.get_values_for_type(x509.IPAddress))
    except x509.ExtensionNotFound:
        names = ()
    return CertInfo(expires_at=cert.not_valid_after_utc, names=names)


def check_pair(cert_pem: str, key_pem: str) -> CertInfo:
    """The certificate's info if `key_pem` is its private key; TLSError if not."""
    cert = load_certificate(cert_pem)
    try:
        key = serialization.load_pem_private_key(key_pem.encode(), password=None)
    except (ValueError, TypeError) as exc:
        # TypeError: an encrypted key; nginx could not read it unattended either.
        raise TLSError(
            "tls_private_key", _("not an unencrypted PEM private key (%s)") % exc
        ) from exc
    if _public_der(key.public_key()) != _public_der(cert.public_key()):
        raise TLSError(
            "tls_private_key", _("the private key does not match the certificate")
        )
    return certificate_info(cert_pem)


def _public_der(public_key) -> bytes:
    return public_key.public_bytes(
        serialization.Encoding.DER, serialization.PublicFormat.SubjectPublicKeyInfo
    )


def generated_by_ferry(cert_pem: str) -> bool:
    cert = load_certificate(cert_pem)
    orgs = cert.subject.get_attributes_for_oid(NameOID.ORGANIZATION_NAME)
    return cert.issuer == cert.subject and any(a.value == SELF_SIGNED_ORG for a in orgs)


def days_left(cert_pem: str, now: datetime.datetime) -> int:
    """Whole days until the certificate expires (negative once expired)."""
    return (certificate_info(cert_pem).expires_at - now).days


def self_signed(
    names: list[str], now: datetime.datetime, days: int = SELF_SIGNED_DAYS
) -> tuple[str, str, datetime.datetime]:
    """A new (cert_pem, key_pem, expires_at) for these host names / IPs."""
    key = ec.generate_private_key(ec.SECP256R1())
    subject = x509.Name(
        [
            x509.NameAttribute(NameOID.ORGANIZATION_NAME, SELF_SIGNED_ORG),
            x509.NameAttribute(NameOID.COMMON_NAME, names[0]),
        ]
    )
    expires = now + datetime.timedelta(days=days)
    cert = (
        x509.CertificateBuilder()
        .subject_name(subject)
        .issuer_name(subject)
        .public_key(key.public_key())
        .serial_number(x509.random_serial_number())
        .not_valid_before(now - datetime.timedelta(minutes=5))
        .not_valid_after(expires)
        .add_extension(x509.SubjectAlternativeName(_general_names(names)), False)
        .add_extension(x509.BasicConstraints(ca=False, path_length=None), True)
        .add_extension(
            x509.ExtendedKeyUsage([ExtendedKeyUsageOID.SERVER_AUTH]), critical=False
        )
        .sign(key, hashes.SHA256())
    )
    key_pem = key.private_bytes(
        serialization.Encoding.PEM,
        serialization.PrivateFormat.PKCS8,
        serialization.NoEncryption(),
    )
    cert_pem = cert.public_bytes(serialization.Encoding.PEM)
    return cert_pem.decode(), key_pem.decode(), cert.not_valid_after_utc


def _general_names(names: list[str]) -> list[x509.GeneralName]:
    out: list[x509.GeneralName] = []
    for name in dict.fromkeys(names):  # unique, order kept
        try:
            out.append(x509.IPAddress(ipaddress.ip_address(name)))
        except ValueError:
            out.append(x509.DNSName(name))
    return out
