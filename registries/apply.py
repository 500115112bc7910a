"""Applying a registry to its Docker host (called through registries.services).

registry_apply(registry_id):
1. take the registry's apply lease (registries.lease; another apply of the
   same registry makes this one wait briefly, then give up clearly), renewed
   between steps (image pulls, each container started);
2. validate the row, generate what is missing (ports, notify token, the
   site's http secret, a self-signed TLS pair) and check the object store;
3. observe the host, plan, probe the ports this apply newly binds, apply
   with an undo journal (nothing half-applied is left running); nginx and
   gateway containers about to be removed are stopped and sampled first, so
   the requests in their logs still count;
4. record the outcome on the row: config hash and time, or status failed
   with the field and reason. Saved settings are never touched by a failure.

Every failure comes out as a Django ValidationError naming a field (host,
store, image, a port...) or none, after being recorded on the row.

registry_reconcile(registry_id) is the periodic pass: the same steps, doing
nothing when the host matches. It leaves alone a registry never applied
(a refused first apply must not be started by beat) and one whose last
apply failed on a change still pending (it would be refused again, or crash
and roll back on every pass); the pre-apply storage check runs whenever the
pass creates or replaces a container.
"""

import hashlib
import logging
import secrets

from django.conf import settings
from django.core.exceptions import NON_FIELD_ERRORS, ValidationError
from django.utils import timezone
from django.utils.translation import gettext as _

from adapters import containers as engine
from adapters.docker_engine import engine_client
from adapters.errors import (
    AdapterError,
    HostConfigError,
    HostUnreachable,
    ImageNotFound,
)
from regions.services import host_connection

from . import ports, reconcile, tls
from .lease import ApplyBusy, Keeper, acquire_lease, release_lease
from .models import ObjectStore, Registry, RegistryStatus, RegistryUser
from .site import container_name, owner_label, site_containers
from .spec import evidence_major, tag_major
from .validators import validate_registry

log = logging.getLogger(__name__)
DEFAULT_USER = "ferry"
# Roles whose access logs are the metrics' ground truth (registries.metrics).
METERED_ROLES = ("nginx", "gateway")


class ReconcileSkipped(Exception):
    """The reconcile pass leaves this registry alone; str() says why."""


# -- generated values ------------------------------------------------------------------
def ensure_generated(registry: Registry) -> None:
    """Fill what the operator left out; saved at once (only those fields)."""
    changed = []
    before = {name: getattr(registry, name) for name in ports.PORT_FIELDS}
    ports.fill_default_ports(registry)
    changed += [
        name for name, value in before.items() if getattr(registry, name) != value
    ]
    if not registry.notify_token:
        registry.notify_token = secrets.token_urlsafe(32)
        changed.append("notify_token")
    if _needs_tls(registry) and _needs_new_pair(registry):
        names = [n for n in (registry.public_hostname, "127.0.0.1") if n]
        cert, key, expires = tls.self_signed(names, timezone.now())
        registry.tls_certificate, registry.tls_private_key = cert, key
        registry.tls_expires_at = expires
        changed += ["tls_certificate", "tls_private_key", "tls_expires_at"]
    if changed:
        registry.save(update_fields=[*changed, "updated_at"])
    ensure_site_secret(registry.store)
    needs_user = registry.kind == "mirror" and registry.require_auth
    if needs_user and not registry.users.exists():
        # Nobody can log in yet: an admin reads it with rotate-password.
        RegistryUser.objects.get_or_create(
            registry=registry,
            username=DEFAULT_USER,
            defaults={"password": secrets.token_urlsafe(18)},
        )


def _needs_tls(registry: Registry) -> bool:
    exposed_private = registry.kind == "private" and not _loopback(registry)
    return registry.kind == "mirror" or exposed_private


def _loopback(registry: Registry) -> bool:
    from .spec import is_loopback

    return is_loopback(registry.listen_address)


def _needs_new_pair(registry: Registry) -> bool:
    """No certificate, or one Ferry generated that no longer names the host
    (an uploaded certificate is never replaced)."""
    if not registry.tls_certificate or not registry.tls_private_key:
        return True
    hostname = registry.public_hostname
    if not hostname or not tls.generated_by_ferry(registry.tls_certificate):
        return False
    return hostname not in tls.certificate_info(registry.tls_certificate).names


def ensure_site_secret(store: ObjectStore) -> str:
    """The store's shared http.secret, generated once (first writer wins)."""
    if not store.http_secret:
        ObjectStore.objects.filter(pk=store.pk, http_secret="").update(
            http_secret=secrets.token_urlsafe(32)
        )
        store.refresh_from_db(fields=["http_secret"])
    return store.http_secret


def check_storage(store: ObjectStore) -> None:
    from adapters.object_storage import check_store

    result = check_store(store)
    if not result.ok:
        where = f" ({result.field})" if result.field else ""
        raise ValidationError(
            {
                "store": [
                    _("object store %(store)s%(where)s: %(reason)s")
                    % {"store": store, "where": where, "reason": result.reason}
                ]
            }
        )


# -- apply -----------------------------------------------------------------------------
def site_hash(containers) -> str:
    joined = "\n".join(f"{c.role}={c.config_hash}" for c in containers)
    return hashlib.sha256(joined.encode()).hexdigest()


def _held_ports(observed, client) -> set[int]:
    """Ports our own containers hold now (they are stopped before a replace)."""
    held: set[int] = set()
    for item in observed:
        state = engine.inspect(client, item.id)
        text = state.labels.get("ferry.ports", "") if state else ""
        held |= {int(p) for p in text.split(",") if p.isdigit()}
    return held


def _probe_ports(client, registry, containers, actions, observed) -> None:
    changing = {a.role for a in actions if a.verb in ("create", "replace")}
    held = _held_ports(observed, client)
    listens = [
        bind
        for c in containers
        if c.role in changing
        for bind in c.binds
        if bind[1] not in held
    ]
    taken = ports.probe(
        client, settings.FERRY_NGINX_IMAGE, listens, f"ferry-reg-{registry.pk}-probe"
    )
    if taken is not None:
        field = ports.field_for_port(registry, taken)
        raise ValidationError({field: [ports.describe_taken(registry, taken)]})


def _count_before_removal(registry: Registry, lease: str):
    """The journal's before_removal: sample the stopped nginx/gateway
    containers' logs so their requests still count (metrics must never fail
    an apply: problems are logged)."""

    def sample(retiring: list) -> None:
        from .metrics import registry_sample

        if not any(item.role in METERED_ROLES for item in retiring):
            return
        renamed = tuple(
            (item.role, item.id)
            for item in retiring
            if item.role in METERED_ROLES
            and item.name != container_name(registry.pk, item.role)
        )
        try:
            registry_sample(registry.pk, flush=True, retiring=renamed, lease=lease)
        except Exception:  # noqa: BLE001 - counted late is better than no apply
            log.exception("registry %s: sample before removal failed", registry.pk)

    return sample


def _image_ids(client, containers, keeper: Keeper) -> dict[str, str]:
    """Each image's id on the host (pulled when missing; the lease is renewed
    around pulls, which can be long)."""
    image_ids = {}
    for container in containers:
        if container.image not in image_ids:
            keeper.keep()
            try:
                image_ids[container.image] = engine.image_id(client, container.image)
            except ImageNotFound as exc:
                field = "image" if container.role == "registry" else NON_FIELD_ERRORS
                raise ValidationError({field: [exc.reason]}) from exc
    keeper.keep()
    return image_ids


def check_registry_image(client, image: str) -> None:
    """Refuse an image whose own config contradicts the major its tag states
    (registry 3 would ignore a config written where 2.x reads it)."""
    config = engine.image_config(client, image)
    found = evidence_major(config.labels, config.command) if config else None
    stated = tag_major(image)
    if found is None or stated is None or found[0] == stated:
        return
    reason = _(
        "%(ref)s is tagged as registry %(tag)s, but the image is registry "
        "%(found)s (%(evidence)s): use a tag that says %(found)s"
    ) % {"ref": image, "tag": stated, "found": found[0], "evidence": found[1]}
    raise ValidationError({"image": [reason]})


def _starts_containers(actions) -> bool:
    return any(action.verb in ("create", "replace") for action in actions)


def _execute(
    client, registry: Registry, containers, only_if_drift: bool, keeper: Keeper
) -> list:
    image_ids = _image_ids(client, containers, keeper)
    desired = [reconcile.desired_state(c, image_ids[c.image]) for c in containers]
    observed = reconcile.observe(client, owner_label(registry.pk), containers)
    actions = reconcile.plan(desired, observed)
    if not actions and only_if_drift:
        return actions
    check_registry_image(
        client, next(c for c in containers if c.role == "registry").image
    )
    if only_if_drift and _starts_containers(actions):
        # An apply checked this before touching the host; a pass about to
        # start new containers must not skip it.
        check_storage(registry.store)
    _mark(registry, RegistryStatus.APPLYING)
    keeper.keep()
    _probe_ports(client, registry, containers, actions, observed)
    timeout = settings.FERRY_REGISTRY_READY_TIMEOUT
    try:
        reconcile.apply_actions(
            client,
            containers,
            actions,
            timeout,
            before_removal=_count_before_removal(registry, keeper.token),
            checkpoint=keeper.keep,
        )
    except reconcile.StartFailed as exc:
        raise _start_failure(registry, exc) from exc
    return actions


def _start_failure(registry: Registry, exc: "reconcile.StartFailed") -> ValidationError:
    port = ports.bind_failure(exc.logs)
    if port is not None:
        field = ports.field_for_port(registry, port)
        return ValidationError({field: [ports.describe_taken(registry, port)]})
    reason = f"{exc.reason}: {_log_reason(exc.logs)}"
    return ValidationError({NON_FIELD_ERRORS: [reason]})


def _log_reason(logs: str) -> str:
    """The line of a crashed container's log that says why (or the last ones)."""
    lines = [line.strip() for line in logs.strip().splitlines() if line.strip()]
    for marker in ("panic:", "level=fatal", "[emerg]", "level=error"):
        found = [line for line in lines if marker in line]
        if found:
            return found[0][:500]
    return " | ".join(lines[-3:])[:500] or "(no log output)"


def _mark(registry: Registry, status: str) -> None:
    Registry.objects.filter(pk=registry.pk).update(status=status)
    registry.status = status


def error_text(exc: ValidationError) -> str:
    if hasattr(exc, "error_dict"):
        parts = []
        for field, messages in exc.message_dict.items():
            label = "" if field == NON_FIELD_ERRORS else f"{field}: "
            parts.append(label + "; ".join(messages))
        return " / ".join(parts)
    return "; ".join(exc.messages)


def _as_validation_error(exc: AdapterError) -> ValidationError:
    if isinstance(exc, (HostUnreachable, HostConfigError)):
        return ValidationError({"host": [exc.reason]})
    return ValidationError({NON_FIELD_ERRORS: [exc.reason]})


def _record_failure(registry: Registry, exc: ValidationError) -> None:
    Registry.objects.filter(pk=registry.pk).update(
        status=RegistryStatus.FAILED, last_error=error_text(exc)[:2000]
    )


def _record_success(registry: Registry, containers) -> None:
    """Applied; the health check that follows settles healthy or degraded."""
    Registry.objects.filter(pk=registry.pk).update(
        config_hash=site_hash(containers),
        last_applied_at=timezone.now(),
        last_error="",
        status=RegistryStatus.APPLYING,
    )


def _skip_reason(registry: Registry, containers) -> str | None:
    """Why a reconcile pass must leave this applied registry alone (None:
    repair it)."""
    pending = site_hash(containers) != registry.config_hash
    if registry.status == RegistryStatus.FAILED and pending:
        return _("its last apply failed; fix it and apply again")
    return None


def _apply_locked(registry_id: int, only_if_drift: bool, keeper: Keeper) -> list:
    registry = Registry.objects.select_related("store", "host", "region").get(
        pk=registry_id
    )
    loaded_status = registry.status
    if only_if_drift and registry.last_applied_at is None:
        raise ReconcileSkipped(
            _("never applied: a pass only repairs what an apply set up")
        )
    try:
        validate_registry(registry)
        ensure_generated(registry)
        if not only_if_drift:
            check_storage(registry.store)
        _spec, containers = site_containers(registry)
        if only_if_drift and (reason := _skip_reason(registry, containers)):
            raise ReconcileSkipped(reason)
        with engine_client(host_connection(registry.host)) as client:
            actions = _execute(client, registry, containers, only_if_drift, keeper)
    except AdapterError as exc:
        error = _as_validation_error(exc)
        _record_failure(registry, error)
        raise error from exc
    except ValidationError as exc:
        _record_failure(registry, exc)
        raise
    unsettled = (RegistryStatus.FAILED, RegistryStatus.APPLYING, RegistryStatus.PENDING)
    if actions or not only_if_drift or loaded_status in unsettled:
        # (APPLYING at load time: a crashed apply whose lease ran out.)
        _record_success(registry, containers)
    return actions


def registry_apply(registry_id: int, lock_wait: float | None = None) -> list:
    """Make the host match the registry row now; the actions taken.

    Raises ApplyBusy when another apply holds the lease past `lock_wait`, and
    ValidationError (recorded on the row as status failed) when it fails.
    """
    wait = settings.FERRY_REGISTRY_LOCK_WAIT if lock_wait is None else lock_wait
    token = acquire_lease(registry_id, wait)
    if token is None:
        raise ApplyBusy(_("another apply of this registry is running; try again"))
    try:
        return _apply_locked(registry_id, False, Keeper(registry_id, token))
    finally:
        release_lease(registry_id, token)


def registry_reconcile(registry_id: int) -> list | None:
    """One reconcile pass: repair drift if any; None if an apply is running.

    Raises ReconcileSkipped for a registry the pass must leave alone.
    """
    token = acquire_lease(registry_id, wait=0)
    if token is None:
        return None
    try:
        return _apply_locked(registry_id, True, Keeper(registry_id, token))
    finally:
        release_lease(registry_id, token)
