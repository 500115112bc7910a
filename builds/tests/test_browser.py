"""Headless Chromium: the build button, the live log, the trend chart.

A real build through a real worker on the test dockerd. The dependency step
waits for a "release" file in the cache volume, so the page is seen while the
build runs (log arriving by htmx polling) and after it ends (polling gone).
Screenshots land in artifacts/screenshots/ for a human to look at.
"""

import pytest

from builds.executors.docker import cache_volume_name
from builds.models import Build, BuildCluster, BuildStatus, ClusterStatus
from controlplane.testing.browser import chromium_page, login, shot
from controlplane.testing.wait import wait_for

from .test_worker_builds import WAIT_FOR_RELEASE, release

pytestmark = [
    pytest.mark.browser,
    pytest.mark.integration,
    pytest.mark.django_db(transaction=True),
]


@pytest.fixture
def browser_page():
    with chromium_page(height=900, timeout_ms=20_000) as page:
        yield page


def test_build_button_live_log_and_trend_chart(
    live_server, celery_worker, redis_url, project, operator, dockerd, test_images,
    browser_page,
):  # fmt: skip
    project.dependency_command = WAIT_FOR_RELEASE
    project.save()
    page = browser_page
    login(page, live_server.url, operator.username)

    page.goto(f"{live_server.url}/builds/projects/{project.pk}/")
    page.fill("[data-testid=build-form] input[name=ref]", "main")
    page.click("[data-testid=build-button]")
    page.wait_for_selector("#build-live")
    build = Build.objects.get()
    assert page.url.endswith(f"/builds/{build.pk}/")

    # The log arrives while the build runs, without reloading the page.
    page.wait_for_function(
        "() => document.querySelector('#build-log').innerText"
        ".includes('waiting for release')",
        timeout=60_000,
    )
    assert page.locator("[data-testid=build-status]").inner_text() == "Running"
    assert page.get_attribute("#build-live", "hx-trigger") == "every 1s"
    shot(page, "builds-01-running")

    release(dockerd.client, test_images.busybox, cache_volume_name(build.agent, 0))

    page.wait_for_function(
        "() => document.querySelector('#build-live').dataset.status === 'succeeded'",
        timeout=60_000,
    )
    done = wait_for(lambda: (b := Build.objects.get()).image_digest and b, timeout=10)
    assert done.status == BuildStatus.SUCCEEDED
    assert page.locator("[data-testid=digest]").inner_text() == done.image_digest
    assert page.get_attribute("#build-live", "hx-trigger") is None  # polling ended
    assert page.locator("[data-testid=waterfall] .bar.push").count() == 1
    shot(page, "builds-02-succeeded")

    page.goto(f"{live_server.url}/builds/projects/{project.pk}/")
    page.wait_for_function(
        "() => window.Chart && Chart.getChart(document.getElementById('trend-chart'))"
    )
    assert page.locator("[data-testid=success-rate]").inner_text() == "100%"
    shot(page, "builds-03-project")
    # A provisioning cluster's page turns to the outcome without a reload.
    clusters = BuildCluster.objects.filter(pk=project.cluster.pk)
    clusters.update(status=ClusterStatus.PROVISIONING)
    page.goto(f"{live_server.url}/builds/clusters/{project.cluster.pk}/")
    page.wait_for_selector("[data-testid=agents]")
    status = page.locator("[data-testid=cluster-status]")
    assert status.inner_text() == "Provisioning"
    clusters.update(status=ClusterStatus.FAILED, last_error="engine unreachable")
    page.wait_for_function(
        "() => document.querySelector('[data-testid=cluster-status]')"
        ".innerText === 'Failed'"
    )
    assert page.get_attribute("#cluster-live", "hx-trigger") is None
    assert page.locator("#cluster-live .error-text").inner_text() == (
        "engine unreachable"
    )
    shot(page, "builds-04-cluster")
    assert page.bad == [], f"failed requests: {page.bad}"
