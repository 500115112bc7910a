"""Overview, host and region pages.

Reads are open to every logged-in role; creating and editing hosts and
regions needs admin, "check now" needs operator. Writes go through services.
"""

from django.conf import settings
from django.contrib import messages
from django.shortcuts import get_object_or_404, redirect, render
from django.utils.translation import gettext as _
from django.views.decorators.http import require_POST

from controlplane.models import AuditEvent
from controlplane.page_auth import admin_required, operator_required
from controlplane.page_views import (
    delete_or_refuse,
    form_save,
    fresh_copy,
    render_or_fragment,
)

from .cards import region_cards
from .forms import HostForm, RegionForm
from .models import DockerHost, HostStatus, Region
from .services import host_check_now

RECENT_EVENTS = 8


def poll_trigger() -> str:
    """Live fragments poll only while the tab is visible (a hidden tab left
    open all day must not keep asking)."""
    seconds = settings.FERRY_PAGE_POLL_SECONDS
    return f"every {seconds:g}s [document.visibilityState === 'visible']"


def overview(request):
    context = {
        "cards": region_cards(),
        "recent_events": AuditEvent.objects.all()[:RECENT_EVENTS],
    }
    return render(request, "regions/overview.html", context)


def host_list(request):
    hosts = DockerHost.objects.select_related("region")
    region_slug = request.GET.get("region", "")
    status = request.GET.get("status", "")
    if region_slug:
        hosts = hosts.filter(region__slug=region_slug)
    if status in HostStatus.values:
        hosts = hosts.filter(status=status)
    context = {
        "hosts": hosts,
        "regions": Region.objects.all(),
        "statuses": HostStatus.choices,
        "region_slug": region_slug,
        "status": status,
        "poll_trigger": poll_trigger(),
    }
    return render_or_fragment(request, "regions/host_list.html", context, "host-rows")


def host_detail(request, pk: int):
    host = get_object_or_404(DockerHost.objects.select_related("region"), pk=pk)
    context = {"host": host, "poll_trigger": poll_trigger()}
    return render_or_fragment(
        request, "regions/host_detail.html", context, "host-status"
    )


@require_POST
@operator_required
def host_check(request, pk: int):
    """Check one host now, synchronously (the adapter has a short timeout)."""
    host = get_object_or_404(DockerHost, pk=pk)
    host = host_check_now(request.user, host.pk, via="ui") or host
    if request.htmx:
        context = {"host": host, "poll_trigger": poll_trigger()}
        return render(request, "regions/host_detail.html#host-status", context)
    messages.info(
        request,
        _("Checked %(host)s: %(status)s.")
        % {"host": host.name, "status": host.get_status_display()},
    )
    return redirect("regions:host_detail", pk=host.pk)


@admin_required
def host_create(request):
    return _edit(request, HostForm, DockerHost(), "regions/host_form.html")


@admin_required
def host_edit(request, pk: int):
    host = get_object_or_404(DockerHost, pk=pk)
    return _edit(request, HostForm, host, "regions/host_form.html")


@require_POST
@admin_required
def host_delete(request, pk: int):
    host = get_object_or_404(DockerHost, pk=pk)
    return _delete(request, host, "regions:host_detail", {"pk": host.pk})


@admin_required
def region_create(request):
    return _edit(request, RegionForm, Region(), "regions/region_form.html")


@admin_required
def region_edit(request, slug: str):
    region = get_object_or_404(Region, slug=slug)
    return _edit(request, RegionForm, region, "regions/region_form.html")


@require_POST
@admin_required
def region_delete(request, slug: str):
    region = get_object_or_404(Region, slug=slug)
    return _delete(request, region, "regions:region_edit", {"slug": region.slug})


def _edit(request, form_class, instance, template: str):
    """Shared create/edit flow: validate, save through object_save, redirect."""
    form = form_class(request.POST or None, instance=fresh_copy(instance))
    saved = form_save(request, form)
    if isinstance(saved, DockerHost):
        return redirect("regions:host_detail", pk=saved.pk)
    if saved is not None:
        return redirect("regions:overview")
    return render(request, template, {"form": form, "object": instance})


def _delete(request, instance, back: str, back_kwargs: dict):
    in_use = _("%(object)s is still in use and was not deleted.") % {"object": instance}
    if not delete_or_refuse(request, instance, in_use):
        return redirect(back, **back_kwargs)
    if isinstance(instance, DockerHost):
        return redirect("regions:host_list")
    return redirect("regions:overview")
