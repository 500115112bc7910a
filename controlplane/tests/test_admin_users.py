"""User and group administration in the Django admin leaves AuditEvents.

Driven through the admin's own forms with the test client, as an admin would.
Roles are groups, so a change of a user's groups is a change of role; a
password shows only as "(changed)", never its value or hash.
"""

import json

import pytest
from django.contrib.auth.models import Group, Permission, User
from django.urls import reverse

from controlplane.models import AuditEvent
from controlplane.testing.users import user_with_role

pytestmark = pytest.mark.django_db

NEW_PASSWORD = "Tr1cky-horse-battery"


@pytest.fixture
def admin_client(client, ferry_admin):
    client.force_login(ferry_admin)
    return client


def user_events(user) -> list[AuditEvent]:
    events = AuditEvent.objects.filter(object_type="auth.user", object_id=str(user.pk))
    return list(events.order_by("pk"))


def change_form(user: User, **fields) -> dict:
    """The user's change form as the admin page posts it, with `fields` changed."""
    data = {
        "username": user.username,
        "first_name": user.first_name,
        "last_name": user.last_name,
        "email": user.email,
        "groups": [g.pk for g in user.groups.all()],
        "user_permissions": [],
    }
    for flag in ("is_active", "is_staff", "is_superuser"):
        if getattr(user, flag):
            data[flag] = "on"
    data.update(fields)
    return {key: value for key, value in data.items() if value is not None}


def post_change(client, user: User, **fields):
    url = reverse("admin:auth_user_change", args=[user.pk])
    answer = client.post(url, change_form(user, **fields))
    assert answer.status_code == 302, answer.content.decode()[:3000]
    return answer


def test_adding_a_user_is_audited_without_the_password(admin_client, ferry_admin):
    answer = admin_client.post(
        reverse("admin:auth_user_add"),
        {
            "username": "newbie",
            "usable_password": "true",
            "password1": NEW_PASSWORD,
            "password2": NEW_PASSWORD,
        },
    )
    assert answer.status_code == 302, answer.content.decode()[:3000]
    user = User.objects.get(username="newbie")
    [event] = user_events(user)
    assert (event.action, event.via, event.actor) == ("create", "admin", ferry_admin)
    assert event.changes["username"] == [None, "newbie"]
    assert event.changes["password"] == "(changed)"
    recorded = json.dumps(event.changes)
    assert NEW_PASSWORD not in recorded and user.password not in recorded


def test_a_role_superuser_and_active_change_is_one_audited_update(admin_client):
    user = user_with_role("vic", "viewer")
    operator = Group.objects.get_or_create(name="operator")[0]

    post_change(
        admin_client, user, groups=[operator.pk], is_superuser="on", is_active=None
    )

    user.refresh_from_db()
    assert user.is_superuser and not user.is_active
    [event] = user_events(user)
    assert event.action == "update" and event.via == "admin"
    assert event.changes == {
        "groups": [["viewer"], ["operator"]],
        "is_superuser": [False, True],
        "is_active": [True, False],
    }


def test_taking_every_role_away_alone_is_audited(admin_client):
    user = user_with_role("leaver", "operator")

    post_change(admin_client, user, groups=[])

    assert not user.groups.exists()
    [event] = user_events(user)
    assert event.changes == {"groups": [["operator"], []]}


def test_saving_an_unchanged_user_records_nothing(admin_client):
    user = user_with_role("same", "viewer")
    post_change(admin_client, user)
    assert user_events(user) == []


def test_the_password_change_form_records_only_that_it_changed(admin_client):
    user = user_with_role("forgetful", "viewer")
    old_hash = user.password
    url = reverse("admin:auth_user_password_change", args=[user.pk])

    answer = admin_client.post(
        url,
        {
            "usable_password": "true",
            "password1": NEW_PASSWORD,
            "password2": NEW_PASSWORD,
        },
    )

    assert answer.status_code == 302, answer.content.decode()[:3000]
    user.refresh_from_db()
    assert user.check_password(NEW_PASSWORD)
    [event] = user_events(user)
    assert (event.action, event.via) == ("update", "admin")
    assert event.changes == {"password": "(changed)"}
    recorded = json.dumps(event.changes)
    assert NEW_PASSWORD not in recorded
    assert old_hash not in recorded and user.password not in recorded


def test_a_refused_password_change_records_nothing(admin_client):
    user = user_with_role("careful", "viewer")
    url = reverse("admin:auth_user_password_change", args=[user.pk])
    answer = admin_client.post(
        url, {"usable_password": "true", "password1": "a", "password2": "b"}
    )
    assert answer.status_code == 200  # the form again, with its errors
    assert user_events(user) == []


def test_deleting_a_user_is_audited(admin_client, ferry_admin):
    user = user_with_role("bye", "viewer")
    url = reverse("admin:auth_user_delete", args=[user.pk])
    assert admin_client.post(url, {"post": "yes"}).status_code == 302
    assert not User.objects.filter(username="bye").exists()
    event = AuditEvent.objects.get(object_type="auth.user", action="delete")
    assert (event.object_repr, event.actor, event.via) == ("bye", ferry_admin, "admin")


def test_group_creation_and_permission_changes_are_audited(admin_client):
    perm = Permission.objects.get(codename="view_user")
    answer = admin_client.post(
        reverse("admin:auth_group_add"), {"name": "auditors", "permissions": [perm.pk]}
    )
    assert answer.status_code == 302, answer.content.decode()[:3000]
    group = Group.objects.get(name="auditors")

    url = reverse("admin:auth_group_change", args=[group.pk])
    assert admin_client.post(url, {"name": "auditors"}).status_code == 302

    events = AuditEvent.objects.filter(object_type="auth.group").order_by("pk")
    created, updated = events
    assert created.action == "create"
    assert created.changes["name"] == [None, "auditors"]
    assert created.changes["permissions"] == [[], [str(perm)]]
    assert updated.changes == {"permissions": [[str(perm)], []]}


def test_an_operator_cannot_change_users_and_nothing_is_recorded(client, operator):
    user = user_with_role("target", "viewer")
    client.force_login(operator)
    url = reverse("admin:auth_user_change", args=[user.pk])
    answer = client.post(url, change_form(user, is_superuser="on"))
    assert answer.status_code in (302, 403)
    user.refresh_from_db()
    assert not user.is_superuser
    assert user_events(user) == []
