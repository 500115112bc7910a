"""Roles, login-required pages, bearer tokens and the API permission.

Roles are Django groups named viewer, operator and admin; a superuser is an
admin. The same `has_role` check guards pages and the API: a user without a
role reads no page, as the API answers them 403.
"""

from django.contrib.auth import get_user_model
from django.contrib.auth.middleware import LoginRequiredMiddleware as _Base
from django.db.models import Q
from django.shortcuts import render
from django.utils import timezone
from rest_framework import authentication, exceptions, permissions

from .models import ROLE_ORDER, ApiToken, Role, hash_token


def role_of(user) -> Role | None:
    if not user or not user.is_authenticated or not user.is_active:
        return None
    if user.is_superuser:
        return Role.ADMIN
    names = set(user.groups.values_list("name", flat=True))
    for role in reversed(ROLE_ORDER):
        if role.value in names:
            return role
    return None


def has_role(user, needed: Role) -> bool:
    role = role_of(user)
    return role is not None and ROLE_ORDER.index(role) >= ROLE_ORDER.index(needed)


def role_context(request) -> dict:
    user = getattr(request, "user", None)
    return {
        "user_role": role_of(user),
        "can_operate": has_role(user, Role.OPERATOR),
        "can_admin": has_role(user, Role.ADMIN),
    }


# Pages a logged-in user without a role may still open (by URL name).
ROLE_FREE_PAGES = {"logout"}


class LoginRequiredMiddleware(_Base):
    """Every page needs login and a role (viewer or above).

    The API answers 401/403 itself. Pages marked login_not_required (log-in,
    registry notifications) and logging out are open; the admin has its own
    rule (the admin role). Anyone else without a role gets a 403 page.
    """

    def process_view(self, request, view_func, view_args, view_kwargs):
        if request.path.startswith(("/api/", "/static/", "/i18n/")):
            return None
        refused = super().process_view(request, view_func, view_args, view_kwargs)
        if refused is not None or not getattr(view_func, "login_required", True):
            return refused
        if request.path.startswith("/admin/"):
            return None
        match = request.resolver_match
        if match and match.view_name in ROLE_FREE_PAGES:
            return None
        if role_of(request.user) is None:
            return no_role_page(request)
        return None


def no_role_page(request):
    """403: the account has no role; say which administrators can give one."""
    admins = (
        get_user_model()
        .objects.filter(is_active=True)
        .filter(Q(is_superuser=True) | Q(groups__name=Role.ADMIN))
        .distinct()
        .order_by("username")
    )
    context = {"admins": admins, "roles": ROLE_ORDER}
    return render(request, "controlplane/no_role.html", context, status=403)


class BearerTokenAuthentication(authentication.BaseAuthentication):
    keyword = "Bearer"

    def authenticate(self, request):
        header = authentication.get_authorization_header(request).decode(
            errors="replace"
        )
        parts = header.split()
        if not parts or parts[0].lower() != self.keyword.lower():
            return None
        if len(parts) != 2:
            raise exceptions.AuthenticationFailed("Malformed Authorization header.")
        token = (
            ApiToken.objects.select_related("user")
            .filter(token_hash=hash_token(parts[1]), revoked_at__isnull=True)
            .first()
        )
        if token is None or not token.user.is_active:
            raise exceptions.AuthenticationFailed("Invalid or revoked token.")
        ApiToken.objects.filter(pk=token.pk).update(last_used_at=timezone.now())
        return token.user, token

    def authenticate_header(self, request):
        return self.keyword


class RolePermission(permissions.BasePermission):
    """Viewers read; writes need the view's `write_role` (operator by default).

    A viewset may set `action_roles = {"apply": Role.OPERATOR}` for actions.
    """

    def has_permission(self, request, view):
        if not request.user or not request.user.is_authenticated:
            return False
        action = getattr(view, "action", None)
        action_roles = getattr(view, "action_roles", {})
        if action in action_roles:
            needed = action_roles[action]
        elif request.method in permissions.SAFE_METHODS:
            needed = Role.VIEWER
        else:
            needed = getattr(view, "write_role", Role.OPERATOR)
        return has_role(request.user, needed)
