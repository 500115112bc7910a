"""Bearer tokens (hashed, shown once, revocable), the tokens API, and the
login rate limit on the login page and the admin's login."""

import hashlib

import pytest
from django.db import connection
from django.test import override_settings
from rest_framework.test import APIClient

from controlplane.models import ApiToken, AuditEvent
from controlplane.ratelimit import login_blocked, login_failures
from controlplane.testing.wait import wait_for
from controlplane.tests.apiclient import bearer_client, token_client, user_with_role
from controlplane.tokens import token_create, token_revoke

pytestmark = pytest.mark.django_db

TOKENS = "/api/v1/tokens/"


def test_token_is_stored_only_as_its_sha256_and_authenticates():
    user = user_with_role("tia", "viewer")
    token, raw = token_create(user, "ci")
    assert raw.startswith("fy_") and len(raw) > 40
    assert token.token_hash == hashlib.sha256(raw.encode()).hexdigest()
    with connection.cursor() as cursor:
        cursor.execute("SELECT * FROM controlplane_apitoken")
        rows = cursor.fetchall()
    assert rows and not any(raw in str(value) for row in rows for value in row)

    response = bearer_client(raw).get("/api/v1/regions/")
    assert response.status_code == 200
    token.refresh_from_db()
    assert token.last_used_at is not None


def test_unknown_malformed_and_revoked_tokens_get_401():
    user = user_with_role("rex", "admin")
    token, raw = token_create(user, "laptop")
    assert bearer_client(raw).get("/api/v1/hosts/").status_code == 200

    token_revoke(user, token.pk)
    revoked = bearer_client(raw).get("/api/v1/hosts/")
    assert revoked.status_code == 401
    assert revoked.json()["detail"] == "Invalid or revoked token."
    assert bearer_client("fy_not-a-token").get("/api/v1/hosts/").status_code == 401
    malformed = APIClient()
    malformed.credentials(HTTP_AUTHORIZATION="Bearer two parts")
    assert malformed.get("/api/v1/hosts/").status_code == 401


def test_a_deactivated_users_token_stops_working():
    api = token_client("admin", "leaver")
    api.user.is_active = False
    api.user.save()
    assert api.get("/api/v1/regions/").status_code == 401


def test_session_login_works_for_the_api(client):
    client.force_login(user_with_role("sam", "viewer"))
    assert client.get("/api/v1/regions/").status_code == 200


def test_tokens_api_shows_the_raw_value_once_then_only_the_prefix():
    api = token_client("viewer", "vic")  # viewers manage their own tokens too
    created = api.post(TOKENS, {"name": "deploy script"}, format="json")
    assert created.status_code == 201, created.content
    body = created.json()
    raw = body["token"]
    assert raw.startswith(body["prefix"]) and body["active"] is True

    listed = api.get(TOKENS)
    assert listed.status_code == 200
    assert raw not in listed.content.decode()
    names = [t["name"] for t in listed.json()["results"]]
    assert sorted(names) == ["deploy script", "tests"]
    detail = api.get(f"{TOKENS}{body['id']}/")
    assert raw not in detail.content.decode() and "token" not in detail.json()

    assert bearer_client(raw).get("/api/v1/regions/").status_code == 200
    revoked = api.delete(f"{TOKENS}{body['id']}/")
    assert revoked.status_code == 200 and revoked.json()["active"] is False
    assert bearer_client(raw).get("/api/v1/regions/").status_code == 401


def test_token_create_and_revoke_leave_audit_events_without_the_token():
    api = token_client("viewer", "val")
    created = api.post(TOKENS, {"name": "ci"}, format="json").json()
    api.post(f"{TOKENS}{created['id']}/revoke/")
    events = AuditEvent.objects.filter(
        object_type="controlplane.apitoken", object_id=str(created["id"])
    ).order_by("id")
    assert [(e.action, e.actor, e.via) for e in events] == [
        ("create", api.user, "api"),
        ("revoke", api.user, "api"),
    ]
    assert created["token"] not in str([e.changes for e in events])
    assert events[0].changes["name"] == [None, "ci"]


def test_users_see_and_revoke_only_their_own_tokens():
    mine = token_client("viewer", "me")
    other = user_with_role("them", "viewer")
    their_token, their_raw = token_create(other, "theirs")
    assert [t["name"] for t in mine.get(TOKENS).json()["results"]] == ["tests"]
    assert mine.delete(f"{TOKENS}{their_token.pk}/").status_code == 404
    assert bearer_client(their_raw).get("/api/v1/regions/").status_code == 200


@pytest.mark.parametrize("how", ["delete", "revoke"])
def test_admins_revoke_other_users_tokens_through_the_api_too(how):
    admin = token_client("admin", "boss")
    other = user_with_role("them", "operator")
    token, raw = token_create(other, "theirs")
    url = f"{TOKENS}{token.pk}/"

    answer = admin.delete(url) if how == "delete" else admin.post(f"{url}revoke/")

    assert answer.status_code == 200, answer.content
    assert answer.json()["active"] is False
    assert bearer_client(raw).get("/api/v1/regions/").status_code == 401
    event = AuditEvent.objects.get(action="revoke", object_id=str(token.pk))
    assert (event.actor, event.via) == (admin.user, "api")
    # Listing stays the caller's own tokens.
    names = [t["name"] for t in admin.get(TOKENS).json()["results"]]
    assert names == ["tests"]


def test_operators_cannot_revoke_other_users_tokens_through_the_api():
    operator = token_client("operator", "op")
    token, raw = token_create(user_with_role("them", "viewer"), "theirs")
    assert operator.post(f"{TOKENS}{token.pk}/revoke/").status_code == 404
    assert operator.delete(f"{TOKENS}{token.pk}/").status_code == 404
    token.refresh_from_db()
    assert token.active
    assert bearer_client(raw).get("/api/v1/regions/").status_code == 200


def test_a_token_needs_a_name():
    response = token_client("viewer").post(TOKENS, {"name": ""}, format="json")
    assert response.status_code == 400
    assert response.json()["errors"][0]["field"] == "name"
    assert ApiToken.objects.count() == 1  # only the client's own


# -- login rate limit ---------------------------------------------------------
def login(client, username, password, path="/login/", address="127.9.8.7"):
    return client.post(
        path, {"username": username, "password": password}, REMOTE_ADDR=address
    )


@override_settings(FERRY_LOGIN_MAX_ATTEMPTS=3, FERRY_LOGIN_WINDOW=300)
def test_login_is_refused_with_429_after_too_many_failures(client):
    user_with_role("lou", "viewer")
    for _ in range(3):
        failed = login(client, "lou", "wrong")
        assert failed.status_code == 200
        assert "correct username and password" in failed.content.decode()

    refused = login(client, "lou", "pw-lou")  # even the right password
    assert refused.status_code == 429
    assert "Too many failed log-in attempts" in refused.content.decode()
    assert "_auth_user_id" not in client.session

    # Another address, or another user name, is not blocked.
    assert login(client, "lou", "pw-lou", address="127.9.8.6").status_code == 302


@override_settings(FERRY_LOGIN_MAX_ATTEMPTS=3, FERRY_LOGIN_MAX_ATTEMPTS_PER_ADDRESS=4)
def test_one_address_guessing_many_user_names_is_refused_for_all(client):
    user_with_role("ray", "viewer")
    guesser = "127.9.7.1"  # counters outlive tests in the cache: its own address
    for name in ("ann", "bob", "cy", "dee"):  # one try each: no pair is blocked
        assert login(client, name, "guess", address=guesser).status_code == 200
    refused = login(client, "ray", "pw-ray", address=guesser)
    assert refused.status_code == 429
    assert "from your address" in refused.content.decode()
    assert "_auth_user_id" not in client.session
    # Another address is not blocked.
    assert login(client, "ray", "pw-ray", address="127.9.7.2").status_code == 302


@override_settings(FERRY_LOGIN_MAX_ATTEMPTS=2, FERRY_LOGIN_WINDOW=1)
def test_the_block_ends_with_the_window_and_success_clears_the_count(client):
    user_with_role("kim", "viewer")
    login(client, "kim", "wrong")
    login(client, "kim", "wrong")
    assert login(client, "kim", "pw-kim").status_code == 429
    wait_for(
        lambda: not login_blocked("kim", "127.9.8.7"),
        timeout=5,
        message="block did not expire with the window",
    )
    assert login(client, "kim", "pw-kim").status_code == 302
    client.logout()
    # The success reset the count: one failure now does not block.
    login(client, "kim", "wrong")
    assert login(client, "kim", "pw-kim").status_code == 302


@override_settings(FERRY_LOGIN_MAX_ATTEMPTS=2)
def test_empty_password_posts_do_not_reset_the_count(client):
    user_with_role("eve", "viewer")
    login(client, "eve", "wrong")
    login(client, "eve", "")
    login(client, "eve", "wrong")
    assert login(client, "eve", "pw-eve").status_code == 429


@override_settings(FERRY_LOGIN_MAX_ATTEMPTS=2)
def test_the_admin_login_has_the_same_limit(client):
    user = user_with_role("adm", "admin")
    user.is_staff = True
    user.save()
    for _ in range(2):
        login(client, "adm", "wrong", path="/admin/login/")
    refused = login(client, "adm", "pw-adm", path="/admin/login/")
    assert "Too many failed log-in attempts" in refused.content.decode()
    assert "_auth_user_id" not in client.session


@override_settings(FERRY_LOGIN_MAX_ATTEMPTS=2, FERRY_LOGIN_WINDOW=300)
def test_behind_a_trusted_proxy_the_limit_is_per_client_not_per_proxy(client):
    user_with_role("pat", "viewer")
    proxy = "127.0.0.9"

    def via_proxy(password, forwarded):
        return client.post(
            "/login/", {"username": "pat", "password": password},
            REMOTE_ADDR=proxy, HTTP_X_FORWARDED_FOR=forwarded,
        )  # fmt: skip

    with override_settings(FERRY_TRUSTED_PROXIES=1):
        # The client forges the left entry; our proxy appended the real one.
        via_proxy("wrong", "127.1.1.1, 127.0.0.20")
        via_proxy("wrong", "127.2.2.2, 127.0.0.20")
        assert via_proxy("pw-pat", "127.3.3.3, 127.0.0.20").status_code == 429
        # Another client behind the same proxy is not locked out with it.
        assert via_proxy("pw-pat", "127.0.0.21").status_code == 302

    assert login_blocked("pat", "127.0.0.20") and not login_blocked("pat", proxy)

    # With no trusted proxy (the default) the header is ignored: anyone can send it.
    via_proxy("wrong", "127.0.0.22")
    assert login_failures("pat", proxy) == 1
    assert login_failures("pat", "127.0.0.22") == 0
