"""Regions and the Docker hosts in them."""

from django.db import models
from django.utils.translation import gettext_lazy as _

from controlplane.fields import EncryptedTextField
from controlplane.models import TimeStamped


class Region(TimeStamped):
    class Role(models.TextChoices):
        HOME = "home", _("Home")  # where images are built and the upstream lives
        EDGE = "edge", _("Edge")  # serves users; mirrors the home registry

    slug = models.SlugField(
        _("Slug"), max_length=50, unique=True, help_text=_("e.g. cn-hongkong")
    )
    name = models.CharField(_("Name"), max_length=100)
    provider = models.CharField(
        _("Provider"), max_length=50, blank=True, default="aliyun"
    )
    role = models.CharField(
        _("Role"), max_length=10, choices=Role.choices, default=Role.EDGE
    )

    class Meta:
        verbose_name = _("region")
        verbose_name_plural = _("regions")
        ordering = ["slug"]

    def __str__(self) -> str:
        return self.slug


class HostStatus(models.TextChoices):
    UNKNOWN = "unknown", _("Unknown")  # never checked yet
    UP = "up", _("Up")  # last check reached the engine
    UNREACHABLE = "unreachable", _("Unreachable")  # last check failed; see last_error


class DockerHost(TimeStamped):
    class HostRole(models.TextChoices):
        REGISTRY = "registry", _("Registry")
        BUILD = "build", _("Build")
        APP = "app", _("App")

    region = models.ForeignKey(
        Region, on_delete=models.PROTECT, related_name="hosts", verbose_name=_("Region")
    )
    name = models.CharField(_("Name"), max_length=100)
    docker_url = models.CharField(
        _("Docker URL"),
        max_length=300,
        help_text=_("unix:///var/run/docker.sock, tcp://h:2376, ssh://u@h"),
    )
    roles = models.JSONField(_("Roles"), default=list, blank=True)
    # Client TLS for tcp:// engines; the key is a secret.
    tls_ca_cert = models.TextField(_("TLS CA certificate"), blank=True)
    tls_client_cert = models.TextField(_("TLS client certificate"), blank=True)
    tls_client_key = EncryptedTextField(_("TLS client key"))
    # ssh:// engines: the key Ferry logs in with (a secret), and the host key
    # the server must present ("ssh-ed25519 AAAA..."). Left blank, the key
    # seen on the first successful check is recorded (trust on first use)
    # and any other key is refused from then on.
    ssh_private_key = EncryptedTextField(_("SSH private key"))
    ssh_known_host_key = models.TextField(
        _("SSH host key"),
        blank=True,
        help_text=_(
            "The SSH server's public host key, e.g. the line in "
            "/etc/ssh/ssh_host_ed25519_key.pub. Blank: trusted and recorded on "
            "the first successful check."
        ),
    )

    status = models.CharField(
        _("Status"),
        max_length=20,
        choices=HostStatus.choices,
        default=HostStatus.UNKNOWN,
    )
    engine_version = models.CharField(_("Engine version"), max_length=50, blank=True)
    container_count = models.IntegerField(_("Containers"), null=True, blank=True)
    last_seen = models.DateTimeField(_("Last seen"), null=True, blank=True)
    last_checked = models.DateTimeField(_("Last checked"), null=True, blank=True)
    last_error = models.TextField(_("Last error"), blank=True)

    class Meta:
        verbose_name = _("Docker host")
        verbose_name_plural = _("Docker hosts")
        ordering = ["region__slug", "name"]
        constraints = [
            models.UniqueConstraint(
                fields=["region", "name"], name="host_name_per_region"
            )
        ]

    def __str__(self) -> str:
        return f"{self.region.slug}/{self.name}"
