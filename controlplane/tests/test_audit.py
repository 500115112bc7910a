"""Every write leaves an AuditEvent (who, what, when, which fields), and the
read-only audit API shows and filters them."""

import pytest

from controlplane import services
from controlplane.tests.apiclient import token_client, user_with_role
from regions.models import Region

pytestmark = pytest.mark.django_db

EVENTS = "/api/v1/audit-events/"


def events_for(api, object_type, object_id):
    response = api.get(EVENTS, {"object_type": object_type, "object_id": object_id})
    assert response.status_code == 200, response.content
    return response.json()["results"]


def test_each_api_write_to_a_region_is_visible_in_the_audit_api():
    api = token_client("admin", "auditor")
    region = api.post("/api/v1/regions/", {"slug": "eu-west", "name": "EU"}).json()
    api.patch(
        f"/api/v1/regions/{region['id']}/",
        {"name": "Europe", "role": "home"},
        format="json",
    )
    api.delete(f"/api/v1/regions/{region['id']}/")

    events = events_for(api, "regions.region", region["id"])
    assert [e["action"] for e in events] == ["delete", "update", "create"]
    assert {(e["actor"], e["actor_name"], e["via"]) for e in events} == {
        (api.user.pk, "auditor", "api")
    }
    update = events[1]
    assert update["changes"] == {"name": ["EU", "Europe"], "role": ["edge", "home"]}
    assert update["object_repr"] == "eu-west" and update["at"]
    assert events[2]["changes"]["slug"] == [None, "eu-west"]


def test_host_writes_are_audited_with_their_changed_fields():
    api = token_client("admin", "hostadmin")
    region = Region.objects.create(slug="cn-hongkong", name="HK")
    host = api.post(
        "/api/v1/hosts/",
        {"region": region.pk, "name": "h1", "docker_url": "tcp://127.1.1.1:2375"},
        format="json",
    ).json()
    api.patch(
        f"/api/v1/hosts/{host['id']}/",
        {"docker_url": "tcp://127.1.1.2:2375"},
        format="json",
    )
    events = events_for(api, "regions.dockerhost", host["id"])
    assert [e["action"] for e in events] == ["update", "create"]
    assert events[0]["changes"]["docker_url"] == [
        "tcp://127.1.1.1:2375",
        "tcp://127.1.1.2:2375",
    ]


def test_a_write_that_changes_nothing_leaves_no_event():
    api = token_client("admin")
    region = Region.objects.create(slug="cn-hangzhou", name="Hangzhou")
    api.patch(f"/api/v1/regions/{region.pk}/", {"name": "Hangzhou"}, format="json")
    assert events_for(api, "regions.region", region.pk) == []


def test_service_writes_from_pages_are_audited_too():
    user = user_with_role("pat", "admin")
    region = services.object_save(user, Region(), {"slug": "us-east", "name": "US"})
    api = token_client("viewer")
    (event,) = events_for(api, "regions.region", region.pk)
    assert (event["actor_name"], event["via"], event["action"]) == (
        "pat",
        "ui",
        "create",
    )


def test_audit_events_filter_by_actor_and_are_read_only():
    alice = token_client("admin", "alice")
    bob = token_client("admin", "bob")
    alice.post("/api/v1/regions/", {"slug": "a-1", "name": "A"})
    bob.post("/api/v1/regions/", {"slug": "b-1", "name": "B"})

    by_bob = bob.get(EVENTS, {"actor": bob.user.pk, "object_type": "regions.region"})
    assert [e["object_repr"] for e in by_bob.json()["results"]] == ["b-1"]
    by_name = bob.get(EVENTS, {"actor_name": "alice", "object_type": "regions.region"})
    assert [e["object_repr"] for e in by_name.json()["results"]] == ["a-1"]

    event_id = by_bob.json()["results"][0]["id"]
    assert bob.post(EVENTS, {"action": "forged"}).status_code == 405
    assert bob.delete(f"{EVENTS}{event_id}/").status_code == 405
    assert bob.patch(f"{EVENTS}{event_id}/", {"action": "x"}).status_code == 405


def test_viewers_read_the_audit_log_and_anonymous_callers_do_not():
    from rest_framework.test import APIClient

    assert token_client("viewer").get(EVENTS).status_code == 200
    assert APIClient().get(EVENTS).status_code == 401


def test_creating_a_row_without_a_secret_does_not_report_the_secret_changed():
    from controlplane.models import AuditEvent
    from controlplane.services import object_save
    from regions.models import DockerHost, Region

    region = Region.objects.create(slug="cn-hangzhou", name="Hangzhou")
    host = object_save(
        None,
        DockerHost(),
        {"region": region, "name": "h", "docker_url": "unix:///run/d.sock"},
    )
    event = AuditEvent.objects.get(object_type="regions.dockerhost", object_id=host.pk)
    assert "tls_client_key" not in event.changes
