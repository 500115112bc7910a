"""A registry site applied for real: sandboxed dockerd, moto S3, skopeo pulls.

mirror (gateway + registry + nginx with TLS from the test CA and htpasswd)
and private registry on the same S3 bucket, in front of a plain upstream
registry holding a test image.
"""

import socket

import pytest
from django.core.exceptions import ValidationError

from adapters import containers as engine
from controlplane.testing.wait import wait_for
from registries import services
from registries.models import Registry, RegistryStatus
from registries.tests.conftest import (
    UPSTREAM_IMAGE,
    pull_through,
    push_archive,
)

pytestmark = [pytest.mark.integration, pytest.mark.django_db]


def owned(dockerd, registry) -> dict[str, engine.ContainerState]:
    states = engine.list_owned(dockerd.client, f"registry:{registry.pk}")
    return {s.labels["ferry.role"]: s for s in states}


def test_site_serves_pulls_with_tls_and_auth_and_shares_storage(
    site, dockerd, upstream_registry, test_image_archive, cert_dir, tmp_path
):
    mirror, private = site.mirror, site.private
    services.registry_apply(mirror.pk)
    services.registry_apply(private.pk)
    mirror.refresh_from_db()
    assert mirror.status == RegistryStatus.HEALTHY, (mirror.last_error, mirror.health)
    assert set(owned(dockerd, mirror)) == {"gateway", "registry", "nginx"}
    assert all(s.running for s in owned(dockerd, mirror).values())
    assert set(owned(dockerd, private)) == {"registry"}

    endpoint = f"127.0.0.1:{mirror.https_port}"
    creds = f"{site.user}:{site.password}"
    pulled = pull_through(
        endpoint, UPSTREAM_IMAGE, str(tmp_path / "a"), creds, cert_dir
    )
    assert pulled.returncode == 0, pulled.stderr

    wrong = pull_through(
        endpoint, UPSTREAM_IMAGE, str(tmp_path / "b"), "ops:nope", cert_dir
    )
    assert wrong.returncode != 0
    assert "401" in wrong.stderr or "unauthorized" in wrong.stderr.lower()

    # The private registry takes a push on loopback; the mirror serves it.
    push_archive(test_image_archive.path, f"127.0.0.1:{private.port}", "team/own:v1")
    own = pull_through(endpoint, "team/own:v1", str(tmp_path / "c"), creds, cert_dir)
    assert own.returncode == 0, own.stderr
    # The mirror asked the upstream for the tag (404) and served its own copy.
    upstream_answers = [
        line for line in upstream_registry.logs().splitlines() if "team/own" in line
    ]
    assert not [line for line in upstream_answers if "status=200" in line]


def test_reconcile_restores_a_removed_container_and_replaces_on_upstream_change(
    site, dockerd, upstream_registry
):
    mirror = site.mirror
    services.registry_apply(mirror.pk)
    before = owned(dockerd, mirror)
    mirror.refresh_from_db()
    old_hash = mirror.config_hash

    dockerd.client.containers.get(before["registry"].id).remove(force=True)
    assert "registry" not in owned(dockerd, mirror)
    result = services.registry_reconcile(mirror.pk)
    assert "create ferry-reg" in result
    restored = owned(dockerd, mirror)
    assert restored["registry"].running
    assert restored["nginx"].id == before["nginx"].id  # untouched

    dockerd.client.containers.get(restored["registry"].id).stop()
    assert "start ferry-reg" in services.registry_reconcile(mirror.pk)
    assert owned(dockerd, mirror)["registry"].running
    assert owned(dockerd, mirror)["registry"].id == restored["registry"].id

    # Someone edits the config inside the running container: replaced.
    conf = "/etc/nginx/ferry/nginx.conf"
    edited = engine.read_file(dockerd.client, restored["nginx"].id, conf) + "# x\n"
    engine_files = (engine.ContainerFile(conf, edited),)
    dockerd.client.containers.get(restored["nginx"].id).put_archive(
        "/", engine.files_tar(engine_files)
    )
    result = services.registry_reconcile(mirror.pk)
    assert f"replace ferry-reg-{mirror.pk}-nginx (config edited" in result
    restored = owned(dockerd, mirror)

    mirror.upstream_url = upstream_registry.url.replace("127.0.0.1", "localhost")
    mirror.save()
    result = services.registry_reconcile(mirror.pk)
    assert "replace ferry-reg" in result and "config changed" in result
    after = owned(dockerd, mirror)
    assert after["gateway"].id != restored["gateway"].id
    assert (
        after["gateway"].labels["ferry.config-hash"]
        != (restored["gateway"].labels["ferry.config-hash"])
    )
    mirror.refresh_from_db()
    assert mirror.config_hash != old_hash
    assert services.registry_reconcile(mirror.pk) == "in sync"


def _refused(registry_id: int) -> dict:
    with pytest.raises(ValidationError) as caught:
        services.registry_apply(registry_id)
    return caught.value.message_dict


def test_a_taken_port_is_refused_on_its_field_and_nothing_is_left_running(
    site, dockerd
):
    mirror = site.mirror
    with socket.socket() as busy:
        busy.bind(("127.0.0.1", mirror.https_port))
        busy.listen()
        errors = _refused(mirror.pk)
    assert "https_port" in errors, errors
    assert "already in use" in errors["https_port"][0]
    assert owned(dockerd, mirror) == {}
    mirror.refresh_from_db()
    assert mirror.status == RegistryStatus.FAILED
    assert "https_port" in mirror.last_error
    assert Registry.objects.filter(pk=mirror.pk).exists()


def test_a_taken_new_port_is_found_before_the_running_site_is_touched(site, dockerd):
    mirror = site.mirror
    services.registry_apply(mirror.pk)
    before = owned(dockerd, mirror)
    with socket.socket() as busy:
        busy.bind(("127.0.0.1", 0))
        busy.listen()
        mirror.https_port = busy.getsockname()[1]
        mirror.save()
        errors = _refused(mirror.pk)
    assert "https_port" in errors
    after = owned(dockerd, mirror)
    assert {r: s.id for r, s in after.items()} == {r: s.id for r, s in before.items()}
    assert all(s.running for s in after.values())


def test_a_replacement_that_crashes_puts_the_old_container_back(
    site, dockerd, test_images
):
    mirror = site.mirror
    services.registry_apply(mirror.pk)
    before = owned(dockerd, mirror)
    Registry.objects.filter(pk=mirror.pk).update(image=test_images.busybox)
    errors = _refused(mirror.pk)
    assert "registry container exited" in errors["__all__"][0]
    after = owned(dockerd, mirror)
    assert {r: s.id for r, s in after.items()} == {r: s.id for r, s in before.items()}
    assert all(s.running for s in after.values())
    assert after["registry"].name == f"ferry-reg-{mirror.pk}-registry"


def test_an_unreachable_bucket_is_refused_before_anything_starts(site, dockerd):
    store = site.mirror.store
    store.bucket = "no-such-bucket"
    store.save()
    errors = _refused(site.mirror.pk)
    assert "store" in errors and "bucket" in errors["store"][0], errors
    assert owned(dockerd, site.mirror) == {}


def test_a_down_host_fails_the_registry_with_the_reason(site, dockerd, tmp_path):
    host = site.mirror.host
    host.docker_url = f"unix://{tmp_path}/gone.sock"
    host.save()
    errors = _refused(site.mirror.pk)
    assert "host" in errors and "Cannot connect" in errors["host"][0]
    mirror = Registry.objects.get(pk=site.mirror.pk)
    assert mirror.status == RegistryStatus.FAILED
    assert "Cannot connect" in mirror.last_error
    assert mirror.upstream_url  # the saved settings are intact


def test_a_missing_image_is_refused_on_the_image_field(site, dockerd):
    Registry.objects.filter(pk=site.mirror.pk).update(image="ferry-test/none:x")
    errors = _refused(site.mirror.pk)
    assert "image" in errors and "ferry-test/none:x" in errors["image"][0]
    assert owned(dockerd, site.mirror) == {}


def test_a_container_that_crashes_is_rolled_back_with_its_reason(
    site, dockerd, test_images
):
    """The gateway starts, then the registry exits: the gateway goes too."""
    mirror = site.mirror
    Registry.objects.filter(pk=mirror.pk).update(image=test_images.busybox)
    errors = _refused(mirror.pk)
    assert "registry container exited" in errors["__all__"][0], errors
    assert owned(dockerd, mirror) == {}
    mirror.refresh_from_db()
    assert mirror.status == RegistryStatus.FAILED
    assert "registry container exited" in mirror.last_error


def test_deleting_a_registry_removes_its_containers_and_cache_volume(site, dockerd):
    mirror = site.mirror
    services.registry_apply(mirror.pk)
    assert owned(dockerd, mirror)
    services.registry_delete(None, mirror)
    assert owned(dockerd, mirror) == {}
    names = {v.name for v in dockerd.client.volumes.list()}
    assert f"ferry-reg-{mirror.pk}-gwcache" not in names
    assert not Registry.objects.filter(pk=mirror.pk).exists()


def test_health_shows_the_reason_when_the_upstream_is_down(site, upstream_registry):
    mirror = services.registry_apply(site.mirror.pk)
    assert mirror.health["checks"]["upstream"]["ok"]
    assert mirror.health["cert_days_left"] >= 28  # the test CA issues 30 days
    upstream_registry.remove()
    mirror = services.registry_health_check(site.mirror.pk)
    assert mirror.status == RegistryStatus.DEGRADED
    assert not mirror.health["checks"]["upstream"]["ok"]
    assert "upstream:" in mirror.last_error and "unreachable" in mirror.last_error
    assert mirror.health["checks"]["endpoint"]["ok"]


def test_two_applies_do_not_fight(site):
    """While one apply holds the lease, another gives up clearly and a
    reconcile pass skips."""
    from registries.apply import acquire_lease, release_lease

    token = acquire_lease(site.mirror.pk, wait=0)
    try:
        with pytest.raises(services.ApplyBusy):
            services.registry_apply(site.mirror.pk, lock_wait=0.5)
        assert services.registry_reconcile(site.mirror.pk).startswith("skipped")
        assert acquire_lease(site.mirror.pk, wait=0) is None
    finally:
        release_lease(site.mirror.pk, token)
    assert acquire_lease(site.mirror.pk, wait=0) is not None


@pytest.fixture
def fast_reconcile(settings):
    """Beat in the worker started after this runs the reconcile pass every 2 s."""
    settings.FERRY_REGISTRY_RECONCILE_INTERVAL = 2.0


@pytest.mark.django_db(transaction=True)
def test_the_periodic_pass_in_a_worker_restores_a_removed_container(
    site, dockerd, fast_reconcile, celery_worker
):
    services.registry_apply(site.mirror.pk)
    before = owned(dockerd, site.mirror)["nginx"]
    dockerd.client.containers.get(before.id).remove(force=True)

    def restored():
        nginx = owned(dockerd, site.mirror).get("nginx")
        return nginx if nginx and nginx.running and nginx.id != before.id else None

    wait_for(restored, timeout=90, message=f"beat pass: {celery_worker.log_tail()}")
    wait_for(
        lambda: Registry.objects.get(pk=site.mirror.pk).status == "healthy",
        timeout=60,
        message="healthy again after the pass",
    )


def test_a_private_registry_on_a_host_directory_stores_pushed_images_there(
    site, dockerd, test_image_archive, tmp_path
):
    from registries.models import ObjectStore

    directory = tmp_path / "store" / "registry"  # missing: the engine creates it
    store = ObjectStore.objects.create(
        region=site.private.region, name="disk", kind="filesystem",
        root_directory=str(directory),
    )  # fmt: skip
    Registry.objects.filter(pk=site.private.pk).update(store=store)
    private = services.registry_apply(site.private.pk)
    assert private.status == RegistryStatus.HEALTHY, private.last_error
    push_archive(test_image_archive.path, f"127.0.0.1:{private.port}", "team/disk:v1")
    tags = directory / "docker/registry/v2/repositories/team/disk/_manifests/tags"
    assert (tags / "v1").is_dir()
