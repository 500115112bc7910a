"""The builds API: roles, write-only secrets, triggering and cancelling builds.

These tests stop at the database (no task runs: on_commit callbacks do not
fire inside a test transaction); the executor is proven in
test_docker_executor.py and test_worker_builds.py.
"""

import pytest

from builds.models import Build, BuildAgent, BuildCluster, BuildStatus, Project
from controlplane.models import AuditEvent
from controlplane.testing.secrets import (
    assert_ciphertext,
    assert_responses_hide,
    raw_field,
)
from controlplane.tests.apiclient import field_errors, token_client
from regions.models import DockerHost, Region
from registries.models import ObjectStore, Registry

pytestmark = pytest.mark.django_db


@pytest.fixture
def cluster():
    region = Region.objects.create(slug="cn-hongkong", name="Hong Kong")
    host = DockerHost.objects.create(
        region=region, name="build-1", docker_url="unix:///nonexistent/docker.sock"
    )
    cluster = BuildCluster.objects.create(region=region, host=host, name="builders")
    BuildAgent.objects.create(cluster=cluster, kind="java", image="maven:3")
    return cluster


@pytest.fixture
def project(cluster):
    return Project.objects.create(
        cluster=cluster,
        name="shop",
        git_url="https://git.example.invalid/shop.git",
        image_repository="team/shop",
    )


@pytest.fixture
def viewer_api():
    return token_client("viewer")


@pytest.fixture
def operator_api():
    return token_client("operator")


@pytest.fixture
def admin_api():
    return token_client("admin")


def test_operator_triggers_a_build_with_a_ref_and_gets_201(operator_api, project):
    answer = operator_api.post(
        f"/api/v1/projects/{project.pk}/builds/", {"ref": "release/1.2"}, format="json"
    )

    assert answer.status_code == 201, answer.content
    body = answer.json()
    assert body["status"] == "queued" and body["ref"] == "release/1.2"
    assert body["number"] == 1 and body["queue_position"] == 1
    assert body["requested_by"] == operator_api.user.username
    build = Build.objects.get(pk=body["id"])
    assert AuditEvent.objects.filter(action="build", object_id=str(build.pk)).exists()


def test_trigger_without_ref_uses_the_default_ref(operator_api, project):
    answer = operator_api.post(
        f"/api/v1/projects/{project.pk}/builds/", {}, format="json"
    )

    assert answer.status_code == 201
    assert answer.json()["ref"] == "main"


def test_a_bad_ref_is_a_400_naming_the_field(operator_api, project):
    answer = operator_api.post(
        f"/api/v1/projects/{project.pk}/builds/",
        {"ref": "--upload-pack=x"},
        format="json",
    )

    assert answer.status_code == 400
    assert "ref" in field_errors(answer)
    assert not Build.objects.exists()


def test_viewer_cannot_trigger_or_cancel(viewer_api, operator_api, project):
    answer = viewer_api.post(
        f"/api/v1/projects/{project.pk}/builds/", {}, format="json"
    )
    assert answer.status_code == 403
    assert not Build.objects.exists()

    build_id = operator_api.post(
        f"/api/v1/projects/{project.pk}/builds/", {}, format="json"
    ).json()["id"]
    answer = viewer_api.post(f"/api/v1/builds/{build_id}/cancel/")
    assert answer.status_code == 403
    assert Build.objects.get(pk=build_id).status == BuildStatus.QUEUED
    # ...but viewers read builds.
    assert viewer_api.get(f"/api/v1/builds/{build_id}/").status_code == 200


def test_operator_cancels_a_queued_build_once(operator_api, project):
    build_id = operator_api.post(
        f"/api/v1/projects/{project.pk}/builds/", {}, format="json"
    ).json()["id"]

    answer = operator_api.post(f"/api/v1/builds/{build_id}/cancel/")
    assert answer.status_code == 200
    assert answer.json()["status"] == "cancelled"
    assert AuditEvent.objects.filter(action="cancel", object_id=build_id).exists()

    again = operator_api.post(f"/api/v1/builds/{build_id}/cancel/")
    assert again.status_code == 400
    assert "status" in field_errors(again)


def test_builds_are_read_only(operator_api, project):
    build_id = operator_api.post(
        f"/api/v1/projects/{project.pk}/builds/", {}, format="json"
    ).json()["id"]
    answer = operator_api.patch(f"/api/v1/builds/{build_id}/", {"status": "succeeded"})
    assert answer.status_code == 405
    assert operator_api.post("/api/v1/builds/", {}).status_code == 405


def test_build_list_and_detail_show_the_failure_line(viewer_api, project):
    Build.objects.create(
        id="00000000-0000-0000-0000-000000000001",
        project=project,
        number=7,
        ref="main",
        status=BuildStatus.FAILED,
        phase="build",
        exit_code=3,
        failure_line="Step 3/6 : RUN make — returned a non-zero code: 3",
        log="Step 3/6 : RUN make\nmake: *** [all] Error 3\n",
    )

    listed = viewer_api.get(f"/api/v1/builds/?project={project.pk}&status=failed")
    assert listed.status_code == 200
    row = listed.json()["results"][0]
    assert row["failure_line"].startswith("Step 3/6 : RUN make")
    assert "log" not in row
    detail = viewer_api.get(f"/api/v1/builds/{row['id']}/").json()
    assert detail["exit_code"] == 3 and "Error 3" in detail["log"]


SETTINGS_XML = "<settings><servers><server><password>m4ven-pw</password></server>"
TOKEN = "11f0c3e2a9b7d4e6f8a0b1c2d3e4f5a6"


def test_settings_xml_and_jenkins_token_are_write_only_and_encrypted(
    admin_api, viewer_api, cluster, project
):
    agent = cluster.agents.get(kind="java")
    written = [
        admin_api.patch(
            f"/api/v1/build-agents/{agent.pk}/",
            {"settings_xml": SETTINGS_XML},
            format="json",
        ),
        admin_api.patch(
            f"/api/v1/build-clusters/{cluster.pk}/",
            {"jenkins_token": TOKEN},
            format="json",
        ),
    ]
    assert written[0].json()["settings_xml_set"] is True
    agent.refresh_from_db()
    cluster.refresh_from_db()
    assert (agent.settings_xml, cluster.jenkins_token) == (SETTINGS_XML, TOKEN)

    # At rest: ciphertext in the columns, not the secrets.
    assert_ciphertext(raw_field(BuildAgent, "settings_xml", agent.pk), SETTINGS_XML)
    assert_ciphertext(raw_field(BuildCluster, "jenkins_token", cluster.pk), TOKEN)

    # Never returned: not by the writes, not by any read, for any role.
    reads = [
        api.get(path)
        for api in (admin_api, viewer_api)
        for path in (
            f"/api/v1/build-agents/{agent.pk}/",
            "/api/v1/build-agents/",
            f"/api/v1/build-clusters/{cluster.pk}/",
            "/api/v1/build-clusters/",
            f"/api/v1/projects/{project.pk}/",
            "/api/v1/projects/",
        )
    ]
    assert_responses_hide(written + reads, [SETTINGS_XML, "m4ven-pw", TOKEN])
    body = reads[2].json()
    assert "jenkins_token" not in body and body["jenkins_token_set"] is True
    assert body["agents"][0]["settings_xml_set"] is True
    assert "settings_xml" not in reads[0].json()


def test_operator_cannot_change_secrets_but_can_provision(operator_api, cluster):
    answer = operator_api.patch(
        f"/api/v1/build-clusters/{cluster.pk}/", {"jenkins_token": "x"}, format="json"
    )
    assert answer.status_code == 403
    assert (
        operator_api.post(f"/api/v1/build-clusters/{cluster.pk}/provision/").status_code
        == 202
    )


def test_creating_a_cluster_adds_java_and_node_agents(admin_api, cluster):
    answer = admin_api.post(
        "/api/v1/build-clusters/",
        {"region": cluster.region_id, "host": cluster.host_id, "name": "second"},
        format="json",
    )

    assert answer.status_code == 201, answer.content
    kinds = {a["kind"]: a for a in answer.json()["agents"]}
    assert set(kinds) == {"java", "node"}
    assert kinds["java"]["cache_paths"] == ["/root/.m2"]
    assert kinds["node"]["cache_paths"] == ["/root/.npm"]


def test_a_cluster_cannot_push_to_a_mirror(admin_api, cluster):
    store = ObjectStore.objects.create(
        region=cluster.region, name="fs", kind="filesystem"
    )
    mirror = Registry.objects.create(
        region=cluster.region, host=cluster.host, name="mirror", store=store
    )
    answer = admin_api.patch(
        f"/api/v1/build-clusters/{cluster.pk}/", {"registry": mirror.pk}, format="json"
    )
    assert answer.status_code == 400
    assert "registry" in field_errors(answer)


def test_project_validation_names_the_field(operator_api, cluster):
    answer = operator_api.post(
        "/api/v1/projects/",
        {
            "cluster": cluster.pk,
            "name": "web",
            "git_url": "file:///srv/web.git",
            "image_repository": "Team/Web:latest",
            "dockerfile": "../Dockerfile",
            "agent_kind": "node",
        },
        format="json",
    )
    assert answer.status_code == 400
    errors = field_errors(answer)
    assert {"image_repository", "dockerfile"} <= set(errors)


def test_project_with_an_agent_the_cluster_lacks_is_rejected(operator_api, cluster):
    answer = operator_api.post(
        "/api/v1/projects/",
        {
            "cluster": cluster.pk,
            "name": "web",
            "git_url": "file:///srv/web.git",
            "image_repository": "team/web",
            "agent_kind": "node",
        },
        format="json",
    )
    assert answer.status_code == 400
    assert "agent_kind" in field_errors(answer)


def test_a_project_with_builds_cannot_be_deleted(operator_api, project):
    for number, status in ((1, BuildStatus.SUCCEEDED), (2, BuildStatus.RUNNING)):
        Build.objects.create(
            id=f"00000000-0000-0000-0000-00000000000{number}",
            project=project, number=number, ref="main", status=status,
        )  # fmt: skip

    answer = operator_api.delete(f"/api/v1/projects/{project.pk}/")

    assert answer.status_code == 409, answer.content
    assert answer.json()["detail"] == "Still in use by: shop#1, shop#2"
    assert Project.objects.filter(pk=project.pk).exists()
    assert project.builds.count() == 2
    assert not AuditEvent.objects.filter(action="delete").exists()
