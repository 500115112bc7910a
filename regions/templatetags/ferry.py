"""Template helpers shared by every page: nav links, badges, byte sizes."""

from django import template
from django.urls import NoReverseMatch, Resolver404, resolve, reverse

register = template.Library()


@register.simple_tag
def page_url(path_or_name: str) -> str:
    """URL of a page if it exists, else "".

    Takes a URL name ("regions:host_list") or a path ("/registries/"). The nav
    uses it so that an app's entry appears as soon as that app has a page.
    """
    if path_or_name.startswith("/"):
        try:
            resolve(path_or_name)
        except Resolver404:
            return ""
        return path_or_name
    try:
        return reverse(path_or_name)
    except NoReverseMatch:
        return ""


@register.simple_tag(takes_context=True)
def nav_active(context, prefix: str) -> str:
    """Return "active" when the path is under `prefix` ("/" matches only "/")."""
    path = context["request"].path
    if prefix == "/":
        return "active" if path == "/" else ""
    return "active" if path.startswith(prefix) else ""


@register.filter
def status_class(value) -> str:
    """CSS badge class for a status value: up/success green, failed red..."""
    value = str(value or "").lower()
    if value in {"up", "succeeded", "success", "ready", "applied", "ok", "healthy"}:
        return "badge-ok"
    if value in {
        "unreachable",
        "failed",
        "error",
        "down",
        "rolled_back",
        "timed_out",
        "degraded",
    }:
        return "badge-bad"
    if value in {
        "queued",
        "running",
        "pending",
        "building",
        "pushing",
        "applying",
        "starting",
        "provisioning",
    }:
        return "badge-busy"
    return "badge-muted"


@register.filter
def percent(value, digits: int = 1) -> str:
    """0.8734 -> "87.3%"; None -> "—"."""
    if value is None or value == "":
        return "—"
    return f"{float(value) * 100:.{int(digits)}f}%"


@register.filter
def host_role_labels(roles) -> list[str]:
    """Translated labels of a DockerHost's role values (unknown values as is)."""
    from regions.models import DockerHost

    labels = dict(DockerHost.HostRole.choices)
    return [str(labels.get(role, role)) for role in roles or []]


@register.filter
def change_rows(event) -> list[dict]:
    """An AuditEvent's `changes` as rows: name, old, new, or secret=True.

    A create lists only the values that were set (no "∅ →" noise, no id).
    """
    creating = event.action == "create"
    rows = []
    for name, change in sorted((event.changes or {}).items()):
        if isinstance(change, (list, tuple)) and len(change) == 2:
            if creating and (name == "id" or change[1] in (None, "", [], {})):
                continue
            rows.append({"name": name, "old": change[0], "new": change[1]})
        else:  # secrets are recorded only as "(changed)"
            rows.append({"name": name, "secret": True, "note": change})
    return rows


@register.filter
def ssh_fingerprint(host_key: str) -> str:
    """A pinned SSH host key as OpenSSH shows it: "ssh-ed25519 SHA256:..."."""
    from adapters import docker_ssh
    from adapters.errors import HostConfigError

    try:
        key = docker_ssh.parse_host_key(host_key or "")
    except HostConfigError:
        return host_key or ""
    return f"{key.get_name()} {key.fingerprint}"


# Pages for audited objects whose models have no get_absolute_url.
_OBJECT_PAGES = {
    "regions.dockerhost": ("regions:host_detail", "pk"),
}


@register.filter
def audit_object_url(event) -> str:
    """Link to the audited object's page, when one is known."""
    page = _OBJECT_PAGES.get(event.object_type)
    if page and event.object_id.isdigit():
        try:
            return reverse(page[0], kwargs={page[1]: int(event.object_id)})
        except NoReverseMatch:
            return ""
    return ""
