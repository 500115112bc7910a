"""Build pages: clusters, projects (stats, trend, build button), builds (live).

Reads are open to every logged-in role; building, cancelling and
provisioning need operator (403 otherwise, like the API). A running build's
page polls its `build-live` fragment every second and stops when it ends; a
cluster's page polls `cluster-live` while it provisions or builds run or wait.
"""

from django.contrib import messages
from django.core.exceptions import ValidationError
from django.http import HttpResponse
from django.shortcuts import get_object_or_404, redirect, render
from django.utils.translation import gettext as _
from django.views.decorators.http import require_POST

from controlplane.page_auth import operator_required
from controlplane.page_views import render_or_fragment

from . import selectors, services
from .forms import BuildTriggerForm
from .models import CLUSTER_ACTIVE_STATES, Build, BuildCluster, Project
from .queue import queue_position

LIVE_TRIGGER = "every 1s"
# While a build runs, the page shows the end of its log (the whole log is
# one click away): a fragment that polls every second must stay small.
LIVE_LOG_TAIL = 64_000


def index(request):
    clusters = BuildCluster.objects.select_related("region", "host").prefetch_related(
        "agents"
    )
    context = {
        "clusters": clusters,
        "projects": selectors.projects_with_last_build(),
    }
    return render(request, "builds/index.html", context)


def cluster_detail(request, pk: int):
    cluster = get_object_or_404(
        BuildCluster.objects.select_related("region", "host", "registry"), pk=pk
    )
    context = {
        "cluster": cluster,
        "cluster_active": cluster.status in CLUSTER_ACTIVE_STATES,
        "agents": selectors.cluster_agents(cluster),
        "queue": selectors.cluster_queue(cluster),
        "projects": cluster.projects.all(),
    }
    return render_or_fragment(
        request, "builds/cluster_detail.html", context, "cluster-live"
    )


@require_POST
@operator_required
def cluster_provision(request, pk: int):
    cluster = get_object_or_404(BuildCluster, pk=pk)
    services.cluster_request_provision(request.user, cluster, via="ui")
    messages.success(request, _("Provisioning started."))
    return redirect("builds:cluster_detail", pk=cluster.pk)


def project_detail(request, pk: int, form: BuildTriggerForm | None = None, status=200):
    project = get_object_or_404(Project.objects.select_related("cluster"), pk=pk)
    builds = list(selectors.builds_with_relations().filter(project=project)[:50])
    for build in builds:
        build.queue_position = queue_position(build)
    context = {
        "project": project,
        "builds": builds,
        "stats": selectors.project_stats(project),
        "trend": selectors.duration_trend(project),
        "form": form or BuildTriggerForm(initial={"ref": project.default_ref}),
    }
    return render(request, "builds/project_detail.html", context, status=status)


@require_POST
@operator_required
def project_build(request, pk: int):
    """The build button: queue a build of the ref typed in (or the default)."""
    project = get_object_or_404(Project, pk=pk)
    form = BuildTriggerForm(request.POST)
    if not form.is_valid():
        return project_detail(request, pk, form=form, status=400)
    try:
        build = services.build_create(
            request.user, project, form.cleaned_data["ref"], via="ui"
        )
    except ValidationError as exc:
        for field, errors in exc.message_dict.items():
            form.add_error(field if field in form.fields else None, errors)
        return project_detail(request, pk, form=form, status=400)
    messages.success(request, _("Build #%(n)d queued.") % {"n": build.number})
    return redirect("builds:build_detail", pk=build.pk)


def build_detail(request, pk):
    build = get_object_or_404(selectors.builds_with_relations(), pk=pk)
    log = build.log
    truncated = build.active and len(log) > LIVE_LOG_TAIL
    context = {
        "build": build,
        "waterfall": selectors.waterfall(build),
        "queue_position": queue_position(build),
        "log": log[-LIVE_LOG_TAIL:] if truncated else log,
        "log_truncated": truncated,
        "live_trigger": LIVE_TRIGGER if build.active else "",
    }
    return render_or_fragment(
        request, "builds/build_detail.html", context, "build-live"
    )


def build_log(request, pk):
    """The whole log as plain text."""
    build = get_object_or_404(Build.objects.only("log"), pk=pk)
    return HttpResponse(build.log, content_type="text/plain; charset=utf-8")


@require_POST
@operator_required
def build_cancel(request, pk):
    build = get_object_or_404(Build, pk=pk)
    try:
        services.build_cancel(request.user, build, via="ui")
        messages.success(request, _("Build #%(n)d cancelled.") % {"n": build.number})
    except ValidationError as exc:
        messages.error(request, " ".join(exc.messages))
    return redirect("builds:build_detail", pk=build.pk)
