"""A build pushes into the region's private registry; the mirror serves it.

Issues 3 and 4 together, for real: a registry site applied by Ferry on the
session dockerd (mirror = gateway + registry + nginx with TLS from the test
CA and htpasswd; private registry on loopback; both on one moto S3 bucket,
in front of a plain "home region" upstream), and a Docker-executor build of
the sample project on a cluster whose registry is the site's PRIVATE one.

The recorded digest is the private registry's own manifest digest, and the
same manifest comes back through the MIRROR, next to a home-region image:
one endpoint for the home region's images and the team's own.
"""

import gzip
import hashlib
import io
import json
import tarfile
import tempfile
from pathlib import Path

import pytest

from builds.models import Build, BuildStatus
from builds.runs import build_run
from builds.services import build_create
from registries import services as registry_services
from registries.models import RegistryStatus
from registries.tests.conftest import (
    pull_through,
    push_archive,
    registry_site,
    start_upstream,
)

from .conftest import (
    make_cluster,
    make_project,
    manifest_digest,
    remove_cluster_objects,
)

pytestmark = [pytest.mark.integration, pytest.mark.django_db]

HOME_IMAGE = "base/busybox:v1"


@pytest.fixture
def upstream(dockerd, test_images, tmp_path):
    """The home region's registry, holding one image of its own."""
    registry = start_upstream(dockerd.client, test_images.registry)
    try:
        archive = tmp_path / "home.tar"
        with open(archive, "wb") as handle:
            image = dockerd.client.images.get(test_images.busybox)
            handle.writelines(image.save(named=True))
        push_archive(archive, registry.host, HOME_IMAGE)
        yield registry
    finally:
        registry.remove()


@pytest.fixture
def applied_site(db, dockerd, use_test_images, s3_server, upstream, test_ca):
    with registry_site(dockerd, s3_server, upstream.url, test_ca) as site:
        for registry in (site.mirror, site.private):
            applied = registry_services.registry_apply(registry.pk)
            assert applied.status == RegistryStatus.HEALTHY, (
                applied.last_error,
                applied.health,
            )
        yield site


@pytest.fixture
def site_project(applied_site, dockerd, test_images, git_project):
    cluster = make_cluster(applied_site.private, test_images.busybox)
    try:
        yield make_project(cluster, git_project.url)
    finally:
        remove_cluster_objects(dockerd.client, cluster.pk)


def pull(site, reference: str, cert_dir: str) -> Path:
    """skopeo copy through the mirror's nginx (TLS, htpasswd) into a dir:."""
    dest = tempfile.mkdtemp(prefix="ferry-pull-")
    result = pull_through(
        f"127.0.0.1:{site.mirror.https_port}", reference, dest,
        f"{site.user}:{site.password}", cert_dir,
    )  # fmt: skip
    assert result.returncode == 0, result.stderr
    return Path(dest)


def served_page(pulled: Path) -> str:
    """www/index.html from the pulled image's layers (the commit's page)."""
    manifest = (pulled / "manifest.json").read_bytes()
    for layer in json.loads(manifest)["layers"]:
        blob = (pulled / layer["digest"].split(":", 1)[1]).read_bytes()
        data = gzip.decompress(blob) if blob[:2] == b"\x1f\x8b" else blob
        with tarfile.open(fileobj=io.BytesIO(data)) as tar:
            for member in tar:
                if member.name.lstrip("./") == "www/index.html":
                    return tar.extractfile(member).read().decode()
    return ""


def test_a_build_pushed_to_the_private_registry_pulls_through_the_mirror(
    applied_site, site_project, git_project, upstream, test_ca, tmp_path
):
    site = applied_site
    commit = git_project._git("rev-parse", "HEAD")

    build = build_create(None, site_project, via="api")
    build_run(build.pk)
    build = Build.objects.get(pk=build.pk)

    assert build.status == BuildStatus.SUCCEEDED, (build.failure_line, build.log)
    assert build.image == f"127.0.0.1:{site.private.port}/team/shop:{commit[:12]}"
    # The digest Ferry recorded is the one the private registry serves.
    for tag in (commit[:12], str(build.number)):
        assert manifest_digest(site.private.port, "team/shop", tag) == (
            build.image_digest
        )

    cert_dir = str(test_ca.write_ca_dir(tmp_path / "ca"))
    # Through the mirror, by tag and by digest: the very same manifest...
    for reference in (f"team/shop:{commit[:12]}", f"team/shop@{build.image_digest}"):
        pulled = pull(site, reference, cert_dir)
        manifest = (pulled / "manifest.json").read_bytes()
        assert "sha256:" + hashlib.sha256(manifest).hexdigest() == build.image_digest
        # ...whose layers carry this commit's page.
        page = served_page(pulled)
        assert commit in page and git_project.marker in page, page
    # And the home region's image through the same endpoint.
    home = pull(site, HOME_IMAGE, cert_dir)
    assert (home / "manifest.json").exists()
    # The team's image was never served by the home region (only 404s).
    asked = [line for line in upstream.logs().splitlines() if "team/shop" in line]
    assert not [line for line in asked if "status=200" in line], asked
