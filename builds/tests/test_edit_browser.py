"""Headless Chromium: an admin sets up a Jenkins cluster's agent, an operator
a project, with the errors shown on their fields.

Screenshots land in artifacts/screenshots/ for a human to look at.
"""

import pytest

from builds.models import JENKINS_AGENT_IMAGE, BuildAgent, BuildCluster, Project
from controlplane.testing.browser import login, shot
from controlplane.testing.users import user_with_role
from regions.models import DockerHost, Region

from .test_browser import browser_page  # noqa: F401 - a fixture

pytestmark = [
    pytest.mark.browser,
    pytest.mark.django_db(transaction=True),
]


def field_error(page, name: str) -> str:
    return page.locator(f"#field-{name} .errorlist").inner_text()


def test_admin_agent_form_and_operator_project_form_in_the_browser(
    live_server,
    redis_url,
    browser_page,  # noqa: F811
):
    # redis_url: saving an agent publishes a provision task (no worker runs).
    region = Region.objects.create(slug="cn-hongkong", name="Hong Kong")
    host = DockerHost.objects.create(
        region=region, name="ci-1", docker_url="unix:///nonexistent.sock"
    )
    cluster = BuildCluster.objects.create(
        region=region, host=host, name="ci", executor="jenkins",
        jenkins_url="http://127.0.0.1:18080/", jenkins_username="ferry",
        jenkins_token="t0ken",
    )  # fmt: skip
    agent = BuildAgent.objects.create(
        cluster=cluster, kind="java", image=JENKINS_AGENT_IMAGE
    )
    page = browser_page

    login(page, live_server.url, user_with_role("ada", "admin").username)
    page.goto(f"{live_server.url}/builds/agents/{agent.pk}/edit/")
    page.fill("#id_image", "maven:3-eclipse-temurin-21")
    page.fill("#id_settings_xml", "<settings>\n  <mirrors/>\n</settings>\n")
    page.click("[data-testid=save]")
    assert "inbound agent" in field_error(page, "image")
    shot(page, "builds-10-agent-form-warning")
    page.check("#id_image_confirmed")
    page.fill("#id_settings_xml", "<settings>\n  <mirrors/>\n</settings>\n")
    page.click("[data-testid=save]")
    page.wait_for_selector("[data-testid=agents]")
    assert "inbound agent" in page.locator("[data-testid=image-warning]").inner_text()
    shot(page, "builds-11-cluster-with-warning")
    agent.refresh_from_db()
    assert agent.image == "maven:3-eclipse-temurin-21"
    assert agent.settings_xml == "<settings>\n  <mirrors/>\n</settings>\n"

    page.context.clear_cookies()
    login(page, live_server.url, user_with_role("otto", "operator").username)
    page.goto(f"{live_server.url}/builds/clusters/{cluster.pk}/")
    assert page.locator("[data-testid=edit-cluster]").count() == 0
    page.click("[data-testid=add-project]")
    page.fill("#id_name", "web")
    page.fill("#id_git_url", "ext::sh -c touch% /tmp/pwned")
    page.fill("#id_agent_kind", "node")
    page.fill("#id_image_repository", "team/web")
    page.click("[data-testid=save]")
    assert "git URL" in field_error(page, "git_url")
    assert "no node agent" in field_error(page, "agent_kind")
    shot(page, "builds-12-project-form-errors")
    page.fill("#id_git_url", "https://git.example.com/team/web.git")
    page.fill("#id_agent_kind", "java")
    page.click("[data-testid=save]")
    page.wait_for_selector("[data-testid=build-form]")
    assert Project.objects.get(name="web").cluster == cluster
    assert page.bad == [] or all(status == 400 for status, _u in page.bad), page.bad
