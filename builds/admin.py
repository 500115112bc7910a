"""Admin for build clusters, agents, projects and builds (secrets hidden).

Builds are run rows written by the executors, so they are read-only here.
"""

from django.contrib import admin

from controlplane.admin_base import (
    FerryAdmin,
    FerryInline,
    ReadOnlyAdmin,
    register_remaining,
)

from .models import Build, BuildAgent, BuildCluster, Project


class BuildAgentInline(FerryInline):
    model = BuildAgent


@admin.register(BuildCluster)
class BuildClusterAdmin(FerryAdmin):
    list_display = ("name", "region", "host", "executor", "status")
    list_filter = ("executor", "status", "region")
    search_fields = ("name",)
    inlines = (BuildAgentInline,)


@admin.register(BuildAgent)
class BuildAgentAdmin(FerryAdmin):
    list_display = ("cluster", "kind", "image", "concurrency")
    list_filter = ("kind",)


@admin.register(Project)
class ProjectAdmin(FerryAdmin):
    list_display = ("name", "cluster", "agent_kind", "git_url", "image_repository")
    search_fields = ("name", "git_url", "image_repository")


@admin.register(Build)
class BuildAdmin(ReadOnlyAdmin):
    list_display = (
        "__str__",
        "status",
        "ref",
        "created_at",
        "finished_at",
        "image_digest",
    )
    list_filter = ("status", "project")
    search_fields = ("project__name", "ref", "commit", "image_digest")
    date_hierarchy = "created_at"


register_remaining("builds")
