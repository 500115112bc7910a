"""Helpers for API tests: users with a role and clients holding their token."""

from rest_framework.test import APIClient

from controlplane.testing.users import user_with_role
from controlplane.tokens import token_create

__all__ = ["bearer_client", "field_errors", "token_client", "user_with_role"]


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
