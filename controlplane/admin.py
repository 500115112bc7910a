"""Admin for audit events, API tokens, users and groups (roles)."""

from django.contrib import admin, messages
from django.contrib.admin.utils import unquote
from django.contrib.auth.admin import GroupAdmin, UserAdmin
from django.contrib.auth.models import Group, User
from django.db import transaction
from django.utils.translation import gettext_lazy as _

from . import audit
from .admin_base import (
    AuditedAdminMixin,
    FerryAdmin,
    ReadOnlyAdmin,
    RoleAdminMixin,
    register_remaining,
)
from .models import ApiToken, AuditEvent
from .tokens import token_revoke


@admin.register(AuditEvent)
class AuditEventAdmin(ReadOnlyAdmin):
    list_display = ("at", "actor_name", "via", "action", "object_type", "object_repr")
    list_filter = ("action", "via", "object_type")
    search_fields = ("actor_name", "object_repr", "object_id")
    date_hierarchy = "at"


@admin.register(ApiToken)
class ApiTokenAdmin(FerryAdmin):
    """Tokens are created on the API tokens page (the raw value is shown once)."""

    list_display = (
        "name",
        "user",
        "prefix",
        "created_at",
        "last_used_at",
        "revoked_at",
    )
    list_filter = ("revoked_at",)
    search_fields = ("name", "prefix", "user__username")
    # The hash is not a secret by itself, but there is no reason to show it.
    exclude = ("token_hash",)
    readonly_fields = ("user", "prefix", "created_at", "last_used_at", "revoked_at")
    actions = ("revoke",)

    def has_add_permission(self, request, *args):
        return False

    @admin.action(description=_("Revoke selected tokens"))
    def revoke(self, request, queryset):
        for token in queryset:
            token_revoke(request.user, token.pk, via="admin")
        messages.success(request, _("Revoked."))


class RoleUserAdmin(AuditedAdminMixin, RoleAdminMixin, UserAdmin):
    """Users, managed by the admin role (roles are the groups), audited.

    A password shows in the audit trail only as "(changed)", never its hash.
    """

    audit_masked_fields = ("password",)
    # Recorded by Django, not edited: a re-posted date_joined would lose its
    # microseconds and show as a change in the audit trail on every save.
    readonly_fields = ("last_login", "date_joined")

    def user_change_password(self, request, id, form_url=""):
        """The admin's own password form saves without save_model: audit it here."""
        with transaction.atomic():
            user = self.get_object(request, unquote(id))
            before = user.password if user else None
            response = super().user_change_password(request, id, form_url)
            if user is not None and request.method == "POST":
                user.refresh_from_db(fields=["password"])
                if user.password != before:
                    changes = {"password": audit.SECRET_MARK}
                    audit.record(request.user, "update", user, changes, via="admin")
        return response


class RoleGroupAdmin(AuditedAdminMixin, RoleAdminMixin, GroupAdmin):
    """Groups: the roles are groups named viewer, operator and admin; audited."""


for model, model_admin in ((User, RoleUserAdmin), (Group, RoleGroupAdmin)):
    if admin.site.is_registered(model):
        admin.site.unregister(model)
    admin.site.register(model, model_admin)

register_remaining("controlplane")
