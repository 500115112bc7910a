"""Pages of the registries app, and the endpoint registries notify.

Every logged-in role reads; apply and prewarm need operator; creating,
editing, deleting and rotating passwords need admin. Writes go through the
services (registries.services; prewarm in registries.tasks), never here.
"""

import json

from django.contrib import messages
from django.contrib.auth.decorators import login_not_required
from django.core.exceptions import ValidationError
from django.http import HttpRequest, HttpResponse, JsonResponse
from django.shortcuts import get_object_or_404, redirect, render
from django.utils.translation import gettext as _
from django.views.decorators.csrf import csrf_exempt
from django.views.decorators.http import require_POST

from controlplane import audit
from controlplane.auth import has_role
from controlplane.models import Role
from controlplane.page_auth import admin_required, operator_required
from controlplane.page_views import delete_or_refuse, form_save, fresh_copy

from . import pages, services
from .forms import ObjectStoreForm, PrewarmForm, RegistryForm, RotatePasswordForm
from .models import ObjectStore, Registry
from .notifications import EnvelopeError, events_store, token_matches


# -- reading ------------------------------------------------------------------
def registry_list(request):
    context = {
        "rows": pages.list_rows(),
        "stores": ObjectStore.objects.select_related("region"),
    }
    return render(request, "registries/registry_list.html", context)


def registry_detail(request, pk: int, prewarm_form=None):
    registry = get_object_or_404(
        Registry.objects.select_related("region", "host", "store"), pk=pk
    )
    context = pages.detail_context(registry)
    context["prewarm_form"] = prewarm_form or PrewarmForm(registry=registry)
    context["rotate_form"] = RotatePasswordForm(registry=registry)
    return render(request, "registries/registry_detail.html", context)


def registry_export(request, pk: int):
    """A zip of the site's docker-compose.yml (every registry on this one's
    store and host) and the files it mounts; admins may ask for the real
    secrets (?secrets=1, audited), everyone else gets them masked."""
    registry = get_object_or_404(Registry, pk=pk)
    with_secrets = request.GET.get("secrets") == "1"
    if with_secrets and not has_role(request.user, Role.ADMIN):
        return HttpResponse(status=403)
    try:
        body, exported = pages.compose_zip(registry, masked=not with_secrets)
    except Exception as exc:  # noqa: BLE001 - not renderable yet: say why
        messages.error(request, _("Cannot export yet: %s") % exc)
        return redirect("registries:registry_detail", pk=pk)
    if with_secrets:
        # The site's secrets, not only this registry's: say whose left.
        changes = {"registries": exported}
        audit.record(request.user, "export_secrets", registry, changes, via="ui")
    response = HttpResponse(body, content_type="application/zip")
    response["Content-Disposition"] = (
        f'attachment; filename="ferry-registry-{registry.pk}-compose.zip"'
    )
    response["Cache-Control"] = "no-store"
    return response


# -- operator actions ---------------------------------------------------------
@require_POST
@operator_required
def registry_apply(request, pk: int):
    registry = get_object_or_404(Registry, pk=pk)
    try:
        services.registry_request_apply(request.user, registry, via="ui")
    except ValidationError as exc:
        messages.error(request, _("Apply refused: %s") % "; ".join(exc.messages))
    else:
        messages.success(
            request, _("Apply of %(registry)s started.") % {"registry": registry}
        )
    return redirect("registries:registry_detail", pk=pk)


@require_POST
@operator_required
def registry_prewarm(request, pk: int):
    """Validate the reference here (field errors on the page), pull in a task."""
    registry = get_object_or_404(Registry, pk=pk)
    form = PrewarmForm(request.POST, registry=registry)
    if not form.is_valid():
        return registry_detail(request, pk, prewarm_form=form)
    image = form.cleaned_data["image"]
    from .tasks import prewarm_image_task  # tasks import services: import late

    prewarm_image_task.delay_on_commit(registry.pk, image, request.user.pk)
    messages.success(
        request,
        _("Prewarm of %(image)s queued; the result appears below.") % {"image": image},
    )
    return redirect("registries:registry_detail", pk=pk)


# -- admin actions ------------------------------------------------------------
@require_POST
@admin_required
def registry_rotate_password(request, pk: int):
    """Rotate one user's password and show the new one once (never stored in
    the page afterwards: the response is not cached and not redirected)."""
    registry = get_object_or_404(Registry, pk=pk)
    form = RotatePasswordForm(request.POST, registry=registry)
    if not form.is_valid():
        messages.error(request, _("Choose a user to rotate."))
        return redirect("registries:registry_detail", pk=pk)
    username, password = services.registry_rotate_password(
        request.user, registry, form.cleaned_data["username"], via="ui"
    )
    # nginx only learns the new htpasswd from an apply (queued after commit).
    services.registry_request_apply(request.user, registry, via="ui")
    context = {"registry": registry, "username": username, "password": password}
    response = render(request, "registries/password_rotated.html", context)
    response["Cache-Control"] = "no-store"
    return response


@admin_required
def registry_create(request):
    return _edit(request, RegistryForm, Registry(), "registries:registry_detail")


@admin_required
def registry_edit(request, pk: int):
    registry = get_object_or_404(Registry, pk=pk)
    return _edit(request, RegistryForm, registry, "registries:registry_detail")


@require_POST
@admin_required
def registry_delete(request, pk: int):
    registry = get_object_or_404(Registry, pk=pk)
    try:
        services.registry_delete(request.user, registry, via="ui")
    except (ValidationError, services.ApplyBusy) as exc:
        text = "; ".join(exc.messages) if isinstance(exc, ValidationError) else str(exc)
        messages.error(request, text)
        return redirect("registries:registry_detail", pk=pk)
    messages.success(request, _("Deleted %(object)s.") % {"object": registry})
    return redirect("registries:registry_list")


@admin_required
def store_create(request):
    return _edit(request, ObjectStoreForm, ObjectStore(), None)


@admin_required
def store_edit(request, pk: int):
    store = get_object_or_404(ObjectStore, pk=pk)
    return _edit(request, ObjectStoreForm, store, None)


@require_POST
@admin_required
def store_delete(request, pk: int):
    store = get_object_or_404(ObjectStore, pk=pk)
    in_use = _("%(object)s is still used by registries.") % {"object": store}
    if not delete_or_refuse(request, store, in_use):
        return redirect("registries:store_edit", pk=pk)
    return redirect("registries:registry_list")


def _edit(request, form_class, instance, detail: str | None):
    """Create/edit: validate, save through the service, redirect; errors stay."""
    form = form_class(request.POST or None, instance=fresh_copy(instance))
    saved = form_save(request, form)
    if saved is not None and detail:
        return redirect(detail, pk=saved.pk)
    if saved is not None:
        return redirect("registries:registry_list")
    template = (
        "registries/registry_form.html"
        if form_class is RegistryForm
        else "registries/store_form.html"
    )
    return render(request, template, {"form": form, "object": instance})


# -- notifications from the registry containers -------------------------------
@csrf_exempt
@login_not_required
@require_POST
def notify(request: HttpRequest, registry_id: int) -> JsonResponse:
    """Store a registry's events; Bearer notify_token or 401 (also if unknown)."""
    registry = Registry.objects.filter(pk=registry_id).first()
    if not token_matches(registry, request.headers.get("Authorization", "")):
        response = JsonResponse({"detail": "Invalid or missing token."}, status=401)
        response["WWW-Authenticate"] = "Bearer"
        return response
    try:
        outcome = events_store(registry, json.loads(request.body or b"null"))
    except (ValueError, EnvelopeError) as exc:  # JSONDecodeError is a ValueError
        return JsonResponse({"detail": f"Not an events envelope: {exc}"}, status=400)
    return JsonResponse(
        {
            "received": outcome.received,
            "stored": outcome.stored,
            "skipped": outcome.skipped,
        }
    )
