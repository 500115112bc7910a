"""Checks of a registry row before it is saved or applied; each names its field.

`validate_registry(registry)` raises one Django ValidationError holding every
problem as {field: [reason]}, which the API turns into a 400 naming the fields
and forms show next to the inputs. Only static checks live here (no network);
storage, host and port-on-host checks run at apply time (services).
"""

import ipaddress
import re
from urllib.parse import urlsplit

from django.conf import settings
from django.core.exceptions import ValidationError
from django.utils.translation import gettext as _

from . import ports, tls
from .spec import SUPPORTED_MAJORS, is_loopback, tag_major

# distribution/reference grammar: [domain[:port]/]path[:tag][@digest]
_COMPONENT = r"[a-z0-9]+(?:(?:[._]|__|-+)[a-z0-9]+)*"
# A first component is a domain only with a dot, a port, or "localhost".
_DOMAIN = (
    r"(?:(?:localhost|[a-zA-Z0-9-]+(?:\.[a-zA-Z0-9-]+)+"
    r"|[a-zA-Z0-9-]+(?:\.[a-zA-Z0-9-]+)*:\d+)(?::\d+)?/)"
)
_REFERENCE = re.compile(
    rf"^{_DOMAIN}?{_COMPONENT}(?:/{_COMPONENT})*"
    r"(?::[\w][\w.-]{0,127})?(?:@sha256:[a-f0-9]{64})?$"
)
_HOSTNAME = re.compile(r"^[a-zA-Z0-9]([a-zA-Z0-9-]*[a-zA-Z0-9])?(\.[a-zA-Z0-9-]+)*$")


def image_reference_error(reference: str) -> str | None:
    """Why `reference` is not an image reference like ns/name:tag, or None."""
    if not reference or not reference.strip():
        return _("an image reference is required, like ns/name:tag")
    if len(reference) > 255 or not _REFERENCE.match(reference):
        return _("%(ref)r is not an image reference like ns/name:tag") % {
            "ref": reference
        }
    return None


def upstream_url_error(url: str) -> str | None:
    """Why `url` cannot be a registry's upstream (http(s)://host[:port])."""
    try:
        parts = urlsplit(url.strip())
        port = parts.port  # raises on a non-numeric port
    except ValueError as exc:
        return _("malformed URL (%s)") % exc
    if parts.scheme not in ("http", "https"):
        return _("must start with http:// or https://")
    if not parts.hostname:
        return _("has no host name")
    if parts.username or parts.password:
        return _("must not contain credentials; use the upstream username/password")
    if parts.query or parts.fragment:
        return _("must not have a query or fragment")
    if port == 0:
        return _("has an invalid port")
    if " " in url.strip():
        return _("must not contain spaces")
    return None


def _listen_errors(registry) -> dict[str, str]:
    address = registry.listen_address.strip()
    try:
        ipaddress.ip_address(address)
    except ValueError:
        return {"listen_address": _("must be an IP address such as 127.0.0.1")}
    exposed = registry.kind == "private" and not is_loopback(address)
    if exposed and not registry.require_auth:
        reason = _(
            "a private registry listening beyond loopback (%(addr)s) must "
            "require authentication: keep it on 127.0.0.1 or turn on require_auth"
        )
        return {"listen_address": reason % {"addr": address}}
    return {}


def _port_errors(registry) -> dict[str, str]:
    errors: dict[str, str] = {}
    seen: dict[int, str] = {}
    for field, (_address, port) in ports.binds(registry).items():
        if not 1 <= port <= 65535:
            errors[field] = _("must be between 1 and 65535")
        elif port in seen:
            errors[field] = _("port %(port)s is also the %(other)s") % {
                "port": port,
                "other": seen[port].replace("_", " "),
            }
        seen.setdefault(port, field)
    taken = ports.taken_by_others(registry)
    for port, field in seen.items():
        if port in taken and field not in errors:
            errors[field] = _(
                "port %(port)s is already used by registry %(other)s on this host"
            ) % {"port": port, "other": taken[port]}
    return errors


def _tls_errors(registry) -> dict[str, str]:
    cert, key = registry.tls_certificate.strip(), registry.tls_private_key.strip()
    if not cert and not key:
        return {}  # a self-signed pair is generated at apply time
    if not cert:
        return {"tls_certificate": _("a certificate is needed with the private key")}
    if not key:
        return {"tls_private_key": _("the private key of the certificate is needed")}
    try:
        tls.check_pair(cert, key)
    except tls.TLSError as exc:
        return {exc.field: exc.reason}
    return {}


def _mirror_errors(registry) -> dict[str, str]:
    if registry.kind != "mirror":
        return {}
    if not registry.upstream_url:
        return {"upstream_url": _("a mirror needs the upstream registry's URL")}
    reason = upstream_url_error(registry.upstream_url)
    return {"upstream_url": reason} if reason else {}


def _relation_errors(registry) -> dict[str, str]:
    errors = {}
    region_id = registry.region_id
    if registry.host_id and registry.host.region_id != region_id:
        errors["host"] = _("the Docker host is in another region")
    if registry.store_id and registry.store.region_id != region_id:
        errors["store"] = _("the object store is in another region")
    if registry.public_hostname and not _HOSTNAME.match(registry.public_hostname):
        errors["public_hostname"] = _("must be a host name such as hub.example.com")
    image = registry.image or settings.FERRY_REGISTRY_IMAGE
    reason = image_reference_error(image) if registry.image else None
    if reason is None:
        reason = registry_major_error(image)
    if reason:
        errors["image"] = reason
    return errors


def registry_major_error(image: str) -> str | None:
    """Why the tag of `image` does not tell its registry major (None: it does).

    The major decides the files (registry 3 reads /etc/distribution, has no
    oss driver), and the page shows them without asking the host, so it must
    be known from the reference itself.
    """
    major = tag_major(image)
    if major is None:
        return _(
            "%(ref)s does not say whether it is registry 2 or 3: use a tag that "
            "starts with the major version, such as registry:2 or registry:3 "
            "(with a digest: registry:3@sha256:...)"
        ) % {"ref": image}
    if major not in SUPPORTED_MAJORS:
        return _("registry %(major)s is not supported: use a registry 2 or 3 image") % {
            "major": major
        }
    return None


def validate_registry(registry) -> None:
    """Raise ValidationError({field: [reason]}) for every static problem."""
    errors: dict[str, str] = {}
    for check in (
        _relation_errors,
        _mirror_errors,
        _listen_errors,
        _port_errors,
        _tls_errors,
    ):
        for field, reason in check(registry).items():
            errors.setdefault(field, reason)
    if errors:
        raise ValidationError({field: [reason] for field, reason in errors.items()})
