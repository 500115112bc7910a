"""Build output stored on the suite's database (PostgreSQL in CI, where a
text column refuses NUL bytes): logs, failure lines and provision errors
keep their text, with NUL shown as U+FFFD."""

import uuid

import pytest

from adapters.errors import HostUnreachable
from builds.executors import BuildResult, Executor
from builds.models import Build, BuildAgent, BuildCluster, BuildStatus, Project
from builds.progress import BuildProgress
from builds.runs import build_run
from builds.services import build_create, cluster_provision
from regions.models import DockerHost, Region

pytestmark = pytest.mark.django_db


class FailsWithBinaryOutput(Executor):
    """Logs and fails with what a tool printing a binary file would give."""

    def provision(self, cluster):
        raise HostUnreachable("engine said: \x00\x01 garbage")

    def start(self, build):
        progress = BuildProgress(build)
        progress.log("$ cat target/app.bin\nELF\x00\x00\x02 header\n")
        progress.flush()
        return BuildResult.failed("cat: \x00 binary", 1, "dependencies")


@pytest.fixture
def project(settings):
    settings.FERRY_BUILD_EXECUTORS = {"docker": f"{__name__}.FailsWithBinaryOutput"}
    region = Region.objects.create(slug="eu-central", name="EU")
    host = DockerHost.objects.create(
        region=region, name="b1", docker_url="unix:///x.sock"
    )
    cluster = BuildCluster.objects.create(region=region, host=host, name="builders")
    BuildAgent.objects.create(cluster=cluster, kind="java", image="maven:3")
    return Project.objects.create(
        cluster=cluster, name="api", git_url="file:///srv/api", image_repository="t/api"
    )


def test_nul_bytes_in_the_log_and_failure_line_are_stored_as_replacement(project):
    build = build_create(None, project)

    assert build_run(build.pk) == BuildStatus.FAILED

    ended = Build.objects.get(pk=build.pk)
    assert "ELF\ufffd\ufffd\x02 header\n" in ended.log
    assert ended.failure_line == "cat: \ufffd binary"
    assert ended.phase == "dependencies" and ended.exit_code == 1


def test_recorded_fields_lose_their_nul_bytes_too(project):
    build = Build.objects.create(
        id=uuid.uuid4(), project=project, number=1, ref="main", status="running"
    )
    BuildProgress(build).record(external_id="12\x00")

    assert Build.objects.get(pk=build.pk).external_id == "12\ufffd"


def test_a_provision_error_with_nul_bytes_is_recorded(project):
    cluster = cluster_provision(project.cluster_id)

    assert cluster.status == "failed"
    assert cluster.last_error == "engine said: \ufffd\x01 garbage"
