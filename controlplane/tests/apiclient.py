"""Helpers for API tests: users with a role and clients holding their token."""

from django.contrib.auth.models import Group, User
from rest_framework.test import APIClient

from controlplane.tokens import token_create


def user_with_role(username: str, role: str | None) -> User:
    user = User.objects.create_user(username, password="pw-" + username)
    if role:
        user.groups.add(Group.objects.get_or_create(name=role)[0])
    return user


def bearer_client(raw: str) -> APIClient:
    client = APIClient()
    client.credentials(HTTP_AUTHORIZATION=f"Bearer {raw}")
    return client


def token_client(role: str | None, username: str | None = None) -> APIClient:
    """An APIClient authenticated by a fresh token of a new user with `role`."""
    user = user_with_role(username or f"api-{role or 'norole'}", role)
    _token, raw = token_create(user, "tests")
    client = bearer_client(raw)
    client.user = user  # for assertions on the actor
    return client


def field_errors(response) -> dict[str, str]:
    """{"field": "message"} from Ferry's error body (asserting its shape)."""
    body = response.json()
    assert set(body) == {"detail", "errors"}, body
    return {item["field"]: item["message"] for item in body["errors"]}
