"""The site export is a working equivalent: docker-compose runs it for real.

Ferry applies a mirror + private site (moto S3, sandboxed dockerd), then its
containers are removed. The admin's export (?secrets=1) is unzipped and
`docker-compose up -d` (compose v1, Debian's docker-compose) runs it on the
same engine. Through the exported nginx (TLS from the test CA, htpasswd) the
upstream's image pulls; the exported private registry takes a push that the
exported mirror then serves (shared bucket and http secret); and Ferry's own
reconcile pass finds the compose-made containers in sync (same names, labels,
config hashes, images and files). `docker-compose down --volumes` ends it.
"""

import io
import os
import shutil
import subprocess
import zipfile
from contextlib import contextmanager
from pathlib import Path

import pytest
import requests
from django.test import Client

from adapters import containers as engine
from controlplane.testing.wait import wait_for
from registries import services
from registries.tests.conftest import (
    UPSTREAM_IMAGE,
    pull_through,
    push_archive,
    remove_registry_containers,
)

pytestmark = [pytest.mark.integration, pytest.mark.django_db]
COMPOSE_TIMEOUT = 180


def docker_compose(directory: Path, dockerd, *args: str) -> subprocess.CompletedProcess:
    """docker-compose in `directory`, talking to the sandboxed engine only."""
    env = {
        key: value for key, value in os.environ.items() if not key.startswith("DOCKER_")
    }
    env["DOCKER_HOST"] = dockerd.url
    return subprocess.run(
        ["docker-compose", "--ansi", "never", *args],
        cwd=directory,
        env=env,
        capture_output=True,
        text=True,
        timeout=COMPOSE_TIMEOUT,
        check=False,
    )


@contextmanager
def compose_up(directory: Path, dockerd):
    """`up -d`, and `down --volumes` afterwards whatever happened."""
    try:
        up = docker_compose(directory, dockerd, "up", "-d")
        assert up.returncode == 0, up.stdout + up.stderr
        yield up
    finally:
        down = docker_compose(directory, dockerd, "down", "--volumes", "-t", "5")
        assert down.returncode == 0, down.stdout + down.stderr


def unzip(body: bytes, into: Path) -> Path:
    """Extract with the modes the zip carries (zipfile drops them); the
    directory holding docker-compose.yml."""
    with zipfile.ZipFile(io.BytesIO(body)) as archive:
        archive.extractall(into)
        for info in archive.infolist():
            (into / info.filename).chmod(info.external_attr >> 16 & 0o777)
    (found,) = into.glob("*/docker-compose.yml")
    return found.parent


def answers(url: str, **kwargs) -> bool:
    try:
        return requests.get(url, timeout=2, **kwargs).status_code == 200
    except requests.RequestException:
        return False


@pytest.fixture
def compose_binary():
    if shutil.which("docker-compose") is None:
        pytest.fail("docker-compose is missing: scripts/test.sh installs it")


def test_the_exported_site_runs_under_docker_compose(
    compose_binary, site, dockerd, ferry_admin, test_ca, cert_dir, tmp_path,
    test_image_archive,
):  # fmt: skip
    mirror, private = site.mirror, site.private
    services.registry_apply(mirror.pk)
    services.registry_apply(private.pk)
    admin = Client()
    admin.force_login(ferry_admin)
    response = admin.get(f"/registries/{mirror.pk}/export/?secrets=1")
    assert response.status_code == 200, response.content[:500]
    remove_registry_containers(dockerd.client, [mirror.pk, private.pk])
    for registry in (mirror, private):
        assert not engine.list_owned(dockerd.client, f"registry:{registry.pk}")
    directory = unzip(response.content, tmp_path)
    https = f"127.0.0.1:{mirror.https_port}"
    creds = (site.user, site.password)

    with compose_up(directory, dockerd):
        made = dockerd.client.containers.list(
            filters={"label": "com.docker.compose.project"}
        )
        assert {c.name for c in made} == {
            f"ferry-reg-{mirror.pk}-gateway", f"ferry-reg-{mirror.pk}-registry",
            f"ferry-reg-{mirror.pk}-nginx", f"ferry-reg-{private.pk}-registry",
        }  # fmt: skip
        wait_for(
            lambda: answers(
                f"https://{https}/v2/", auth=creds, verify=str(test_ca.cert_path)
            ),
            timeout=60,
            message="the exported nginx + mirror answering /v2/",
        )
        wait_for(
            lambda: answers(f"http://127.0.0.1:{private.port}/v2/"),
            timeout=60,
            message="the exported private registry answering /v2/",
        )
        login = f"{site.user}:{site.password}"
        pulled = pull_through(
            https, UPSTREAM_IMAGE, str(tmp_path / "a"), login, cert_dir
        )
        assert pulled.returncode == 0, pulled.stderr
        wrong = pull_through(
            https, UPSTREAM_IMAGE, str(tmp_path / "b"), "ops:no", cert_dir
        )
        assert wrong.returncode != 0

        push_archive(
            test_image_archive.path, f"127.0.0.1:{private.port}", "team/own:v1"
        )
        own = pull_through(https, "team/own:v1", str(tmp_path / "c"), login, cert_dir)
        assert own.returncode == 0, own.stderr

        # Ferry itself sees the site it deployed: nothing to create or replace.
        assert services.registry_reconcile(mirror.pk) == "in sync"
        assert services.registry_reconcile(private.pk) == "in sync"
