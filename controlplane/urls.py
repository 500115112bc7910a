"""URL map: pages per app, the API under /api/v1/, admin and i18n."""

from django.contrib import admin
from django.urls import include, path
from drf_spectacular.views import SpectacularAPIView, SpectacularSwaggerView

from .api_router import router

urlpatterns = [
    path("", include("regions.urls")),
    path("", include("controlplane.page_urls")),
    path("registries/", include("registries.urls")),
    path("builds/", include("builds.urls")),
    path("deployments/", include("deployments.urls")),
    path("admin/", admin.site.urls),
    path("i18n/", include("django.conf.urls.i18n")),
    path("api/v1/schema/", SpectacularAPIView.as_view(), name="api-schema"),
    path(
        "api/v1/docs/",
        SpectacularSwaggerView.as_view(url_name="api-schema"),
        name="api-docs",
    ),
    path("api/v1/", include(router.urls)),
]
