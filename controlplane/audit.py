"""Recording writes as AuditEvents; secret values never enter the record."""

from django.db import models

from .fields import secret_field_names
from .models import AuditEvent

SECRET_MARK = "(changed)"


def snapshot(obj: models.Model) -> dict:
    """Plain field values of a row, secrets replaced by whether they are set."""
    secrets = set(secret_field_names(type(obj)))
    data = {}
    for field in obj._meta.concrete_fields:
        value = getattr(obj, field.attname)
        if field.name in secrets:
            value = bool(value)
        elif not isinstance(value, (str, int, float, bool, list, dict, type(None))):
            value = str(value)
        data[field.name] = value
    return data


def related(obj: models.Model, names: list[str]) -> dict:
    """The rows each many-to-many field points at: slugs (or names), sorted."""
    if obj.pk is None:
        return {name: [] for name in names}
    return {
        name: sorted(
            str(getattr(row, "slug", None) or row) for row in getattr(obj, name).all()
        )
        for name in names
    }


def diff(before: dict, after: dict, secrets: set[str]) -> dict:
    changes = {}
    for name in sorted(set(before) | set(after)):
        if name in ("updated_at", "created_at"):
            continue
        old, new = before.get(name), after.get(name)
        if name in secrets:
            # Snapshots hold only whether a secret is set; unset on create is no change.
            old, new = bool(old), bool(new)
        if old == new:
            continue
        changes[name] = SECRET_MARK if name in secrets else [old, new]
    return changes


def record(
    actor, action: str, obj: models.Model, changes: dict | None = None, via: str = ""
) -> AuditEvent:
    user = actor if getattr(actor, "is_authenticated", False) else None
    return AuditEvent.objects.create(
        actor=user,
        actor_name=user.get_username() if user else (str(actor) if actor else "system"),
        via=via,
        action=action,
        object_type=obj._meta.label_lower,
        object_id=str(obj.pk),
        object_repr=str(obj)[:200],
        changes=changes or {},
    )
