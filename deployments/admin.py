"""Admin for services and rollouts (rollouts are run rows: read-only)."""

from django.contrib import admin

from controlplane.admin_base import FerryAdmin, ReadOnlyAdmin, register_remaining

from .models import Rollout, Service


@admin.register(Service)
class ServiceAdmin(FerryAdmin):
    list_display = ("name", "project", "image", "replicas", "port")
    search_fields = ("name", "image")
    filter_horizontal = ("regions",)


@admin.register(Rollout)
class RolloutAdmin(ReadOnlyAdmin):
    list_display = ("__str__", "status", "created_at", "finished_at")
    list_filter = ("status", "service")
    date_hierarchy = "created_at"


register_remaining("deployments")
