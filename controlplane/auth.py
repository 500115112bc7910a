"""Roles, login-required pages, bearer tokens and the API permission.

Roles are Django groups named viewer, operator and admin; a superuser is an
admin. The same `has_role` check guards pages and the API.
"""

from django.contrib.auth.middleware import LoginRequiredMiddleware as _Base
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


class LoginRequiredMiddleware(_Base):
    """Every page needs login; the API answers 401/403 itself instead."""

    def process_view(self, request, view_func, view_args, view_kwargs):
        if request.path.startswith(("/api/", "/static/", "/i18n/")):
            return None
        return super().process_view(request, view_func, view_args, view_kwargs)


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
