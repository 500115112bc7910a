"""Writes for regions and Docker hosts, and the host health check.

Regions use the generic `controlplane.services.object_save`; hosts go
through `host_save` so that pages and the API validate the docker URL, TLS
files and SSH keys the same way. `host_check` records what the engine
answered and, for an ssh:// host with no pinned host key, the key the server
presented on its first successful check (trust on first use: from then on
any other key is refused until an admin clears or replaces it). A person's
"check now" goes through `host_check_now`, which also records who asked.
"""

import logging

from django.db import transaction
from django.utils import timezone

from adapters.docker_engine import EngineInfo, HostConnection, engine_info
from adapters.errors import AdapterError
from controlplane import audit
from controlplane.services import object_save

from .models import DockerHost, HostStatus
from .validators import normalize_host_key, validate_host_connection

log = logging.getLogger(__name__)

CONNECTION_FIELDS = (
    "docker_url",
    "tls_ca_cert",
    "tls_client_cert",
    "tls_client_key",
    "ssh_private_key",
    "ssh_known_host_key",
)
SECRET_FIELDS = ("tls_client_key", "ssh_private_key")


def host_connection(host: DockerHost, accept_new_host_key=False) -> HostConnection:
    """The adapter's view of how to reach `host`'s engine.

    Only the health check accepts (and records) an ssh:// host's first key.
    """
    return HostConnection(
        url=host.docker_url,
        ca_cert=host.tls_ca_cert,
        client_cert=host.tls_client_cert,
        client_key=host.tls_client_key,
        ssh_private_key=host.ssh_private_key,
        ssh_known_host_key=host.ssh_known_host_key,
        ssh_accept_new_host_key=accept_new_host_key,
    )


@transaction.atomic
def host_save(actor, host: DockerHost, data: dict, via: str = "ui") -> DockerHost:
    """Create or update a host after validating its connection settings.

    A secret given as "" keeps the stored value (None clears it), so the
    check uses the value that will be stored. A changed connection resets
    the observed status: what the old URL showed says nothing of the new.
    """
    data = dict(data)
    if "docker_url" in data:
        data["docker_url"] = (data["docker_url"] or "").strip()
    effective = {name: getattr(host, name) for name in CONNECTION_FIELDS}
    for name in CONNECTION_FIELDS:
        if name not in data or (name in SECRET_FIELDS and data[name] == ""):
            continue  # not given, or a secret's "" which keeps the stored one
        effective[name] = data[name] or ""
    validate_host_connection(
        effective["docker_url"],
        effective["tls_ca_cert"],
        effective["tls_client_cert"],
        effective["tls_client_key"],
        effective["ssh_private_key"],
        effective["ssh_known_host_key"],
    )
    if "ssh_known_host_key" in data:
        data["ssh_known_host_key"] = normalize_host_key(data["ssh_known_host_key"])
    if not host._state.adding and _connection_changes(host, data):
        data.update(_unknown_status())
    return object_save(actor, host, data, via)


def _connection_changes(host: DockerHost, data: dict) -> bool:
    for name in CONNECTION_FIELDS:
        if name not in data:
            continue
        if name in SECRET_FIELDS and data[name] == "":
            continue  # "" keeps the stored key (None clears it)
        if (data[name] or "") != getattr(host, name):
            return True
    return False


def _unknown_status() -> dict:
    return {
        "status": HostStatus.UNKNOWN,
        "engine_version": "",
        "container_count": None,
        "last_error": "",
    }


def host_check(host_id: int, timeout: float | None = None) -> DockerHost | None:
    """Probe one host's engine and record status, version, count and error.

    1. Reload the host (None if it is gone).
    2. Ask the engine (short timeout) for its version and container count.
    3. Record the result only if the host's status and URL are still what
       we read (compare-and-set); otherwise a newer write won and we stop.
    4. A status change, and an SSH host key recorded on first use, leave
       AuditEvents (actor "system").
    """
    host = DockerHost.objects.select_related("region").filter(pk=host_id).first()
    if host is None:
        return None
    try:
        conn = host_connection(host, accept_new_host_key=True)
        info = engine_info(conn, timeout=timeout)
        fields = _up_fields(host, info)
    except AdapterError as exc:
        fields = _unreachable_fields(exc.reason)
    won = DockerHost.objects.filter(
        pk=host.pk,
        status=host.status,
        docker_url=host.docker_url,
        ssh_known_host_key=host.ssh_known_host_key,
    ).update(**fields)
    if not won:
        log.info("host %s changed during its check; result dropped", host.pk)
        return DockerHost.objects.filter(pk=host.pk).first()
    before = (host.status, host.ssh_known_host_key)
    host.refresh_from_db()
    _audit_check(host, *before)
    return host


def host_check_now(actor, host_id: int, via: str = "ui") -> DockerHost | None:
    """A person's "check now" (page or API): check, and record who asked.

    The beat's periodic checks call `host_check` and record only changes.
    """
    host = host_check(host_id)
    if host is not None:
        audit.record(actor, "check", host, {}, via)
    return host


def _audit_check(host: DockerHost, old_status: str, old_host_key: str) -> None:
    if host.status != old_status:
        changes = {"status": [old_status, host.status]}
        if host.last_error:
            changes["last_error"] = [None, host.last_error]
        audit.record(None, "status", host, changes, via="system")
    if host.ssh_known_host_key != old_host_key:
        changes = {"ssh_known_host_key": [old_host_key, host.ssh_known_host_key]}
        audit.record(None, "trust_host_key", host, changes, via="system")


def _up_fields(host: DockerHost, info: EngineInfo) -> dict:
    now = timezone.now()
    fields = {
        "status": HostStatus.UP,
        "engine_version": info.version,
        "container_count": info.containers,
        "last_seen": now,
        "last_checked": now,
        "last_error": "",
    }
    if info.ssh_host_key and not host.ssh_known_host_key:
        fields["ssh_known_host_key"] = info.ssh_host_key  # trust on first use
    return fields


def _unreachable_fields(reason: str) -> dict:
    return {
        "status": HostStatus.UNREACHABLE,
        "last_checked": timezone.now(),
        "last_error": reason,
    }
