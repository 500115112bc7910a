"""Pages of the builds app."""

from django.urls import path

from . import views

app_name = "builds"
urlpatterns = [
    path("", views.index, name="index"),
    path("clusters/<int:pk>/", views.cluster_detail, name="cluster_detail"),
    path(
        "clusters/<int:pk>/provision/",
        views.cluster_provision,
        name="cluster_provision",
    ),
    path("projects/<int:pk>/", views.project_detail, name="project_detail"),
    path("projects/<int:pk>/build/", views.project_build, name="project_build"),
    path("<uuid:pk>/", views.build_detail, name="build_detail"),
    path("<uuid:pk>/log.txt", views.build_log, name="build_log"),
    path("<uuid:pk>/cancel/", views.build_cancel, name="build_cancel"),
]
