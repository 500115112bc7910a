"""Pages of the regions app: overview, hosts, region forms."""

from django.urls import path
from django.views.decorators.http import require_safe

from . import views

app_name = "regions"
# Read-only pages answer GET and HEAD only (405 otherwise).
urlpatterns = [
    path("", require_safe(views.overview), name="overview"),
    path("hosts/", require_safe(views.host_list), name="host_list"),
    path("hosts/new/", views.host_create, name="host_create"),
    path("hosts/<int:pk>/", require_safe(views.host_detail), name="host_detail"),
    path("hosts/<int:pk>/edit/", views.host_edit, name="host_edit"),
    path("hosts/<int:pk>/check/", views.host_check, name="host_check"),
    path("hosts/<int:pk>/delete/", views.host_delete, name="host_delete"),
    path("regions/new/", views.region_create, name="region_create"),
    path("regions/<slug:slug>/edit/", views.region_edit, name="region_edit"),
    path("regions/<slug:slug>/delete/", views.region_delete, name="region_delete"),
]
