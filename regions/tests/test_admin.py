"""Django admin: every model registered, roles respected, secrets hidden, audited."""

import pytest
from django.apps import apps
from django.contrib import admin
from django.urls import reverse

from controlplane.fields import secret_field_names
from controlplane.models import AuditEvent
from registries.models import ObjectStore

pytestmark = pytest.mark.django_db

FERRY_APPS = ("controlplane", "regions", "registries", "builds", "deployments")


def test_every_ferry_model_is_in_the_admin():
    missing = [
        model._meta.label
        for app in FERRY_APPS
        for model in apps.get_app_config(app).get_models()
        if not admin.site.is_registered(model)
    ]
    assert missing == []


def test_admin_role_gets_in_and_operator_does_not(client, ferry_admin, operator):
    client.force_login(operator)
    response = client.get(reverse("admin:index"))
    assert response.status_code == 302  # to the admin login: not allowed
    client.force_login(ferry_admin)
    assert not ferry_admin.is_staff  # the role, not is_staff, opens the admin
    response = client.get(reverse("admin:regions_dockerhost_changelist"))
    assert response.status_code == 200


def test_every_change_form_hides_secrets(admin_role_client, ferry_admin, demo):
    """Open each model with a secret and check the value is nowhere in the page."""
    store = ObjectStore.objects.first()
    store.secret_access_key = "TOPSECRET-store-key"
    store.save()
    url = reverse("admin:registries_objectstore_change", args=[store.pk])
    html = admin_role_client.get(url).content.decode()
    assert "TOPSECRET" not in html
    assert 'name="secret_access_key"' in html and "Set. Leave blank" in html
    for app in FERRY_APPS:
        for model in apps.get_app_config(app).get_models():
            if not secret_field_names(model):
                continue
            add = reverse(f"admin:{app}_{model._meta.model_name}_add")
            response = admin_role_client.get(add)
            assert response.status_code in (200, 403), add


def test_blank_secret_in_admin_keeps_it_and_the_change_is_audited(
    admin_role_client, demo
):
    store = ObjectStore.objects.first()
    store.secret_access_key = "keep-me"
    store.save()
    url = reverse("admin:registries_objectstore_change", args=[store.pk])
    data = {
        "region": store.region_id,
        "name": store.name,
        "kind": store.kind,
        "endpoint": store.endpoint,
        "bucket": "renamed-bucket",
        "s3_region": store.s3_region,
        "root_directory": store.root_directory,
        "access_key_id": "",
        "secret_access_key": "",
        "http_secret": "",
        "internal_endpoint": "on",
    }
    response = admin_role_client.post(url, data)
    assert response.status_code == 302, response.content.decode()[:2000]
    store.refresh_from_db()
    assert store.bucket == "renamed-bucket" and store.secret_access_key == "keep-me"
    event = AuditEvent.objects.filter(object_type="registries.objectstore", via="admin")
    assert event.get().changes == {
        "bucket": [f"ferry-demo-{store.region.slug}", "renamed-bucket"]
    }
    data["secret_access_key"] = "new-value"
    admin_role_client.post(url, data)
    store.refresh_from_db()
    assert store.secret_access_key == "new-value"
    last = AuditEvent.objects.filter(via="admin").first()
    assert last.changes == {"secret_access_key": "(changed)"}


def test_inline_rows_are_saved_with_secrets_kept_and_audited(admin_role_client, demo):
    from registries.models import Registry, RegistryUser

    store = ObjectStore.objects.first()
    host = store.region.hosts.first()
    registry = Registry.objects.create(
        region=store.region, host=host, name="mirror", store=store
    )
    user = RegistryUser.objects.create(
        registry=registry, username="pull", password="pw1"
    )
    url = reverse("admin:registries_registry_change", args=[registry.pk])
    form = admin_role_client.get(url).context["adminform"].form
    data = {
        name: ("" if value is None else value)
        for name, value in form.initial.items()
        if not isinstance(value, (list, dict))
    }
    data.update(
        {
            "region": registry.region_id,
            "host": host.pk,
            "store": store.pk,
            "users-TOTAL_FORMS": "1",
            "users-INITIAL_FORMS": "1",
            "users-MIN_NUM_FORMS": "0",
            "users-MAX_NUM_FORMS": "1000",
            "users-0-id": user.pk,
            "users-0-registry": registry.pk,
            "users-0-username": "puller",
            "users-0-password": "",
        }
    )
    for key in ("require_auth", "gateway_enabled"):
        data[key] = "on" if data.get(key) else ""
    response = admin_role_client.post(url, {k: v for k, v in data.items() if v != ""})
    assert response.status_code == 302, response.context["adminform"].form.errors
    user.refresh_from_db()
    assert (user.username, user.password) == ("puller", "pw1")
    event = AuditEvent.objects.get(object_type="registries.registryuser", via="admin")
    assert event.changes == {"username": ["pull", "puller"]}
    assert "pw1" not in admin_role_client.get(url).content.decode()


def test_many_to_many_changes_in_the_admin_join_the_rows_audit_event(
    admin_role_client, demo
):
    from deployments.models import Service
    from regions.models import Region

    hk, sv = (
        Region.objects.get(slug="cn-hongkong"),
        Region.objects.get(slug="us-west-1"),
    )
    form = {"name": "api", "image": "team/api", "replicas": 2, "port": 8080,
            "health_path": "/"}  # fmt: skip
    add = admin_role_client.post(
        reverse("admin:deployments_service_add"), {**form, "regions": [hk.pk]}
    )
    assert add.status_code == 302, add.context["adminform"].form.errors
    service = Service.objects.get(name="api")
    url = reverse("admin:deployments_service_change", args=[service.pk])
    change = admin_role_client.post(url, {**form, "regions": [hk.pk, sv.pk]})
    assert change.status_code == 302, change.context["adminform"].form.errors

    events = AuditEvent.objects.filter(object_type="deployments.service")
    created, updated = events.order_by("pk")
    assert created.action == "create"
    assert created.changes["regions"] == [[], ["cn-hongkong"]]
    assert updated.changes == {
        "regions": [["cn-hongkong"], ["cn-hongkong", "us-west-1"]]
    }
