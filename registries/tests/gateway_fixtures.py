"""pytest fixtures for the gateway tests: a home registry holding a random
multi-layer image, and Ferry-named mirror sites in front of it.

`home` (module scope): token-auth registry 2.8 on moto S3 that redirects
blob GETs to presigned URLs (see gateway_rig.py), holding `ferry/rand:v1`
(3 layers x 3 MiB of random data). `mirror_site(registry, ...)` starts the
three containers Ferry runs for a mirror, with Ferry's names, so that
registries.metrics reads them as it would in production.
"""

import base64
import io
import json
import re
import tarfile
import tempfile
import urllib.error
import urllib.request
from dataclasses import dataclass
from types import SimpleNamespace
from urllib.parse import urlencode

import pytest

from controlplane.testing.ports import free_port
from registries.gateway import GATEWAY_CACHE_DIR, render_gateway_conf
from registries.metrics import container_name, gateway_cache_volume

from .gateway_rig import UP_PASSWORD, UP_USER, RandomImage, Rig, build_random_image
from .gateway_rig import push_image as _push
from .token_standin import TokenServer

IMAGE_REF = "ferry/rand:v1"


@dataclass
class Home:
    rig: Rig
    url: str
    image: RandomImage
    tokens: TokenServer


@pytest.fixture(scope="module", name="home")
def home_fixture(dockerd, test_images, s3_server, tmp_path_factory):
    rig = Rig(dockerd.client, test_images)
    with TokenServer({UP_USER: UP_PASSWORD}) as tokens:
        try:
            url = rig.start_upstream(s3_server, f"home-{rig.prefix[4:-1]}", tokens)
            image = build_random_image(str(tmp_path_factory.mktemp("img")), 3, 3)
            _push(image.layout, url, IMAGE_REF)
            yield Home(rig=rig, url=url, image=image, tokens=tokens)
        finally:
            rig.close()


@dataclass
class Site:
    served: str  # what clients pull from (Ferry's nginx, plain HTTP here)
    mirror: str
    gateway: str
    registry: object


@pytest.fixture(name="mirror_site")
def mirror_site_fixture(dockerd, test_images, home):
    """Call with a Registry row (or a stand-in with pk/upstream/gateway
    fields); its containers are removed after the test."""
    rig = Rig(dockerd.client, test_images)

    def start(registry, password: str = UP_PASSWORD) -> Site:
        pk = registry.pk
        for role in ("nginx", "registry", "gateway"):  # leftovers of a crash
            rig.remove(container_name(pk, role))
        rig.remove_volume(gateway_cache_volume(pk))
        volume = rig.volume(gateway_cache_volume(pk))
        gateway = rig.start_gateway(
            container_name(pk, "gateway"), render_gateway_conf(registry), volume
        )
        mirror = rig.start_mirror(container_name(pk, "registry"), gateway, password)
        served = rig.start_served_nginx(container_name(pk, "nginx"), mirror)
        return Site(served=served, mirror=mirror, gateway=gateway, registry=registry)

    start.rig = rig
    yield start
    rig.close()


def upstream_delta(after, before) -> dict:
    """What the upstream side served between two UpstreamTruth readings."""
    return {
        "bytes": after.total_bytes - before.total_bytes,
        "object_bytes": after.object_store_bytes - before.object_store_bytes,
        "blob_gets": after.blob_gets - before.blob_gets,
        "digests": {
            d for d, n in after.object_gets.items() if n > before.object_gets.get(d, 0)
        },
    }


def settle(client, registry_id: int, blobs, timeout: float = 60) -> None:
    """Wait until the mirror fetched each blob twice through the gateway (one
    stream to the client, one to store it: registry 2.8's way), so that the
    upstream's numbers are final."""
    from controlplane.testing.wait import wait_for
    from registries import groundtruth as gt

    name = container_name(registry_id, "gateway")

    def both_fetches_logged():
        raw = client.containers.get(name).logs(stdout=True, stderr=False)
        records = gt.parse_lines(raw.decode(errors="replace").splitlines())
        gets = [r for r in records if r.is_blob_get and r.status == 200]
        return all(sum(r.digest == d for r in gets) >= 2 for d in blobs)

    wait_for(both_fetches_logged, timeout=timeout, message=f"{name}: < 2 GETs")


# What must never reach the gateway's logs or cache: the upstream password,
# bearer tokens (the mirror sends them, 401s name the scheme) and presigned
# URL signatures.
SECRET_MARKERS = (
    UP_PASSWORD.encode(),
    b"Bearer",
    b"X-Amz-Signature",
    b"X-Amz-Credential",
)
DIGEST_KEY = re.compile(rb"^sha256:[0-9a-f]{64}$")


def cache_files(client, registry_id: int) -> dict[str, bytes]:
    """Every file in the gateway's cache directory (read through the docker
    API: the nginx image has no shell), path -> content."""
    container = client.containers.get(container_name(registry_id, "gateway"))
    stream, _ = container.get_archive(GATEWAY_CACHE_DIR)
    with tarfile.open(fileobj=io.BytesIO(b"".join(stream))) as tar:
        return {
            member.name: tar.extractfile(member).read()
            for member in tar.getmembers()
            if member.isfile()
        }


def cache_key(content: bytes) -> bytes:
    """The KEY line nginx writes after its binary header in a cache file."""
    match = re.search(rb"\nKEY: ([^\n]*)\n", content)
    return match.group(1) if match else b""


def assert_no_credentials(client, registry_id: int) -> int:
    """The gateway's stdout/stderr and cache hold no secret; every cache
    file is keyed by a bare digest. Returns how many cache files there are."""
    container = client.containers.get(container_name(registry_id, "gateway"))
    logs = container.logs(stdout=True, stderr=True)
    files = cache_files(client, registry_id)
    for where, content in [("logs", logs), *files.items()]:
        found = [m.decode() for m in SECRET_MARKERS if m in content]
        assert not found, f"{found} in the gateway's {where}"
    keys = {path: cache_key(content) for path, content in files.items()}
    assert all(DIGEST_KEY.match(key) for key in keys.values()), keys
    return len(files)


def gateway_records(client, registry_id: int):
    from registries import groundtruth as gt

    raw = client.containers.get(container_name(registry_id, "gateway")).logs(
        stdout=True, stderr=False
    )
    return gt.parse_lines(raw.decode(errors="replace").splitlines())


def bearer_token(tokens: TokenServer, repository: str) -> str:
    """A pull token for `repository` from the realm, as a client gets one."""
    query = urlencode(
        {"service": tokens.service, "scope": f"repository:{repository}:pull"}
    )
    request = urllib.request.Request(f"{tokens.realm}?{query}")
    basic = base64.b64encode(f"{UP_USER}:{UP_PASSWORD}".encode()).decode()
    request.add_header("Authorization", f"Basic {basic}")
    with urllib.request.urlopen(request, timeout=10) as response:
        return json.load(response)["token"]


def http_get(url: str, token: str | None = None) -> tuple[int, dict, int]:
    """(status, headers, body bytes) of a GET, errors included."""
    request = urllib.request.Request(url)
    if token is not None:
        request.add_header("Authorization", f"Bearer {token}")
    try:
        with urllib.request.urlopen(request, timeout=30) as response:
            return response.status, dict(response.headers), len(response.read())
    except urllib.error.HTTPError as exc:
        return exc.code, dict(exc.headers), len(exc.read())


def stand_in_registry(pk: int, upstream: str, enabled: bool = True):
    return SimpleNamespace(
        pk=pk, name=f"m{pk}", upstream_url=upstream, gateway_enabled=enabled,
        gateway_port=free_port(), gateway_cache_max_mb=256,
    )  # fmt: skip


def scratch_dir() -> str:
    return tempfile.mkdtemp(prefix="ferry-pull-")
