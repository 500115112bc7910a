"""Admin for regions and Docker hosts (the host's TLS key stays hidden)."""

from django.contrib import admin

from controlplane.admin_base import FerryAdmin, register_remaining

from .models import DockerHost, Region


@admin.register(Region)
class RegionAdmin(FerryAdmin):
    list_display = ("slug", "name", "provider", "role")
    list_filter = ("role", "provider")
    search_fields = ("slug", "name")


@admin.register(DockerHost)
class DockerHostAdmin(FerryAdmin):
    list_display = (
        "name",
        "region",
        "docker_url",
        "status",
        "engine_version",
        "last_seen",
    )
    list_filter = ("status", "region")
    search_fields = ("name", "docker_url")
    readonly_fields = (
        "status",
        "engine_version",
        "container_count",
        "last_seen",
        "last_checked",
        "last_error",
    )


register_remaining("regions")
