"""Pages of the control plane itself: the audit log and API tokens."""

from django.contrib import messages
from django.core.exceptions import ValidationError
from django.core.paginator import Paginator
from django.shortcuts import redirect, render
from django.utils.translation import gettext as _
from django.views.decorators.http import require_POST

from .auth import has_role
from .models import ApiToken, AuditEvent, Role
from .tokens import token_create, token_revoke

AUDIT_PAGE_SIZE = 50


def audit_log(request):
    """Every write, newest first; filter by object type, action and actor."""
    events = AuditEvent.objects.all()
    filters = {
        key: request.GET.get(key, "").strip()
        for key in ("object_type", "action", "actor", "object_id")
    }
    if filters["object_type"]:
        events = events.filter(object_type=filters["object_type"])
    if filters["action"]:
        events = events.filter(action=filters["action"])
    if filters["actor"]:
        events = events.filter(actor_name=filters["actor"])
    if filters["object_id"]:
        events = events.filter(object_id=filters["object_id"])
    page = Paginator(events, AUDIT_PAGE_SIZE).get_page(request.GET.get("page"))
    query = request.GET.copy()
    query.pop("page", None)
    context = {
        "page": page,
        "filters": filters,
        "query": query.urlencode(),
        "object_types": _distinct("object_type"),
        "actions": _distinct("action"),
        "actors": _distinct("actor_name"),
    }
    return render(request, "controlplane/audit_log.html", context)


def _distinct(field: str) -> list[str]:
    return list(
        AuditEvent.objects.order_by(field).values_list(field, flat=True).distinct()
    )


def token_list(request):
    """The user's tokens; POST creates one and shows its raw value once."""
    raw = None
    error = None
    name = ""
    if request.method == "POST":
        name = request.POST.get("name", "")
        try:
            _token, raw = token_create(request.user, name, via="ui")
            name = ""
        except ValidationError as exc:
            error = " ".join(exc.messages)
    tokens = ApiToken.objects.filter(user=request.user).order_by("-created_at", "-id")
    context = {
        "tokens": tokens,
        "raw": raw,  # rendered in this response only; never stored
        "error": error,
        "name": name,
        "all_tokens": _all_tokens(request.user),
    }
    response = render(request, "controlplane/token_list.html", context)
    if raw:
        response["Cache-Control"] = "no-store"
    return response


def _all_tokens(user):
    """Admins also see everyone's active tokens, to revoke them."""
    if not has_role(user, Role.ADMIN):
        return None
    return (
        ApiToken.objects.filter(revoked_at__isnull=True)
        .exclude(user=user)
        .select_related("user")
        .order_by("-created_at")
    )


@require_POST
def token_revoke_view(request, pk: int):
    try:
        token = token_revoke(request.user, pk, via="ui")
    except ApiToken.DoesNotExist:
        messages.error(request, _("No such token."))
        return redirect("token_list")
    messages.success(request, _("Revoked token %(name)s.") % {"name": token.name})
    return redirect("token_list")
