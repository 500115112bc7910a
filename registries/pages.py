"""What the registry pages show, gathered in one place for the views.

Reads only: metrics come from registries.metrics.registry_stats and the chart
series from registries.selectors, events from
registries.events, the files from registries.render.render_site_files
(masked), the export from registries.compose. A part that cannot be
computed shows its reason instead of breaking the page.
"""

import io
import logging
import zipfile
from datetime import timedelta

from django.utils import timezone
from django.utils.translation import gettext_lazy as _

from controlplane.models import AuditEvent

from . import events, selectors
from .models import Registry
from .prewarm import mirror_endpoint

log = logging.getLogger(__name__)
WEEK = timedelta(days=7)
# registry_stats' gateway status -> (what the pages say, badge class).
GATEWAY_STATES = {
    "caching": (_("caching"), "badge-ok"),
    "pass-through": (_("pass-through (cache off)"), "badge-muted"),
    "down": (_("not running"), "badge-bad"),
    "unknown": (_("not measured yet"), "badge-muted"),
}


def stats_of(registry: Registry, window: timedelta = timedelta(hours=24)) -> dict:
    """registry_stats, or {} when metrics cannot be read (logged)."""
    try:
        from .metrics import registry_stats

        return registry_stats(registry, window) or {}
    except Exception:  # a broken selector must not take the page down
        log.exception("registry_stats failed for registry %s", registry.pk)
        return {}


def gateway_view(stats: dict) -> dict | None:
    """The gateway part of the stats with its label and badge; None when the
    registry has no gateway (a private registry) or stats are missing."""
    gateway = stats.get("gateway") or {}
    state = GATEWAY_STATES.get(gateway.get("status"))
    if state is None:
        return None
    return {**gateway, "label": state[0], "badge": state[1]}


def list_rows() -> list[dict]:
    registries = Registry.objects.select_related("region", "host", "store")
    rows = []
    for registry in registries:
        stats = stats_of(registry)
        rows.append(
            {"registry": registry, "stats": stats, "gateway": gateway_view(stats)}
        )
    return rows


def endpoints(registry: Registry) -> list[tuple[str, str]]:
    """(label, address) pairs: how clients and Ferry reach the registry."""
    rows = []
    if registry.kind == "private" or registry.https_port:
        rows.append(("clients", mirror_endpoint(registry)))
    if registry.kind == "mirror":
        rows.append(("registry", f"http://127.0.0.1:{registry.port}"))
    if registry.debug_port:
        rows.append(("debug", f"http://127.0.0.1:{registry.debug_port}/debug/vars"))
    if registry.kind == "mirror" and registry.gateway_port:
        rows.append(("gateway", f"http://127.0.0.1:{registry.gateway_port}"))
    return rows


def health_checks(registry: Registry) -> list[dict]:
    """The last health record as rows of name / ok / reason (shape-tolerant)."""
    health = registry.health or {}
    checks = health.get("checks", health) if isinstance(health, dict) else health
    rows = []
    items = checks.items() if isinstance(checks, dict) else enumerate(checks or [])
    for name, value in items:
        if isinstance(value, dict):
            rows.append(
                {
                    "name": value.get("name", name),
                    "ok": value.get("ok"),
                    "reason": value.get("reason") or value.get("detail") or "",
                }
            )
        elif isinstance(value, bool):
            rows.append({"name": name, "ok": value, "reason": ""})
    return rows


def tls_days_left(registry: Registry) -> int | None:
    if not registry.tls_expires_at:
        return None
    return (registry.tls_expires_at - timezone.now()).days


def rendered_files(registry: Registry) -> tuple[dict[str, str], str]:
    """(files as deployed with secrets masked, error text when not renderable)."""
    try:
        from .render import render_site_files

        return render_site_files(registry, masked=True), ""
    except Exception as exc:  # noqa: BLE001 - an incomplete row cannot render
        log.info("registry %s not renderable: %s", registry.pk, exc)
        return {}, str(exc) or type(exc).__name__


def compose_zip(registry: Registry, masked: bool = True) -> tuple[bytes, list[str]]:
    """(the zip, the registries in it): the site's docker-compose.yml plus
    ./<service>/<file> as it mounts them, with the files' modes (a TLS key
    stays 0600 when unzipped). Raises NotExportable (or a rendering error)
    while a registry of the site cannot be rendered as deployed."""
    from .compose import export_files, load_site

    site = load_site(registry, masked=masked)
    buffer = io.BytesIO()
    with zipfile.ZipFile(buffer, "w", zipfile.ZIP_DEFLATED) as archive:
        for name, content, mode in sorted(export_files(site)):
            info = zipfile.ZipInfo(f"ferry-registry-{registry.pk}/{name}")
            info.external_attr = (0o100000 | mode) << 16  # a regular file
            info.compress_type = zipfile.ZIP_DEFLATED
            archive.writestr(info, content)
    return buffer.getvalue(), [member.spec.name for member in site.members]


def chart_data(registry: Registry) -> dict:
    """The JSON the page's charts draw (hit rate per bucket, storage growth)."""
    return {
        "hit_rate_24h": selectors.hit_rate_series(registry, "24h"),
        "hit_rate_7d": selectors.hit_rate_series(registry, "7d"),
        "storage_7d": selectors.storage_growth(registry, "7d"),
    }


def recent_prewarms(registry: Registry, limit: int = 5):
    return AuditEvent.objects.filter(
        object_type=registry._meta.label_lower,
        object_id=str(registry.pk),
        action__in=("prewarm", "prewarm_failed"),
    ).order_by("-pk")[:limit]


def detail_context(registry: Registry) -> dict:
    files, files_error = rendered_files(registry)
    stats = stats_of(registry)
    return {
        "registry": registry,
        "endpoints": endpoints(registry),
        "checks": health_checks(registry),
        "tls_days_left": tls_days_left(registry),
        "stats": stats,
        "gateway": gateway_view(stats),
        "stats_7d": stats_of(registry, WEEK),
        "bytes_saved_7d": selectors.bytes_saved(registry, WEEK),
        "chart": chart_data(registry),
        "top_repositories": events.top_repositories(registry),
        "recent_events": events.recent_events(registry),
        "prewarms": recent_prewarms(registry),
        "files": files,
        "files_error": files_error,
        "users": registry.users.all(),
    }
