"""Build pages: what each role sees and may do; live polling only while active.

Database only (tasks are published on commit, which does not happen inside a
test transaction); the real executor is covered in test_docker_executor.py.
"""

import re
import uuid

import pytest
from django.utils import timezone

from builds.models import Build, BuildAgent, BuildCluster, BuildStatus, Project
from regions.models import DockerHost, Region

pytestmark = pytest.mark.django_db


@pytest.fixture
def project():
    region = Region.objects.create(slug="cn-hongkong", name="Hong Kong")
    host = DockerHost.objects.create(
        region=region, name="build-1", docker_url="unix:///nonexistent.sock"
    )
    cluster = BuildCluster.objects.create(region=region, host=host, name="builders")
    BuildAgent.objects.create(
        cluster=cluster, kind="java", image="maven:3", cache_paths=["/root/.m2"],
        cache_bytes=42 * 1024 * 1024, concurrency=1,
    )  # fmt: skip
    return Project.objects.create(
        cluster=cluster, name="shop", git_url="file:///srv/shop.git",
        image_repository="team/shop",
    )  # fmt: skip


def make_build(project, number, status, **fields) -> Build:
    agent = project.cluster.agents.get(kind="java")
    return Build.objects.create(
        id=uuid.uuid4(), project=project, agent=agent, number=number, ref="main",
        status=status, **fields,
    )  # fmt: skip


def finished(project, number, total, warm, status=BuildStatus.SUCCEEDED) -> Build:
    now = timezone.now()
    return make_build(
        project, number, status,
        started_at=now - timezone.timedelta(seconds=total), finished_at=now,
        timings={"queue": 0.1, "source": 1, "dependencies": total - 3, "build": 1,
                 "push": 1, "total": total},
        cache={"warm": warm, "before": 1 if warm else 0, "after": 10},
    )  # fmt: skip


def login(client, user):
    client.force_login(user)
    return client


def strip_tags(html: str) -> str:
    return " ".join(re.sub(r"<[^>]+>", " ", html).split())


def stat(text: str, testid: str) -> str:
    """The text of a stat box (one line of the page: label, value, subtitle)."""
    line = next(line for line in text.splitlines() if f'data-testid="{testid}"' in line)
    return strip_tags(line)


def table_rows(text: str) -> dict[int, list[str]]:
    """Build number -> the cells of its row in the builds table, as text."""
    rows = {}
    for number, row in re.findall(r'<tr data-build="(\d+)">(.*?)</tr>', text, re.S):
        cells = re.findall(r"<td[^>]*>(.*?)</td>", row, re.S)
        rows[int(number)] = [strip_tags(cell) for cell in cells]
    return rows


def test_project_page_shows_stats_chart_and_builds(client, viewer, project):
    finished(project, 1, 20.0, warm=False)
    finished(project, 2, 6.0, warm=True)
    finished(project, 3, 14.0, warm=True, status=BuildStatus.FAILED)
    finished(project, 4, 10.0, warm=True)
    make_build(project, 5, BuildStatus.QUEUED)

    page = login(client, viewer).get(f"/builds/projects/{project.pk}/")

    assert page.status_code == 200
    text = page.content.decode()
    assert 'data-testid="success-rate">75%' in text
    assert 'data-testid="p50">10.0 s' in text and 'data-testid="p95">20.0 s' in text
    # Warm vs cold over succeeded builds only (the failed warm #3 is left out):
    # mean total, then how many and their mean dependency phase.
    assert stat(text, "warm") == "Warm cache 8.0 s 2 builds, dependencies 5.0 s"
    assert stat(text, "cold") == "Cold cache 20.0 s 1 build, dependencies 17.0 s"
    assert 'id="trend-chart"' in text and "vendor/chart.umd.js" in text
    assert 'id="trend-data"' in text
    # The builds table, newest first: status, queue, duration, cache, failure.
    rows = table_rows(text)
    assert list(rows) == [5, 4, 3, 2, 1]
    assert [(r[1], r[4], r[5], r[6]) for r in rows.values()] == [
        ("Queued position 1", "—", "—", "—"),
        ("Succeeded", "0.1 s", "10.0 s", "warm"),
        ("Failed", "0.1 s", "14.0 s", "warm"),
        ("Succeeded", "0.1 s", "6.0 s", "warm"),
        ("Succeeded", "0.1 s", "20.0 s", "cold"),
    ]
    # Viewers see no build button.
    assert 'data-testid="build-button"' not in text


def test_operator_builds_with_a_ref_from_the_page(client, operator, project):
    answer = login(client, operator).post(
        f"/builds/projects/{project.pk}/build/", {"ref": "hotfix/login"}
    )

    build = Build.objects.get()
    assert answer.status_code == 302 and answer.url == f"/builds/{build.pk}/"
    assert build.ref == "hotfix/login" and build.status == BuildStatus.QUEUED
    page = client.get(f"/builds/projects/{project.pk}/").content.decode()
    assert 'data-testid="build-button"' in page


def test_a_bad_ref_is_a_form_error_not_a_build(client, operator, project):
    answer = login(client, operator).post(
        f"/builds/projects/{project.pk}/build/", {"ref": "a..b"}
    )

    assert answer.status_code == 400
    assert 'data-testid="form-errors"' in answer.content.decode()
    assert not Build.objects.exists()


def test_viewer_cannot_build_or_cancel_from_the_pages(client, viewer, project):
    queued = make_build(project, 1, BuildStatus.QUEUED)
    login(client, viewer)

    assert client.post(f"/builds/projects/{project.pk}/build/", {}).status_code == 403
    assert client.post(f"/builds/{queued.pk}/cancel/").status_code == 403
    assert Build.objects.count() == 1
    queued.refresh_from_db()
    assert queued.status == BuildStatus.QUEUED
    page = client.get(f"/builds/{queued.pk}/").content.decode()
    assert 'data-testid="cancel-button"' not in page


def test_operator_cancels_from_the_build_page(client, operator, project):
    queued = make_build(project, 1, BuildStatus.QUEUED)
    login(client, operator)
    assert (
        'data-testid="cancel-button"'
        in client.get(f"/builds/{queued.pk}/").content.decode()
    )

    answer = client.post(f"/builds/{queued.pk}/cancel/")

    assert answer.status_code == 302
    queued.refresh_from_db()
    assert queued.status == BuildStatus.CANCELLED


def test_a_running_build_polls_and_an_ended_one_does_not(client, viewer, project):
    running = make_build(
        project, 1, BuildStatus.RUNNING, started_at=timezone.now(),
        phase="dependencies", log="Downloaded artifact-1.jar\n",
    )  # fmt: skip
    login(client, viewer)

    page = client.get(f"/builds/{running.pk}/").content.decode()
    assert 'hx-trigger="every 1s"' in page

    fragment = client.get(
        f"/builds/{running.pk}/", HTTP_HX_REQUEST="true", HTTP_HX_TARGET="build-live"
    ).content.decode()
    assert fragment.lstrip().startswith('<div id="build-live"')
    assert "Downloaded artifact-1.jar" in fragment and "<html" not in fragment

    Build.objects.filter(pk=running.pk).update(
        status=BuildStatus.SUCCEEDED, log="Downloaded artifact-1.jar\ndone\n"
    )
    fragment = client.get(
        f"/builds/{running.pk}/", HTTP_HX_REQUEST="true", HTTP_HX_TARGET="build-live"
    ).content.decode()
    assert "hx-trigger" not in fragment and "done" in fragment


def test_queued_builds_show_their_position(client, viewer, project):
    make_build(project, 1, BuildStatus.RUNNING, started_at=timezone.now())
    second = make_build(project, 2, BuildStatus.QUEUED)
    third = make_build(project, 3, BuildStatus.QUEUED)
    login(client, viewer)

    assert (
        "position 2 in the queue" in client.get(f"/builds/{third.pk}/").content.decode()
    )
    assert (
        "position 1 in the queue"
        in client.get(f"/builds/{second.pk}/").content.decode()
    )
    cluster_page = client.get(
        f"/builds/clusters/{project.cluster.pk}/"
    ).content.decode()
    assert cluster_page.count('data-testid="queue-position"') == 2
    assert "42.0\xa0MB" in cluster_page  # the agent's cache size
    assert 'id="cluster-live" hx-get=' in cluster_page  # polls while builds wait
    fragment = client.get(
        f"/builds/clusters/{project.cluster.pk}/",
        HTTP_HX_REQUEST="true",
        HTTP_HX_TARGET="cluster-live",
    ).content.decode()
    assert fragment.lstrip().startswith('<div id="cluster-live"')
    assert client.get("/builds/").status_code == 200


def test_cluster_page_polls_its_status_only_while_provisioning(client, viewer, project):
    cluster = project.cluster
    BuildCluster.objects.filter(pk=cluster.pk).update(status="provisioning")
    login(client, viewer)
    url = f"/builds/clusters/{cluster.pk}/"

    page = client.get(url).content.decode()
    assert 'id="cluster-live" hx-get=' in page  # no build runs: the status polls
    assert "visibilityState === 'visible'" in page

    BuildCluster.objects.filter(pk=cluster.pk).update(status="ready")
    fragment = client.get(
        url, HTTP_HX_REQUEST="true", HTTP_HX_TARGET="cluster-live"
    ).content.decode()
    assert fragment.lstrip().startswith('<div id="cluster-live">')  # polling ends
    badge = re.search(r'data-testid="cluster-status">([^<]*)<', fragment)
    assert badge and badge.group(1) == "Ready"


def test_build_page_shows_waterfall_digest_and_log(client, viewer, project):
    build = finished(project, 1, 12.0, warm=True)
    Build.objects.filter(pk=build.pk).update(
        image_digest="sha256:" + "ab" * 32, log="step one\nstep two\n"
    )
    page = login(client, viewer).get(f"/builds/{build.pk}/").content.decode()

    assert 'data-testid="waterfall"' in page
    for phase in ("queue", "source", "dependencies", "build", "push"):
        assert f'class="bar {phase}"' in page
    assert "sha256:" + "ab" * 32 in page
    assert "step two" in page
    raw = client.get(f"/builds/{build.pk}/log.txt")
    assert raw.content == b"step one\nstep two\n"
