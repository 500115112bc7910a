"""Build lifecycle logic with the in-memory executor (no engine needed).

Slots per agent, queue order, compare-and-set endings, the reaper, the
executor registry, chunked logs and the read-side maths.
"""

import uuid

import pytest
from django.utils import timezone

from adapters.errors import HostUnreachable
from builds import selectors
from builds.executors import BuildResult, Executor, executor_for
from builds.executors.locmem import LocmemExecutor
from builds.models import Build, BuildAgent, BuildCluster, BuildStatus, Project
from builds.progress import BuildProgress
from builds.queue import agent_kick, queue_position
from builds.runs import build_run, builds_reap
from builds.services import build_cancel, build_create
from regions.models import DockerHost, Region

pytestmark = pytest.mark.django_db
LOCMEM = "builds.executors.locmem.LocmemExecutor"


@pytest.fixture(autouse=True)
def locmem(settings):
    settings.FERRY_BUILD_EXECUTORS = {"docker": LOCMEM}
    LocmemExecutor.reset()
    yield LocmemExecutor
    LocmemExecutor.reset()


@pytest.fixture
def project():
    region = Region.objects.create(slug="eu-central", name="EU")
    host = DockerHost.objects.create(
        region=region, name="b1", docker_url="unix:///x.sock"
    )
    cluster = BuildCluster.objects.create(region=region, host=host, name="builders")
    BuildAgent.objects.create(
        cluster=cluster, kind="java", image="maven:3", concurrency=2
    )
    return Project.objects.create(
        cluster=cluster, name="api", git_url="file:///srv/api", image_repository="t/api"
    )


def statuses(*builds) -> list[str]:
    return [Build.objects.get(pk=b.pk).status for b in builds]


def test_slots_follow_the_agent_concurrency_oldest_first(project):
    builds = [build_create(None, project) for _ in range(3)]

    claimed = agent_kick(builds[0].agent_id, publish=False)

    assert claimed == [builds[0].pk, builds[1].pk]
    assert statuses(*builds) == ["running", "running", "queued"]
    assert queue_position(Build.objects.get(pk=builds[2].pk)) == 1
    assert Build.objects.get(pk=builds[0].pk).timings["queue"] >= 0


def test_a_build_without_a_free_slot_stays_queued(project):
    project.cluster.agents.update(concurrency=1)
    first, second = build_create(None, project), build_create(None, project)
    agent_kick(first.agent_id, publish=False)

    assert build_run(second.pk) == "queued"
    assert statuses(second) == ["queued"]


def test_when_a_build_ends_the_next_queued_one_takes_the_slot(project, locmem):
    project.cluster.agents.update(concurrency=1)
    first, second = build_create(None, project), build_create(None, project)

    assert build_run(first.pk) == BuildStatus.SUCCEEDED

    # The finishing build kicked the queue: the second holds the slot now.
    assert statuses(first, second) == ["succeeded", "running"]
    assert build_run(second.pk) == BuildStatus.SUCCEEDED
    assert locmem.started == [first.pk, second.pk]


def test_a_duplicate_task_does_not_run_a_build_twice(project, locmem):
    build = build_create(None, project)
    agent_kick(build.agent_id, publish=False)
    Build.objects.filter(pk=build.pk).update(phase="starting")

    assert build_run(build.pk) == "already started"
    assert locmem.started == []
    Build.objects.filter(pk=build.pk).update(status=BuildStatus.SUCCEEDED)
    assert build_run(build.pk) == "stale"


class CancelledMidway(Executor):
    """Someone cancels while the executor works; it still reports success."""

    def start(self, build):
        build_cancel(None, Build.objects.get(pk=build.pk), via="api")
        return BuildResult.succeeded()


def test_a_cancel_that_wins_the_race_stays_cancelled(project, settings):
    settings.FERRY_BUILD_EXECUTORS = {"docker": f"{__name__}.CancelledMidway"}
    build = build_create(None, project)

    build_run(build.pk)

    ended = Build.objects.get(pk=build.pk)
    assert ended.status == BuildStatus.CANCELLED
    assert "total" in ended.timings


class VanishesMidway(Executor):
    """The build's row is deleted (e.g. by an admin) while the executor works."""

    def start(self, build):
        Build.objects.filter(pk=build.pk).delete()
        return BuildResult.succeeded()


def test_a_build_deleted_while_it_runs_still_frees_its_slot(project, settings):
    settings.FERRY_BUILD_EXECUTORS = {"docker": f"{__name__}.VanishesMidway"}
    project.cluster.agents.update(concurrency=1)
    first, second = build_create(None, project), build_create(None, project)

    assert build_run(first.pk) == BuildStatus.SUCCEEDED

    assert not Build.objects.filter(pk=first.pk).exists()
    assert statuses(second) == ["running"]  # the queue was kicked


class Unreachable(Executor):
    def start(self, build):
        raise HostUnreachable("Cannot connect to unix:///x.sock: no such socket")


class Crashing(Executor):
    def start(self, build):
        raise RuntimeError("bug in the executor")


@pytest.mark.parametrize(
    ("executor", "line"),
    [
        ("Unreachable", "Cannot connect to unix:///x.sock: no such socket"),
        ("Crashing", "RuntimeError: bug in the executor"),
    ],
)
def test_executor_errors_fail_the_build_with_a_reason(
    project, settings, executor, line
):
    settings.FERRY_BUILD_EXECUTORS = {"docker": f"{__name__}.{executor}"}
    build = build_create(None, project)

    assert build_run(build.pk) == BuildStatus.FAILED

    assert Build.objects.get(pk=build.pk).failure_line == line


def test_a_failed_result_records_line_exit_code_and_phase(project, locmem):
    locmem.results["api"] = BuildResult.failed(
        "ERROR: boom", exit_code=2, phase="build"
    )
    build = build_create(None, project)

    build_run(build.pk)

    ended = Build.objects.get(pk=build.pk)
    assert (ended.status, ended.failure_line, ended.exit_code, ended.phase) == (
        "failed", "ERROR: boom", 2, "build",
    )  # fmt: skip


def test_the_reaper_fails_stuck_builds_and_restarts_queues(project, settings):
    settings.FERRY_BUILD_TIMEOUT = 60
    project.cluster.agents.update(concurrency=1)
    stuck, waiting = build_create(None, project), build_create(None, project)
    agent_kick(stuck.agent_id, publish=False)
    Build.objects.filter(pk=stuck.pk).update(
        started_at=timezone.now() - timezone.timedelta(seconds=120), phase="build"
    )

    result = builds_reap()

    assert result["reaped"] == [stuck.pk] and result["kicked"] == 1
    reaped = Build.objects.get(pk=stuck.pk)
    assert reaped.status == BuildStatus.FAILED and "reaper" in reaped.failure_line
    assert statuses(waiting) == ["running"]


def test_cancel_of_an_ended_build_is_refused(project):
    build = build_create(None, project)
    build_cancel(None, build)
    with pytest.raises(Exception, match="already ended"):
        build_cancel(None, build)


def test_executor_registry_picks_by_cluster_executor(project, settings):
    settings.FERRY_BUILD_EXECUTORS = {}
    cluster = project.cluster
    assert type(executor_for(cluster)).__name__ == "DockerExecutor"
    cluster.executor = "unknown"
    with pytest.raises(LookupError):
        executor_for(cluster)


def test_progress_appends_the_log_in_chunks_and_caps_it(project, settings):
    settings.FERRY_BUILD_LOG_MAX_BYTES = 50
    build = Build.objects.create(
        id=uuid.uuid4(), project=project, number=1, ref="main", status="running"
    )
    progress = BuildProgress(build, flush_bytes=10, flush_seconds=60)

    progress.log("0123456789")  # reaches flush_bytes: written now
    assert Build.objects.get(pk=build.pk).log == "0123456789"
    progress.log("abc")  # buffered
    assert Build.objects.get(pk=build.pk).log == "0123456789"
    progress.log("x" * 100)
    progress.flush()

    log = Build.objects.get(pk=build.pk).log
    assert log.startswith("0123456789abc") and "log truncated" in log
    assert len(log.split("\n")[0]) == 50


def test_percentile_is_nearest_rank():
    values = [float(v) for v in range(1, 21)]
    assert selectors.percentile(values, 0.5) == 10.0
    assert selectors.percentile(values, 0.95) == 19.0
    assert selectors.percentile([], 0.5) is None


def test_waterfall_places_phases_one_after_another():
    build = Build(timings={"queue": 1, "source": 1, "dependencies": 2, "total": 3})
    rows = selectors.waterfall(build)
    assert [r["name"] for r in rows] == ["queue", "source", "dependencies"]
    assert [r["offset_pct"] for r in rows] == [0.0, 25.0, 50.0]
    assert rows[-1]["width_pct"] == 50.0


def test_a_build_whose_agent_was_deleted_fails_with_a_reason(project):
    build = build_create(None, project)
    project.cluster.agents.all().delete()

    assert build_run(build.pk) == "failed"

    ended = Build.objects.get(pk=build.pk)
    assert ended.status == BuildStatus.FAILED and "agent" in ended.failure_line
