"""Every write to registries: save, apply, reconcile, delete, rotate a password.

Apply and reconcile live in registries/apply.py (lease, plan, undo journal);
the functions here add audit records, the health check after an apply, and
the Celery hand-off. The site's shared http.secret lives on the ObjectStore
(ObjectStore.http_secret), generated on the first apply of any registry on it.
"""

import copy
import logging
import secrets

from django.core.exceptions import ValidationError
from django.db import transaction
from django.utils.translation import gettext as _

from adapters import containers as engine
from adapters.docker_engine import engine_client
from adapters.errors import AdapterError
from controlplane import audit
from controlplane.fields import secret_field_names
from controlplane.services import object_save
from regions.services import host_connection

from . import apply as applying
from . import ports, tls
from .apply import METERED_ROLES
from .health import registry_health_check
from .lease import ApplyBusy, acquire_lease, release_lease
from .models import Registry, RegistryStatus, RegistryUser
from .site import ROLE_ORDER, container_name, gateway_cache_volume, owner_label
from .validators import validate_registry

log = logging.getLogger(__name__)

__all__ = [
    "ApplyBusy",
    "registries_reconcile_all",
    "registry_apply",
    "registry_delete",
    "registry_health_check",
    "registry_reconcile",
    "registry_request_apply",
    "registry_rotate_password",
    "registry_save",
]


def _candidate(registry: Registry, data: dict) -> Registry:
    """A copy of the row with `data` applied ("" keeps a stored secret)."""
    candidate = copy.copy(registry)
    secret_names = set(secret_field_names(Registry))
    for name, value in data.items():
        if name in secret_names and not value:
            continue
        setattr(candidate, name, value)
    return candidate


def registry_save(actor, registry: Registry, data: dict, via: str = "ui") -> Registry:
    """Create or update a registry after checking every field (400 on problems).

    Unset ports get free defaults (none used by another registry on the host);
    an uploaded certificate must match its key, and its expiry is recorded.
    """
    data = dict(data)
    if registry._state.adding and not data.get("port"):
        data["port"] = 0  # pick a free one rather than the model's 5000
    candidate = _candidate(registry, data)
    ports.fill_default_ports(candidate)
    validate_registry(candidate)
    for name in ports.PORT_FIELDS:
        data[name] = getattr(candidate, name)
    if candidate.tls_certificate and (
        "tls_certificate" in data or data.get("tls_private_key")
    ):
        info = tls.certificate_info(candidate.tls_certificate)
        data["tls_expires_at"] = info.expires_at
    if _moves_host(registry, candidate):
        # Reconcile only looks at the registry's current host: clean the old
        # one now, or its containers would run on unmanaged.
        _remove_site(registry, count_logs=True)
    return object_save(actor, registry, data, via=via)


def _moves_host(registry: Registry, candidate: Registry) -> bool:
    if registry._state.adding or registry.last_applied_at is None:
        return False
    return candidate.host_id != registry.host_id


def registry_request_apply(actor, registry: Registry, via: str = "api") -> Registry:
    """Audit the request and queue the apply task after commit."""
    from .tasks import registry_apply_task

    audit.record(actor, "apply", registry, {}, via)
    Registry.objects.filter(pk=registry.pk).exclude(
        status=RegistryStatus.APPLYING
    ).update(status=RegistryStatus.APPLYING)
    transaction.on_commit(lambda: registry_apply_task.delay(registry.pk))
    registry.refresh_from_db()
    return registry


def registry_apply(
    registry_id: int, actor=None, via: str = "", lock_wait: float | None = None
) -> Registry:
    """Apply now (waiting briefly for another apply), then check health.

    Raises ValidationError naming the field (also recorded on the row) and
    ApplyBusy when another apply keeps the lease.
    """
    registry = Registry.objects.get(pk=registry_id)
    if actor is not None:
        audit.record(actor, "apply", registry, {}, via)
    applying.registry_apply(registry_id, lock_wait=lock_wait)
    return registry_health_check(registry_id, after_apply=True)


def registry_reconcile(registry_id: int) -> str:
    """One reconcile pass for one registry: what it did, for the task log."""
    try:
        actions = applying.registry_reconcile(registry_id)
    except Registry.DoesNotExist:
        return "gone"
    except applying.ReconcileSkipped as exc:
        return f"skipped: {exc}"
    except ApplyBusy as exc:  # the lease ran out under this pass
        return f"stopped: {exc}"
    except ValidationError as exc:
        return f"failed: {applying.error_text(exc)}"
    if actions is None:
        return "skipped: an apply is running"
    registry_health_check(registry_id, after_apply=True)
    return "; ".join(str(a) for a in actions) or "in sync"


def registries_reconcile_all() -> list[int]:
    """Ids of the registries a reconcile pass should visit: those applied at
    least once (a refused first apply is not the pass's to start)."""
    applied = Registry.objects.filter(last_applied_at__isnull=False)
    return list(applied.values_list("pk", flat=True))


def registry_rotate_password(
    actor, registry: Registry, username: str = "", password: str = "", via: str = "api"
) -> tuple[str, str]:
    """Set a new (random unless given) password for an htpasswd user.

    Returns (username, password): the only time the password is shown. The
    caller applies the registry so nginx gets the new htpasswd.
    """
    username = (username or applying.DEFAULT_USER).strip()
    if not username or ":" in username or len(username) > 100:
        raise ValidationError({"username": [_("not a valid user name")]})
    if password and len(password) < 8:
        raise ValidationError({"password": [_("use at least 8 characters")]})
    password = password or secrets.token_urlsafe(18)
    with transaction.atomic():
        user, created = RegistryUser.objects.get_or_create(
            registry=registry, username=username, defaults={"password": password}
        )
        if not created:
            user.password = password
            user.save(update_fields=["password"])
        audit.record(
            actor,
            "rotate-password",
            registry,
            {"user": username, "password": "(changed)"},
            via,
        )
    return username, password


def registry_delete(actor, registry: Registry, via: str = "ui") -> None:
    """Remove the registry's containers and volumes, then the row.

    The object store's data stays. If the host cannot be reached, nothing is
    deleted (the containers would be left running unmanaged).
    """
    token = acquire_lease(registry.pk, wait=30)
    if token is None:
        raise ApplyBusy(_("an apply of this registry is running; try again"))
    try:
        _remove_site(registry)
        with transaction.atomic():
            audit.record(actor, "delete", registry, {}, via)
            registry.delete()
    finally:
        release_lease(registry.pk, token)


def _remove_site(registry: Registry, count_logs: bool = False) -> None:
    """Remove the registry's containers and cache volume from its host.

    `count_logs` (the row stays, e.g. a move to another host): stop the
    nginx and gateway containers and sample their logs before removing them.
    A deleted registry's samples go with its row, so delete skips that.
    """
    try:
        with engine_client(host_connection(registry.host)) as client:
            states = engine.list_owned(client, owner_label(registry.pk))
            rank = {role: index for index, role in enumerate(ROLE_ORDER)}
            # Front first, so clients see a closed port rather than a 502.
            states.sort(key=lambda s: -rank.get(s.labels.get("ferry.role"), -1))
            if count_logs:
                _stop_and_sample(client, registry, states)
            for state in states:
                engine.remove(client, state.id)
            engine.remove_volume(client, gateway_cache_volume(registry.pk))
    except AdapterError as exc:
        raise ValidationError(
            {"host": [_("cannot remove the containers: %s") % exc.reason]}
        ) from exc


def _stop_and_sample(client, registry: Registry, states) -> None:
    from .metrics import registry_sample

    metered = [s for s in states if s.labels.get("ferry.role") in METERED_ROLES]
    for state in metered:
        engine.stop(client, state.id)
    if metered:
        renamed = tuple(
            (s.labels["ferry.role"], s.id)
            for s in metered
            if s.name != container_name(registry.pk, s.labels["ferry.role"])
        )
        try:
            registry_sample(registry.pk, flush=True, retiring=renamed)
        except Exception:  # noqa: BLE001 - metrics must not block the move
            log.exception("registry %s: sample before removal failed", registry.pk)


def registry_validate(registry: Registry) -> None:
    """Static checks only (forms call this before saving)."""
    validate_registry(registry)


def registry_check_now(actor, registry_id: int, via: str = "api") -> Registry | None:
    """A person's "check now": run the health checks and record who asked
    (the periodic checks record nothing)."""
    registry = registry_health_check(registry_id)
    if registry is not None:
        audit.record(actor, "check", registry, {}, via)
    return registry
