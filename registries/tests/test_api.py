"""/api/v1/registries/: CRUD with field errors, roles, actions, apply for real."""

import socket

import pytest

from controlplane.models import AuditEvent
from controlplane.testing.ports import free_port
from controlplane.testing.wait import wait_for
from controlplane.tests.apiclient import field_errors, token_client
from regions.models import DockerHost, Region
from registries.models import ObjectStore, Registry, RegistryStatus

URL = "/api/v1/registries/"


@pytest.fixture
def topology(db):
    region = Region.objects.create(slug="hk", name="Hong Kong")
    host = DockerHost.objects.create(
        region=region, name="h1", docker_url="unix:///nonexistent/docker.sock"
    )
    store = ObjectStore.objects.create(
        region=region, name="oss", kind="oss", bucket="b", s3_region="cn-hongkong"
    )
    return region, host, store


def mirror_body(topology, **extra) -> dict:
    region, host, store = topology
    body = {
        "region": region.pk,
        "host": host.pk,
        "store": store.pk,
        "name": "mirror",
        "kind": "mirror",
        "upstream_url": "https://registry.cn-hangzhou.example.com",
        "upstream_username": "puller",
        "upstream_password": "s3cret-upstream",
    }
    return {**body, **extra}


def test_admin_creates_a_mirror_with_free_ports_and_write_only_secrets(topology):
    admin = token_client("admin")
    response = admin.post(URL, mirror_body(topology), format="json")
    assert response.status_code == 201, response.json()
    body = response.json()
    assert "upstream_password" not in body and body["upstream_password_set"] is True
    assert body["tls_private_key_set"] is False
    assert "s3cret" not in response.content.decode()
    ports = {
        body[name] for name in ("port", "debug_port", "https_port", "gateway_port")
    }
    assert len(ports) == 4 and None not in ports
    assert body["status"] == RegistryStatus.PENDING
    assert AuditEvent.objects.filter(
        action="create", object_id=str(body["id"])
    ).exists()

    second = admin.post(URL, mirror_body(topology, name="mirror2"), format="json")
    assert second.status_code == 201
    assert not ports & {
        second.json()[n] for n in ("port", "debug_port", "gateway_port")
    }


@pytest.mark.parametrize(
    ("extra", "field", "words"),
    [
        ({"upstream_url": "ftp://x"}, "upstream_url", ""),
        (
            {"upstream_url": "http://user:pw@up.example.com"},
            "upstream_url",
            "credentials",
        ),
        ({"upstream_url": ""}, "upstream_url", "upstream"),
        (
            {"kind": "private", "listen_address": "0.0.0.0", "require_auth": False},
            "listen_address",
            "authentication",
        ),
        ({"listen_address": "my-host"}, "listen_address", "IP address"),
        ({"port": 70000}, "port", ""),
        ({"image": "Not A Ref!"}, "image", "image reference"),
        (
            {"tls_certificate": "garbage", "tls_private_key": "x"},
            "tls_certificate",
            "PEM",
        ),
    ],
)
def test_bad_input_is_refused_with_the_field(topology, extra, field, words):
    response = token_client("admin").post(
        URL, mirror_body(topology, **extra), format="json"
    )
    assert response.status_code == 400, response.json()
    errors = field_errors(response)
    assert field in errors, errors
    assert words.lower() in errors[field].lower()
    assert not Registry.objects.exists()


def test_a_certificate_and_key_that_do_not_match_are_refused(topology, test_ca):
    cert, _key = test_ca.issue(("127.0.0.1",))
    _cert, other_key = test_ca.issue(("127.0.0.1",))
    body = mirror_body(
        topology, tls_certificate=cert.decode(), tls_private_key=other_key.decode()
    )
    response = token_client("admin").post(URL, body, format="json")
    assert response.status_code == 400
    assert "does not match" in field_errors(response)["tls_private_key"]


def test_a_matching_pair_records_its_expiry(topology, test_ca):
    cert, key = test_ca.issue(("127.0.0.1",))
    body = mirror_body(
        topology, tls_certificate=cert.decode(), tls_private_key=key.decode()
    )
    response = token_client("admin").post(URL, body, format="json")
    assert response.status_code == 201, response.json()
    assert response.json()["tls_expires_at"]


def test_a_port_of_another_registry_on_the_host_is_refused(topology):
    admin = token_client("admin")
    first = admin.post(URL, mirror_body(topology), format="json").json()
    clash = mirror_body(topology, name="other", https_port=first["https_port"])
    response = admin.post(URL, clash, format="json")
    assert response.status_code == 400
    assert "already used by registry hk/mirror" in field_errors(response)["https_port"]


def test_an_update_with_bad_input_keeps_the_saved_row(topology):
    admin = token_client("admin")
    created = admin.post(URL, mirror_body(topology), format="json").json()
    response = admin.patch(
        f"{URL}{created['id']}/", {"upstream_url": "not a url"}, format="json"
    )
    assert response.status_code == 400
    row = Registry.objects.get(pk=created["id"])
    assert row.upstream_url == "https://registry.cn-hangzhou.example.com"
    assert row.upstream_password == "s3cret-upstream"


def test_roles_viewers_read_operators_apply_admins_write(topology):
    created = token_client("admin").post(URL, mirror_body(topology), format="json")
    pk = created.json()["id"]
    viewer, operator = token_client("viewer"), token_client("operator")
    assert viewer.get(URL).status_code == 200
    assert viewer.post(f"{URL}{pk}/apply/").status_code == 403
    assert (
        operator.post(URL, mirror_body(topology, name="x"), format="json").status_code
        == 403
    )
    assert operator.post(f"{URL}{pk}/rotate-password/").status_code == 403
    response = operator.post(f"{URL}{pk}/prewarm/", {"image": "no good"}, format="json")
    assert response.status_code == 400
    assert "image" in field_errors(response)


def test_rotate_password_shows_the_new_password_once(topology):
    admin = token_client("admin")
    pk = admin.post(URL, mirror_body(topology), format="json").json()["id"]
    response = admin.post(
        f"{URL}{pk}/rotate-password/", {"username": "ops"}, format="json"
    )
    assert response.status_code == 200
    body = response.json()
    assert body["username"] == "ops" and len(body["password"]) >= 16
    assert response["Cache-Control"] == "no-store"
    assert Registry.objects.get(pk=pk).users.get().password == body["password"]
    listed = admin.get(f"{URL}{pk}/").json()
    assert listed["users"] == ["ops"] and body["password"] not in str(listed)


def test_stats_answer_with_the_documented_keys(topology):
    pk = (
        token_client("admin")
        .post(URL, mirror_body(topology), format="json")
        .json()["id"]
    )
    viewer = token_client("viewer")
    body = viewer.get(f"{URL}{pk}/stats/").json()
    for key in ("requests", "hits", "misses", "hit_rate", "bytes_upstream",
                "bytes_served", "storage_bytes", "objects", "sampled_at"):  # fmt: skip
        assert key in body
    # The OpenAPI schema documents every key the answer has, and no other.
    schema = viewer.get("/api/v1/schema/?format=json").json()
    documented = schema["components"]["schemas"]["RegistryStats"]
    assert set(documented["properties"]) == set(body)
    assert set(documented["required"]) == set(body)
    gateway = schema["components"]["schemas"]["GatewayStatus"]["properties"]
    assert set(body["gateway"]) <= set(gateway)


def test_apply_to_a_down_host_is_refused_on_the_host_field(topology):
    pk = (
        token_client("admin")
        .post(URL, mirror_body(topology), format="json")
        .json()["id"]
    )
    response = token_client("operator").post(f"{URL}{pk}/apply/?wait=1")
    assert response.status_code == 400
    errors = field_errors(response)
    # The OSS bucket is checked first here (no OSS server): either is named.
    assert {"host", "store"} & set(errors), errors
    row = Registry.objects.get(pk=pk)
    assert row.status == RegistryStatus.FAILED and row.last_error
    # What Ferry generates was kept: a self-signed pair for 127.0.0.1, a token.
    assert (
        row.tls_certificate.startswith("-----BEGIN CERTIFICATE") and row.tls_expires_at
    )
    assert row.notify_token and row.users.filter(username="ferry").exists()


# -- real ----------------------------------------------------------------------
@pytest.mark.integration
@pytest.mark.django_db(transaction=True)
def test_apply_through_the_api_runs_in_a_worker_and_ends_healthy(site, celery_worker):
    operator = token_client("operator")
    response = operator.post(f"{URL}{site.mirror.pk}/apply/")
    assert response.status_code == 202
    assert response.json() == {
        "status": "applying", "last_error": "", "config_hash": "", "queued": True
    }  # fmt: skip

    def settled():
        row = Registry.objects.get(pk=site.mirror.pk)
        return row if row.status not in ("applying", "pending") else None

    row = wait_for(settled, timeout=120, message=f"apply: {celery_worker.log_tail()}")
    assert row.status == RegistryStatus.HEALTHY, (row.last_error, row.health)
    assert row.health["checks"]["endpoint"]["ok"]
    assert row.config_hash
    assert AuditEvent.objects.filter(action="apply", object_id=str(row.pk)).exists()


@pytest.mark.integration
def test_apply_with_wait_names_a_taken_port(site):
    with socket.socket() as busy:
        busy.bind(("127.0.0.1", free_port()))
        busy.listen()
        Registry.objects.filter(pk=site.mirror.pk).update(
            gateway_port=busy.getsockname()[1]
        )
        response = token_client("operator").post(f"{URL}{site.mirror.pk}/apply/?wait=1")
    assert response.status_code == 400
    assert "already in use" in field_errors(response)["gateway_port"]


@pytest.mark.integration
def test_prewarm_pulls_the_image_through_the_applied_mirror(site, test_image_archive):
    from registries import services

    services.registry_apply(site.mirror.pk)
    operator = token_client("operator")
    response = operator.post(
        f"{URL}{site.mirror.pk}/prewarm/", {"image": "ns/app:v1"}, format="json"
    )
    assert response.status_code == 200, response.json()
    body = response.json()
    assert body["blobs"] == test_image_archive.layers + 1  # layers + config
    assert body["bytes"] >= 3 * 1024 * 1024  # 3 layers of 1 MB random data
    missing = operator.post(
        f"{URL}{site.mirror.pk}/prewarm/", {"image": "ns/nope:v1"}, format="json"
    )
    assert missing.status_code == 400
    assert "image" in field_errors(missing)
