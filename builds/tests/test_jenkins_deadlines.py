"""How Jenkins builds end when something stops short: a queue item Jenkins
forgets, the overall build timeout, and the reaper.

Against the Jenkins stand-in (real HTTP, real python-jenkins). The reaper's
stop task runs eagerly in the test's thread, as a worker would run it.
"""

import pytest
from django.utils import timezone

from builds.jenkins.connection import cluster_jenkins
from builds.jenkins.template import job_name, render_job_config
from builds.models import Build, BuildStatus
from builds.runs import builds_reap
from controlplane.testing.wait import wait_for

from .jenkins_fixtures import (  # noqa: F401 - fixtures
    fixture_build_threads,
    fixture_jenkins,
    fixture_jenkins_cluster,
    fixture_jenkins_project,
    queue_build,
)
from .jenkins_standin import Script
from .test_jenkins_executor import reload, shop_script

pytestmark = [pytest.mark.integration, pytest.mark.django_db(transaction=True)]


def test_a_queue_item_jenkins_forgets_fails_the_build_naming_it(
    jenkins, jenkins_project, build_threads
):
    jenkins.scripts[job_name(jenkins_project)] = Script(queue_seconds=3600)
    build = queue_build(jenkins_project)
    running = build_threads(build)
    queue = wait_for(
        lambda: (reload(build).external_id or "").removeprefix("queue:"), 20
    )

    jenkins.forget(int(queue))  # e.g. Jenkins restarted with the item queued
    done = running.join()

    assert done.status == BuildStatus.FAILED
    assert done.failure_line == (
        f"Jenkins forgot queue item {queue} before the build started (HTTP 404): "
        "was Jenkins restarted?"
    )
    assert done.phase == "jenkins-queue"
    assert f"FAILED: {done.failure_line}\n" in done.log


def test_a_jenkins_build_past_the_build_timeout_is_stopped_there(
    jenkins, jenkins_project, build_threads, settings
):
    settings.FERRY_BUILD_TIMEOUT = 1.0
    job = job_name(jenkins_project)
    jenkins.scripts[job] = shop_script(gates={"build": "never"})

    done = build_threads(queue_build(jenkins_project)).join()

    assert done.status == BuildStatus.FAILED
    assert done.failure_line == "The Jenkins build did not finish within 1 s."
    assert jenkins.run(job, 1).result == "ABORTED"
    assert "Aborted by ferry" in done.log


def started_long_ago(build: Build, external_id: str | None = None) -> None:
    """Move the build's start past FERRY_BUILD_TIMEOUT (default 3600 s)."""
    fields = {"started_at": timezone.now() - timezone.timedelta(hours=2)}
    if external_id is not None:
        fields.update(
            status=BuildStatus.RUNNING, phase="build", external_id=external_id
        )
    Build.objects.filter(pk=build.pk).update(**fields)


REAPED = "Stopped by the reaper: still running after 3600 s (the limit)."


def test_the_reaper_stops_the_jenkins_build_of_a_build_whose_worker_died(
    jenkins, jenkins_project, eager_tasks
):
    # What a worker that died mid-build leaves: Jenkins still building, the
    # row still running, nobody following it.
    job = job_name(jenkins_project)
    jenkins.scripts[job] = shop_script(gates={"build": "never"}, queue_seconds=0)
    client = cluster_jenkins(jenkins_project.cluster)
    client.ensure_job(job, render_job_config(jenkins_project))
    queue_id = client.trigger(job, {"GIT_REF": "main", "IMAGE_TAG": "1"})
    number = wait_for(lambda: client.queue_item(queue_id).build_number, 10)
    build = queue_build(jenkins_project)
    started_long_ago(build, external_id=str(number))

    result = builds_reap()

    assert result["reaped"] == [build.pk]
    reaped = reload(build)
    assert (reaped.status, reaped.failure_line) == (BuildStatus.FAILED, REAPED)
    assert jenkins.run(job, number).result == "ABORTED"


def test_a_reaped_build_still_followed_ends_failed_with_the_reapers_reason(
    jenkins, jenkins_project, build_threads, eager_tasks
):
    job = job_name(jenkins_project)
    jenkins.scripts[job] = shop_script(gates={"build": "never"})
    build = queue_build(jenkins_project)
    running = build_threads(build)
    wait_for(lambda: "Downloaded a.jar" in reload(build).log, timeout=20)
    started_long_ago(build)

    assert builds_reap()["reaped"] == [build.pk]
    done = running.join()

    assert (done.status, done.failure_line) == (BuildStatus.FAILED, REAPED)
    assert jenkins.run(job, 1).result == "ABORTED"
    assert "Aborted by ferry" in done.log
    assert f"\n{REAPED}\n" in done.log and "Cancelled." not in done.log
    assert "total" in done.timings
