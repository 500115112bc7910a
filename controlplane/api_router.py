"""One DRF router; each app's `api.register(router)` adds its viewsets."""

from importlib import import_module

from rest_framework.routers import DefaultRouter

router = DefaultRouter()
for app in (
    "controlplane.api_views",
    "regions.api",
    "registries.api",
    "builds.api",
    "deployments.api",
):
    import_module(app).register(router)
