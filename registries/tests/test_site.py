"""A registry site applied for real: sandboxed dockerd, moto S3, skopeo pulls.

mirror (gateway + registry + nginx with TLS from the test CA and htpasswd)
and private registry on the same S3 bucket, in front of a plain upstream
registry holding a test image.
"""

import io
import socket
import time
import uuid
from concurrent.futures import ThreadPoolExecutor

import docker
import pytest
import yaml
from django.core.exceptions import ValidationError
from django.db import connection
from django.utils import timezone

from adapters import containers as engine
from controlplane.testing.wait import wait_for
from controlplane.tests.apiclient import token_client, user_with_role
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


def ids(states: dict) -> dict[str, str]:
    return {role: state.id for role, state in states.items()}


@pytest.fixture
def tag_image(dockerd):
    """tag_image(image, "repo:tag") -> "repo:tag"; the tags go at teardown."""
    made = []

    def tag(image: str, ref: str) -> str:
        repository, version = ref.rsplit(":", 1)
        dockerd.client.images.get(image).tag(repository, version)
        made.append(ref)
        return ref

    yield tag
    for ref in dict.fromkeys(made):
        try:
            # force: the site's containers may still use it (they go next).
            dockerd.client.images.remove(ref, force=True)
        except docker.errors.NotFound:
            pass


@pytest.fixture
def crashing_image(test_images, tag_image):
    """busybox under a registry-2 tag: passes the checks, exits at once."""
    return tag_image(
        test_images.busybox, f"ferry-test/crashes:2-{uuid.uuid4().hex[:6]}"
    )


def registry_config(dockerd, state) -> dict:
    text = engine.read_file(dockerd.client, state.id, "/etc/docker/registry/config.yml")
    return yaml.safe_load(text)


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
    # One site: both registries sign uploads with the store's http.secret.
    secrets_deployed = {
        registry_config(dockerd, owned(dockerd, r)["registry"])["http"]["secret"]
        for r in (mirror, private)
    }
    site.store.refresh_from_db()
    assert secrets_deployed == {site.store.http_secret} and site.store.http_secret
    for registry in (mirror, private):
        for state in owned(dockerd, registry).values():
            attrs = dockerd.client.containers.get(state.id).attrs
            assert attrs["HostConfig"]["RestartPolicy"]["Name"] == "unless-stopped"

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
    site, dockerd, upstream_registry, test_images, tag_image
):
    mirror = site.mirror
    # Its own name for the registry image, so that it can be re-tagged below.
    image = tag_image(
        test_images.registry, f"ferry-test/drift:2-{uuid.uuid4().hex[:6]}"
    )
    Registry.objects.filter(pk=mirror.pk).update(image=image)
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

    # Another image under the same name (a new push of the tag): replaced.
    rebuilt = _rebuilt(dockerd, test_images.registry)
    tag_image(rebuilt, image)
    old_registry = after["registry"]
    result = services.registry_reconcile(mirror.pk)
    assert f"replace ferry-reg-{mirror.pk}-registry (image changed)" in result, result
    now = owned(dockerd, mirror)
    assert now["registry"].id != old_registry.id and now["registry"].running
    assert now["registry"].image_id == rebuilt
    assert now["nginx"].id == after["nginx"].id  # only the registry changed
    assert services.registry_reconcile(mirror.pk) == "in sync"


def _rebuilt(dockerd, image: str) -> str:
    """The id of a different image (untagged) that runs exactly like `image`."""
    label = uuid.uuid4().hex
    dockerfile = f"FROM {image}\nLABEL ferry.test.rebuilt={label}\n".encode()
    built, _logs = dockerd.client.images.build(fileobj=io.BytesIO(dockerfile), rm=True)
    return built.id


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
    # The port is free again, but a refused first apply is not the periodic
    # pass's to start.
    assert mirror.pk not in services.registries_reconcile_all()
    assert services.registry_reconcile(mirror.pk).startswith("skipped: never applied")
    assert owned(dockerd, mirror) == {}


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
    site, dockerd, crashing_image
):
    mirror = site.mirror
    services.registry_apply(mirror.pk)
    before = owned(dockerd, mirror)
    Registry.objects.filter(pk=mirror.pk).update(image=crashing_image)
    errors = _refused(mirror.pk)
    assert "registry container exited" in errors["__all__"][0]
    after = owned(dockerd, mirror)
    assert ids(after) == ids(before)
    assert all(s.running for s in after.values())
    assert after["registry"].name == f"ferry-reg-{mirror.pk}-registry"
    # The periodic pass does not retry the refused change (it would stop the
    # running registry and crash again on every pass).
    result = services.registry_reconcile(mirror.pk)
    assert result.startswith("skipped: its last apply failed"), result
    again = owned(dockerd, mirror)
    assert ids(again) == ids(before)
    assert again["registry"].started_at == after["registry"].started_at


def test_an_unreachable_bucket_is_refused_before_anything_starts(site, dockerd):
    mirror, store = site.mirror, site.mirror.store
    bucket = store.bucket
    store.bucket = "no-such-bucket"
    store.save()
    errors = _refused(mirror.pk)
    assert "store" in errors and "bucket" in errors["store"][0], errors
    assert owned(dockerd, mirror) == {}
    # ...nor started by the periodic pass afterwards.
    assert mirror.pk not in services.registries_reconcile_all()
    assert services.registry_reconcile(mirror.pk).startswith("skipped: never applied")
    assert owned(dockerd, mirror) == {}

    # Applied once: a pass that would start containers checks the store first.
    store.bucket = bucket
    store.save()
    services.registry_apply(mirror.pk)
    before = owned(dockerd, mirror)
    store.bucket = "no-such-bucket"
    store.save()
    result = services.registry_reconcile(mirror.pk)
    assert result.startswith("failed: store:") and "bucket" in result, result
    assert ids(owned(dockerd, mirror)) == ids(before)
    assert all(s.running for s in owned(dockerd, mirror).values())
    assert services.registry_reconcile(mirror.pk).startswith("skipped")


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
    Registry.objects.filter(pk=site.mirror.pk).update(image="ferry-test/none:2")
    errors = _refused(site.mirror.pk)
    assert "image" in errors and "ferry-test/none:2" in errors["image"][0]
    assert owned(dockerd, site.mirror) == {}


def test_an_image_whose_tag_says_another_major_is_refused(
    site, dockerd, test_images, tag_image
):
    """The 2.8 test registry tagged :3 would get its config where it never
    reads it: the image's own command says 2, and the apply says so."""
    image = tag_image(
        test_images.registry, f"ferry-test/retagged:3-{uuid.uuid4().hex[:6]}"
    )
    Registry.objects.filter(pk=site.mirror.pk).update(image=image)
    errors = _refused(site.mirror.pk)
    assert "image" in errors, errors
    assert "tagged as registry 3, but the image is registry 2" in errors["image"][0]
    assert "/etc/docker/registry/config.yml" in errors["image"][0]
    assert owned(dockerd, site.mirror) == {}


def test_a_tag_that_does_not_say_its_major_is_refused_on_save(site):
    with pytest.raises(ValidationError) as caught:
        services.registry_save(None, site.mirror, {"image": "registry:latest"})
    assert "registry:latest does not say" in caught.value.message_dict["image"][0]
    assert Registry.objects.get(pk=site.mirror.pk).image == ""


def test_a_certificate_that_does_not_match_is_refused_and_left_alone(
    site, dockerd, test_ca
):
    other_cert, _key = test_ca.issue(("127.0.0.1",))
    Registry.objects.filter(pk=site.mirror.pk).update(
        tls_certificate=other_cert.decode()
    )
    errors = _refused(site.mirror.pk)
    assert {"tls_certificate", "tls_private_key"} & set(errors), errors
    assert services.registry_reconcile(site.mirror.pk).startswith("skipped")
    assert owned(dockerd, site.mirror) == {}


def test_a_container_that_crashes_is_rolled_back_with_its_reason(
    site, dockerd, crashing_image
):
    """The gateway starts, then the registry exits: the gateway goes too."""
    mirror = site.mirror
    Registry.objects.filter(pk=mirror.pk).update(image=crashing_image)
    errors = _refused(mirror.pk)
    assert "registry container exited" in errors["__all__"][0], errors
    assert owned(dockerd, mirror) == {}
    mirror.refresh_from_db()
    assert mirror.status == RegistryStatus.FAILED
    assert "registry container exited" in mirror.last_error


def test_deleting_through_the_api_or_the_page_removes_the_containers(
    site, dockerd, client
):
    mirror, private = site.mirror, site.private
    services.registry_apply(mirror.pk)
    services.registry_apply(private.pk)
    assert owned(dockerd, mirror) and owned(dockerd, private)
    names = {v.name for v in dockerd.client.volumes.list()}
    assert f"ferry-reg-{mirror.pk}-gwcache" in names

    response = token_client("admin").delete(f"/api/v1/registries/{mirror.pk}/")
    assert response.status_code == 204, response.content
    assert owned(dockerd, mirror) == {}
    names = {v.name for v in dockerd.client.volumes.list()}
    assert f"ferry-reg-{mirror.pk}-gwcache" not in names
    assert not Registry.objects.filter(pk=mirror.pk).exists()

    client.force_login(user_with_role("page-admin", "admin"))
    response = client.post(f"/registries/{private.pk}/delete/")
    assert response.status_code == 302 and response["Location"] == "/registries/"
    assert owned(dockerd, private) == {}
    assert not Registry.objects.filter(pk=private.pk).exists()


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
    from registries.lease import acquire_lease, release_lease

    token = acquire_lease(site.mirror.pk, wait=0)
    try:
        with pytest.raises(services.ApplyBusy):
            services.registry_apply(site.mirror.pk, lock_wait=0.5)
        assert services.registry_reconcile(site.mirror.pk).startswith("skipped")
        assert acquire_lease(site.mirror.pk, wait=0) is None
    finally:
        release_lease(site.mirror.pk, token)
    assert acquire_lease(site.mirror.pk, wait=0) is not None


def test_the_lease_lasts_as_long_as_an_apply_task_may_run(site, settings):
    from registries.lease import acquire_lease
    from registries.tasks import registry_apply_task, registry_reconcile_task

    limit = settings.FERRY_REGISTRY_APPLY_TIME_LIMIT
    assert registry_apply_task.time_limit == registry_reconcile_task.time_limit == limit
    settings.FERRY_REGISTRY_APPLY_TIME_LIMIT = 1234.0
    before = timezone.now()
    acquire_lease(site.mirror.pk, wait=0)
    expires = Registry.objects.get(pk=site.mirror.pk).apply_lock_expires_at
    assert 1234 <= (expires - before).total_seconds() < 1240


@pytest.fixture
def slow_registry_image(dockerd, test_images, tag_image):
    """The test registry, listening only 5 s after it starts (a registry on
    slow storage): an apply of it takes longer than a short lease."""
    dockerfile = (
        f"FROM {test_images.registry}\n"
        f"COPY --from={test_images.busybox} /bin/busybox /bin/busybox\n"
        'ENTRYPOINT ["/bin/busybox", "sh", "-c", "/bin/busybox sleep 5; exec '
        '/usr/bin/docker-registry serve /etc/docker/registry/config.yml"]\n'
    )
    built, _logs = dockerd.client.images.build(
        fileobj=io.BytesIO(dockerfile.encode()), rm=True
    )
    return tag_image(built.id, f"ferry-test/slow-registry:2-{uuid.uuid4().hex[:6]}")


@pytest.mark.django_db(transaction=True)
def test_two_applies_at_once_make_one_site(
    site, dockerd, settings, slow_registry_image
):
    """Two applies of one registry at once: one does the work, the other waits
    for the lease and then finds the host in sync. The lease (2.4 s) is
    shorter than the apply, so this holds only because each step renews it."""
    settings.FERRY_REGISTRY_APPLY_TIME_LIMIT = 2.4
    mirror = site.mirror
    Registry.objects.filter(pk=mirror.pk).update(image=slow_registry_image)
    since = int(time.time()) - 1

    def apply():
        try:
            return services.registry_apply(mirror.pk, lock_wait=120)
        finally:
            connection.close()  # this thread's own connection

    with ThreadPoolExecutor(2) as pool:
        first = pool.submit(apply)
        wait_for(
            lambda: first.done() or Registry.objects.get(pk=mirror.pk).apply_lock,
            timeout=30,
            message="the first apply takes the lease",
        )
        second = pool.submit(apply)
        results = [first.result(timeout=300), second.result(timeout=300)]
    assert [r.status for r in results] == [RegistryStatus.HEALTHY] * 2, [
        r.last_error for r in results
    ]
    states = engine.list_owned(dockerd.client, f"registry:{mirror.pk}")
    assert sorted(s.name for s in states) == sorted(
        f"ferry-reg-{mirror.pk}-{role}" for role in ("gateway", "registry", "nginx")
    )
    assert all(s.running for s in states)
    events = dockerd.client.events(
        since=since,
        until=int(time.time()) + 1,
        filters={"type": "container", "label": f"ferry.owner=registry:{mirror.pk}"},
        decode=True,
    )
    verbs = [e["Action"] for e in events if e["Action"] in ("create", "destroy")]
    assert verbs == ["create"] * 3, verbs  # the second apply changed nothing
    assert (
        dockerd.client.containers.list(
            all=True, filters={"name": f"ferry-reg-{mirror.pk}-probe"}
        )
        == []
    )


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
