"""The upstream gateway against real components (issue 5).

Home registry: registry 2.8 with token auth, storage on moto S3, answering
blob GETs with 307 to presigned URLs; its access log plus the object store's
log of presigned fetches is the upstream's own truth (gateway_rig.py). Each
test starts a Ferry-named mirror site (gateway, mirror, served nginx) on the
session dockerd and pulls a 3 x 3 MiB random image with skopeo.
"""

import threading

import pytest

from controlplane.testing.ports import free_port
from controlplane.testing.wait import wait_for
from regions.models import DockerHost, Region
from registries import groundtruth as gt
from registries import metrics
from registries.health import check_upstream
from registries.models import ObjectStore, Registry

from .gateway_fixtures import (  # noqa: F401 - fixtures
    IMAGE_REF,
    home_fixture,
    mirror_site_fixture,
    scratch_dir,
    upstream_delta,
)
from .gateway_fixtures import settle as settle_logs
from .gateway_rig import UP_USER, pull_image

pytestmark = [pytest.mark.integration, pytest.mark.django_db]


@pytest.fixture
def make_registry(dockerd, home, tmp_path):
    region = Region.objects.create(slug="hk", name="Hong Kong")
    host = DockerHost.objects.create(region=region, name="h", docker_url=dockerd.url)
    store = ObjectStore.objects.create(
        region=region, name="fs", kind="filesystem", root_directory=str(tmp_path)
    )

    def make(enabled: bool = True) -> Registry:
        return Registry.objects.create(
            region=region, host=host, name=f"m{Registry.objects.count()}",
            kind="mirror", store=store, upstream_url=home.url,
            gateway_enabled=enabled, gateway_port=free_port(),
        )  # fmt: skip

    return make


def pull(site) -> None:
    proc = pull_image(site.served, IMAGE_REF, scratch_dir())
    assert proc.returncode == 0, proc.stderr


def settle(site, image) -> None:
    settle_logs(site._rig.client, site.registry.pk, image.blobs)


def start(mirror_site, registry, **kw):
    site = mirror_site(registry, **kw)
    site._rig = mirror_site.rig
    return site


def sample_total(registry) -> dict:
    metrics.registry_sample(registry.pk)
    return metrics.registry_stats(registry)


def test_cold_pull_crosses_once_warm_pull_not_at_all(
    home,
    mirror_site,
    make_registry,
    settings,
):
    settings.FERRY_REGISTRY_LOG_LAG = 0
    registry = make_registry(enabled=True)
    site = start(mirror_site, registry)
    image_bytes = home.image.bytes
    before = home.rig.upstream_truth()
    pull(site)
    settle(site, home.image)
    cold = upstream_delta(home.rig.upstream_truth(), before)
    print(f"cold pull with gateway: upstream {cold['bytes']} B for {image_bytes} B")
    assert cold["bytes"] <= 1.05 * image_bytes
    assert cold["digests"] == set(home.image.blobs)

    # Ferry's numbers equal the upstream's own log.
    stats = wait_for(
        lambda: (s := sample_total(registry))["misses"] == len(home.image.blobs) and s,
        timeout=20,
        message="misses never matched",
    )
    assert cold["object_bytes"] <= stats["bytes_upstream"] <= cold["bytes"]
    assert stats["requests"] == len(home.image.blobs) and stats["hits"] == 0
    assert 1.0 <= stats["amplification"] <= 1.05

    before = home.rig.upstream_truth()
    pull(site)
    warm = upstream_delta(home.rig.upstream_truth(), before)
    assert warm["object_bytes"] == 0 and warm["blob_gets"] == 0
    stats = wait_for(
        lambda: (
            (s := sample_total(registry))["requests"] == 2 * len(home.image.blobs) and s
        ),
        timeout=20,
        message="warm requests never counted",
    )
    assert stats["misses"] == len(home.image.blobs)
    assert stats["hit_rate"] == 0.5
    assert stats["bytes_upstream"] <= cold["bytes"] + warm["bytes"]
    assert stats["gateway"]["status"] == "caching"
    assert stats["gateway"]["cache_bytes"] >= image_bytes


def test_without_gateway_cache_a_cold_pull_costs_about_twice(
    home,
    mirror_site,
    make_registry,
    settings,
):
    settings.FERRY_REGISTRY_LOG_LAG = 0
    registry = make_registry(enabled=False)
    site = start(mirror_site, registry)
    before = home.rig.upstream_truth()
    pull(site)
    settle(site, home.image)
    cold = upstream_delta(home.rig.upstream_truth(), before)
    ratio = cold["bytes"] / home.image.bytes
    print(f"cold pull without gateway cache: {ratio:.3f}x the image upstream")
    assert ratio >= 1.6
    stats = wait_for(
        lambda: (s := sample_total(registry))["misses"] == len(home.image.blobs) and s,
        timeout=20,
        message="misses never matched",
    )
    assert cold["object_bytes"] <= stats["bytes_upstream"] <= cold["bytes"]
    assert 1.6 <= stats["amplification"] <= 2.05
    assert stats["gateway"]["status"] == "pass-through"


def test_three_concurrent_cold_pulls_still_cross_once(
    home,
    mirror_site,
    make_registry,
):
    site = start(mirror_site, make_registry(enabled=True))
    before = home.rig.upstream_truth()
    results = []
    threads = [
        threading.Thread(
            target=lambda: results.append(
                pull_image(site.served, IMAGE_REF, scratch_dir())
            )
        )
        for _ in range(3)
    ]
    for thread in threads:
        thread.start()
    for thread in threads:
        thread.join()
    assert [r.returncode for r in results] == [0, 0, 0], [r.stderr for r in results]
    settle(site, home.image)
    cold = upstream_delta(home.rig.upstream_truth(), before)
    print(f"3 concurrent cold pulls: upstream {cold['bytes'] / home.image.bytes:.3f}x")
    assert cold["bytes"] <= 1.05 * home.image.bytes


def test_wrong_upstream_password_fails_clearly_and_is_not_cached(
    home,
    mirror_site,
    make_registry,
):
    site = start(mirror_site, make_registry(enabled=True), password="wrong")
    failed_tokens = sum(1 for _, status in home.tokens.requests if status == 401)
    proc = pull_image(site.served, IMAGE_REF, scratch_dir())
    assert proc.returncode != 0
    print("pull error with a wrong upstream password:", proc.stderr.strip()[-300:])
    # Registry 2.8 turns the refusal into "manifest unknown" for the client;
    # what really happened is in the token server's and the gateway's logs.
    assert sum(1 for _, s in home.tokens.requests if s == 401) > failed_tokens
    gateway_lines = gt.parse_lines(
        site._rig.logs(metrics.container_name(site.registry.pk, "gateway"))
    )
    assert not [r for r in gateway_lines if r.cache in ("HIT", "MISS")]
    # Ferry's health check names the cause (what the registry page shows).
    registry = site.registry
    registry.upstream_username, registry.upstream_password = UP_USER, "wrong"
    check = check_upstream(registry)
    assert not check["ok"] and "credentials" in check["detail"], check

    # Fix the password: same gateway and cache; the pull now works and the
    # blobs really come from upstream (nothing failed was cached).
    mirror_name = metrics.container_name(site.registry.pk, "registry")
    port = int(site.mirror.rsplit(":", 1)[1])
    site._rig.remove(mirror_name)
    site._rig.start_mirror(mirror_name, site.gateway, port=port)
    before = home.rig.upstream_truth()
    pull(site)
    cold = upstream_delta(home.rig.upstream_truth(), before)
    assert cold["digests"] == set(home.image.blobs)
    assert cold["bytes"] <= 1.05 * home.image.bytes


def test_the_gateway_cache_stays_within_its_size_limit(home, mirror_site, dockerd):
    from adapters.container_logs import volume_bytes
    from adapters.docker_engine import HostConnection

    from .gateway_fixtures import stand_in_registry

    registry = stand_in_registry(9000 + free_port() % 1000, home.url)
    registry.gateway_cache_max_mb = 4  # less than the 9 MiB image
    site = start(mirror_site, registry)
    pull(site)
    settle(site, home.image)
    conn = HostConnection(dockerd.url)
    volume = metrics.gateway_cache_volume(registry.pk)
    # nginx's cache manager evicts least recently used blobs past max_size.
    size = wait_for(
        lambda: (
            (b := volume_bytes(conn, volume)) is not None and b <= 4.5 * 2**20 and b
        ),
        timeout=60,
        message=lambda: f"{volume} holds {volume_bytes(conn, volume)} bytes",
    )
    print(f"gateway cache after a {home.image.bytes} B pull: {size} B (limit 4 MiB)")
    pull(site)  # the mirror keeps its own copy: still served
