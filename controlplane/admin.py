"""Admin for audit events, API tokens, users and groups (roles)."""

from django.contrib import admin, messages
from django.contrib.auth.admin import GroupAdmin, UserAdmin
from django.contrib.auth.models import Group, User
from django.utils.translation import gettext_lazy as _

from .admin_base import FerryAdmin, ReadOnlyAdmin, RoleAdminMixin, register_remaining
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


class RoleUserAdmin(RoleAdminMixin, UserAdmin):
    """Users, managed by the admin role (roles are the groups)."""


class RoleGroupAdmin(RoleAdminMixin, GroupAdmin):
    pass


for model, model_admin in ((User, RoleUserAdmin), (Group, RoleGroupAdmin)):
    if admin.site.is_registered(model):
        admin.site.unregister(model)
    admin.site.register(model, model_admin)

register_remaining("controlplane")
