"""Prewarm: pull an image through a region's mirror before hosts need it.

The mirror stores what it proxies, so pulling the manifest and every blob once
(through its nginx endpoint, as a client would) leaves the image in the
region's object storage; the next pull by a host is then a full hit. Registry
2.x stores a proxied blob asynchronously, so when Ferry can see the store it
also waits until every blob has landed there.
"""

from __future__ import annotations

import re
import time
from dataclasses import dataclass
from urllib.parse import urlsplit

from django.conf import settings
from django.core.exceptions import ValidationError
from django.utils.translation import gettext as _

from adapters import object_storage
from adapters.errors import AdapterError, ImageNotFound, RegistryAuthError
from adapters.registry_api import Manifest, RegistryClient
from controlplane import audit

DEFAULT_PLATFORM = "linux/amd64"
_COMPONENT = r"[a-z0-9]+(?:(?:[._]|__|-+)[a-z0-9]+)*"
_REFERENCE = re.compile(
    rf"^(?P<repository>{_COMPONENT}(?:/{_COMPONENT})*)"
    r"(?::(?P<tag>[\w][\w.-]{0,127}))?"
    r"(?:@(?P<digest>[a-z0-9]+(?:[+._-][a-z0-9]+)*:[a-f0-9]{32,}))?$"
)


@dataclass(frozen=True)
class ImageReference:
    repository: str
    tag: str = ""
    digest: str = ""

    @property
    def reference(self) -> str:
        """What to GET the manifest by: the digest when given, else the tag."""
        return self.digest or self.tag or "latest"

    def __str__(self) -> str:
        text = self.repository + (f":{self.tag}" if self.tag else "")
        return text + (f"@{self.digest}" if self.digest else "")


@dataclass(frozen=True)
class PrewarmResult:
    image: str
    manifest_digest: str
    blobs: int
    bytes: int
    seconds: float
    # True: every blob was seen in the region's storage; None: storage not
    # visible from Ferry (a filesystem on a remote host); False: not in time.
    stored: bool | None = None


def _looks_like_host(component: str) -> bool:
    return "." in component or ":" in component or component == "localhost"


def parse_reference(text: str, known_hosts: tuple[str, ...] = ()) -> ImageReference:
    """`[host/]repo[:tag][@digest]` -> ImageReference, or a ValidationError on image.

    A leading host is accepted only if it is one of `known_hosts` (the mirror's
    upstream or its own endpoint): a mirror can only serve its upstream.
    """
    text = (text or "").strip()
    if not text:
        raise ValidationError({"image": _("Give an image reference.")})
    first, _sep, rest = text.partition("/")
    if rest and _looks_like_host(first):
        if first not in known_hosts:
            raise ValidationError(
                {
                    "image": _("%(host)s is not this mirror's upstream.")
                    % {"host": first}
                }
            )
        text = rest
    found = _REFERENCE.match(text)
    if not found or len(found["repository"]) > 255:
        raise ValidationError(
            {
                "image": _(
                    "Not an image reference: use repository[:tag][@sha256:digest], "
                    "lower-case, e.g. team/app:1.0."
                )
            }
        )
    return ImageReference(
        found["repository"], found["tag"] or "", found["digest"] or ""
    )


def mirror_endpoint(registry) -> str:
    """https://host:port of the mirror's nginx as Ferry reaches it (the same
    address the health check uses)."""
    from .health import endpoint_url  # health imports the docker adapters

    return endpoint_url(registry)


def known_hosts(registry) -> tuple[str, ...]:
    hosts = [urlsplit(registry.upstream_url).netloc]
    if registry.public_hostname:
        hosts.append(registry.public_hostname)
        hosts.append(f"{registry.public_hostname}:{registry.https_port}")
    return tuple(h for h in hosts if h)


def mirror_client(registry) -> RegistryClient:
    """A client for the mirror's nginx with one of its htpasswd users."""
    if registry.kind != "mirror":
        raise ValidationError({"registry": _("Only a mirror can be prewarmed.")})
    if not registry.https_port:
        raise ValidationError({"registry": _("The mirror has no HTTPS port yet.")})
    user = registry.users.order_by("username").first()
    if registry.require_auth and user is None:
        raise ValidationError(
            {"registry": _("The mirror needs at least one user to pull with.")}
        )
    return RegistryClient(
        mirror_endpoint(registry),
        username=user.username if user else "",
        password=user.password if user else "",
        ca_pem=registry.tls_certificate,
    )


def _image_manifests(client, ref: ImageReference, platform: str) -> list[Manifest]:
    """1. GET the manifest; 2. for an index, the children for `platform`
    (all real platforms if none matches); 3. return the image manifests."""
    top = client.manifest(ref.repository, ref.reference)
    if top is None:
        raise ImageNotFound(f"{ref} not found through the mirror")
    if not top.is_index:
        return [top]
    children = [c for c in top.children if c.platform == platform] or [
        c for c in top.children if c.platform and not c.platform.startswith("unknown")
    ]
    manifests = []
    for child in children:
        manifest = client.manifest(ref.repository, child.digest)
        if manifest is None:
            raise ImageNotFound(f"{ref}: platform manifest {child.digest} missing")
        manifests.append(manifest)
    return [top, *manifests]


def _wait_stored(store, sizes: dict[str, int], deadline: float) -> bool | None:
    """Poll the store until every blob is there with its size (or deadline)."""
    if not object_storage.can_inspect(store):
        return None
    missing = dict(sizes)
    while True:
        for digest, size in list(missing.items()):
            try:
                stored = object_storage.stored_blob_size(store, digest)
            except AdapterError:  # e.g. an internal endpoint Ferry cannot reach
                return None
            if stored == size:
                del missing[digest]
        if not missing or time.monotonic() >= deadline:
            return not missing
        time.sleep(0.5)


def _pull(registry, ref: ImageReference, platform: str) -> PrewarmResult:
    started = time.monotonic()
    with mirror_client(registry) as client:
        manifests = _image_manifests(client, ref, platform)
        sizes: dict[str, int] = {}
        for manifest in manifests:
            for blob in manifest.blobs:
                if blob.digest not in sizes:
                    sizes[blob.digest] = client.fetch_blob(ref.repository, blob.digest)
    wait = float(getattr(settings, "FERRY_PREWARM_STORE_WAIT", 60.0))
    stored = _wait_stored(registry.store, sizes, time.monotonic() + wait)
    return PrewarmResult(
        image=str(ref),
        manifest_digest=manifests[0].digest,
        blobs=len(sizes),
        bytes=sum(sizes.values()),
        seconds=round(time.monotonic() - started, 3),
        stored=stored,
    )


def prewarm_image(
    registry, reference: str, actor=None, via: str = "api", platform: str = ""
) -> PrewarmResult:
    """Pull `reference` (manifest and every blob) through the mirror; audited.

    Bad input and expected failures are ValidationErrors naming the field
    (image: malformed or not found; registry: not a usable mirror).
    """
    ref = parse_reference(reference, known_hosts(registry))
    try:
        result = _pull(registry, ref, platform or DEFAULT_PLATFORM)
    except ImageNotFound as exc:
        _audit_failure(actor, registry, ref, exc.reason, via)
        raise ValidationError({"image": exc.reason}) from exc
    except RegistryAuthError as exc:
        _audit_failure(actor, registry, ref, exc.reason, via)
        raise ValidationError(
            {"registry": _("The mirror refused Ferry's credentials: %s") % exc.reason}
        ) from exc
    except AdapterError as exc:
        _audit_failure(actor, registry, ref, exc.reason, via)
        raise ValidationError({"registry": exc.reason}) from exc
    audit.record(
        actor,
        "prewarm",
        registry,
        {
            "image": str(ref),
            "digest": result.manifest_digest,
            "blobs": result.blobs,
            "bytes": result.bytes,
            "seconds": result.seconds,
            "stored": result.stored,
        },
        via,
    )
    return result


def _audit_failure(actor, registry, ref: ImageReference, reason: str, via: str):
    audit.record(
        actor, "prewarm_failed", registry, {"image": str(ref), "error": reason}, via
    )
