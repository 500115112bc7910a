"""REST API for services and rollouts: roles, audit, many-to-many regions."""

import pytest

from controlplane.models import AuditEvent
from controlplane.tests.apiclient import field_errors, token_client
from deployments.models import Rollout, Service
from regions.models import Region

pytestmark = pytest.mark.django_db

SERVICES = "/api/v1/services/"
ROLLOUTS = "/api/v1/rollouts/"


def test_operator_creates_and_updates_a_service_with_regions_and_it_is_audited():
    hk = Region.objects.create(slug="cn-hongkong", name="Hong Kong")
    sv = Region.objects.create(slug="us-west-1", name="Silicon Valley")
    api = token_client("operator")

    created = api.post(
        SERVICES,
        {"name": "api", "regions": [hk.pk, sv.pk], "replicas": 3},
        format="json",
    )
    assert created.status_code == 201, created.content
    service = Service.objects.get(name="api")
    assert set(service.regions.values_list("slug", flat=True)) == {
        "cn-hongkong",
        "us-west-1",
    }
    patched = api.patch(f"{SERVICES}{service.pk}/", {"replicas": 4}, format="json")
    assert patched.status_code == 200 and patched.json()["replicas"] == 4

    events = AuditEvent.objects.filter(object_type="deployments.service")
    assert list(events.values_list("action", flat=True)) == ["update", "create"]
    assert events.first().changes == {"replicas": [3, 4]}


def test_region_changes_of_a_service_are_audited_by_slug():
    hk = Region.objects.create(slug="cn-hongkong", name="Hong Kong")
    sv = Region.objects.create(slug="us-west-1", name="Silicon Valley")
    api = token_client("operator")
    created = api.post(SERVICES, {"name": "api", "regions": [hk.pk]}, format="json")
    assert created.status_code == 201, created.content
    url = f"{SERVICES}{created.json()['id']}/"

    moved = api.patch(url, {"regions": [sv.pk, hk.pk]}, format="json")
    assert moved.status_code == 200 and sorted(moved.json()["regions"]) == sorted(
        [hk.pk, sv.pk]
    )
    same = api.patch(url, {"regions": [hk.pk, sv.pk]}, format="json")
    assert same.status_code == 200
    dropped = api.patch(url, {"regions": []}, format="json")
    assert dropped.status_code == 200 and dropped.json()["regions"] == []

    events = AuditEvent.objects.filter(object_type="deployments.service")
    create, *updates = events.order_by("pk")
    assert create.changes["regions"] == [[], ["cn-hongkong"]]
    assert [event.changes for event in updates] == [
        {"regions": [["cn-hongkong"], ["cn-hongkong", "us-west-1"]]},
        {"regions": [["cn-hongkong", "us-west-1"], []]},
    ]
    assert {event.via for event in events} == {"api"}


def test_viewer_reads_services_and_rollouts_but_cannot_write():
    service = Service.objects.create(name="web")
    Rollout.objects.create(service=service, image="reg/web:2")
    api = token_client("viewer")

    assert api.get(SERVICES).json()["count"] == 1
    rollouts = api.get(ROLLOUTS, {"service": service.pk}).json()["results"]
    assert [r["image"] for r in rollouts] == ["reg/web:2"]
    assert api.post(SERVICES, {"name": "x"}, format="json").status_code == 403
    assert api.delete(f"{SERVICES}{service.pk}/").status_code == 403


def test_a_bad_service_name_is_a_400_naming_the_field():
    api = token_client("operator")
    response = api.post(SERVICES, {"name": "not a slug!"}, format="json")
    assert response.status_code == 400
    assert "name" in field_errors(response)


def test_a_service_with_rollouts_cannot_be_deleted():
    service = Service.objects.create(name="web")
    Rollout.objects.create(service=service, image="reg/web:2")
    api = token_client("operator")

    answer = api.delete(f"{SERVICES}{service.pk}/")

    assert answer.status_code == 409, answer.content
    assert answer.json()["detail"] == "Still in use by: web → reg/web:2"
    assert service.rollouts.count() == 1
    assert not AuditEvent.objects.filter(action="delete").exists()
