"""Fixtures for build tests: a sample git project, a registry, a build cluster.

The sample project is a real git repository (file://) whose dependency step
simulates a Maven download into the agent's cache volume: cold, it
"downloads" a few MB of artifacts with some latency; warm (artifacts
present), it skips them. Its Dockerfile serves the commit-stamped
index.html with busybox httpd on $PORT.
"""

import subprocess
import uuid
from pathlib import Path

import pytest
import requests

from builds.models import BuildAgent, BuildCluster, Project
from controlplane.celery import app
from controlplane.testing.ports import free_port
from controlplane.testing.wait import wait_for
from regions.models import DockerHost, Region
from registries.models import ObjectStore, Registry

# Simulated `mvn dependency:go-offline`: 8 artifacts of 1 MB, each after a
# short "network" wait, unless the cache already holds them.
DEPENDENCY_COMMAND = (
    "set -e; repo=/root/.m2/repository; "
    'if [ -f "$repo/.complete" ]; then echo "deps: cache hit, nothing to download"; '
    'else echo "deps: cold cache, downloading"; mkdir -p "$repo"; '
    "for i in 1 2 3 4 5 6 7 8; do sleep 0.2; "
    'dd if=/dev/urandom of="$repo/artifact-$i.jar" bs=1024 count=1024 2>/dev/null; '
    'echo "Downloaded artifact-$i.jar"; done; touch "$repo/.complete"; fi; '
    'mkdir -p target; sed "s/@COMMIT@/$FERRY_COMMIT/" index.html > target/index.html; '
    "echo compiled"
)

DOCKERFILE = """\
FROM {base}
COPY target/index.html /www/index.html
ENTRYPOINT ["/bin/sh", "-c", "exec httpd -f -p 127.0.0.1:${{PORT:-8080}} -h /www"]
"""


class GitProject:
    """A local repository to build from; `commit()` records a new version."""

    def __init__(self, root: Path, base_image: str):
        self.root = root
        self.base_image = base_image
        self.url = f"file://{root}"
        self._git("init", "-q", "-b", "main")
        self._git("config", "user.email", "test@example.invalid")
        self._git("config", "user.name", "Ferry Test")

    def _git(self, *args: str) -> str:
        done = subprocess.run(
            ["git", *args], cwd=self.root, capture_output=True, text=True, check=True
        )
        return done.stdout.strip()

    def write(self, path: str, text: str) -> None:
        target = self.root / path
        target.parent.mkdir(parents=True, exist_ok=True)
        target.write_text(text)

    def commit(self, message: str = "change", dockerfile: str | None = None) -> str:
        """Commit a fresh index.html (unique content) and the Dockerfile."""
        self.marker = uuid.uuid4().hex
        self.write("index.html", f"<h1>{message} {self.marker} @COMMIT@</h1>\n")
        self.write("Dockerfile", dockerfile or DOCKERFILE.format(base=self.base_image))
        self._git("add", "-A")
        self._git("commit", "-q", "-m", message)
        return self._git("rev-parse", "HEAD")


@pytest.fixture
def git_project(tmp_path, test_images):
    root = tmp_path / "repo"
    root.mkdir()
    project = GitProject(root, test_images.busybox)
    project.commit("first version")
    return project


@pytest.fixture
def registry_server(dockerd, test_images, container_cleanup):
    """A plain registry container on a free loopback port (host network)."""
    port = free_port()
    dockerd.client.containers.run(
        test_images.registry,
        detach=True,
        name=container_cleanup.name("registry"),
        network_mode="host",
        environment={"REGISTRY_HTTP_ADDR": f"127.0.0.1:{port}"},
    )
    url = f"http://127.0.0.1:{port}"
    wait_for(
        lambda: requests.get(f"{url}/v2/", timeout=2).status_code == 200,
        timeout=30,
        message=f"registry on {port}",
    )
    return port


def manifest_digest(port: int, repository: str, tag: str) -> str:
    """The digest the registry itself gives for repository:tag."""
    answer = requests.head(
        f"http://127.0.0.1:{port}/v2/{repository}/manifests/{tag}",
        headers={"Accept": "application/vnd.docker.distribution.manifest.v2+json"},
        timeout=5,
    )
    answer.raise_for_status()
    return answer.headers["Docker-Content-Digest"]


@pytest.fixture
def build_cluster(db, dockerd, test_images, registry_server):
    """Region, host (the test dockerd), private registry row, docker cluster."""
    region = Region.objects.create(slug=f"r-{uuid.uuid4().hex[:6]}", name="Test")
    host = DockerHost.objects.create(
        region=region, name="build-1", docker_url=dockerd.url
    )
    store = ObjectStore.objects.create(
        region=region, name="fs", kind=ObjectStore.Kind.FILESYSTEM
    )
    registry = Registry.objects.create(
        region=region,
        host=host,
        name="private",
        kind=Registry.Kind.PRIVATE,
        store=store,
        port=registry_server,
    )
    cluster = make_cluster(registry, test_images.busybox)
    yield cluster
    remove_cluster_objects(dockerd.client, cluster.pk)


def make_cluster(registry: Registry, agent_image: str) -> BuildCluster:
    """A docker-executor cluster on the registry's host, pushing to it, with
    java and node agents of `agent_image`."""
    cluster = BuildCluster.objects.create(
        region=registry.region, host=registry.host, name="builders",
        registry=registry,
    )  # fmt: skip
    for kind, path in (("java", "/root/.m2"), ("node", "/root/.npm")):
        BuildAgent.objects.create(
            cluster=cluster, kind=kind, image=agent_image, cache_paths=[path]
        )
    return cluster


def remove_cluster_objects(client, cluster_id: int) -> None:
    """Containers and volumes the test's cluster left on the engine."""
    label = f"ferry.cluster={cluster_id}"
    for container in client.containers.list(all=True, filters={"label": label}):
        container.remove(force=True)
    for volume in client.volumes.list(filters={"label": label}):
        volume.remove(force=True)


def make_project(cluster: BuildCluster, git_url: str) -> Project:
    """The sample project (java agent, simulated Maven download) on `cluster`."""
    return Project.objects.create(
        cluster=cluster,
        agent_kind="java",
        name=f"shop-{uuid.uuid4().hex[:6]}",
        git_url=git_url,
        default_ref="main",
        dependency_command=DEPENDENCY_COMMAND,
        image_repository="team/shop",
    )


@pytest.fixture
def project(build_cluster, git_project):
    return make_project(build_cluster, git_project.url)


@pytest.fixture
def admin_user(ferry_admin):
    """pytest-django's admin_user is a superuser; here: a user in Ferry's admin
    role (the `viewer` and `operator` fixtures come from controlplane.testing)."""
    return ferry_admin


@pytest.fixture
def eager_tasks():
    """Tasks published here run at once in the publishing thread (a cancel or
    stop task, as a worker would run it), with no broker in between."""
    app.conf.task_always_eager = True
    yield
    app.conf.task_always_eager = False
