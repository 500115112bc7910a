"""Pages of the registries app, and the notification endpoint."""

from django.urls import path

from . import views

app_name = "registries"
urlpatterns = [
    path("notify/<int:registry_id>/", views.notify, name="notifications"),
]
