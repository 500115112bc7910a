"""App config: the name the admin shows for this app."""

from django.apps import AppConfig
from django.utils.translation import gettext_lazy as _


class BuildsConfig(AppConfig):
    default_auto_field = "django.db.models.BigAutoField"
    name = "builds"
    verbose_name = _("Builds")
