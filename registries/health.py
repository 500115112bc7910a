"""Health of an applied registry, stored on the row and shown per registry.

Checks (each {"ok", "detail"} in Registry.health["checks"]):
* containers: every desired container exists and runs (docker API);
* endpoint: GET /v2/ with credentials answers 200, and without them 401 when
  auth is on (a mirror through its nginx with TLS, verified against the
  registry's own certificate; a private registry directly);
* certificate: days left (fails under CERT_WARN_DAYS);
* storage: adapters.object_storage.check_store;
* upstream (mirrors): GET upstream /v2/ answers 200 or 401; with upstream
  credentials set, they must be accepted.
Where the endpoint is probed from: a registry bound to loopback on a remote
Docker host cannot be reached from Ferry's machine, so then the probe runs on
that host (adapters.host_probe: a short-lived FERRY_PROBE_IMAGE container on
the host network). "Local" is decided by the URL alone: a unix:// docker_url
is this machine's engine, and the probe runs from Ferry as before; tcp:// and
ssh:// hosts are remote. Endpoints on other addresses are probed from Ferry
(with TLS verified against the registry's certificate).
The upstream of a mirror on a remote host is probed from that host too: it is
the mirror's view of the region boundary that matters, not Ferry's. Busybox
wget cannot do the token-auth dance, so when the host's probe gets a 401 with
credentials set, the credentials themselves are checked from Ferry.
"""

import base64
from urllib.parse import urlsplit

from django.conf import settings
from django.utils import timezone
from django.utils.translation import gettext as _

from adapters import containers as engine
from adapters import host_probe
from adapters.docker_engine import engine_client
from adapters.errors import AdapterError, RegistryAuthError
from adapters.registry_api import RegistryClient
from regions.services import host_connection

from . import tls
from .models import Registry, RegistryStatus
from .site import owner_label, site_containers
from .spec import is_loopback

CERT_WARN_DAYS = 14
WILDCARDS = ("0.0.0.0", "::")


def _result(ok: bool, detail: str) -> dict:
    return {"ok": ok, "detail": detail}


def endpoint_url(registry: Registry) -> str:
    """Where Ferry reaches the registry's clients' endpoint."""
    address = registry.listen_address
    if address in WILDCARDS:
        docker_host = urlsplit(registry.host.docker_url).hostname
        address = registry.public_hostname or docker_host or "127.0.0.1"
    elif not is_loopback(address) and registry.public_hostname:
        address = registry.public_hostname
    host = f"[{address}]" if ":" in address else address
    if registry.kind == "mirror":
        return f"https://{host}:{registry.https_port}"
    scheme = "http" if is_loopback(registry.listen_address) else "https"
    return f"{scheme}://{host}:{registry.port}"


def check_containers(registry: Registry) -> dict:
    _spec, wanted = site_containers(registry)
    try:
        with engine_client(host_connection(registry.host)) as client:
            states = engine.list_owned(client, owner_label(registry.pk))
    except AdapterError as exc:
        return _result(False, exc.reason)
    running = {s.name for s in states if s.running}
    missing = [c.name for c in wanted if c.name not in running]
    if missing:
        return _result(False, _("not running: %s") % ", ".join(missing))
    return _result(True, _("%d running") % len(wanted))


def host_is_remote(registry: Registry) -> bool:
    """A unix:// engine is this machine's; tcp:// and ssh:// ones are not."""
    return not registry.host.docker_url.startswith("unix://")


def probes_in_host(registry: Registry) -> bool:
    """Only the host itself reaches a loopback endpoint of a remote engine."""
    return host_is_remote(registry) and is_loopback(registry.listen_address)


def _status_in_host(registry: Registry, url: str, authorization: str = ""):
    with engine_client(host_connection(registry.host)) as client:
        return host_probe.http_status_in_host(
            client,
            settings.FERRY_PROBE_IMAGE,
            url + "/v2/",
            name_prefix=f"ferry-reg-{registry.pk}-health",
            labels={"ferry.role": "health-probe", "ferry.registry": str(registry.pk)},
            authorization=authorization,
            timeout=max(1, int(settings.FERRY_HTTP_TIMEOUT)),
        )


def _basic(username: str, password: str) -> str:
    token = base64.b64encode(f"{username}:{password}".encode()).decode()
    return f"Basic {token}"


def check_endpoint_in_host(registry: Registry, url: str, user, needs_auth) -> dict:
    """The endpoint as seen from its own Docker host (see probes_in_host)."""
    try:
        if needs_auth and user is None:
            return _result(False, _("no user to log in with"))
        auth = _basic(user.username, user.password) if needs_auth else ""
        probe = _status_in_host(registry, url, auth)
        if probe.status is None:
            reason = _("%(url)s unreachable from the Docker host: %(reason)s")
            return _result(False, reason % {"url": url, "reason": probe.reason})
        if probe.status != 200:
            reason = _("%(url)s answered %(status)d on the Docker host")
            return _result(False, reason % {"url": url, "status": probe.status})
        if not needs_auth:
            return _result(True, _("%s: 200 (probed on the Docker host)") % url)
        anonymous = _status_in_host(registry, url)
    except AdapterError as exc:
        return _result(False, exc.reason)
    if anonymous.status != 401:
        return _result(False, _("%s answers without credentials") % url)
    return _result(
        True,
        _("%s: 200 with credentials, 401 without (probed on the Docker host)") % url,
    )


def check_endpoint(registry: Registry) -> dict:
    url = endpoint_url(registry)
    ca = registry.tls_certificate if url.startswith("https") else ""
    user = registry.users.order_by("username").first()
    needs_auth = registry.require_auth and (
        registry.kind == "mirror" or not is_loopback(registry.listen_address)
    )
    if probes_in_host(registry):
        return check_endpoint_in_host(registry, url, user, needs_auth)
    try:
        if needs_auth:
            if user is None:
                return _result(False, _("no user to log in with"))
            with RegistryClient(url, user.username, user.password, ca_pem=ca) as client:
                client.ping()
            with RegistryClient(url, ca_pem=ca) as anonymous:
                try:
                    anonymous.ping()
                except RegistryAuthError:
                    return _result(
                        True, _("%s: 200 with credentials, 401 without") % url
                    )
            return _result(False, _("%s answers without credentials") % url)
        with RegistryClient(url, ca_pem=ca) as client:
            client.ping()
    except AdapterError as exc:
        return _result(False, exc.reason)
    return _result(True, _("%s: 200") % url)


def check_certificate(registry: Registry, now) -> tuple[dict, int | None]:
    if not registry.tls_certificate:
        return _result(False, _("no certificate")), None
    try:
        days = tls.days_left(registry.tls_certificate, now)
    except tls.TLSError as exc:
        return _result(False, exc.reason), None
    if days < 0:
        return _result(False, _("expired %d days ago") % -days), days
    if days < CERT_WARN_DAYS:
        return _result(False, _("expires in %d days") % days), days
    return _result(True, _("%d days left") % days), days


def check_storage(registry: Registry) -> dict:
    from adapters.object_storage import check_store

    result = check_store(registry.store)
    if result.ok:
        return _result(True, _("reachable"))
    where = f"{result.field}: " if result.field else ""
    return _result(False, where + result.reason)


def check_upstream(registry: Registry) -> dict:
    if host_is_remote(registry):
        return check_upstream_in_host(registry)
    return check_upstream_from_here(registry)


def _ping_upstream(registry: Registry) -> tuple[str, str]:
    """GET upstream /v2/ from Ferry: ("ok" | "refused" | "error", reason)."""
    url = registry.upstream_url.rstrip("/")
    user, password = registry.upstream_username, registry.upstream_password
    try:
        with RegistryClient(url, user, password) as client:
            client.ping()
    except RegistryAuthError as exc:
        return ("refused" if user else "ok"), exc.reason
    except AdapterError as exc:
        return "error", exc.reason
    return "ok", ""


def check_upstream_from_here(registry: Registry) -> dict:
    outcome, reason = _ping_upstream(registry)
    if outcome == "refused":
        return _result(False, _("reachable, but it refused the credentials"))
    if outcome == "error":
        return _result(False, reason)
    return _result(True, _("reachable (%s)") % reason if reason else _("reachable"))


def check_upstream_in_host(registry: Registry) -> dict:
    """The upstream as the mirror's host sees it (see the module's notes)."""
    url = registry.upstream_url.rstrip("/")
    user, password = registry.upstream_username, registry.upstream_password
    try:
        probe = _status_in_host(registry, url, _basic(user, password) if user else "")
    except AdapterError as exc:
        return _result(False, exc.reason)
    if probe.status is None:
        reason = _("%(url)s unreachable from the Docker host: %(reason)s")
        return _result(False, reason % {"url": url, "reason": probe.reason})
    if probe.status == 200:
        return _result(True, _("reachable from the Docker host"))
    if probe.status != 401:
        reason = _("%(url)s answered %(status)d on the Docker host")
        return _result(False, reason % {"url": url, "status": probe.status})
    if not user:
        return _result(True, _("reachable from the Docker host (it asks to log in)"))
    outcome, reason = _ping_upstream(registry)
    if outcome == "refused":
        return _result(False, _("reachable, but it refused the credentials"))
    if outcome == "error":
        note = _("reachable from the Docker host; credentials not checked: %s")
        return _result(True, note % reason)
    return _result(True, _("reachable from the Docker host; credentials accepted"))


def run_checks(registry: Registry, now) -> tuple[dict, int | None]:
    checks = {"containers": check_containers(registry)}
    checks["endpoint"] = check_endpoint(registry)
    days = None
    if registry.kind == "mirror" or not is_loopback(registry.listen_address):
        checks["certificate"], days = check_certificate(registry, now)
    checks["storage"] = check_storage(registry)
    if registry.kind == "mirror":
        checks["upstream"] = check_upstream(registry)
    return checks, days


def registry_health_check(
    registry_id: int, after_apply: bool = False
) -> Registry | None:
    """Run every check, store them; healthy/degraded unless an apply failed.

    `after_apply`: the caller just applied, so an "applying" status settles too.
    """
    registry = (
        Registry.objects.select_related("store", "host", "region")
        .filter(pk=registry_id)
        .first()
    )
    if registry is None:
        return None
    now = timezone.now()
    checks, days = run_checks(registry, now)
    failing = [f"{name}: {c['detail']}" for name, c in checks.items() if not c["ok"]]
    health = {
        "checked_at": now.isoformat(),
        "ok": not failing,
        "checks": checks,
        "cert_days_left": days,
    }
    fields = {"health": health, "last_checked_at": now}
    settled = [RegistryStatus.HEALTHY, RegistryStatus.DEGRADED]
    if after_apply:
        settled.append(RegistryStatus.APPLYING)
    if registry.status in settled:
        fields["status"] = (
            RegistryStatus.DEGRADED if failing else RegistryStatus.HEALTHY
        )
        fields["last_error"] = "; ".join(failing)[:2000]
    # Only a settled registry changes status: a failed apply keeps its reason.
    Registry.objects.filter(pk=registry_id, status__in=settled).update(**fields)
    Registry.objects.filter(pk=registry_id).exclude(status__in=settled).update(
        health=health, last_checked_at=now
    )
    registry.refresh_from_db()
    return registry
