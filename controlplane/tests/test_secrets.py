"""Secrets are write-only in the API, ciphertext in the database, and
"(changed)" in the audit trail; "" keeps the stored value."""

import pytest

from controlplane.fields import secret_field_names as secrets_of
from controlplane.serializers import SecretsModelSerializer
from controlplane.testing.secrets import (
    assert_ciphertext,
    assert_responses_hide,
    key_body,
    raw_column,
)
from controlplane.tests.apiclient import token_client
from regions.models import DockerHost, Region
from registries.models import ObjectStore

pytestmark = pytest.mark.django_db

STORE_SECRET = "s3cr3t-AKIA-do-not-leak-9f1c2e"
STORE_SECRET_2 = "rotated-secret-77aa41-never-shown"


@pytest.fixture
def region():
    return Region.objects.create(slug="cn-hongkong", name="HK")


def test_host_tls_key_is_never_returned_and_is_ciphertext_in_the_db(region, test_ca):
    cert, key = (pem.decode() for pem in test_ca.issue(("ferry",), client=True))
    api = token_client("admin")
    leaks = (key, key_body(key))

    created = api.post(
        "/api/v1/hosts/",
        {
            "region": region.pk,
            "name": "tls-host",
            "docker_url": "tcp://127.0.0.1:2376",
            "tls_client_cert": cert,
            "tls_client_key": key,
        },
        format="json",
    )
    assert created.status_code == 201, created.content
    host_id = created.json()["id"]
    responses = [
        created,
        api.get("/api/v1/hosts/"),
        api.get(f"/api/v1/hosts/{host_id}/"),
        api.patch(f"/api/v1/hosts/{host_id}/", {"name": "renamed"}, format="json"),
        api.get("/api/v1/audit-events/"),
    ]
    assert_responses_hide(responses, leaks)
    assert created.json()["tls_client_key_set"] is True
    assert "tls_client_key" not in created.json()

    stored = raw_column("regions_dockerhost", "tls_client_key", host_id)
    assert_ciphertext(stored, key_body(key))
    assert DockerHost.objects.get(pk=host_id).tls_client_key == key


def test_object_store_secret_is_write_only_and_kept_when_sent_empty(region):
    api = token_client("admin")
    url = "/api/v1/object-stores/"
    created = api.post(
        url,
        {
            "region": region.pk,
            "name": "hk-s3",
            "kind": "s3",
            "endpoint": "http://127.0.0.1:9000",
            "bucket": "ferry",
            "access_key_id": "AKIAFERRY",
            "secret_access_key": STORE_SECRET,
        },
        format="json",
    )
    assert created.status_code == 201, created.content
    store_id = created.json()["id"]
    assert created.json()["secret_access_key_set"] is True

    # "" means "keep": the bucket changes, the secret stays.
    kept = api.patch(
        f"{url}{store_id}/",
        {"bucket": "ferry2", "secret_access_key": ""},
        format="json",
    )
    assert kept.status_code == 200 and kept.json()["secret_access_key_set"] is True
    assert ObjectStore.objects.get(pk=store_id).secret_access_key == STORE_SECRET

    replaced = api.patch(
        f"{url}{store_id}/", {"secret_access_key": STORE_SECRET_2}, format="json"
    )
    assert replaced.status_code == 200
    assert ObjectStore.objects.get(pk=store_id).secret_access_key == STORE_SECRET_2

    bodies = [
        created,
        kept,
        replaced,
        api.get(url),
        api.get(f"{url}{store_id}/"),
        api.get("/api/v1/audit-events/", {"object_type": "registries.objectstore"}),
    ]
    for response in bodies:
        text = response.content.decode()
        assert STORE_SECRET not in text and STORE_SECRET_2 not in text
    assert_ciphertext(
        raw_column("registries_objectstore", "secret_access_key", store_id),
        STORE_SECRET_2,
    )


def test_secret_changes_appear_in_the_audit_trail_as_changed_only(region):
    api = token_client("admin")
    url = "/api/v1/object-stores/"
    store = api.post(
        url,
        {"region": region.pk, "name": "fs", "kind": "filesystem"},
        format="json",
    ).json()
    assert store["secret_access_key_set"] is False
    api.patch(
        f"{url}{store['id']}/", {"secret_access_key": STORE_SECRET}, format="json"
    )
    api.patch(f"{url}{store['id']}/", {"secret_access_key": ""}, format="json")

    events = api.get(
        "/api/v1/audit-events/",
        {"object_type": "registries.objectstore", "object_id": store["id"]},
    ).json()["results"]
    assert [e["action"] for e in events] == ["update", "create"]  # "" was no change
    assert events[0]["changes"] == {"secret_access_key": "(changed)"}


def test_the_serializer_base_makes_every_encrypted_field_write_only():
    class StoreSerializer(SecretsModelSerializer):
        class Meta:
            model = ObjectStore
            fields = ("name", "secret_access_key")

    fields = StoreSerializer().fields
    assert fields["secret_access_key"].write_only
    assert not fields["secret_access_key"].required
    assert fields["secret_access_key_set"].read_only
    store = ObjectStore(name="x", secret_access_key=STORE_SECRET)
    data = StoreSerializer(store).data
    assert data.pop("name") == "x"
    # One "_set" flag per secret of the model, listed in fields or not.
    assert data == {
        f"{n}_set": n == "secret_access_key" for n in secrets_of(ObjectStore)
    }


def test_null_clears_a_secret_so_a_tls_host_can_move_to_a_unix_socket(region, test_ca):
    cert, key = (pem.decode() for pem in test_ca.issue(("ferry",), client=True))
    api = token_client("admin")
    host = api.post(
        "/api/v1/hosts/",
        {
            "region": region.pk,
            "name": "mover",
            "docker_url": "tcp://127.0.0.1:2376",
            "tls_client_cert": cert,
            "tls_client_key": key,
        },
        format="json",
    ).json()
    url = f"/api/v1/hosts/{host['id']}/"
    # Keeping the key ("") while dropping TLS is refused, naming the field...
    kept = api.patch(
        url,
        {"docker_url": "unix:///run/docker.sock", "tls_client_cert": ""},
        format="json",
    )
    assert kept.status_code == 400
    assert (
        "only to tcp://"
        in {e["field"]: e["message"] for e in kept.json()["errors"]}["tls_client_key"]
    )
    # ...null clears it.
    moved = api.patch(
        url,
        {
            "docker_url": "unix:///run/docker.sock",
            "tls_client_cert": "",
            "tls_client_key": None,
        },
        format="json",
    )
    assert moved.status_code == 200, moved.content
    assert moved.json()["tls_client_key_set"] is False
    assert raw_column("regions_dockerhost", "tls_client_key", host["id"]) == ""
    (update,) = api.get(
        "/api/v1/audit-events/",
        {"object_type": "regions.dockerhost", "action": "update"},
    ).json()["results"]
    assert update["changes"]["tls_client_key"] == "(changed)"
