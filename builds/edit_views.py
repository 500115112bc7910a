"""Create and edit pages for build clusters, their agents and projects.

Who may change what (the API's viewsets in builds.api use the same roles):

* clusters and agents: admin. They hold secrets (the Jenkins API token, a
  private Maven settings.xml) and decide what runs on a Docker host;
* projects: operator. What to build, on which agent kind, where to push;
  no secrets, and operators are the ones who build;
* everyone else reads the pages without edit buttons and gets 403 on these
  URLs (GET and POST alike).

Field errors stay on the page next to their field; saving a cluster or an
agent re-provisions the cluster (by a task, after commit).
"""

from django.contrib import messages
from django.core.exceptions import ValidationError
from django.shortcuts import get_object_or_404, redirect, render
from django.urls import reverse
from django.utils.translation import gettext as _
from django.views.decorators.http import require_POST

from controlplane.page_auth import admin_required, operator_required
from controlplane.page_views import form_save, fresh_copy

from . import services
from .forms import AgentForm, ClusterForm, ProjectForm
from .models import BuildAgent, BuildCluster, Project


def _edit(request, form, page: dict, done):
    """Validate and save through the form's service; else show the errors."""
    saved = form_save(request, form)
    if saved is not None:
        return redirect(done(saved))
    context = {"form": form, **page}
    status = 400 if form.is_bound else 200
    return render(request, "builds/edit_form.html", context, status=status)


def _cluster_url(cluster) -> str:
    return reverse("builds:cluster_detail", args=[cluster.pk])


# -- clusters (admin) ------------------------------------------------------------
@admin_required
def cluster_create(request):
    form = ClusterForm(request.POST or None, instance=BuildCluster())
    page = {"title": _("Add build cluster"), "cancel_url": reverse("builds:index")}
    return _edit(request, form, page, _cluster_url)


@admin_required
def cluster_edit(request, pk: int):
    cluster = get_object_or_404(BuildCluster, pk=pk)
    form = ClusterForm(request.POST or None, instance=fresh_copy(cluster))
    page = {
        "title": _("Edit build cluster %(name)s") % {"name": cluster.name},
        "crumbs": [(str(cluster), _cluster_url(cluster))],
        "cancel_url": _cluster_url(cluster),
    }
    return _edit(request, form, page, _cluster_url)


# -- agents (admin) ----------------------------------------------------------------
def _agent_page(cluster, title: str, agent=None) -> dict:
    page = {
        "title": title,
        "crumbs": [(str(cluster), _cluster_url(cluster))],
        "cancel_url": _cluster_url(cluster),
    }
    if agent is not None:
        page["delete_url"] = reverse("builds:agent_delete", args=[agent.pk])
        page["delete_label"] = _("Delete agent")
        page["delete_confirm"] = _("Delete this agent? Its cache volumes stay.")
    return page


@admin_required
def agent_create(request, pk: int):
    cluster = get_object_or_404(BuildCluster, pk=pk)
    agent = BuildAgent(cluster=cluster)
    form = AgentForm(request.POST or None, instance=agent, cluster=cluster)
    page = _agent_page(cluster, _("Add agent to %(name)s") % {"name": cluster.name})
    return _edit(request, form, page, lambda saved: _cluster_url(cluster))


@admin_required
def agent_edit(request, pk: int):
    agent = get_object_or_404(BuildAgent.objects.select_related("cluster"), pk=pk)
    cluster = agent.cluster
    form = AgentForm(request.POST or None, instance=fresh_copy(agent), cluster=cluster)
    title = _("Edit agent %(kind)s of %(name)s") % {
        "kind": agent.kind,
        "name": cluster.name,
    }
    page = _agent_page(cluster, title, agent)
    return _edit(request, form, page, lambda saved: _cluster_url(cluster))


@require_POST
@admin_required
def agent_delete(request, pk: int):
    agent = get_object_or_404(BuildAgent.objects.select_related("cluster"), pk=pk)
    cluster = agent.cluster
    try:
        services.agent_delete(request.user, agent, via="ui")
    except ValidationError as exc:
        messages.error(request, " ".join(exc.messages))
        return redirect("builds:agent_edit", pk=pk)
    messages.success(request, _("Deleted %(object)s.") % {"object": agent})
    return redirect(_cluster_url(cluster))


# -- projects (operator) ----------------------------------------------------------
def _project_url(project) -> str:
    return reverse("builds:project_detail", args=[project.pk])


@operator_required
def project_create(request):
    initial = {}
    wanted = request.GET.get("cluster", "")
    if wanted.isdigit():
        initial["cluster"] = BuildCluster.objects.filter(pk=wanted).first()
    form = ProjectForm(request.POST or None, instance=Project(), initial=initial)
    page = {"title": _("Add project"), "cancel_url": reverse("builds:index")}
    return _edit(request, form, page, _project_url)


@operator_required
def project_edit(request, pk: int):
    project = get_object_or_404(Project, pk=pk)
    form = ProjectForm(request.POST or None, instance=fresh_copy(project))
    page = {
        "title": _("Edit project %(name)s") % {"name": project.name},
        "crumbs": [(project.name, _project_url(project))],
        "cancel_url": _project_url(project),
    }
    return _edit(request, form, page, _project_url)
