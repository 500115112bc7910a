"""Cross-cutting models: audit trail, API tokens, and shared bases."""

import hashlib
import secrets

from django.conf import settings
from django.db import models
from django.utils import timezone
from django.utils.translation import gettext_lazy as _


class TimeStamped(models.Model):
    created_at = models.DateTimeField(_("Created"), auto_now_add=True)
    updated_at = models.DateTimeField(_("Updated"), auto_now=True)

    class Meta:
        abstract = True


class RunRow(models.Model):
    """Who asked for a run (build, rollout) and when it was queued, started, ended."""

    requested_by = models.ForeignKey(
        settings.AUTH_USER_MODEL,
        null=True,
        blank=True,
        on_delete=models.SET_NULL,
        verbose_name=_("Requested by"),
    )
    created_at = models.DateTimeField(_("Created"), auto_now_add=True)
    started_at = models.DateTimeField(_("Started"), null=True, blank=True)
    finished_at = models.DateTimeField(_("Finished"), null=True, blank=True)

    class Meta:
        abstract = True


class Role(models.TextChoices):
    """Roles are ordered: each includes the rights of the ones before it."""

    VIEWER = "viewer", _("Viewer")  # reads everything but secrets
    OPERATOR = "operator", _("Operator")  # applies, builds, deploys
    ADMIN = "admin", _("Admin")  # manages hosts, secrets, users


ROLE_ORDER = [Role.VIEWER, Role.OPERATOR, Role.ADMIN]


class AuditEvent(models.Model):
    """One write by a person or token: who, what, when, which fields changed."""

    at = models.DateTimeField(_("Time"), default=timezone.now, db_index=True)
    actor = models.ForeignKey(
        settings.AUTH_USER_MODEL,
        null=True,
        blank=True,
        on_delete=models.SET_NULL,
        verbose_name=_("Actor"),
    )
    actor_name = models.CharField(_("Actor name"), max_length=150, blank=True)
    via = models.CharField(
        _("Via"), max_length=20, blank=True
    )  # ui | api | token | system
    action = models.CharField(
        _("Action"), max_length=40
    )  # create | update | delete | apply ...
    object_type = models.CharField(_("Object type"), max_length=60, db_index=True)
    object_id = models.CharField(_("Object ID"), max_length=64, blank=True)
    object_repr = models.CharField(_("Object"), max_length=200, blank=True)
    # Field names mapped to [old, new]; secret fields appear as "(changed)".
    changes = models.JSONField(_("Changes"), default=dict, blank=True)

    class Meta:
        verbose_name = _("audit event")
        verbose_name_plural = _("audit events")
        ordering = ["-at", "-id"]

    def __str__(self) -> str:
        return f"{self.actor_name} {self.action} {self.object_type} {self.object_repr}"


def hash_token(raw: str) -> str:
    return hashlib.sha256(raw.encode()).hexdigest()


class ApiToken(models.Model):
    """A bearer token; only its hash is stored and the raw value is shown once."""

    user = models.ForeignKey(
        settings.AUTH_USER_MODEL,
        on_delete=models.CASCADE,
        related_name="api_tokens",
        verbose_name=_("User"),
    )
    name = models.CharField(_("Name"), max_length=100)
    prefix = models.CharField(
        _("Prefix"), max_length=12
    )  # shown in lists to tell tokens apart
    token_hash = models.CharField(_("Token hash"), max_length=64, unique=True)
    created_at = models.DateTimeField(_("Created"), auto_now_add=True)
    last_used_at = models.DateTimeField(_("Last used"), null=True, blank=True)
    revoked_at = models.DateTimeField(_("Revoked"), null=True, blank=True)

    class Meta:
        verbose_name = _("API token")
        verbose_name_plural = _("API tokens")
        ordering = ["-created_at"]

    def __str__(self) -> str:
        return f"{self.name} ({self.prefix}…)"

    @staticmethod
    def new_raw() -> str:
        return "fy_" + secrets.token_urlsafe(32)

    @property
    def active(self) -> bool:
        return self.revoked_at is None
