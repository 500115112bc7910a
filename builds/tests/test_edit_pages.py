"""Create/edit pages for clusters, agents and projects, and the same rules in
the API: who may write, field errors on their field, secrets never shown.

Database only (the provision task is published on commit, which does not
happen inside a test transaction).
"""

import re

import pytest

from builds.models import JENKINS_AGENT_IMAGE, BuildAgent, BuildCluster, Project
from controlplane.models import AuditEvent
from controlplane.testing.users import user_with_role
from controlplane.tests.apiclient import field_errors, token_client
from regions.models import DockerHost, Region
from registries.models import ObjectStore, Registry

pytestmark = pytest.mark.django_db
TOKEN = "jenkins-token-XYZ-123"
SETTINGS_XML = (
    "<settings>\n  <servers><server><id>corp</id></server></servers>\n</settings>\n"
)


@pytest.fixture
def region():
    return Region.objects.create(slug="cn-hongkong", name="Hong Kong")


@pytest.fixture
def host(region):
    return DockerHost.objects.create(
        region=region, name="build-1", docker_url="unix:///nonexistent.sock"
    )


@pytest.fixture
def private_registry(region, host):
    store = ObjectStore.objects.create(region=region, name="fs", kind="filesystem")
    return Registry.objects.create(
        region=region, host=host, name="private", kind="private", store=store,
        port=15000,
    )  # fmt: skip


@pytest.fixture
def cluster(region, host):
    cluster = BuildCluster.objects.create(region=region, host=host, name="builders")
    BuildAgent.objects.create(
        cluster=cluster, kind="java", image="maven:3", cache_paths=["/root/.m2"]
    )
    return cluster


@pytest.fixture
def jenkins_cluster(region, host):
    cluster = BuildCluster.objects.create(
        region=region, host=host, name="ci", executor="jenkins",
        jenkins_url="http://127.0.0.1:18080/", jenkins_username="ferry",
        jenkins_token=TOKEN,
    )  # fmt: skip
    BuildAgent.objects.create(
        cluster=cluster, kind="java", image=JENKINS_AGENT_IMAGE,
        settings_xml=SETTINGS_XML,
    )  # fmt: skip
    return cluster


def as_role(client, role: str):
    client.force_login(user_with_role(f"u-{role}", role))
    return client


def field_error(page, name: str) -> str:
    """The error text rendered inside the field's own block ("" if none)."""
    text = page.content.decode()
    start = text.find(f'id="field-{name}"')
    assert start >= 0, f"no field {name} on the page"
    block = text[start : text.find('<div class="field', start + 10)]
    found = re.search(r'<ul class="errorlist">(.*?)</ul>', block, re.S)
    return found.group(1) if found else ""


CLUSTER_FORM = {
    "name": "builders-2",
    "executor": "docker",
    "jenkins_url": "",
    "jenkins_username": "",
    "jenkins_token": "",
}


# -- clusters ------------------------------------------------------------------
def test_admin_creates_a_cluster_on_the_page_with_default_agents(
    client, region, host, private_registry
):
    data = {**CLUSTER_FORM, "region": region.pk, "host": host.pk}
    answer = as_role(client, "admin").post(
        "/builds/clusters/new/", {**data, "registry": private_registry.pk}
    )

    assert answer.status_code == 302, answer.content.decode()[:2000]
    cluster = BuildCluster.objects.get(name="builders-2")
    assert answer["Location"] == f"/builds/clusters/{cluster.pk}/"
    assert cluster.registry == private_registry
    assert set(cluster.agents.values_list("kind", flat=True)) == {"java", "node"}
    assert AuditEvent.objects.filter(action="create", via="ui").exists()


def test_a_jenkins_cluster_without_url_is_refused_on_the_field_ui_and_api(
    client, region, host
):
    data = {**CLUSTER_FORM, "region": region.pk, "host": host.pk}
    data["executor"] = "jenkins"
    page = as_role(client, "admin").post("/builds/clusters/new/", data)

    assert page.status_code == 400
    assert "Jenkins URL" in field_error(page, "jenkins_url")
    assert not BuildCluster.objects.filter(name="builders-2").exists()

    api = token_client("admin")
    answer = api.post(
        "/api/v1/build-clusters/",
        {"region": region.pk, "host": host.pk, "name": "ci", "executor": "jenkins"},
        format="json",
    )
    assert answer.status_code == 400
    assert "jenkins_url" in field_errors(answer)


def test_a_host_of_another_region_is_refused_on_the_host_field(client, region):
    other = Region.objects.create(slug="us-west-1", name="US West")
    far = DockerHost.objects.create(region=other, name="far", docker_url="unix:///x")
    data = {**CLUSTER_FORM, "region": region.pk, "host": far.pk}

    page = as_role(client, "admin").post("/builds/clusters/new/", data)

    assert page.status_code == 400
    assert "another region" in field_error(page, "host")


def test_a_registry_on_another_host_is_refused_on_the_registry_field(
    client, region, host, private_registry, cluster
):
    other = DockerHost.objects.create(
        region=region, name="build-2", docker_url="unix:///other.sock"
    )
    data = {**CLUSTER_FORM, "region": region.pk, "host": other.pk}

    page = as_role(client, "admin").post(
        "/builds/clusters/new/", {**data, "registry": private_registry.pk}
    )

    assert page.status_code == 400
    assert "another Docker host" in field_error(page, "registry")
    assert not BuildCluster.objects.filter(name="builders-2").exists()

    api = token_client("admin")
    answer = api.post(
        "/api/v1/build-clusters/",
        {"region": region.pk, "host": other.pk, "name": "far",
         "registry": private_registry.pk},
        format="json",
    )  # fmt: skip
    assert answer.status_code == 400
    assert "cn-hongkong/build-1" in field_errors(answer)["registry"]
    # Moving a cluster that pushes to its host's registry is refused too.
    cluster.registry = private_registry
    cluster.save()
    moved = api.patch(
        f"/api/v1/build-clusters/{cluster.pk}/", {"host": other.pk}, format="json"
    )
    assert moved.status_code == 400 and "registry" in field_errors(moved)
    assert BuildCluster.objects.get(pk=cluster.pk).host == host


def test_a_new_jenkins_cluster_starts_from_inbound_agent_images(client, region, host):
    data = {**CLUSTER_FORM, "region": region.pk, "host": host.pk}
    data.update(
        executor="jenkins", jenkins_url="http://127.0.0.1:18080/",
        jenkins_username="ferry", jenkins_token=TOKEN,
    )  # fmt: skip
    answer = as_role(client, "admin").post("/builds/clusters/new/", data)

    assert answer.status_code == 302
    cluster = BuildCluster.objects.get(name="builders-2")
    assert cluster.jenkins_token == TOKEN
    images = set(cluster.agents.values_list("image", flat=True))
    assert images == {JENKINS_AGENT_IMAGE}
    assert not [a for a in cluster.agents.all() if a.image_warning]


def test_the_jenkins_token_is_set_not_shown_kept_when_blank_replaced_when_typed(
    client, jenkins_cluster
):
    client = as_role(client, "admin")
    url = f"/builds/clusters/{jenkins_cluster.pk}/edit/"
    page = client.get(url)
    assert page.status_code == 200
    text = page.content.decode()
    assert TOKEN not in text
    assert "Set. Leave blank to keep it" in text  # the token field's help

    data = {
        "region": jenkins_cluster.region_id, "host": jenkins_cluster.host_id,
        "name": "ci", "executor": "jenkins", "jenkins_url": "http://127.0.0.1:18081/",
        "jenkins_username": "ferry", "jenkins_token": "",
    }  # fmt: skip
    assert client.post(url, data).status_code == 302
    jenkins_cluster.refresh_from_db()
    assert jenkins_cluster.jenkins_token == TOKEN  # kept
    assert jenkins_cluster.jenkins_url == "http://127.0.0.1:18081/"

    assert client.post(url, {**data, "jenkins_token": "new-token"}).status_code == 302
    jenkins_cluster.refresh_from_db()
    assert jenkins_cluster.jenkins_token == "new-token"
    event = AuditEvent.objects.filter(action="update").latest("pk")
    assert "new-token" not in str(event.changes)


# -- agents --------------------------------------------------------------------
def agent_data(**fields) -> dict:
    data = {
        "kind": "node", "image": "node:22", "cache_paths": "/root/.npm\n/root/.cache",
        "settings_xml": "", "settings_xml_path": "/root/.m2/settings.xml",
        "concurrency": "2",
    }  # fmt: skip
    return {**data, **fields}


def test_admin_adds_an_agent_with_cache_paths_one_per_line(client, cluster):
    url = f"/builds/clusters/{cluster.pk}/agents/new/"
    answer = as_role(client, "admin").post(url, agent_data())

    assert answer.status_code == 302, answer.content.decode()[:2000]
    agent = cluster.agents.get(kind="node")
    assert agent.cache_paths == ["/root/.npm", "/root/.cache"]
    assert agent.concurrency == 2


def test_agent_field_errors_are_on_their_fields(client, cluster):
    url = f"/builds/clusters/{cluster.pk}/agents/new/"
    page = as_role(client, "admin").post(
        url, agent_data(kind="java", cache_paths="root/.npm", concurrency="0")
    )

    assert page.status_code == 400
    assert "already has a java agent" in field_error(page, "kind")
    assert "absolute" in field_error(page, "cache_paths")
    assert field_error(page, "concurrency")
    assert cluster.agents.count() == 1


def test_settings_xml_is_replaceable_never_shown_and_removable(client, jenkins_cluster):
    agent = jenkins_cluster.agents.get()
    client = as_role(client, "admin")
    url = f"/builds/agents/{agent.pk}/edit/"
    page = client.get(url)
    text = page.content.decode()
    assert "<servers>" not in text and "corp" not in text
    assert "Set. Leave blank to keep it" in text
    data = agent_data(kind="java", image=JENKINS_AGENT_IMAGE)

    assert client.post(url, data).status_code == 302  # blank: kept
    agent.refresh_from_db()
    assert agent.settings_xml == SETTINGS_XML

    new_xml = "<settings>\n  <mirrors/>\n</settings>\n"
    assert client.post(url, {**data, "settings_xml": new_xml}).status_code == 302
    agent.refresh_from_db()
    assert agent.settings_xml == new_xml  # line breaks intact

    answer = client.post(url, {**data, "clear_settings_xml": "on"})
    assert answer.status_code == 302
    agent.refresh_from_db()
    assert agent.settings_xml == ""


def test_a_plain_image_on_a_jenkins_cluster_needs_a_confirmation(
    client, jenkins_cluster
):
    agent = jenkins_cluster.agents.get()
    client = as_role(client, "admin")
    url = f"/builds/agents/{agent.pk}/edit/"
    data = agent_data(kind="java", image="maven:3-eclipse-temurin-21")

    page = client.post(url, data)
    assert page.status_code == 400
    assert "inbound agent" in field_error(page, "image")
    agent.refresh_from_db()
    assert agent.image == JENKINS_AGENT_IMAGE

    assert client.post(url, {**data, "image_confirmed": "on"}).status_code == 302
    agent.refresh_from_db()
    assert agent.image == "maven:3-eclipse-temurin-21"
    # Kept, but flagged on the cluster page and in the API.
    page = client.get(f"/builds/clusters/{jenkins_cluster.pk}/")
    assert 'data-testid="image-warning"' in page.content.decode()
    body = token_client("viewer").get(f"/api/v1/build-agents/{agent.pk}/").json()
    assert "inbound agent" in body["image_warning"]


def test_a_docker_cluster_takes_any_agent_image(client, cluster):
    agent = cluster.agents.get()
    url = f"/builds/agents/{agent.pk}/edit/"
    page = as_role(client, "admin").get(url)
    assert 'name="image_confirmed"' not in page.content.decode()
    answer = client.post(url, agent_data(kind="java", image="maven:3"))
    assert answer.status_code == 302


def test_an_agent_a_project_builds_on_cannot_be_deleted_ui_and_api(client, cluster):
    Project.objects.create(
        cluster=cluster, name="shop", git_url="file:///srv/shop.git",
        image_repository="team/shop",
    )  # fmt: skip
    agent = cluster.agents.get()
    client = as_role(client, "admin")

    answer = client.post(f"/builds/agents/{agent.pk}/delete/", follow=True)
    assert "Projects build on this agent: shop" in answer.content.decode()
    api = token_client("admin")
    refused = api.delete(f"/api/v1/build-agents/{agent.pk}/")
    assert refused.status_code == 400
    assert BuildAgent.objects.filter(pk=agent.pk).exists()

    Project.objects.all().delete()
    answer = client.post(f"/builds/agents/{agent.pk}/delete/")
    assert answer.status_code == 302
    assert not BuildAgent.objects.filter(pk=agent.pk).exists()


def test_an_agent_stays_in_its_cluster(client, cluster, region, host):
    agent = cluster.agents.get()
    other = BuildCluster.objects.create(region=region, host=host, name="other")

    answer = token_client("admin").patch(
        f"/api/v1/build-agents/{agent.pk}/", {"cluster": other.pk}, format="json"
    )

    assert answer.status_code == 400
    assert "another cluster" in field_errors(answer)["cluster"]
    assert BuildAgent.objects.get(pk=agent.pk).cluster == cluster


def test_the_kind_projects_build_on_cannot_be_renamed_ui_and_api(client, cluster):
    Project.objects.create(
        cluster=cluster, name="shop", git_url="file:///srv/shop.git",
        image_repository="team/shop",
    )  # fmt: skip
    agent = cluster.agents.get()
    url = f"/builds/agents/{agent.pk}/edit/"

    page = as_role(client, "admin").post(url, agent_data(kind="maven"))
    assert page.status_code == 400
    assert "Projects build on this agent: shop" in field_error(page, "kind")

    api = token_client("admin")
    answer = api.patch(
        f"/api/v1/build-agents/{agent.pk}/", {"kind": "maven"}, format="json"
    )
    assert answer.status_code == 400
    assert "shop" in field_errors(answer)["kind"]
    assert BuildAgent.objects.get(pk=agent.pk).kind == "java"

    # Other fields still change; so does the kind once no project uses it.
    answer = api.patch(
        f"/api/v1/build-agents/{agent.pk}/", {"concurrency": 3}, format="json"
    )
    assert answer.status_code == 200
    Project.objects.all().delete()
    answer = api.patch(
        f"/api/v1/build-agents/{agent.pk}/", {"kind": "maven"}, format="json"
    )
    assert answer.status_code == 200 and answer.json()["kind"] == "maven"


# -- projects ------------------------------------------------------------------
def project_data(cluster, **fields) -> dict:
    data = {
        "cluster": cluster.pk, "agent_kind": "java", "name": "web",
        "git_url": "https://git.example.com/team/web.git", "default_ref": "main",
        "dockerfile": "Dockerfile", "dependency_command": "mvn -B package",
        "image_repository": "team/web",
    }  # fmt: skip
    return {**data, **fields}


def test_operator_creates_and_edits_a_project(client, cluster):
    client = as_role(client, "operator")
    page = client.get(f"/builds/projects/new/?cluster={cluster.pk}")
    assert page.status_code == 200
    assert f'<option value="{cluster.pk}" selected>' in page.content.decode()

    answer = client.post("/builds/projects/new/", project_data(cluster))
    assert answer.status_code == 302, answer.content.decode()[:2000]
    project = Project.objects.get(name="web")
    assert answer["Location"] == f"/builds/projects/{project.pk}/"

    edit = f"/builds/projects/{project.pk}/edit/"
    data = project_data(cluster, git_url="git@git.example.com:team/web.git")
    assert client.post(edit, data).status_code == 302
    project.refresh_from_db()
    assert project.git_url == "git@git.example.com:team/web.git"


@pytest.mark.parametrize(
    "git_url",
    ["ext::sh -c touch% /tmp/pwned", "--upload-pack=touch /tmp/x", "web.git",
     "https://", "file://relative/path", "ftp://host/repo.git"],
)  # fmt: skip
def test_a_bad_git_url_is_refused_on_its_field_ui_and_api(client, cluster, git_url):
    page = as_role(client, "operator").post(
        "/builds/projects/new/", project_data(cluster, git_url=git_url)
    )
    assert page.status_code == 400
    assert "git URL" in field_error(page, "git_url")

    answer = token_client("operator").post(
        "/api/v1/projects/", project_data(cluster, git_url=git_url), format="json"
    )
    assert answer.status_code == 400
    assert "git_url" in field_errors(answer)
    assert not Project.objects.exists()


@pytest.mark.parametrize(
    "git_url",
    ["https://deploy:s3cret@git.example.com/team/web.git",
     "https://s3cret@git.example.com/team/web.git",
     "ssh://git:s3cret@git.example.com/team/web.git"],
)  # fmt: skip
def test_credentials_in_the_git_url_are_refused_saying_why(client, cluster, git_url):
    page = as_role(client, "operator").post(
        "/builds/projects/new/", project_data(cluster, git_url=git_url)
    )
    assert page.status_code == 400
    assert "shown to viewers" in field_error(page, "git_url")

    api = token_client("operator")
    answer = api.post(
        "/api/v1/projects/", project_data(cluster, git_url=git_url), format="json"
    )
    assert answer.status_code == 400
    assert "Remove the credentials" in field_errors(answer)["git_url"]
    project = Project.objects.create(
        cluster=cluster, name="shop", git_url="https://git.example.com/shop.git",
        image_repository="team/shop",
    )  # fmt: skip
    answer = api.patch(
        f"/api/v1/projects/{project.pk}/", {"git_url": git_url}, format="json"
    )
    assert answer.status_code == 400 and "git_url" in field_errors(answer)
    assert Project.objects.get().git_url == "https://git.example.com/shop.git"
    assert "s3cret" not in str(list(AuditEvent.objects.values_list("changes")))


def test_credentials_in_the_jenkins_url_are_refused_saying_why(
    client, region, host, jenkins_cluster
):
    url = "http://admin:s3cret@127.0.0.1:18080/"
    data = {**CLUSTER_FORM, "region": region.pk, "host": host.pk}
    data.update(executor="jenkins", jenkins_url=url, jenkins_username="ferry")
    page = as_role(client, "admin").post("/builds/clusters/new/", data)

    assert page.status_code == 400
    assert "viewers see it" in field_error(page, "jenkins_url")
    assert not BuildCluster.objects.filter(name="builders-2").exists()

    answer = token_client("admin").patch(
        f"/api/v1/build-clusters/{jenkins_cluster.pk}/",
        {"jenkins_url": url},
        format="json",
    )
    assert answer.status_code == 400
    assert "Remove the credentials" in field_errors(answer)["jenkins_url"]
    jenkins_cluster.refresh_from_db()
    assert jenkins_cluster.jenkins_url == "http://127.0.0.1:18080/"


def test_an_agent_kind_the_cluster_lacks_is_refused_on_its_field(client, cluster):
    page = as_role(client, "operator").post(
        "/builds/projects/new/",
        project_data(cluster, agent_kind="node", default_ref="-x"),
    )

    assert page.status_code == 400
    assert "no node agent" in field_error(page, "agent_kind")
    assert "java" in field_error(page, "agent_kind")  # what it has
    assert "branch, tag or commit" in field_error(page, "default_ref")
    assert not Project.objects.exists()


# -- roles: pages and API alike ---------------------------------------------------
def test_operators_cannot_touch_clusters_or_agents_pages_or_api(client, cluster):
    agent = cluster.agents.get()
    client = as_role(client, "operator")
    for url in (
        "/builds/clusters/new/",
        f"/builds/clusters/{cluster.pk}/edit/",
        f"/builds/clusters/{cluster.pk}/agents/new/",
        f"/builds/agents/{agent.pk}/edit/",
    ):
        assert client.get(url).status_code == 403, url
        assert client.post(url, {"name": "x"}).status_code == 403, url
    assert client.post(f"/builds/agents/{agent.pk}/delete/").status_code == 403
    page = client.get(f"/builds/clusters/{cluster.pk}/").content.decode()
    assert 'data-testid="edit-cluster"' not in page
    assert 'data-testid="add-agent"' not in page
    assert 'data-testid="add-project"' in page

    api = token_client("operator")
    assert (
        api.patch(
            f"/api/v1/build-clusters/{cluster.pk}/", {"name": "x"}, format="json"
        ).status_code
        == 403
    )
    assert api.post(
        "/api/v1/build-agents/", {"cluster": cluster.pk, "kind": "go", "image": "x"},
        format="json",
    ).status_code == 403  # fmt: skip
    assert api.delete(f"/api/v1/build-agents/{agent.pk}/").status_code == 403
    cluster.refresh_from_db()
    assert cluster.name == "builders" and cluster.agents.count() == 1


def test_viewers_cannot_create_or_edit_projects_pages_or_api(client, cluster):
    project = Project.objects.create(
        cluster=cluster, name="shop", git_url="file:///srv/shop.git",
        image_repository="team/shop",
    )  # fmt: skip
    client = as_role(client, "viewer")
    for url in ("/builds/projects/new/", f"/builds/projects/{project.pk}/edit/"):
        assert client.get(url).status_code == 403, url
        assert client.post(url, project_data(cluster)).status_code == 403, url
    page = client.get(f"/builds/projects/{project.pk}/").content.decode()
    assert 'data-testid="edit-project"' not in page
    index = client.get("/builds/").content.decode()
    assert 'data-testid="add-project"' not in index
    assert 'data-testid="add-cluster"' not in index

    api = token_client("viewer")
    assert (
        api.post("/api/v1/projects/", project_data(cluster), format="json").status_code
        == 403
    )
    assert (
        api.patch(
            f"/api/v1/projects/{project.pk}/", {"default_ref": "dev"}, format="json"
        ).status_code
        == 403
    )
    assert Project.objects.get().default_ref == "main"


def test_admins_see_the_edit_buttons(client, cluster):
    client = as_role(client, "admin")
    page = client.get(f"/builds/clusters/{cluster.pk}/").content.decode()
    assert 'data-testid="edit-cluster"' in page and 'data-testid="add-agent"' in page
    assert 'data-testid="edit-agent"' in page
    assert 'data-testid="add-cluster"' in client.get("/builds/").content.decode()
