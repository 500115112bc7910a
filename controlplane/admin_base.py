"""Shared Django admin behaviour: role-based access, secret inputs, audit.

* Only users with the admin role use the admin (a superuser is an admin), the
  same rule as pages and the API, instead of Django's is_staff + permissions.
* Secret (encrypted) fields are never shown: the form has a password input
  that is blank; leaving it blank keeps the stored value.
* Every add, change and delete leaves an AuditEvent (via="admin").
"""

from django import forms
from django.apps import apps
from django.contrib import admin
from django.utils.text import capfirst
from django.utils.translation import gettext_lazy as _

from . import audit
from .auth import has_role
from .fields import EncryptedTextField, secret_field_names
from .forms import SecretField
from .models import Role


def _is_admin(request) -> bool:
    return has_role(request.user, Role.ADMIN)


class SecretKeepingForm(forms.ModelForm):
    """A blank secret input keeps the stored value instead of clearing it."""

    def _post_clean(self):
        keep = {
            name: getattr(self.instance, name)
            for name in secret_field_names(self._meta.model)
            if name in self.cleaned_data and not self.cleaned_data[name]
        }
        super()._post_clean()
        for name, value in keep.items():
            setattr(self.instance, name, value)


class RoleAdminMixin:
    """Admin-role users may do everything in the admin; nobody else anything."""

    def has_module_permission(self, request):
        return _is_admin(request)

    def has_view_permission(self, request, obj=None):
        return _is_admin(request)

    def has_add_permission(self, request, *args):
        return _is_admin(request)

    def has_change_permission(self, request, obj=None):
        return _is_admin(request)

    def has_delete_permission(self, request, obj=None):
        return _is_admin(request)


class SecretsMixin:
    """Secret fields become "replace" inputs that say whether a value is set."""

    form = SecretKeepingForm

    def formfield_for_dbfield(self, db_field, request, **kwargs):
        if isinstance(db_field, EncryptedTextField):
            return SecretField(label=capfirst(db_field.verbose_name), is_set=None)
        return super().formfield_for_dbfield(db_field, request, **kwargs)

    def get_form(self, request, obj=None, **kwargs):
        form = super().get_form(request, obj, **kwargs)
        for name in secret_field_names(self.model):
            if name in form.base_fields:
                field = form.base_fields[name]
                form.base_fields[name] = SecretField(
                    label=field.label, is_set=bool(obj and getattr(obj, name))
                )
        return form


def _audit_changes(before: dict, obj, cleaned: dict) -> dict:
    """Field changes of a saved row; a typed secret shows only as "(changed)".

    The snapshot knows only whether a secret is set, so a secret counts as
    changed when a value was typed; an unset secret on a new row is not news.
    """
    secrets = set(secret_field_names(type(obj)))
    changes = audit.diff(before, audit.snapshot(obj), secrets)
    changes = {k: v for k, v in changes.items() if k not in secrets}
    for name in secrets:
        if cleaned.get(name):
            changes[name] = audit.SECRET_MARK
    return changes


def _stored_snapshot(obj) -> dict:
    return audit.snapshot(type(obj)._default_manager.get(pk=obj.pk))


def _m2m_names(obj, form) -> list[str]:
    return [f.name for f in obj._meta.many_to_many if f.name in form.cleaned_data]


class AuditedAdminMixin:
    """Record admin writes (inline rows too) as AuditEvents, via="admin".

    Many-to-many fields (a user's groups, a service's regions) are saved after
    the row, in save_related: their change joins the row's event. Fields in
    `audit_masked_fields` (a password hash) show only as "(changed)".
    """

    audit_masked_fields: tuple[str, ...] = ()

    def save_model(self, request, obj, form, change):
        before = _stored_snapshot(obj) if change else {}
        related_before = audit.related(obj, _m2m_names(obj, form))
        super().save_model(request, obj, form, change)
        changes = _audit_changes(before, obj, form.cleaned_data)
        for name in set(self.audit_masked_fields) & set(changes):
            changes[name] = audit.SECRET_MARK
        event = None
        if changes or not change:
            action = "update" if change else "create"
            event = audit.record(request.user, action, obj, changes, via="admin")
        form._ferry_audit = (event, related_before)

    def save_related(self, request, form, formsets, change):
        super().save_related(request, form, formsets, change)
        event, before = getattr(form, "_ferry_audit", (None, {}))
        changes = audit.diff(before, audit.related(form.instance, list(before)), set())
        if not changes:
            return
        if event is None:
            audit.record(request.user, "update", form.instance, changes, via="admin")
        else:
            event.changes = {**event.changes, **changes}
            event.save(update_fields=["changes"])

    def delete_model(self, request, obj):
        audit.record(request.user, "delete", obj, {}, via="admin")
        super().delete_model(request, obj)

    def delete_queryset(self, request, queryset):
        for obj in queryset:
            audit.record(request.user, "delete", obj, {}, via="admin")
        super().delete_queryset(request, queryset)

    def save_formset(self, request, form, formset, change):
        forms_by_row = {}
        for row_form in formset.forms:
            if row_form in formset.deleted_forms and row_form.instance.pk:
                audit.record(request.user, "delete", row_form.instance, {}, "admin")
            elif row_form.instance.pk and row_form.has_changed():
                forms_by_row[row_form.instance.pk] = (
                    row_form,
                    _stored_snapshot(row_form.instance),
                )
        super().save_formset(request, form, formset, change)
        for obj in formset.new_objects:
            row_form = next(f for f in formset.forms if f.instance is obj)
            changes = _audit_changes({}, obj, row_form.cleaned_data)
            audit.record(request.user, "create", obj, changes, "admin")
        for obj, _names in formset.changed_objects:
            row_form, before = forms_by_row[obj.pk]
            changes = _audit_changes(before, obj, row_form.cleaned_data)
            if changes:
                audit.record(request.user, "update", obj, changes, "admin")


class FerryAdmin(AuditedAdminMixin, SecretsMixin, RoleAdminMixin, admin.ModelAdmin):
    """Base ModelAdmin for every Ferry model."""

    save_on_top = True


class FerryInline(SecretsMixin, RoleAdminMixin, admin.TabularInline):
    extra = 0


class ReadOnlyAdmin(RoleAdminMixin, admin.ModelAdmin):
    """For rows written only by the system (samples, events, audit)."""

    def has_add_permission(self, request, *args):
        return False

    def has_change_permission(self, request, obj=None):
        return False

    def has_delete_permission(self, request, obj=None):
        return False


def register_remaining(app_label: str, admin_class=FerryAdmin) -> None:
    """Register every model of the app that has no admin yet.

    Apps call this last in their admin.py, so a model added later still
    shows up in the admin (with secrets hidden) without further work.
    """
    for model in apps.get_app_config(app_label).get_models():
        if not admin.site.is_registered(model):
            admin.site.register(model, admin_class)


def _site_permission(request) -> bool:
    return request.user.is_active and _is_admin(request)


# The admin site follows roles rather than is_staff: a user in the "admin"
# group gets in, an operator does not (see controlplane.auth.role_of).
admin.site.has_permission = _site_permission
admin.site.site_header = _("Ferry administration")
admin.site.site_title = _("Ferry admin")
admin.site.index_title = _("Models")
admin.site.site_url = "/"
