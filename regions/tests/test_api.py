"""REST API for regions, hosts and object stores: CRUD, roles, errors, schema."""

import pytest
from rest_framework.test import APIClient

from controlplane.models import AuditEvent
from controlplane.tests.apiclient import field_errors, token_client
from regions.models import DockerHost, Region
from regions.services import host_check

pytestmark = pytest.mark.django_db

REGIONS = "/api/v1/regions/"
HOSTS = "/api/v1/hosts/"


def make_region(slug="cn-hongkong", role="edge") -> Region:
    return Region.objects.create(slug=slug, name=slug.title(), role=role)


def make_host(region, name="h1", url="unix:///run/ferry-test/docker.sock"):
    return DockerHost.objects.create(region=region, name=name, docker_url=url)


def test_admin_token_creates_lists_updates_and_deletes_regions_and_hosts():
    api = token_client("admin")

    created = api.post(
        REGIONS, {"slug": "cn-hongkong", "name": "Hong Kong", "role": "edge"}
    )
    assert created.status_code == 201, created.content
    region_id = created.json()["id"]
    assert created.json()["hosts_total"] == 0

    listed = api.get(REGIONS).json()
    assert [r["slug"] for r in listed["results"]] == ["cn-hongkong"]

    patched = api.patch(f"{REGIONS}{region_id}/", {"name": "HK"}, format="json")
    assert patched.status_code == 200 and patched.json()["name"] == "HK"
    assert Region.objects.get(pk=region_id).name == "HK"

    host = api.post(
        HOSTS,
        {
            "region": region_id,
            "name": "edge-1",
            "docker_url": "tcp://127.0.0.1:2376",
            "roles": ["registry", "app"],
        },
        format="json",
    )
    assert host.status_code == 201, host.content
    body = host.json()
    assert body["region_slug"] == "cn-hongkong"
    assert body["status"] == "unknown"
    assert body["roles"] == ["app", "registry"]
    host_id = body["id"]

    assert api.get(REGIONS).json()["results"][0]["hosts_total"] == 1
    assert api.get(f"{HOSTS}{host_id}/").json()["docker_url"] == "tcp://127.0.0.1:2376"

    renamed = api.patch(f"{HOSTS}{host_id}/", {"name": "edge-2"}, format="json")
    assert renamed.status_code == 200 and renamed.json()["name"] == "edge-2"

    full = api.put(
        f"{HOSTS}{host_id}/",
        {"region": region_id, "name": "edge-3", "docker_url": "ssh://ops@edge3:22"},
        format="json",
    )
    assert full.status_code == 200, full.content
    assert DockerHost.objects.get(pk=host_id).docker_url == "ssh://ops@edge3:22"

    assert api.delete(f"{HOSTS}{host_id}/").status_code == 204
    assert not DockerHost.objects.filter(pk=host_id).exists()
    assert api.delete(f"{REGIONS}{region_id}/").status_code == 204
    assert not Region.objects.exists()


def test_viewer_token_reads_but_gets_403_on_every_write():
    region = make_region()
    host = make_host(region)
    api = token_client("viewer")

    assert api.get(REGIONS).status_code == 200
    assert api.get(f"{HOSTS}{host.pk}/").status_code == 200
    assert api.get("/api/v1/object-stores/").status_code == 200

    attempts = [
        api.post(REGIONS, {"slug": "eu-x", "name": "X"}),
        api.patch(f"{REGIONS}{region.pk}/", {"name": "renamed"}, format="json"),
        api.delete(f"{REGIONS}{region.pk}/"),
        api.post(HOSTS, {"region": region.pk, "name": "h2", "docker_url": "tcp://a:1"}),
        api.patch(f"{HOSTS}{host.pk}/", {"name": "renamed"}, format="json"),
        api.delete(f"{HOSTS}{host.pk}/"),
        api.post(f"{HOSTS}{host.pk}/check/"),
    ]
    assert [r.status_code for r in attempts] == [403] * len(attempts)
    assert field_errors(attempts[0]) == {None: attempts[0].json()["detail"]}
    region.refresh_from_db()
    host.refresh_from_db()
    assert (region.name, host.name, Region.objects.count()) == ("Cn-Hongkong", "h1", 1)


def test_operator_cannot_manage_hosts_or_regions():
    region = make_region()
    api = token_client("operator")
    new_host = {"region": region.pk, "name": "h2", "docker_url": "tcp://a:1"}
    assert api.post(HOSTS, new_host, format="json").status_code == 403
    assert api.post(REGIONS, {"slug": "eu-x", "name": "X"}).status_code == 403
    assert DockerHost.objects.count() == 0


def test_a_user_without_role_gets_403_and_no_credentials_get_401():
    assert token_client(None).get(REGIONS).status_code == 403
    anonymous = APIClient().get(REGIONS)
    assert anonymous.status_code == 401
    assert anonymous["WWW-Authenticate"] == "Bearer"
    assert field_errors(anonymous)[None]


@pytest.mark.parametrize(
    "url",
    [
        "http://127.0.0.1:2375",
        "tcp://127.0.0.1",
        "tcp://127.0.0.1:99999",
        "unix://var/run/docker.sock",
        "unix://",
        "ssh://",
        "ssh://user:secret@host",
        "docker.example.com",
        "",
    ],
)
def test_an_invalid_docker_url_gets_400_naming_the_field(url):
    region = make_region()
    api = token_client("admin")
    response = api.post(
        HOSTS, {"region": region.pk, "name": "h", "docker_url": url}, format="json"
    )
    assert response.status_code == 400, response.content
    errors = field_errors(response)
    assert list(errors) == ["docker_url"]
    assert errors["docker_url"]
    assert response.json()["detail"] == errors["docker_url"]
    assert not DockerHost.objects.exists()


def test_an_invalid_url_on_update_keeps_the_saved_host():
    host = make_host(make_region())
    api = token_client("admin")
    response = api.patch(
        f"{HOSTS}{host.pk}/", {"docker_url": "tcp://nohost"}, format="json"
    )
    assert response.status_code == 400
    assert "port" in field_errors(response)["docker_url"]
    host.refresh_from_db()
    assert host.docker_url == "unix:///run/ferry-test/docker.sock"


def test_duplicate_host_name_in_a_region_is_a_clear_400():
    host = make_host(make_region())
    api = token_client("admin")
    response = api.post(
        HOSTS,
        {"region": host.region_id, "name": host.name, "docker_url": "tcp://b:1"},
        format="json",
    )
    assert response.status_code == 400
    assert "unique" in response.json()["detail"].lower()


def test_deleting_a_region_that_still_has_hosts_is_a_409():
    host = make_host(make_region())
    response = token_client("admin").delete(f"{REGIONS}{host.region_id}/")
    assert response.status_code == 409
    assert "cn-hongkong/h1" in response.json()["detail"]
    assert Region.objects.filter(pk=host.region_id).exists()


def test_hosts_filter_by_region_slug_status_and_role_and_order():
    hk, sg = make_region("cn-hongkong"), make_region("ap-southeast-1")
    make_host(hk, "b")
    up = make_host(hk, "a")
    DockerHost.objects.filter(pk=up.pk).update(status="up", roles=["build"])
    make_host(sg, "c")
    api = token_client("viewer")

    def names(query):
        response = api.get(HOSTS + query)
        assert response.status_code == 200, response.content
        return [h["name"] for h in response.json()["results"]]

    assert names("?region_slug=cn-hongkong") == ["a", "b"]
    assert names("?status=up") == ["a"]
    assert names("?role=build") == ["a"]
    assert names("?ordering=-name") == ["c", "b", "a"]
    assert names(f"?region={sg.pk}") == ["c"]
    assert api.get(HOSTS + "?status=bogus").status_code == 400


def test_regions_paginate_and_filter_by_role():
    Region.objects.bulk_create(
        Region(slug=f"r-{i:03}", name=f"R{i}", role="home" if i == 7 else "edge")
        for i in range(60)
    )
    api = token_client("viewer")
    first = api.get(REGIONS).json()
    assert first["count"] == 60 and len(first["results"]) == 50
    assert len(api.get(first["next"]).json()["results"]) == 10
    homes = api.get(REGIONS + "?role=home").json()["results"]
    assert [r["slug"] for r in homes] == ["r-007"]


def test_object_stores_crud_needs_admin():
    region = make_region()
    store = {
        "region": region.pk,
        "name": "hk-oss",
        "kind": "s3",
        "endpoint": "http://127.0.0.1:9000",
        "bucket": "ferry",
    }
    assert (
        token_client("operator")
        .post("/api/v1/object-stores/", store, format="json")
        .status_code
        == 403
    )
    api = token_client("admin", "store-admin")
    created = api.post("/api/v1/object-stores/", store, format="json")
    assert created.status_code == 201, created.content
    store_id = created.json()["id"]
    listed = api.get("/api/v1/object-stores/?region_slug=cn-hongkong&kind=s3")
    assert [s["id"] for s in listed.json()["results"]] == [store_id]
    assert api.delete(f"/api/v1/object-stores/{store_id}/").status_code == 204


def test_check_now_is_an_operator_action_and_records_the_result():
    host = make_host(make_region(), url="tcp://127.0.0.1:1")
    response = token_client("operator").post(f"{HOSTS}{host.pk}/check/")
    assert response.status_code == 200, response.content
    body = response.json()
    assert body["status"] == "unreachable"
    assert (
        body["last_error"] == "Cannot connect to tcp://127.0.0.1:1: connection refused"
    )
    assert body["last_checked"]


def test_check_now_through_the_api_is_audited_like_the_page():
    host = make_host(make_region(), url="tcp://127.0.0.1:1")
    host_check(host.pk)  # the beat's check: records the status change only
    assert not AuditEvent.objects.filter(action="check").exists()

    api = token_client("operator", "otto")
    assert api.post(f"{HOSTS}{host.pk}/check/").status_code == 200

    event = AuditEvent.objects.get(action="check", object_id=str(host.pk))
    assert (event.actor, event.actor_name, event.via) == (api.user, "otto", "api")
    assert event.object_type == "regions.dockerhost"


def test_openapi_schema_is_version_3_and_lists_the_endpoints():
    api = token_client("viewer")
    response = api.get(
        "/api/v1/schema/", HTTP_ACCEPT="application/vnd.oai.openapi+json"
    )
    assert response.status_code == 200
    schema = response.json()
    assert schema["openapi"].startswith("3")
    for path in ("regions", "hosts", "object-stores", "audit-events", "tokens"):
        assert f"/api/v1/{path}/" in schema["paths"]
    host_out = schema["components"]["schemas"]["Host"]["properties"]
    assert "tls_client_key" not in host_out and "tls_client_key_set" in host_out
    assert "bearerAuth" in schema["components"]["securitySchemes"]


def test_schema_generation_has_no_warnings_for_these_endpoints(capsys):
    from drf_spectacular.drainage import GENERATOR_STATS
    from drf_spectacular.generators import SchemaGenerator

    GENERATOR_STATS.reset()
    SchemaGenerator().get_schema(request=None, public=True)
    ours = ("regions/api.py", "controlplane/api_views.py")
    complaints = [
        line
        for line in capsys.readouterr().err.splitlines()
        if ("Warning" in line or "Error" in line) and any(o in line for o in ours)
    ]
    assert complaints == []


def test_docs_page_loads_its_assets_from_static_not_a_cdn(client):
    from controlplane.tests.apiclient import user_with_role

    client.force_login(user_with_role("docs-reader", "viewer"))
    response = client.get("/api/v1/docs/")
    assert response.status_code == 200
    assert response["Content-Type"].startswith("text/html")
    html = response.content.decode()
    assert "/static/drf_spectacular_sidecar/swagger-ui-dist/" in html
    for cdn in ("cdn.jsdelivr", "unpkg.com", "cdnjs", "//cdn."):
        assert cdn not in html


def test_schema_and_docs_need_a_logged_in_user():
    anonymous = APIClient()
    assert anonymous.get("/api/v1/schema/").status_code == 401
    assert anonymous.get("/api/v1/docs/").status_code == 401
