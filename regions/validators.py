"""Validation of how Ferry reaches a Docker engine: URL and client TLS files.

Used by the host service (so pages and the API give the same field errors):

* unix:///absolute/path
* tcp://host:port (port required), optionally with client TLS: the client
  certificate and key both present or both absent, PEM-parseable, and the
  key matching the certificate; a CA certificate may be given alone
* ssh://[user@]host[:port], optionally with an SSH private key (OpenSSH or
  PEM, unencrypted) and the server's public host key to pin; both apply only
  to ssh:// URLs
"""

import re
from urllib.parse import urlsplit

from cryptography import x509
from cryptography.exceptions import UnsupportedAlgorithm
from cryptography.hazmat.primitives import serialization
from django.core.exceptions import ValidationError
from django.utils.translation import gettext as _

from adapters import docker_ssh
from adapters.errors import HostConfigError

# RFC 1123 host names, or IPv4 dotted quads (which this pattern also allows).
_HOSTNAME = re.compile(
    r"^(?=.{1,253}$)([A-Za-z0-9]([A-Za-z0-9-]{0,61}[A-Za-z0-9])?)"
    r"(\.[A-Za-z0-9]([A-Za-z0-9-]{0,61}[A-Za-z0-9])?)*$"
)
_SSH_USER = re.compile(r"^[A-Za-z0-9._][A-Za-z0-9._-]{0,31}$")
EXAMPLES = "unix:///var/run/docker.sock, tcp://host:2376 or ssh://user@host"


def validate_docker_url(value: str) -> None:
    """Raise ValidationError (plain message) unless `value` is a usable URL."""
    value = (value or "").strip()
    if not value:
        raise ValidationError(_("Enter a Docker URL, e.g. %s.") % EXAMPLES)
    scheme = value.split("://", 1)[0].lower() if "://" in value else ""
    checks = {"unix": _check_unix, "tcp": _check_tcp, "ssh": _check_ssh}
    if scheme not in checks:
        raise ValidationError(
            _("Use a unix://, tcp:// or ssh:// URL (%(examples)s), not %(value)r.")
            % {"examples": EXAMPLES, "value": value[:80]}
        )
    checks[scheme](value)


def _check_unix(value: str) -> None:
    path = value[len("unix://") :]
    if not path.startswith("/") or path.startswith("//") or len(path) < 2:
        raise ValidationError(
            _(
                "A unix:// URL needs an absolute socket path: unix:///var/run/docker.sock."
            )
        )
    if any(ch in path for ch in "\0\n?#"):
        raise ValidationError(_("The socket path contains characters it cannot have."))


def _split(value: str):
    try:
        parts = urlsplit(value)
        port = parts.port  # raises ValueError when out of range / not a number
    except ValueError as exc:
        raise ValidationError(_("The port must be a number from 1 to 65535.")) from exc
    if parts.path not in ("", "/") or parts.query or parts.fragment:
        raise ValidationError(_("The URL must not have a path, query or fragment."))
    return parts, port


def _check_host(host: str | None) -> None:
    if not host:
        raise ValidationError(_("The URL needs a host name or address."))
    if ":" in host:  # IPv6 literal (urlsplit strips the brackets)
        return
    if not _HOSTNAME.match(host):
        raise ValidationError(_("%(host)r is not a valid host name.") % {"host": host})


def _check_tcp(value: str) -> None:
    parts, port = _split(value)
    if parts.username or parts.password:
        raise ValidationError(_("A tcp:// URL cannot carry a user name or password."))
    _check_host(parts.hostname)
    if port is None or port == 0:
        raise ValidationError(
            _("A tcp:// URL needs a port, e.g. tcp://%(host)s:2376.")
            % {"host": parts.hostname}
        )


def _check_ssh(value: str) -> None:
    parts, port = _split(value)
    if parts.password is not None:
        raise ValidationError(
            _(
                "Do not put a password in an ssh:// URL; "
                "use an SSH key on the Ferry host."
            )
        )
    if parts.username is not None and not _SSH_USER.match(parts.username):
        raise ValidationError(_("The SSH user name is not valid."))
    _check_host(parts.hostname)
    if port == 0:
        raise ValidationError(_("The port must be a number from 1 to 65535."))


def _load_cert(pem: str, field: str):
    try:
        return x509.load_pem_x509_certificate(pem.strip().encode())
    except ValueError as exc:
        raise ValidationError(
            {field: _("This is not a PEM certificate (-----BEGIN CERTIFICATE-----).")}
        ) from exc


def _load_key(pem: str, field: str):
    try:
        return serialization.load_pem_private_key(pem.strip().encode(), password=None)
    except TypeError as exc:
        raise ValidationError(
            {
                field: _(
                    "The key is encrypted with a passphrase; give an unencrypted key."
                )
            }
        ) from exc
    except (ValueError, UnsupportedAlgorithm) as exc:
        raise ValidationError(
            {
                field: _(
                    "This is not a PEM private key (-----BEGIN ... PRIVATE KEY-----)."
                )
            }
        ) from exc


def _public_bytes(public_key) -> bytes:
    return public_key.public_bytes(
        serialization.Encoding.DER, serialization.PublicFormat.SubjectPublicKeyInfo
    )


def validate_host_connection(
    docker_url: str,
    ca_cert: str = "",
    client_cert: str = "",
    client_key: str = "",
    ssh_private_key: str = "",
    ssh_known_host_key: str = "",
) -> None:
    """Check the URL, TLS files and SSH keys together; errors keyed by field."""
    try:
        validate_docker_url(docker_url)
    except ValidationError as exc:
        raise ValidationError({"docker_url": exc.messages}) from exc
    _check_ssh_keys(docker_url, ssh_private_key, ssh_known_host_key)
    ca_cert, client_cert, client_key = (
        (ca_cert or "").strip(),
        (client_cert or "").strip(),
        (client_key or "").strip(),
    )
    if not (ca_cert or client_cert or client_key):
        return
    if not docker_url.strip().lower().startswith("tcp://"):
        field = (
            "tls_client_key"
            if client_key
            else ("tls_client_cert" if client_cert else "tls_ca_cert")
        )
        raise ValidationError({field: _("TLS files apply only to tcp:// URLs.")})
    if ca_cert:
        _load_cert(ca_cert, "tls_ca_cert")
    if bool(client_cert) != bool(client_key):
        missing = "tls_client_key" if client_cert else "tls_client_cert"
        raise ValidationError(
            {missing: _("Give both the client certificate and its key, or neither.")}
        )
    if client_cert:
        cert = _load_cert(client_cert, "tls_client_cert")
        key = _load_key(client_key, "tls_client_key")
        if _public_bytes(cert.public_key()) != _public_bytes(key.public_key()):
            raise ValidationError(
                {
                    "tls_client_key": _(
                        "This key does not belong to the client certificate."
                    )
                }
            )


def _check_ssh_keys(docker_url: str, private_key: str, known_host_key: str) -> None:
    private_key, known_host_key = (private_key or "").strip(), (known_host_key or "")
    if not (private_key or known_host_key.strip()):
        return
    if not docker_url.strip().lower().startswith("ssh://"):
        field = "ssh_private_key" if private_key else "ssh_known_host_key"
        raise ValidationError({field: _("SSH keys apply only to ssh:// URLs.")})
    if private_key:
        try:
            docker_ssh.load_private_key(private_key)
        except docker_ssh.KeyEncrypted as exc:
            raise ValidationError(
                {
                    "ssh_private_key": _(
                        "The key is encrypted with a passphrase; "
                        "give an unencrypted key."
                    )
                }
            ) from exc
        except HostConfigError as exc:
            raise ValidationError(
                {
                    "ssh_private_key": _(
                        "This is not an SSH private key "
                        "(-----BEGIN OPENSSH PRIVATE KEY----- or PEM)."
                    )
                }
            ) from exc
    if known_host_key.strip():
        normalize_host_key(known_host_key)


def normalize_host_key(text: str) -> str:
    """The stored form of a pinned host key, "<type> <base64>" ("" stays "")."""
    if not (text or "").strip():
        return ""
    try:
        return docker_ssh.host_key_line(docker_ssh.parse_host_key(text))
    except HostConfigError as exc:
        raise ValidationError(
            {
                "ssh_known_host_key": _(
                    "Give the server's public host key as one line, e.g. "
                    "ssh-ed25519 AAAA... (from /etc/ssh/ssh_host_ed25519_key.pub "
                    "or ssh-keyscan)."
                )
            }
        ) from exc
