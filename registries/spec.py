"""A registry row (and its store and users) as plain values for rendering.

Rendering and planning are pure functions of these dataclasses; only
`registry_spec()` touches the database and settings. With `masked=True`
every secret becomes MASK, so the page shows the files exactly as deployed
except for the secrets themselves.
"""

import re
from dataclasses import dataclass

from django.conf import settings
from django.urls import NoReverseMatch, reverse

MASK = "********"
LOOPBACK_V4 = "127.0.0.1"
SUPPORTED_MAJORS = (2, 3)
# A version that starts with its major: 2, 2.8.3, 3.0.0-rc.1, v3, 2-alpine.
_MAJOR = re.compile(r"^v?(\d+)(?:[.\-_+]|$)")
VERSION_LABEL = "org.opencontainers.image.version"


@dataclass(frozen=True)
class StoreSpec:
    kind: str  # oss | s3 | filesystem
    endpoint: str = ""
    internal: bool = False
    bucket: str = ""
    region: str = ""
    root_directory: str = ""
    access_key: str = ""
    secret_key: str = ""


@dataclass(frozen=True)
class UserSpec:
    username: str
    password: str


@dataclass(frozen=True)
class RegistrySpec:
    id: int
    name: str  # "region/name", for comments and compose
    kind: str  # mirror | private
    image: str
    nginx_image: str
    store: StoreSpec
    port: int
    debug_port: int
    listen_address: str = LOOPBACK_V4
    https_port: int | None = None
    gateway_port: int | None = None
    public_hostname: str = ""
    upstream_url: str = ""
    upstream_username: str = ""
    upstream_password: str = ""
    remote_url: str = ""  # what proxy.remoteurl points at (gateway or upstream)
    http_secret: str = ""
    require_auth: bool = True
    notify_url: str = ""
    notify_token: str = ""
    users: tuple[UserSpec, ...] = ()
    tls_certificate: str = ""
    tls_private_key: str = ""
    masked: bool = False
    log_max_size: str = "50m"  # docker json-file limits of every container
    log_max_files: int = 3

    @property
    def is_mirror(self) -> bool:
        return self.kind == "mirror"

    @property
    def registry_major(self) -> int:
        return image_major(self.image)

    @property
    def exposed(self) -> bool:
        """A private registry that listens beyond loopback (then auth + TLS)."""
        return not self.is_mirror and not is_loopback(self.listen_address)


def is_loopback(address: str) -> bool:
    return address in ("127.0.0.1", "::1", "localhost") or address.startswith("127.")


def image_tag(image: str) -> str:
    """The tag of an image reference ('' when none); digests are ignored."""
    name = image.split("@", 1)[0]
    last = name.rsplit("/", 1)[-1]
    return last.partition(":")[2]


def tag_major(image: str) -> int | None:
    """The major version the image's tag states (registry:2.8.3 -> 2), or None
    (no tag, "latest", a bare digest, a tag that is not a version)."""
    found = _MAJOR.match(image_tag(image))
    return int(found[1]) if found else None


def image_major(image: str) -> int:
    """The major that rendering follows: 3 for registry 3 tags, else 2.

    Applies refuse references whose tag does not say (validators), so 2 is
    only ever a guess for rows that cannot be applied as they are.
    """
    major = tag_major(image)
    return 3 if major is not None and major >= 3 else 2


def evidence_major(labels: dict, command: list[str]) -> tuple[int, str] | None:
    """What an image's own config says it is: (major, the evidence), or None.

    The config path its command passes is the surest sign (registry 3 reads
    /etc/distribution/config.yml, 2.x /etc/docker/registry/config.yml); the
    OCI version label counts only when the command names no config.
    """
    for word in command:
        if word.startswith("/etc/distribution/"):
            return 3, word
        if word.startswith("/etc/docker/registry/"):
            return 2, word
    version = str(labels.get(VERSION_LABEL, ""))
    found = _MAJOR.match(version)
    if found and int(found[1]) in SUPPORTED_MAJORS:
        return int(found[1]), f"{VERSION_LABEL}={version}"
    return None


def notify_url(registry_id: int) -> str:
    """Ferry's notification endpoint for this registry (H4b's view)."""
    base = settings.FERRY_PUBLIC_URL.rstrip("/")
    for kwargs in ({"registry_id": registry_id}, {"pk": registry_id}):
        try:
            return base + reverse("registries:notifications", kwargs=kwargs)
        except NoReverseMatch:
            continue
    return f"{base}/registries/{registry_id}/notifications/"


def registry_spec(
    registry, masked: bool = False, gateway_port: int | None = None
) -> RegistrySpec:
    """The values rendering needs; `gateway_port` set: proxy via the gateway."""
    secret = (lambda value: MASK if value else "") if masked else (lambda v: v)
    upstream = registry.upstream_url
    remote = f"http://127.0.0.1:{gateway_port}" if gateway_port else upstream
    return RegistrySpec(
        id=registry.pk,
        name=str(registry),
        kind=registry.kind,
        image=registry.image or settings.FERRY_REGISTRY_IMAGE,
        nginx_image=settings.FERRY_NGINX_IMAGE,
        store=store_spec(registry.store, masked),
        port=registry.port,
        debug_port=registry.debug_port or 0,
        listen_address=registry.listen_address or LOOPBACK_V4,
        https_port=registry.https_port,
        gateway_port=registry.gateway_port,
        public_hostname=registry.public_hostname,
        upstream_url=upstream,
        upstream_username=registry.upstream_username,
        upstream_password=secret(registry.upstream_password),
        remote_url=remote,
        http_secret=secret(registry.store.http_secret),
        require_auth=registry.require_auth,
        notify_url=notify_url(registry.pk),
        notify_token=secret(registry.notify_token),
        users=tuple(
            UserSpec(user.username, secret(user.password))
            for user in registry.users.order_by("username")
        ),
        tls_certificate=registry.tls_certificate,
        tls_private_key=secret(registry.tls_private_key),
        masked=masked,
        log_max_size=settings.FERRY_REGISTRY_LOG_MAX_SIZE,
        log_max_files=settings.FERRY_REGISTRY_LOG_MAX_FILES,
    )


def store_spec(store, masked: bool = False) -> StoreSpec:
    key = store.secret_access_key
    return StoreSpec(
        kind=store.kind,
        endpoint=store.endpoint.strip(),
        internal=store.internal_endpoint,
        bucket=store.bucket.strip(),
        region=store.s3_region,
        root_directory=store.root_directory,
        access_key=store.access_key_id,
        secret_key=(MASK if key else "") if masked else key,
    )
