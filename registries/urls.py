"""Pages of the registries app, and the notification endpoint."""

from django.urls import path
from django.views.decorators.http import require_safe

from . import views

app_name = "registries"
# Read-only pages answer GET and HEAD only (405 otherwise).
urlpatterns = [
    path("", require_safe(views.registry_list), name="registry_list"),
    path("new/", views.registry_create, name="registry_create"),
    path("<int:pk>/", require_safe(views.registry_detail), name="registry_detail"),
    path("<int:pk>/edit/", views.registry_edit, name="registry_edit"),
    path("<int:pk>/delete/", views.registry_delete, name="registry_delete"),
    path("<int:pk>/apply/", views.registry_apply, name="registry_apply"),
    path("<int:pk>/prewarm/", views.registry_prewarm, name="registry_prewarm"),
    path(
        "<int:pk>/rotate-password/",
        views.registry_rotate_password,
        name="registry_rotate_password",
    ),
    path(
        "<int:pk>/export/", require_safe(views.registry_export), name="registry_export"
    ),
    path("stores/new/", views.store_create, name="store_create"),
    path("stores/<int:pk>/", views.store_edit, name="store_edit"),
    path("stores/<int:pk>/delete/", views.store_delete, name="store_delete"),
    path("notify/<int:registry_id>/", views.notify, name="notifications"),
]
