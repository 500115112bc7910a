"""Pages of the builds app."""

from django.urls import path  # noqa: F401

app_name = "builds"
urlpatterns: list = []
