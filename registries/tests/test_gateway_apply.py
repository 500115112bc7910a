"""The gateway through Ferry's own apply path (registries.services).

A mirror row whose upstream is the token-auth, S3-redirecting home registry
(gateway_fixtures.home) is applied by `registry_apply`: gateway, mirror and
TLS + htpasswd nginx as Ferry renders them. Pulls go through that nginx
with the test CA and a user's credentials, as a region's hosts would.
"""

import uuid

import pytest

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
from .gateway_rig import UP_PASSWORD, UP_USER

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


def pull(mirror, cert_dir):
    return pull_through(
        f"127.0.0.1:{mirror.https_port}", IMAGE_REF, scratch_dir(), "ops:pw-ops",
        cert_dir,
    )  # fmt: skip


def test_applied_mirror_pulls_through_the_gateway_once_and_measures_it(
    mirror_row, home, dockerd, cert_dir, settings
):
    settings.FERRY_REGISTRY_LOG_LAG = 0
    mirror = mirror_row
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
    assert cold["object_bytes"] <= stats["bytes_upstream"] <= cold["bytes"]

    before = home.rig.upstream_truth()
    assert pull(mirror, cert_dir).returncode == 0
    warm = upstream_delta(home.rig.upstream_truth(), before)
    assert warm["object_bytes"] == 0 and warm["blob_gets"] == 0
    metrics.registry_sample(mirror.pk)
    stats = metrics.registry_stats(mirror)
    assert stats["requests"] == 2 * len(home.image.blobs)
    assert stats["hit_rate"] == 0.5
    assert 1.0 <= stats["amplification"] <= 1.05
    assert stats["gateway"]["status"] == "caching"
    assert stats["gateway"]["cache_bytes"] >= home.image.bytes
    assert stats["storage_bytes"] >= home.image.bytes
