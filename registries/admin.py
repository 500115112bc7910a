"""Admin for object stores, registries and their users (secrets stay hidden)."""

from django.contrib import admin

from controlplane.admin_base import (
    FerryAdmin,
    FerryInline,
    ReadOnlyAdmin,
    register_remaining,
)

from .models import ObjectStore, Registry, RegistryEvent, RegistrySample, RegistryUser


@admin.register(ObjectStore)
class ObjectStoreAdmin(FerryAdmin):
    list_display = ("name", "region", "kind", "endpoint", "bucket")
    list_filter = ("kind", "region")
    search_fields = ("name", "bucket", "endpoint")


class RegistryUserInline(FerryInline):
    model = RegistryUser


@admin.register(Registry)
class RegistryAdmin(FerryAdmin):
    list_display = ("name", "region", "kind", "host", "status", "last_applied_at")
    list_filter = ("kind", "status", "region")
    search_fields = ("name", "public_hostname", "upstream_url")
    readonly_fields = ("status", "config_hash", "last_applied_at", "last_error")
    inlines = (RegistryUserInline,)


@admin.register(RegistryUser)
class RegistryUserAdmin(FerryAdmin):
    list_display = ("username", "registry")
    search_fields = ("username",)


@admin.register(RegistrySample)
class RegistrySampleAdmin(ReadOnlyAdmin):
    list_display = (
        "registry",
        "sampled_at",
        "requests",
        "hits",
        "misses",
        "bytes_upstream",
    )
    list_filter = ("registry",)
    date_hierarchy = "sampled_at"


@admin.register(RegistryEvent)
class RegistryEventAdmin(ReadOnlyAdmin):
    list_display = ("registry", "at", "action", "repository", "tag", "size")
    list_filter = ("action", "registry")
    search_fields = ("repository", "tag", "digest")


register_remaining("registries")
