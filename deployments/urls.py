"""Pages of the deployments app."""

from django.urls import path  # noqa: F401

app_name = "deployments"
urlpatterns: list = []
