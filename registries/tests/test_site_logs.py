"""Access logs across container changes, on a real dockerd.

Metrics read the nginx and gateway access logs through `docker logs`; these
tests prove that (1) the logs are bounded by json-file limits yet still read
in full across rotated files, and (2) an apply that replaces those containers
(or a move to another host that removes them) samples them before removing
them, so a pull made just before still counts.
"""

import json
import os
from pathlib import Path

import pytest

from adapters import containers as engine
from registries import metrics, services
from registries.models import RegistryUser
from registries.tests.conftest import UPSTREAM_IMAGE, pull_through

from .gateway_fixtures import scratch_dir, settle

pytestmark = [pytest.mark.integration, pytest.mark.django_db]


def owned(dockerd, registry) -> dict[str, engine.ContainerState]:
    states = engine.list_owned(dockerd.client, f"registry:{registry.pk}")
    return {s.labels["ferry.role"]: s for s in states}


def pulled_blobs(directory: str) -> dict[str, int]:
    """digest -> size of every blob a skopeo `dir:` pull fetched."""
    manifest = json.loads((Path(directory) / "manifest.json").read_text())
    return {
        item["digest"]: item["size"]
        for item in [manifest["config"], *manifest["layers"]]
    }


def cold_pull(site, dockerd, cert_dir) -> dict[str, int]:
    """Pull the upstream image through the mirror; its blobs once settled."""
    target = scratch_dir()
    creds = f"{site.user}:{site.password}"
    pulled = pull_through(
        f"127.0.0.1:{site.mirror.https_port}", UPSTREAM_IMAGE, target, creds, cert_dir
    )
    assert pulled.returncode == 0, pulled.stderr
    blobs = pulled_blobs(target)
    settle(dockerd.client, site.mirror.pk, blobs)  # the mirror's second fetches
    return blobs


def test_replacing_nginx_and_gateway_keeps_their_requests_counted(
    site, dockerd, cert_dir, settings
):
    # Small json-file limits: the served log rotates during one pull.
    settings.FERRY_REGISTRY_LOG_MAX_SIZE = "2k"
    settings.FERRY_REGISTRY_LOG_MAX_FILES = 20
    settings.FERRY_REGISTRY_LOG_LAG = 0
    mirror = site.mirror
    services.registry_apply(mirror.pk)
    before = owned(dockerd, mirror)
    for role in ("nginx", "gateway", "registry"):
        config = dockerd.client.api.inspect_container(before[role].id)["HostConfig"]
        assert config["LogConfig"] == {
            "Type": "json-file", "Config": {"max-size": "2k", "max-file": "20"},
        }, role  # fmt: skip

    blobs = cold_pull(site, dockerd, cert_dir)
    log_path = dockerd.client.api.inspect_container(before["nginx"].id)["LogPath"]
    assert os.path.exists(log_path + ".1"), "the served log never rotated"
    assert not mirror.samples.exists()

    # A new cache limit replaces the gateway, a new user the nginx front.
    mirror.gateway_cache_max_mb = 64
    mirror.save(update_fields=["gateway_cache_max_mb"])
    RegistryUser.objects.create(registry=mirror, username="ci", password="ci-pass-1")
    services.registry_apply(mirror.pk)
    after = owned(dockerd, mirror)
    assert after["nginx"].id != before["nginx"].id
    assert after["gateway"].id != before["gateway"].id
    assert engine.inspect(dockerd.client, before["nginx"].id) is None  # removed

    metrics.registry_sample(mirror.pk)
    stats = metrics.registry_stats(mirror)
    assert stats["requests"] == len(blobs) and stats["misses"] == len(blobs)
    assert stats["bytes_served"] >= sum(blobs.values())
    assert stats["bytes_missed"] == sum(blobs.values())
    assert sum(blobs.values()) <= stats["bytes_upstream"] <= 1.05 * sum(blobs.values())


def test_moving_to_another_host_counts_the_old_hosts_logs(site, dockerd, cert_dir):
    from django.contrib.auth.models import User

    from regions.models import DockerHost

    mirror = site.mirror
    services.registry_apply(mirror.pk)
    blobs = cold_pull(site, dockerd, cert_dir)
    old = owned(dockerd, mirror)
    # Another host row (on the same engine, so the test needs one dockerd).
    other = DockerHost.objects.create(
        region=mirror.region, name="h2", docker_url=dockerd.url
    )
    admin = User.objects.create_user("mover")
    mirror.refresh_from_db()
    services.registry_save(admin, mirror, {"host": other}, via="api")
    assert all(engine.inspect(dockerd.client, s.id) is None for s in old.values())
    stats = metrics.registry_stats(mirror)
    assert stats["requests"] == len(blobs) and stats["misses"] == len(blobs)
    assert stats["bytes_missed"] == sum(blobs.values())


def test_an_unreachable_upstream_shows_as_the_gateways_last_error(
    site, dockerd, upstream_registry, cert_dir, settings, client
):
    from controlplane.testing.users import user_with_role

    settings.FERRY_REGISTRY_LOG_LAG = 0
    mirror = site.mirror
    services.registry_apply(mirror.pk)
    upstream_registry.remove()
    creds = f"{site.user}:{site.password}"
    pulled = pull_through(
        f"127.0.0.1:{mirror.https_port}", UPSTREAM_IMAGE, scratch_dir(), creds, cert_dir
    )
    assert pulled.returncode != 0
    metrics.registry_sample(mirror.pk)
    gateway = metrics.registry_stats(mirror)["gateway"]
    assert gateway["status"] == "caching" and gateway["running"] is True
    assert "connect() failed" in gateway["last_error"], gateway
    assert "Connection refused" in gateway["last_error"]
    assert gateway["cache_max_bytes"] == mirror.gateway_cache_max_mb * 1024 * 1024

    client.force_login(user_with_role("watcher", "viewer"))
    page = client.get(f"/registries/{mirror.pk}/").content.decode()
    shown = page[page.index('id="registry-gateway"') :]
    assert 'data-testid="gateway-status">caching' in shown
    assert 'data-testid="gateway-running">running' in shown
    assert "connect() failed (111: Connection refused)" in shown
