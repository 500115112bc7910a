"""Services and the rollouts that move them to a new image."""

import uuid

from django.db import models
from django.utils.translation import gettext_lazy as _

from controlplane.models import RunRow, TimeStamped
from regions.models import Region


class Service(TimeStamped):
    name = models.SlugField(_("Name"), max_length=100, unique=True)
    project = models.ForeignKey(
        "builds.Project",
        null=True,
        blank=True,
        on_delete=models.SET_NULL,
        verbose_name=_("Project"),
    )
    regions = models.ManyToManyField(
        Region, related_name="services", blank=True, verbose_name=_("Regions")
    )
    image = models.CharField(_("Image"), max_length=300, blank=True)
    replicas = models.PositiveIntegerField(_("Replicas"), default=2)
    port = models.PositiveIntegerField(_("Port"), default=8080)
    health_path = models.CharField(_("Health check path"), max_length=200, default="/")

    class Meta:
        verbose_name = _("service")
        verbose_name_plural = _("services")
        ordering = ["name"]

    def __str__(self) -> str:
        return self.name


class RolloutStatus(models.TextChoices):
    PENDING = "pending", _("Pending")  # created, not started
    RUNNING = "running", _("Running")  # replacing replicas batch by batch
    SUCCEEDED = "succeeded", _("Succeeded")  # every replica passed its health check
    FAILED = "failed", _("Failed")  # a health gate or deadline failed
    ROLLED_BACK = "rolled_back", _("Rolled back")  # previous replicas restored


ROLLOUT_ACTIVE_STATES = {RolloutStatus.PENDING, RolloutStatus.RUNNING}
ROLLOUT_TERMINAL_STATES = {
    RolloutStatus.SUCCEEDED,
    RolloutStatus.FAILED,
    RolloutStatus.ROLLED_BACK,
}


class Rollout(RunRow):
    id = models.UUIDField(_("ID"), primary_key=True, default=uuid.uuid4)
    # PROTECT: deleting a service must not erase its rollout history.
    service = models.ForeignKey(
        Service,
        on_delete=models.PROTECT,
        related_name="rollouts",
        verbose_name=_("Service"),
    )
    image = models.CharField(_("Image"), max_length=300)
    status = models.CharField(
        _("Status"),
        max_length=20,
        choices=RolloutStatus.choices,
        default=RolloutStatus.PENDING,
    )
    progress = models.JSONField(_("Progress"), default=dict, blank=True)
    log = models.TextField(_("Log"), blank=True)

    class Meta:
        verbose_name = _("rollout")
        verbose_name_plural = _("rollouts")
        ordering = ["-created_at"]

    def __str__(self) -> str:
        return f"{self.service.name} → {self.image}"
