"""Pages of the builds app."""

from django.urls import path
from django.views.decorators.http import require_safe

from . import edit_views, views

app_name = "builds"
# Read-only pages answer GET and HEAD only (405 otherwise).
urlpatterns = [
    path("", require_safe(views.index), name="index"),
    path("clusters/new/", edit_views.cluster_create, name="cluster_create"),
    path(
        "clusters/<int:pk>/", require_safe(views.cluster_detail), name="cluster_detail"
    ),
    path("clusters/<int:pk>/edit/", edit_views.cluster_edit, name="cluster_edit"),
    path("clusters/<int:pk>/agents/new/", edit_views.agent_create, name="agent_create"),
    path("agents/<int:pk>/edit/", edit_views.agent_edit, name="agent_edit"),
    path("agents/<int:pk>/delete/", edit_views.agent_delete, name="agent_delete"),
    path("projects/new/", edit_views.project_create, name="project_create"),
    path(
        "clusters/<int:pk>/provision/",
        views.cluster_provision,
        name="cluster_provision",
    ),
    path(
        "projects/<int:pk>/", require_safe(views.project_detail), name="project_detail"
    ),
    path("projects/<int:pk>/edit/", edit_views.project_edit, name="project_edit"),
    path("projects/<int:pk>/build/", views.project_build, name="project_build"),
    path("<uuid:pk>/", require_safe(views.build_detail), name="build_detail"),
    path("<uuid:pk>/log.txt", require_safe(views.build_log), name="build_log"),
    path("<uuid:pk>/cancel/", views.build_cancel, name="build_cancel"),
]
