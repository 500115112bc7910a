"""App config: the name the admin shows for this app; its system checks."""

from django.apps import AppConfig
from django.utils.translation import gettext_lazy as _


class ControlPlaneConfig(AppConfig):
    default_auto_field = "django.db.models.BigAutoField"
    name = "controlplane"
    verbose_name = _("Control plane")

    def ready(self):
        from . import checks  # noqa: F401 - registers the system checks
