"""Pages follow the API's role rule: a logged-in user without a role (in no
viewer/operator/admin group, not a superuser) reads nothing, and is told why
and whom to ask. Logging in and out and switching language still work."""

import pytest
from django.contrib.auth.models import User

from controlplane.models import ApiToken
from controlplane.testing.users import password_of, user_with_role

pytestmark = pytest.mark.django_db


@pytest.fixture
def nobody(client):
    """A client logged in (through the login form) as a user with no role."""
    user_with_role("nobody", None)
    answer = client.post(
        "/login/", {"username": "nobody", "password": password_of("nobody")}
    )
    assert answer.status_code == 302, answer.content
    return client


def test_a_user_without_a_role_gets_a_403_page_that_names_the_admins(nobody):
    user_with_role("olga", "admin")
    User.objects.create_superuser("root", "root@example.com", "pw-root")
    user_with_role("otto", "operator")
    User.objects.filter(pk=user_with_role("gone", "admin").pk).update(is_active=False)

    for path in ("/", "/hosts/", "/audit/", "/builds/", "/tokens/"):
        page = nobody.get(path)
        assert page.status_code == 403, path
        text = page.content.decode()
        assert "Your account has no role" in text, path
    admins = text[text.index('data-testid="admins"') :]
    assert "olga" in admins and "root@example.com" in admins
    assert "otto" not in admins and "gone" not in admins
    assert 'class="mainnav"' not in text  # no links to pages it cannot open
    assert nobody.get("/api/v1/hosts/").status_code == 403


def test_the_no_role_page_is_translated(nobody, compiled_catalogue):
    switched = nobody.post("/i18n/setlang/", {"language": "zh-hans", "next": "/"})
    assert switched.status_code == 302
    page = nobody.get("/")
    assert page.status_code == 403
    text = page.content.decode()
    assert "您的账户没有角色" in text and "Your account has no role" not in text


def test_without_a_role_login_and_logout_still_work(nobody):
    assert nobody.get("/login/").status_code == 200
    out = nobody.post("/logout/")
    assert out.status_code == 302 and out["Location"] == "/login/"
    assert nobody.get("/").status_code == 302  # anonymous again: to the login


def test_without_a_role_no_api_token_can_be_made(nobody):
    assert nobody.post("/tokens/", {"name": "sneaky"}).status_code == 403
    api = nobody.post("/api/v1/tokens/", {"name": "sneaky"})
    assert api.status_code == 403
    assert not ApiToken.objects.exists()


def test_the_api_schema_and_docs_need_a_role_too(client):
    client.force_login(user_with_role("nobody", None))
    assert client.get("/api/v1/schema/").status_code == 403
    assert client.get("/api/v1/docs/").status_code == 403
    client.force_login(user_with_role("vera", "viewer"))
    assert client.get("/api/v1/schema/").status_code == 200
    assert client.get("/api/v1/docs/").status_code == 200


def test_the_admin_keeps_its_own_rule_for_users_without_a_role(nobody):
    # Like an operator, a user without a role is sent to the admin's login.
    answer = nobody.get("/admin/")
    assert answer.status_code == 302 and "/admin/login/" in answer["Location"]
