"""The gateway through Ferry's own apply path (registries.services).

A mirror row whose upstream is the token-auth, S3-redirecting home registry
(gateway_fixtures.home) is applied by `registry_apply`: gateway, mirror and
TLS + htpasswd nginx as Ferry renders them. Pulls go through that nginx
with the test CA and a user's credentials, as a region's hosts would.
"""

import re
import uuid

import pytest
from django.db.models import Sum

from controlplane.testing.ports import free_port
from regions.models import DockerHost, Region
from registries import metrics, services
from registries.models import ObjectStore, Registry, RegistryUser
from registries.tests.conftest import (
    make_bucket,
    pull_through,
    remove_registry_containers,
)

from .gateway_fixtures import (  # noqa: F401 - fixtures
    IMAGE_REF,
    home_fixture,
    scratch_dir,
    settle,
    upstream_delta,
)
from .gateway_rig import UP_PASSWORD, UP_USER, build_random_image, push_image

FRESH_REF = "ferry/fresh:v1"  # first pulled after the gateway is switched off

pytestmark = [pytest.mark.integration, pytest.mark.django_db]


@pytest.fixture
def mirror_row(dockerd, use_test_images, s3_server, home, test_ca):
    region = Region.objects.create(slug=f"g{uuid.uuid4().hex[:6]}", name="Edge")
    host = DockerHost.objects.create(region=region, name="h", docker_url=dockerd.url)
    bucket = f"edge-{uuid.uuid4().hex[:8]}"
    make_bucket(s3_server, bucket)
    store = ObjectStore.objects.create(
        region=region, name="s3", kind="s3", endpoint=s3_server, bucket=bucket,
        s3_region="us-east-1", access_key_id="test", secret_access_key="test",
    )  # fmt: skip
    cert, key = test_ca.issue(("127.0.0.1", "localhost"))
    mirror = Registry.objects.create(
        region=region, host=host, store=store, name="mirror", kind="mirror",
        upstream_url=home.url, upstream_username=UP_USER, upstream_password="wrong",
        port=free_port(), https_port=free_port(), gateway_port=free_port(),
        debug_port=free_port(), tls_certificate=cert.decode(),
        tls_private_key=key.decode(), gateway_enabled=True,
    )  # fmt: skip
    RegistryUser.objects.create(registry=mirror, username="ops", password="pw-ops")
    try:
        yield mirror
    finally:
        remove_registry_containers(dockerd.client, [mirror.pk])


def pull(mirror, cert_dir, ref: str = IMAGE_REF):
    return pull_through(
        f"127.0.0.1:{mirror.https_port}", ref, scratch_dir(), "ops:pw-ops", cert_dir
    )


def test_applied_mirror_pulls_through_the_gateway_once_and_measures_it(
    mirror_row, home, dockerd, cert_dir, settings
):
    settings.FERRY_REGISTRY_LOG_LAG = 0
    mirror = mirror_row
    start = home.rig.upstream_truth()  # Ferry counts from the first apply on
    # A wrong upstream password: the page says why, the pull fails.
    services.registry_apply(mirror.pk)
    mirror.refresh_from_db()
    assert "credentials" in mirror.last_error, (mirror.status, mirror.last_error)
    assert pull(mirror, cert_dir).returncode != 0

    # Fixed: the same gateway cache had stored nothing of the failure.
    Registry.objects.filter(pk=mirror.pk).update(upstream_password=UP_PASSWORD)
    services.registry_apply(mirror.pk)
    mirror.refresh_from_db()
    assert mirror.status == "healthy", mirror.last_error
    before = home.rig.upstream_truth()
    pulled = pull(mirror, cert_dir)
    assert pulled.returncode == 0, pulled.stderr
    settle(dockerd.client, mirror.pk, home.image.blobs)
    cold = upstream_delta(home.rig.upstream_truth(), before)
    print(f"applied mirror, cold pull: {cold['bytes'] / home.image.bytes:.4f}x")
    assert cold["digests"] == set(home.image.blobs)
    assert cold["bytes"] <= 1.05 * home.image.bytes

    metrics.registry_sample(mirror.pk)
    stats = metrics.registry_stats(mirror)
    assert stats["misses"] == len(home.image.blobs)
    assert stats["requests"] == len(home.image.blobs)
    since_start = upstream_delta(home.rig.upstream_truth(), start)["bytes"]
    assert cold["object_bytes"] <= stats["bytes_upstream"] <= since_start

    before = home.rig.upstream_truth()
    assert pull(mirror, cert_dir).returncode == 0
    after = home.rig.upstream_truth()
    warm = upstream_delta(after, before)
    # A warm pull sends no blob bytes upstream: only the tag's manifest check.
    assert warm["object_bytes"] == 0 and warm["blob_gets"] == 0, warm
    warm_kinds = {r.kind for r in after.requests[len(before.requests) :]}
    assert warm_kinds <= {"base", "manifests"} and warm["bytes"] <= 16 * 1024
    metrics.registry_sample(mirror.pk)
    stats = metrics.registry_stats(mirror)
    assert stats["requests"] == 2 * len(home.image.blobs)
    assert stats["hit_rate"] == 0.5
    assert 1.0 <= stats["amplification"] <= 1.05
    assert stats["gateway"]["status"] == "caching"
    assert stats["gateway"]["cache_bytes"] >= home.image.bytes
    assert stats["storage_bytes"] >= home.image.bytes
    switch_the_gateway_off_and_measure_about_twice(mirror, home, dockerd, cert_dir)


def gateway_container(client, mirror):
    return client.containers.get(metrics.container_name(mirror.pk, "gateway"))


def switch_the_gateway_off_and_measure_about_twice(mirror, home, dockerd, cert_dir):
    """gateway_enabled off on the applied mirror, re-applied by the service:
    a new pass-through gateway, shown on the page, and the next cold pull of
    a new image costs about 2x, by the upstream's log and by Ferry's."""
    client = dockerd.client
    old = gateway_container(client, mirror)
    Registry.objects.filter(pk=mirror.pk).update(gateway_enabled=False)
    mirror = services.registry_apply(mirror.pk)
    assert mirror.status == "healthy", mirror.last_error
    new = gateway_container(client, mirror)
    assert new.id != old.id
    assert new.labels["ferry.config-hash"] != old.labels["ferry.config-hash"]
    metrics.registry_sample(mirror.pk)
    assert "pass-through" in detail_page(mirror)["gateway-status"]

    fresh = build_random_image(scratch_dir(), layers=2, mb=2)
    push_image(fresh.layout, home.url, FRESH_REF)
    before = home.rig.upstream_truth()
    mark = mirror.samples.order_by("-sampled_at").first().sampled_at
    pulled = pull(mirror, cert_dir, FRESH_REF)
    assert pulled.returncode == 0, pulled.stderr
    settle(client, mirror.pk, fresh.blobs)
    after = home.rig.upstream_truth()
    truth = upstream_delta(after, before)["bytes"] / fresh.bytes
    metrics.registry_sample(mirror.pk)
    repo = FRESH_REF.split(":")[0]
    split = metrics.registry_stats(mirror)["upstream_by_repository"]
    ferry = {r["repository"]: r["bytes_upstream"] for r in split}[repo] / fresh.bytes
    new_samples = mirror.samples.filter(sampled_at__gt=mark)
    sums = new_samples.aggregate(up=Sum("bytes_upstream"), missed=Sum("bytes_missed"))
    amplification = sums["up"] / sums["missed"]
    print(
        f"gateway off: upstream {truth:.3f}x, Ferry {ferry:.3f}x / {amplification:.3f}x"
    )
    assert 1.9 <= truth <= 2.05 and 1.9 <= ferry <= 2.05
    assert 1.9 <= amplification <= 2.05


def detail_page(mirror) -> dict[str, str]:
    """data-testid -> text of the registry page, as a viewer sees it."""
    from django.test import Client

    from controlplane.testing.users import user_with_role

    browser = Client()
    browser.force_login(user_with_role(f"v{mirror.pk}", "viewer"))
    html = browser.get(f"/registries/{mirror.pk}/").content.decode()
    return dict(re.findall(r'data-testid="([^"]+)"[^>]*>([^<]*)<', html))
