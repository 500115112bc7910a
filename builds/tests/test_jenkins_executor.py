"""The Jenkins executor against the Jenkins stand-in (real HTTP, real python-jenkins).

Builds run through `build_run` (what the worker's task calls) in a thread,
so the test can watch the Build row while Jenkins "runs": the job is
created, the build is followed through the queue, the console is streamed
into the log while it grows, and the result, timings, commit and digest are
recorded. Each failure mode ends the build with a clear failure line.
"""

import time

import pytest
from django.utils import timezone

from builds.executors.docker import agent_prepare, cache_volume_name
from builds.jenkins.template import job_name
from builds.models import BUILD_TERMINAL_STATES, Build, BuildStatus
from builds.runs import build_stop
from builds.services import build_cancel, build_create
from controlplane.testing.wait import wait_for

from .conftest import remove_cluster_objects
from .jenkins_fixtures import (  # noqa: F401 - fixtures
    fixture_build_threads,
    fixture_jenkins,
    fixture_jenkins_cluster,
    fixture_jenkins_project,
    make_jenkins_cluster,
    make_jenkins_project,
    queue_build,
)
from .jenkins_standin import Script, Step, pipeline_script

pytestmark = [pytest.mark.integration, pytest.mark.django_db(transaction=True)]

SHA = "3f2a9c1d" * 5
DIGEST = "sha256:" + "ab" * 32


def reload(build) -> Build:
    return Build.objects.get(pk=build.pk)


def shop_script(**kwargs) -> Script:
    return pipeline_script(
        {
            "source": [f"Checking out Revision {SHA} (refs/remotes/origin/main)"],
            "dependencies": ["+ mvn -B dependency:go-offline", "Downloaded a.jar"],
            "build": ["Step 1/2 : FROM base", "Successfully built 0123abcd"],
            "push": [f"1: digest: {DIGEST} size: 527"],
        },
        **kwargs,
    )


def test_it_creates_the_job_follows_the_queue_and_streams_the_log(
    jenkins, jenkins_project, build_threads
):
    job = job_name(jenkins_project)
    jenkins.scripts[job] = shop_script(gates={"build": "go"}, queue_seconds=0.5)
    build = queue_build(jenkins_project)

    running = build_threads(build)

    # Held at the gate before the build stage: the log already shows the
    # first stages while the build is still running.
    mid = wait_for(
        lambda: "Downloaded a.jar" in (b := reload(build)).log and b,
        timeout=20,
        message=lambda: f"log never grew: {reload(build).log!r}",
    )
    assert mid.status == BuildStatus.RUNNING
    assert "Finished:" not in mid.log
    assert mid.external_id == "1"
    assert mid.commit == SHA
    assert {"queue", "trigger", "jenkins-queue", "source"} <= set(mid.timings)
    assert mid.timings["jenkins-queue"] >= 0.4  # the stand-in's queue delay
    run = jenkins.run(job, 1)
    assert run.params == {"GIT_REF": "main", "IMAGE_TAG": str(build.number)}
    assert "ferry-config-hash: " in jenkins.jobs[job].config_xml

    jenkins.release("go")
    done = running.join()

    assert done.status == BuildStatus.SUCCEEDED, (done.failure_line, done.log)
    # The console, then why the cache was not measured (this cluster's host
    # has no engine; see the next test for a real one), said once.
    assert done.log.rstrip().splitlines()[-2:] == [
        "Finished: SUCCESS",
        "Cache size not measured: Cannot connect to unix:///nonexistent/docker.sock:"
        " no such socket (is dockerd running?)",
    ]
    assert (done.cache["before"], done.cache["after"], done.cache["warm"]) == (
        None,
        None,
        False,
    )
    assert done.image_digest == DIGEST
    assert done.image == f"team/shop:{build.number}"
    assert {"source", "dependencies", "build", "push", "jenkins", "total"} <= set(
        done.timings
    )
    assert done.timings["jenkins"] == run.duration_ms / 1000 > 0
    # python-jenkins fetched the crumb and sent it with every POST.
    assert all(post["crumb"] == jenkins.crumb for post in jenkins.posts())

    # The next build reuses the job as it is (same config hash: no update).
    second = queue_build(jenkins_project)
    jenkins.scripts[job] = shop_script()
    assert build_threads(second).join().status == BuildStatus.SUCCEEDED
    assert len(jenkins.posts("/createItem")) == 1
    assert jenkins.posts("/config.xml") == []


def test_a_build_of_another_ref_passes_it_and_the_image_tag_to_the_job(
    jenkins, jenkins_project, build_threads
):
    job = job_name(jenkins_project)
    jenkins.scripts[job] = shop_script()
    # An earlier (cancelled) build: Ferry's build number 2 is the image tag,
    # and differs from Jenkins' own build number 1.
    earlier = queue_build(jenkins_project)
    Build.objects.filter(pk=earlier.pk).update(status=BuildStatus.CANCELLED)
    ref = "release/2.4+hotfix.1"  # "+" and "/" must arrive as written
    build = queue_build(jenkins_project, ref=ref)

    done = build_threads(build).join()

    assert done.status == BuildStatus.SUCCEEDED, done.failure_line
    assert jenkins.run(job, 1).params == {"GIT_REF": ref, "IMAGE_TAG": "2"}
    assert done.image == "team/shop:2"


def test_a_changed_project_updates_its_job_before_the_next_build(
    jenkins, jenkins_project, build_threads
):
    job = job_name(jenkins_project)
    jenkins.scripts[job] = shop_script()
    first = build_threads(queue_build(jenkins_project)).join()
    assert first.status == BuildStatus.SUCCEEDED, first.failure_line
    assert "mvn -B dependency:go-offline" in jenkins.jobs[job].config_xml
    old_config = jenkins.jobs[job].config_xml

    jenkins_project.dependency_command = "mvn -B -s /root/.m2/corp.xml verify"
    jenkins_project.save()
    second = build_threads(queue_build(jenkins_project)).join()

    assert second.status == BuildStatus.SUCCEEDED, second.failure_line
    assert f"Jenkins job {job}: updated" in second.log
    updates = jenkins.posts(f"/job/{job}/config.xml")
    assert len(updates) == 1 and len(jenkins.posts("/createItem")) == 1
    config = jenkins.jobs[job].config_xml
    assert "mvn -B -s /root/.m2/corp.xml verify" in config
    assert "dependency:go-offline" not in config
    assert config != old_config and "ferry-config-hash: " in config


@pytest.fixture
def engine_project(jenkins, dockerd, test_images):
    """A Jenkins project whose cluster's host is the sandboxed dockerd, with
    the agent's cache volumes in place (as provisioning leaves them)."""
    cluster = make_jenkins_cluster(jenkins.url, dockerd.url, test_images.busybox)
    agent_prepare(dockerd.client, cluster.agents.get(kind="java"))
    yield make_jenkins_project(cluster)
    remove_cluster_objects(dockerd.client, cluster.pk)


def fill_cache(client, image: str, volume: str, megabytes: int) -> None:
    """What the agent's Maven writes into ~/.m2 while the Jenkins build runs."""
    client.containers.run(
        image,
        ["-c", f"dd if=/dev/urandom of=/cache/dep.jar bs=1M count={megabytes}"],
        entrypoint=["/bin/sh"],
        volumes={volume: {"bind": "/cache", "mode": "rw"}},
        network_mode="none",
        remove=True,
    )


def test_builds_record_the_agents_cache_before_and_after_and_warmth(
    jenkins, engine_project, dockerd, test_images, build_threads
):
    job = job_name(engine_project)
    agent = engine_project.cluster.agents.get(kind="java")
    volume = cache_volume_name(agent, 0)
    jenkins.scripts[job] = shop_script(gates={"build": "go"})
    first = queue_build(engine_project)
    running = build_threads(first)
    wait_for(lambda: "Downloaded a.jar" in reload(first).log, timeout=20)
    fill_cache(dockerd.client, test_images.busybox, volume, 2)
    jenkins.release("go")
    cold = running.join()

    assert cold.status == BuildStatus.SUCCEEDED, cold.failure_line
    assert not cold.cache["before"] and cold.cache["warm"] is False
    assert cold.cache["after"] >= 2 * 1024 * 1024
    assert cold.cache["volumes"][volume]["path"] == "/root/.m2"
    assert "Cache size not measured" not in cold.log
    agent.refresh_from_db()
    assert agent.cache_bytes == cold.cache["after"]

    jenkins.scripts[job] = shop_script()
    warm = build_threads(queue_build(engine_project)).join()

    assert warm.status == BuildStatus.SUCCEEDED, warm.failure_line
    assert warm.cache["warm"] is True
    assert warm.cache["before"] == cold.cache["after"] == warm.cache["after"]


def test_a_failing_build_shows_the_line_that_explains_it(
    jenkins, jenkins_project, build_threads
):
    jenkins.scripts[job_name(jenkins_project)] = pipeline_script(
        {
            "source": ["Checking out Revision " + SHA],
            "build": [
                "Step 3/3 : RUN make",
                "make: *** [all] Error 2",
                "The command '/bin/sh -c make' returned a non-zero code: 2",
            ],
        },
        result="FAILURE",
    )
    done = build_threads(queue_build(jenkins_project)).join()

    assert done.status == BuildStatus.FAILED
    assert done.failure_line == (
        "The command '/bin/sh -c make' returned a non-zero code: 2"
    )
    assert done.phase == "build"
    assert done.exit_code == 1  # "ERROR: script returned exit code 1"
    assert "Finished: FAILURE" in done.log


def test_a_stale_crumb_is_refreshed_and_a_refused_one_fails_clearly(
    jenkins, jenkins_project, build_threads
):
    jenkins.rotate_crumb()  # the client has none yet; then Jenkins "restarts"
    first = build_threads(queue_build(jenkins_project)).join()
    assert first.status == BuildStatus.SUCCEEDED, first.failure_line

    jenkins.accept_crumbs = False  # e.g. a proxy strips the Jenkins-Crumb header
    refused = build_threads(queue_build(jenkins_project)).join()

    assert refused.status == BuildStatus.FAILED
    assert "refused the CSRF crumb" in refused.failure_line
    assert "No valid crumb" in refused.failure_line
    assert refused.phase == "trigger"


def test_a_wrong_token_fails_with_the_user_named(
    jenkins, jenkins_project, build_threads
):
    cluster = jenkins_project.cluster
    cluster.jenkins_token = "not-the-token"
    cluster.save()
    started = time.monotonic()

    done = build_threads(queue_build(jenkins_project)).join()

    assert done.status == BuildStatus.FAILED
    assert done.failure_line.startswith(
        "Jenkins rejected the credentials for user ferry (HTTP 401)"
    )
    assert "not-the-token" not in done.failure_line + done.log
    assert done.phase == "trigger"
    assert time.monotonic() - started < 10
    assert jenkins.jobs == {}


def test_jenkins_down_fails_the_build_at_once(jenkins, jenkins_project, build_threads):
    jenkins.down()
    done = build_threads(queue_build(jenkins_project)).join()

    assert done.status == BuildStatus.FAILED
    assert done.failure_line == (
        f"Cannot connect to Jenkins at {jenkins.url}: connection refused"
    )
    assert done.phase == "trigger"


def test_jenkins_going_down_mid_build_fails_after_the_grace(
    jenkins, jenkins_project, build_threads
):
    job = job_name(jenkins_project)
    jenkins.scripts[job] = shop_script(gates={"build": "go"})
    build = queue_build(jenkins_project)
    running = build_threads(build)
    wait_for(lambda: "Downloaded a.jar" in reload(build).log, timeout=20)

    jenkins.down()
    done = running.join(timeout=20)

    assert done.status == BuildStatus.FAILED
    assert done.failure_line == (
        f"Cannot connect to Jenkins at {jenkins.url}: connection refused "
        "(for 1 s; the build's state is unknown)"
    )
    assert done.phase == "dependencies"  # the last stage seen
    assert "Downloaded a.jar" in done.log


def test_a_vanished_build_fails_clearly(jenkins, jenkins_project, build_threads):
    job = job_name(jenkins_project)
    jenkins.scripts[job] = shop_script(gates={"build": "go"})
    build = queue_build(jenkins_project)
    running = build_threads(build)
    wait_for(lambda: "Downloaded a.jar" in reload(build).log, timeout=20)

    jenkins.vanish(job, 1)
    done = running.join()

    assert done.status == BuildStatus.FAILED
    assert done.failure_line.startswith(f"Jenkins build {job} #1 vanished (HTTP 404")


def cancel(build) -> None:
    """What build_cancel and its task do: CAS to cancelled, then stop."""
    Build.objects.filter(pk=build.pk, status=BuildStatus.RUNNING).update(
        status=BuildStatus.CANCELLED, finished_at=timezone.now()
    )
    assert build_stop(build.pk) == "stopped"


def test_cancel_stops_the_jenkins_build(jenkins, jenkins_project, build_threads):
    job = job_name(jenkins_project)
    jenkins.scripts[job] = shop_script(gates={"build": "never"})
    build = queue_build(jenkins_project)
    running = build_threads(build)
    wait_for(lambda: reload(build).external_id == "1", timeout=20)

    cancel(build)
    done = running.join()

    assert jenkins.run(job, 1).result == "ABORTED"
    assert done.status == BuildStatus.CANCELLED
    assert "Aborted by ferry" in done.log


def test_cancel_while_queued_in_jenkins_drops_the_queue_item(
    jenkins, jenkins_project, build_threads
):
    job = job_name(jenkins_project)
    jenkins.scripts[job] = Script(queue_seconds=3600, steps=[Step("never")])
    build = queue_build(jenkins_project)
    running = build_threads(build)
    queue = wait_for(
        lambda: (reload(build).external_id or "").removeprefix("queue:"), 20
    )

    cancel(build)
    done = running.join()

    assert jenkins.queue[int(queue)].cancelled
    assert done.status == BuildStatus.CANCELLED


def test_a_build_stuck_in_the_jenkins_queue_fails_at_the_deadline(
    jenkins, jenkins_project, build_threads, settings
):
    settings.FERRY_JENKINS_QUEUE_TIMEOUT = 1.0
    jenkins.scripts[job_name(jenkins_project)] = Script(queue_seconds=3600)

    done = build_threads(queue_build(jenkins_project)).join()

    assert done.status == BuildStatus.FAILED
    assert done.failure_line.startswith("Jenkins kept the build queued for 1 s")
    assert done.phase == "jenkins-queue"
    assert all(item.cancelled for item in jenkins.queue.values())


def test_builds_run_and_cancel_through_a_real_celery_worker(
    jenkins, jenkins_project, celery_worker, redis_url, operator
):
    job = job_name(jenkins_project)
    jenkins.scripts[job] = shop_script(gates={"build": "go"})

    build = build_create(operator, jenkins_project, via="api")
    mid = wait_for(
        lambda: "Downloaded a.jar" in (b := reload(build)).log and b,
        timeout=60,
        message=lambda: "no log; worker log:\n" + celery_worker.log_tail(),
    )
    assert (mid.status, mid.phase) == (BuildStatus.RUNNING, "dependencies")
    jenkins.release("go")
    done = wait_for(
        lambda: (b := reload(build)).status in BUILD_TERMINAL_STATES and b,
        timeout=60,
        message=lambda: "never ended; worker log:\n" + celery_worker.log_tail(),
    )
    assert done.status == BuildStatus.SUCCEEDED, done.failure_line
    assert done.image_digest == DIGEST and done.timings["jenkins"] > 0

    jenkins.scripts[job] = shop_script(gates={"build": "never"})
    second = build_create(operator, jenkins_project, via="api")
    wait_for(lambda: reload(second).external_id == "2", timeout=60)
    build_cancel(operator, second, via="api")

    wait_for(
        lambda: jenkins.run(job, 2).result == "ABORTED",
        timeout=30,
        message=lambda: (
            "Jenkins build not stopped; worker log:\n" + celery_worker.log_tail()
        ),
    )
    ended = wait_for(lambda: "total" in (b := reload(second)).timings and b, 30)
    assert ended.status == BuildStatus.CANCELLED
    assert "Aborted by ferry" in ended.log
