"""Builds through a real Celery worker: publish on commit, cancel, agent slots.

The dependency command waits for a "release" file in the agent's cache
volume, so the test decides when a build may go on (no sleeps in tests):
it writes that file with a throwaway container mounting the volume.
"""

import pytest

from builds.executors.docker import cache_volume_name
from builds.models import Build, BuildStatus
from builds.queue import queue_position
from builds.services import build_cancel, build_create
from controlplane.testing.wait import wait_for

pytestmark = [pytest.mark.integration, pytest.mark.django_db(transaction=True)]

WAIT_FOR_RELEASE = (
    "echo waiting for release; "
    "while [ ! -f /root/.m2/release ]; do sleep 0.1; done; "
    "echo released; mkdir -p target; "
    'sed "s/@COMMIT@/$FERRY_COMMIT/" index.html > target/index.html'
)


def reload(build) -> Build:
    return Build.objects.get(pk=build.pk)


def builder_running(client, build) -> bool:
    found = client.containers.list(filters={"name": f"ferry-build-{build.pk}"})
    return bool(found) and found[0].status == "running"


def release(client, image: str, volume: str) -> None:
    client.containers.run(
        image,
        ["-c", "touch /cache/release"],
        volumes={volume: {"bind": "/cache", "mode": "rw"}},
        network_mode="none",
        remove=True,
    )


def wait_status(build, statuses, worker, timeout=60) -> Build:
    return wait_for(
        lambda: (b := reload(build)).status in statuses and b,
        timeout=timeout,
        message=f"build {build} never reached {statuses}; worker log:\n"
        + worker.log_tail(),
    )


def live_fragment(client, build) -> str:
    answer = client.get(
        f"/builds/{build.pk}/", HTTP_HX_REQUEST="true", HTTP_HX_TARGET="build-live"
    )
    return answer.content.decode()


def test_cancel_stops_the_running_builder_container(
    celery_worker, redis_url, project, operator, dockerd, client
):
    project.dependency_command = WAIT_FOR_RELEASE
    project.save()

    build = build_create(operator, project, via="api")
    wait_for(
        lambda: builder_running(dockerd.client, build),
        timeout=60,
        message="builder never ran; worker log:\n" + celery_worker.log_tail(),
    )
    assert reload(build).phase == "dependencies"
    # The log is persisted while the build runs: the live fragment shows it
    # and keeps polling.
    client.force_login(operator)
    fragment = wait_for(
        lambda: "waiting for release" in (f := live_fragment(client, build)) and f,
        timeout=10,
        message="the running build's log did not reach the page",
    )
    assert 'hx-trigger="every 1s"' in fragment and "Cancel build" in fragment

    build_cancel(operator, build, via="api")

    wait_for(
        lambda: (
            not dockerd.client.containers.list(
                all=True, filters={"label": f"ferry.build={build.pk}"}
            )
        ),
        timeout=30,
        message="the builder container was not stopped",
    )
    ended = wait_for(
        lambda: "total" in (b := reload(build)).timings and b,
        timeout=30,
        message="the worker did not finish the cancelled build",
    )
    assert ended.status == BuildStatus.CANCELLED
    assert "Cancelled." in ended.log
    assert ended.image_digest == ""
    fragment = live_fragment(client, build)
    assert "hx-trigger" not in fragment and "Cancelled." in fragment


def task_returned(worker, build, value: str) -> bool:
    """The worker logged that build's run task returned `value`."""
    mark = f"[{build.pk}] succeeded"
    return any(
        mark in line and line.rstrip().endswith(f"'{value}'")
        for line in worker.log_tail(400).splitlines()
    )


# Two worker threads: without the agent's limit both builds would run at once
# (a solo worker would serialise them and hide a missing limit).
@pytest.mark.parametrize("celery_worker_pool", [("threads", 2)])
def test_with_concurrency_one_a_second_build_waits_then_runs(
    celery_worker, redis_url, project, operator, dockerd, test_images, client
):
    agent = project.cluster.agents.get(kind="java")
    agent.concurrency = 1
    agent.save()
    project.dependency_command = WAIT_FOR_RELEASE
    project.save()

    first = build_create(operator, project, via="api")
    second = build_create(operator, project, via="api")
    wait_for(
        lambda: builder_running(dockerd.client, first),
        timeout=60,
        message="first build never ran; worker log:\n" + celery_worker.log_tail(),
    )
    # The second build's task ran on the other thread, found no free slot
    # and left the build queued while the first one still runs.
    wait_for(
        lambda: task_returned(celery_worker, second, "queued"),
        timeout=30,
        message="the second build's task did not run; worker log:\n"
        + celery_worker.log_tail(),
    )
    assert builder_running(dockerd.client, first)
    assert not builder_running(dockerd.client, second)
    waiting = reload(second)
    assert waiting.status == BuildStatus.QUEUED
    assert queue_position(waiting) == 1
    client.force_login(operator)
    api = client.get(f"/api/v1/builds/{second.pk}/").json()
    assert (api["status"], api["queue_position"]) == ("queued", 1)

    release(dockerd.client, test_images.busybox, cache_volume_name(agent, 0))

    done_first = wait_status(first, {BuildStatus.SUCCEEDED}, celery_worker)
    done_second = wait_status(
        second, {BuildStatus.SUCCEEDED, BuildStatus.FAILED}, celery_worker
    )
    assert done_second.status == BuildStatus.SUCCEEDED, done_second.failure_line
    assert done_second.started_at >= done_first.finished_at
    assert done_second.timings["queue"] >= done_first.timings["total"] * 0.5
    assert done_second.image_digest and done_second.image_digest != ""


SLOW_DOCKERFILE = """\
FROM {base}
RUN echo building && sleep 300
"""


def test_cancel_during_docker_build_kills_the_running_step(
    celery_worker, redis_url, project, git_project, operator, dockerd, container_cleanup
):
    project.dependency_command = ""
    project.save()
    git_project.commit(
        "slow", dockerfile=SLOW_DOCKERFILE.format(base=git_project.base_image)
    )

    build = build_create(operator, project, via="api")
    wait_for(
        lambda: "Running in" in reload(build).log,
        timeout=60,
        message="the RUN step never started; worker log:\n" + celery_worker.log_tail(),
    )
    build_cancel(operator, build, via="api")

    ended = wait_for(
        lambda: "total" in (b := reload(build)).timings and b,
        timeout=30,
        message="the worker did not stop the docker build",
    )
    assert ended.status == BuildStatus.CANCELLED
    assert ended.timings["total"] < 60
    others = [
        c.name
        for c in dockerd.client.containers.list()
        if not c.name.startswith(container_cleanup.prefix)
    ]
    assert others == []
