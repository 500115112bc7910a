"""Fixtures for the Jenkins executor tests.

Import the `fixture_<name>` functions into a test module; pytest knows them
as `<name>` (so a test's parameter does not shadow an import).

* `jenkins`: the stand-in server (crumbs required), fast poll settings;
* `jenkins_cluster` / `jenkins_project`: a cluster with executor "jenkins"
  pointing at the stand-in, a java agent, a project;
* `BuildThread`: runs `build_run` (what the worker's task does) in a thread,
  so that a test can watch the build while it runs;
* `standin_images`: images standing in for jenkins/jenkins and an inbound
  agent on a sandboxed dockerd: busybox plus an entrypoint that records its
  arguments in /tmp/ferry-args and sleeps.
"""

import hashlib
import io
import tarfile
import threading
import uuid

import pytest
from django.db import connection

from builds.models import Build, BuildAgent, BuildCluster, BuildStatus, Project
from builds.runs import build_run
from regions.models import DockerHost, Region

from .jenkins_standin import JenkinsStandin

TOKEN = "11f0c3e2a9b7d4e6f8a0b1c2d3e4f5a6b7"
ENTRYPOINT = '#!/bin/sh\nprintf "%s\\n" "$@" > /tmp/ferry-args\nexec sleep 2147483647\n'


@pytest.fixture(name="jenkins")
def fixture_jenkins(settings):
    settings.FERRY_JENKINS_POLL_INTERVAL = 0.05
    settings.FERRY_JENKINS_OUTAGE_GRACE = 1.0
    settings.FERRY_JENKINS_STOP_WAIT = 5.0
    settings.FERRY_JENKINS_QUEUE_TIMEOUT = 20.0
    settings.FERRY_JENKINS_READY_TIMEOUT = 5.0
    with JenkinsStandin(users={"ferry": TOKEN}, require_crumb=True) as server:
        yield server


def make_jenkins_cluster(url: str, docker_url: str, image: str = "agent:test"):
    region = Region.objects.create(slug=f"r-{uuid.uuid4().hex[:6]}", name="Test")
    host = DockerHost.objects.create(region=region, name="ci-1", docker_url=docker_url)
    cluster = BuildCluster.objects.create(
        region=region,
        host=host,
        name="jenkins",
        executor=BuildCluster.Executor.JENKINS,
        jenkins_url=url,
        jenkins_username="ferry",
        jenkins_token=TOKEN,
    )
    BuildAgent.objects.create(
        cluster=cluster, kind="java", image=image, cache_paths=["/root/.m2"]
    )
    return cluster


@pytest.fixture(name="jenkins_cluster")
def fixture_jenkins_cluster(db, jenkins):
    return make_jenkins_cluster(jenkins.url, "unix:///nonexistent/docker.sock")


@pytest.fixture(name="jenkins_project")
def fixture_jenkins_project(jenkins_cluster):
    return make_jenkins_project(jenkins_cluster)


def make_jenkins_project(cluster) -> Project:
    return Project.objects.create(
        cluster=cluster,
        agent_kind="java",
        name=f"shop-{uuid.uuid4().hex[:6]}",
        git_url="https://git.example.invalid/shop.git",
        dependency_command="mvn -B dependency:go-offline",
        image_repository="team/shop",
    )


def queue_build(project, ref: str = "main") -> Build:
    """A queued build row, as build_create makes it (without publishing a task)."""
    number = project.builds.count() + 1
    return Build.objects.create(
        id=uuid.uuid4(),
        project=project,
        agent=project.cluster.agents.get(kind=project.agent_kind),
        number=number,
        ref=ref,
        status=BuildStatus.QUEUED,
    )


class BuildThread:
    """build_run(build_id) in a thread with its own database connection."""

    def __init__(self, build: Build):
        self.build_id = build.pk
        self.outcome = None
        self.error: BaseException | None = None
        self.thread = threading.Thread(target=self._run, daemon=True)
        self.thread.start()

    def _run(self) -> None:
        try:
            self.outcome = build_run(self.build_id)
        except BaseException as exc:  # noqa: BLE001 - re-raised by join()
            self.error = exc
        finally:
            connection.close()

    def join(self, timeout: float = 30) -> Build:
        self.thread.join(timeout)
        assert not self.thread.is_alive(), f"build_run still running after {timeout}s"
        if self.error:
            raise self.error
        return Build.objects.get(pk=self.build_id)


@pytest.fixture(name="build_threads")
def fixture_build_threads():
    """Start BuildThreads through this; teardown waits for each to end."""
    started: list[BuildThread] = []

    def start(build: Build) -> BuildThread:
        started.append(BuildThread(build))
        return started[-1]

    yield start
    for thread in started:
        thread.thread.join(60)


def standin_image(client, base: str, name: str) -> str:
    """`base` (busybox) with an entrypoint that records its args and sleeps."""
    dockerfile = (
        f"FROM {base}\nCOPY standin /usr/local/bin/standin\n"
        'ENTRYPOINT ["/usr/local/bin/standin"]\n'
    )
    digest = hashlib.sha256((dockerfile + ENTRYPOINT).encode()).hexdigest()[:12]
    tag = f"ferry-test/{name}-standin:{digest}"
    buffer = io.BytesIO()
    with tarfile.open(fileobj=buffer, mode="w") as tar:
        for path, text, mode in (
            ("Dockerfile", dockerfile, 0o644),
            ("standin", ENTRYPOINT, 0o755),
        ):
            info = tarfile.TarInfo(path)
            data = text.encode()
            info.size, info.mode = len(data), mode
            tar.addfile(info, io.BytesIO(data))
    buffer.seek(0)
    client.images.build(fileobj=buffer, custom_context=True, tag=tag, rm=True)
    return tag


@pytest.fixture(name="standin_images", scope="session")
def fixture_standin_images(dockerd, test_images):
    client = dockerd.client
    return {
        "jenkins": standin_image(client, test_images.busybox, "jenkins"),
        "agent": standin_image(client, test_images.busybox, "agent"),
    }
