"""The Docker executor for real: git, builder container, docker build, push.

Builds run in this process (`build_run`, as the worker's task would) on the
session's sandboxed dockerd, against a real registry container.
"""

import logging
import re

import pytest
import requests
from django.utils.html import escape

from adapters.containers import inspect
from adapters.docker_build import BuilderSpec, ContainerGone, builder_run
from adapters.git_source import source_tar
from builds.executors.docker import cache_volume_name
from builds.models import Build, BuildStatus
from builds.runs import build_run
from builds.services import build_cancel, build_create
from controlplane.testing.ports import free_port
from controlplane.testing.wait import wait_for

from .conftest import manifest_digest
from .jenkins_fixtures import fixture_build_threads, queue_build  # noqa: F401

pytestmark = [pytest.mark.integration, pytest.mark.django_db]

BROKEN_DOCKERFILE = """\
FROM {base}
COPY target/index.html /www/index.html
RUN echo compiling && exit 3
"""


def run_build(project, actor=None, ref="") -> Build:
    build = build_create(actor, project, ref, via="api")
    build_run(build.pk)
    return Build.objects.get(pk=build.pk)


def serve(client, image: str, cleanup) -> str:
    """Run the image (host network, free port); the page it serves."""
    port = free_port()
    client.containers.run(
        image,
        detach=True,
        name=cleanup.name("app"),
        network_mode="host",
        environment={"PORT": str(port)},
    )
    return wait_for(
        lambda: requests.get(f"http://127.0.0.1:{port}/", timeout=2).text,
        timeout=20,
        message="the built image did not serve",
    )


def test_it_builds_pushes_and_the_image_serves_the_commit(
    project, git_project, registry_server, dockerd, container_cleanup
):
    commit = git_project._git("rev-parse", "HEAD")

    build = run_build(project)

    assert build.status == BuildStatus.SUCCEEDED, (build.failure_line, build.log)
    assert build.commit == commit
    repo = f"127.0.0.1:{registry_server}/team/shop"
    assert build.image == f"{repo}:{commit[:12]}"
    assert build.image_digest.startswith("sha256:")
    assert (
        manifest_digest(registry_server, "team/shop", commit[:12]) == build.image_digest
    )
    assert manifest_digest(registry_server, "team/shop", str(build.number)) == (
        build.image_digest
    )
    assert set(build.timings) >= {"queue", "source", "dependencies", "build", "push"}
    assert build.cache["warm"] is False and build.cache["after"] > 4_000_000
    assert "Downloaded artifact-8.jar" in build.log and "digest sha256:" in build.log

    # What the registry holds (pulled by digest, local tags gone) serves the commit.
    client = dockerd.client
    for tag in (commit[:12], str(build.number)):
        client.images.remove(f"{repo}:{tag}")
    client.images.pull(f"{repo}@{build.image_digest}")
    page = serve(client, f"{repo}@{build.image_digest}", container_cleanup)
    assert git_project.marker in page and commit in page


def test_the_second_build_reuses_the_dependency_cache(project, git_project, dockerd):
    first = run_build(project)
    assert first.status == BuildStatus.SUCCEEDED, first.failure_line
    volume = dockerd.client.volumes.get(cache_volume_name(first.agent, 0))
    created = volume.attrs["CreatedAt"]

    git_project.commit("second version")
    second = run_build(project)

    assert second.status == BuildStatus.SUCCEEDED, second.failure_line
    assert second.cache["warm"] is True and first.cache["warm"] is False
    assert "cache hit" in second.log
    cold, warm = first.timings["dependencies"], second.timings["dependencies"]
    assert warm < cold - 1.0, (cold, warm)
    again = dockerd.client.volumes.get(cache_volume_name(second.agent, 0))
    assert again.attrs["CreatedAt"] == created
    assert second.cache["before"] == first.cache["after"]


def test_a_broken_dockerfile_fails_with_the_failing_step(
    project, git_project, client, viewer
):
    git_project.commit(
        "broken", dockerfile=BROKEN_DOCKERFILE.format(base=git_project.base_image)
    )

    build = run_build(project)

    assert build.status == BuildStatus.FAILED
    assert build.phase == "build"
    # The Dockerfile's own three steps: Ferry adds no LABEL step (the build
    # is found by its tags and digest, see docker_run).
    assert re.match(r"Step 3/3 : RUN echo compiling && exit 3 — ", build.failure_line)
    assert "returned a non-zero code: 3" in build.failure_line
    assert build.exit_code == 3
    assert build.image_digest == ""
    assert "compiling" in build.log

    # The same line on the build page and in the API.
    client.force_login(viewer)
    page = client.get(f"/builds/{build.pk}/").content.decode()
    assert 'data-testid="failure-line"' in page and escape(build.failure_line) in page
    api = client.get(f"/api/v1/builds/{build.pk}/").json()
    assert api["failure_line"] == build.failure_line and api["phase"] == "build"


def test_a_failing_dependency_command_fails_with_its_last_line(project):
    project.dependency_command = (
        "echo resolving; echo 'Could not resolve com.x:y:1.0' >&2; exit 7"
    )
    project.save()

    build = run_build(project)

    assert build.status == BuildStatus.FAILED
    assert build.phase == "dependencies"
    assert build.exit_code == 7
    assert build.failure_line == "Could not resolve com.x:y:1.0", build.log


def test_an_unknown_ref_fails_in_the_source_phase(project):
    build = run_build(project, ref="no-such-branch")

    assert build.status == BuildStatus.FAILED
    assert build.phase == "source"
    assert "no-such-branch" in build.failure_line


def test_the_context_honours_dockerignore(project, git_project):
    """Files listed in .dockerignore never reach the image (as with the CLI)."""
    git_project.write(".dockerignore", "secret.txt\n")
    git_project.write("secret.txt", "do not ship\n")
    git_project.commit(
        "ignore",
        dockerfile=(
            f"FROM {git_project.base_image}\n"
            "COPY . /app\n"
            "RUN test -e /app/target/index.html && test ! -e /app/secret.txt "
            "&& test ! -e /app/.git\n"
        ),
    )

    build = run_build(project)

    assert build.status == BuildStatus.SUCCEEDED, (build.failure_line, build.log)


@pytest.mark.django_db(transaction=True)
def test_an_isolated_builder_cancelled_from_another_worker_ends_cleanly(
    project, operator, dockerd, build_threads, eager_tasks, caplog
):
    """As in production: the cancel task (here in the test's thread) kills and
    removes the builder container while build_run streams it elsewhere. Which
    side gets there first varies (build_run waits on a removed container, sees
    it killed, or both remove it at once): each must end as a clean cancel."""
    project.dependency_command = "echo resolving; while true; do sleep 0.1; done"
    project.save()
    build = queue_build(project)
    running = build_threads(build)
    builder = f"ferry-build-{build.pk}"
    wait_for(
        lambda: "resolving" in Build.objects.get(pk=build.pk).log,
        timeout=60,
        message="the dependency step never ran",
    )

    # The builder is as isolated as the agents: host network (loopback
    # services), nothing published.
    attrs = dockerd.client.containers.get(builder).attrs
    assert attrs["HostConfig"]["NetworkMode"] == "host"
    assert not attrs["HostConfig"].get("PortBindings")
    assert not attrs["Config"].get("ExposedPorts")

    with caplog.at_level(logging.ERROR):
        build_cancel(operator, Build.objects.get(pk=build.pk), via="api")
        done = running.join(timeout=30)

    assert done.status == BuildStatus.CANCELLED
    assert done.log.rstrip().endswith("Cancelled."), done.log
    assert done.failure_line == "" and done.image_digest == ""
    errors = [r for r in caplog.records if r.levelno >= logging.ERROR]
    assert errors == [], caplog.text  # neither "executor crashed" nor the task
    assert not dockerd.client.containers.list(all=True, filters={"name": builder})


def test_a_builder_removed_while_it_runs_is_reported_gone(
    dockerd, test_images, container_cleanup, tmp_path
):
    """The engine's 404 on wait (the container was removed meanwhile) comes
    out as ContainerGone, not as a raw docker error."""
    client = dockerd.client
    (tmp_path / "src").mkdir()
    source = source_tar(tmp_path / "src", tmp_path / "src.tar", "workspace")
    name = container_cleanup.name("builder")
    spec = BuilderSpec(
        name=name,
        image=test_images.busybox,
        command="echo started; while true; do sleep 0.1; done",
        labels={"ferry.managed": "true"},
        mounts=[],
    )
    output: list[str] = []

    def remove_once_started() -> bool:
        if "started" in "".join(output) and inspect(client, name):
            client.api.remove_container(name, force=True)
        return False  # never a stop request: the container just goes

    with pytest.raises(ContainerGone, match=f"The builder container {name} is gone"):
        builder_run(client, spec, source, output.append, remove_once_started)
    assert inspect(client, name) is None
