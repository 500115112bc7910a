"""Generic audited writes for spec rows; apps add their own `<noun>_<verb>`."""

from django.db import models, transaction

from . import audit
from .fields import secret_field_names


@transaction.atomic
def object_save(
    actor, instance: models.Model, data: dict, via: str = "ui"
) -> models.Model:
    """Create or update a row from validated data and leave an AuditEvent.

    A secret field given as "" keeps its stored value ("not replaced"); None
    clears it (the API's `null`), so TLS or credentials can be removed.
    Many-to-many values (a service's regions) are set once the row exists;
    their change, by slug, is part of the same event.
    """
    secrets = set(secret_field_names(type(instance)))
    many = {f.name for f in instance._meta.many_to_many}
    related = {name: value for name, value in data.items() if name in many}
    data = {name: value for name, value in data.items() if name not in many}
    creating = instance._state.adding
    before = {} if creating else audit.snapshot(instance)
    related_before = audit.related(instance, list(related))
    touched_secrets = set()
    for name, value in data.items():
        if name in secrets:
            if value is None:
                value = ""  # cleared: the set -> not set flip shows in the diff
            elif not value:
                continue
            else:
                touched_secrets.add(name)
        setattr(instance, name, value)
    instance.full_clean()
    instance.save()
    for name, value in related.items():
        getattr(instance, name).set(value)
    changes = audit.diff(before, audit.snapshot(instance), secrets)
    changes |= audit.diff(related_before, audit.related(instance, list(related)), set())
    for name in touched_secrets:
        changes[name] = audit.SECRET_MARK
    if creating or changes:
        audit.record(actor, "create" if creating else "update", instance, changes, via)
    return instance


@transaction.atomic
def object_delete(actor, instance: models.Model, via: str = "ui") -> None:
    audit.record(actor, "delete", instance, {}, via)
    instance.delete()
