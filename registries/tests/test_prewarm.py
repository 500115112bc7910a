"""Prewarm through a real mirror: after it, a pull costs the upstream no blob GET.

The mirror here is a registry container in proxy mode with TLS (test CA) and
htpasswd on itself, storage on the S3 server; the upstream is a plain registry
whose access log is the ground truth for what went upstream.
"""

import boto3
import pytest
from django.core.exceptions import ValidationError

from adapters.registry_api import RegistryClient
from controlplane.models import AuditEvent
from controlplane.testing.images import export_image
from controlplane.testing.ports import free_port
from controlplane.testing.wait import wait_for
from regions.models import DockerHost, Region
from registries.models import ObjectStore, Registry, RegistryUser
from registries.prewarm import parse_reference, prewarm_image

from .registry_containers import (
    CONFIG_DIR,
    base_config,
    blob_gets,
    htpasswd,
    push_index,
    skopeo_copy,
    start_registry,
    start_upstream,
    wait_registry,
)

pytestmark = pytest.mark.django_db


# -- reference parsing (pure) ---------------------------------------------------
@pytest.mark.parametrize(
    ("text", "expected"),
    [
        ("team/app:1.0", ("team/app", "1.0", "")),
        ("app", ("app", "", "")),
        ("a/b/c@sha256:" + "a" * 64, ("a/b/c", "", "sha256:" + "a" * 64)),
        ("up.example:5000/team/app:v2", ("team/app", "v2", "")),
    ],
)
def test_references_parse(text, expected):
    ref = parse_reference(text, known_hosts=("up.example:5000",))
    assert (ref.repository, ref.tag, ref.digest) == expected


@pytest.mark.parametrize(
    "text",
    [
        "",
        "Team/App:1",
        "team/app:",
        "team//app",
        "app:bad tag",
        "a@sha256:xyz",
        "other.example/team/app:1",
    ],
)
def test_malformed_references_are_a_field_error(text):
    with pytest.raises(ValidationError) as raised:
        parse_reference(text, known_hosts=("up.example",))
    assert "image" in raised.value.message_dict


# -- the real thing -----------------------------------------------------------------
@pytest.fixture
def upstream(dockerd, test_images, container_cleanup, tmp_path):
    """An upstream registry holding team/app:1.0 (the busybox test image)."""
    container, url = start_upstream(
        dockerd.client, test_images.registry, container_cleanup.name("upstream")
    )
    archive = export_image(dockerd.client, test_images.busybox, tmp_path / "img.tar")
    skopeo_copy(
        f"docker-archive:{archive}",
        f"docker://{url[len('http://') :]}/team/app:1.0",
        "--dest-tls-verify=false",
    )
    return container, url


@pytest.fixture
def mirror(dockerd, test_images, container_cleanup, upstream, s3_server, test_ca):
    """A Registry row and its running mirror (TLS + htpasswd + S3 storage)."""
    _container, upstream_url = upstream
    boto3.client(
        "s3",
        endpoint_url=s3_server,
        region_name="us-east-1",
        aws_access_key_id="k",
        aws_secret_access_key="s",
    ).create_bucket(Bucket=(bucket := f"prewarm-{free_port()}"))
    cert, key = test_ca.issue(("127.0.0.1",))
    port = free_port()
    config = base_config(port, _s3_storage(s3_server, bucket))
    config["proxy"] = {"remoteurl": upstream_url}
    config["http"]["tls"] = {
        "certificate": f"{CONFIG_DIR}/tls.crt",
        "key": f"{CONFIG_DIR}/tls.key",
    }
    config["auth"] = {"htpasswd": {"realm": "ferry", "path": f"{CONFIG_DIR}/htpasswd"}}
    files = {
        f"{CONFIG_DIR}/tls.crt": cert,
        f"{CONFIG_DIR}/tls.key": key,
        f"{CONFIG_DIR}/htpasswd": htpasswd({"puller": "pull-secret"}),
    }
    container = start_registry(
        dockerd.client,
        test_images.registry,
        container_cleanup.name("mirror"),
        config,
        files,
    )
    wait_registry(container, f"https://127.0.0.1:{port}", verify=str(test_ca.cert_path))
    registry = _rows(dockerd.url, s3_server, bucket, upstream_url, port, cert.decode())
    return registry, container


def _s3_storage(endpoint: str, bucket: str) -> dict:
    return {
        "s3": {
            "accesskey": "k",
            "secretkey": "s",
            "region": "us-east-1",
            "regionendpoint": endpoint,
            "bucket": bucket,
            "secure": False,
            "v4auth": True,
            "rootdirectory": "/registry",
        }
    }


def _rows(docker_url, s3_endpoint, bucket, upstream_url, https_port, cert_pem):
    region = Region.objects.create(slug="cn-test", name="CN test")
    host = DockerHost.objects.create(region=region, name="h1", docker_url=docker_url)
    store = ObjectStore.objects.create(
        region=region,
        name="s3",
        kind="s3",
        endpoint=s3_endpoint,
        bucket=bucket,
        access_key_id="k",
        secret_access_key="s",
        root_directory="/registry",
    )
    registry = Registry.objects.create(
        region=region,
        host=host,
        name="mirror",
        kind="mirror",
        store=store,
        upstream_url=upstream_url,
        https_port=https_port,
        tls_certificate=cert_pem,
    )
    RegistryUser.objects.create(
        registry=registry, username="puller", password="pull-secret"
    )
    return registry


@pytest.mark.integration
def test_prewarm_makes_the_next_pull_a_full_hit(mirror, upstream, test_ca, tmp_path):
    registry, _mirror_container = mirror
    upstream_container, _url = upstream

    result = prewarm_image(registry, "team/app:1.0", actor="tester")

    warmed = blob_gets(upstream_container)
    assert result.blobs == 2 and result.bytes > 100_000  # config + one layer
    assert result.stored is True  # every blob seen in the S3 bucket
    assert len(set(warmed)) == result.blobs  # the prewarm itself went upstream
    event = AuditEvent.objects.get(action="prewarm")
    assert event.changes["digest"] == result.manifest_digest

    cert_dir = test_ca.write_ca_dir(tmp_path / "certs")
    skopeo_copy(
        f"docker://127.0.0.1:{registry.https_port}/team/app:1.0",
        f"dir:{tmp_path / 'pulled'}",
        f"--src-cert-dir={cert_dir}",
        "--src-creds=puller:pull-secret",
    )
    assert blob_gets(upstream_container) == warmed  # no blob went upstream
    pulled = sum(p.stat().st_size for p in (tmp_path / "pulled").iterdir())
    assert pulled >= result.bytes


@pytest.mark.integration
def test_prewarm_of_a_missing_tag_is_an_image_error(mirror):
    registry, _container = mirror
    with pytest.raises(ValidationError) as raised:
        prewarm_image(registry, "team/app:no-such-tag")
    assert "image" in raised.value.message_dict
    assert AuditEvent.objects.filter(action="prewarm_failed").exists()


@pytest.mark.integration
def test_prewarm_with_a_wrong_password_names_the_registry(mirror):
    registry, _container = mirror
    registry.users.update(password="wrong")
    with pytest.raises(ValidationError) as raised:
        prewarm_image(registry, "team/app:1.0")
    assert "credentials" in raised.value.message_dict["registry"][0]


@pytest.mark.integration
def test_prewarm_of_an_index_pulls_only_the_linux_amd64_image(
    mirror, upstream, dockerd, test_images, tmp_path
):
    registry, _container = mirror
    upstream_container, upstream_url = upstream
    digests = push_index(dockerd, test_images, upstream_url, tmp_path)
    with RegistryClient(upstream_url) as client:
        amd64 = client.manifest("team/multi", digests["linux/amd64"])
        arm64 = client.manifest("team/multi", digests["linux/arm64"])
    before = len(blob_gets(upstream_container))

    result = prewarm_image(registry, "team/multi:1.0")

    fetched = set(blob_gets(upstream_container)[before:])
    amd64_blobs = {b.digest for b in amd64.blobs}
    arm64_only = {b.digest for b in arm64.blobs} - amd64_blobs
    assert fetched == amd64_blobs
    assert arm64_only and not fetched & arm64_only
    assert result.blobs == len(amd64.blobs) and result.stored is True


@pytest.mark.integration
@pytest.mark.django_db(transaction=True)
def test_the_prewarm_task_runs_in_a_real_worker(mirror, upstream, celery_worker):
    from registries.tasks import prewarm_image_task

    registry, _container = mirror
    upstream_container, _url = upstream
    prewarm_image_task.delay(registry.pk, "team/app:1.0", None)

    event = wait_for(
        lambda: AuditEvent.objects.filter(action="prewarm").first(),
        timeout=120,
        message=celery_worker.log_tail,
    )
    assert event.changes["image"] == "team/app:1.0"
    assert event.changes["stored"] is True and event.changes["blobs"] == 2
    assert event.via == "task"
    assert len(set(blob_gets(upstream_container))) == 2


@pytest.mark.integration
def test_prewarm_with_storage_out_of_ferrys_reach_reports_stored_unknown(mirror):
    registry, _container = mirror
    # The mirror still writes to S3; only Ferry's view of the store is cut.
    ObjectStore.objects.filter(pk=registry.store_id).update(
        endpoint=f"http://127.0.0.1:{free_port()}"
    )
    registry.refresh_from_db()
    result = prewarm_image(registry, "team/app:1.0")
    assert result.blobs == 2 and result.stored is None
