"""Object stores and the registries (mirror | private) that share them."""

from django.db import models
from django.utils.translation import gettext_lazy as _

from controlplane.fields import EncryptedTextField, URLField
from controlplane.models import TimeStamped
from regions.models import DockerHost, Region


class ObjectStore(TimeStamped):
    class Kind(models.TextChoices):
        OSS = "oss", _("Aliyun OSS")
        S3 = "s3", _("S3-compatible")
        FILESYSTEM = "filesystem", _("Filesystem on the host")

    region = models.ForeignKey(
        Region,
        on_delete=models.PROTECT,
        related_name="stores",
        verbose_name=_("Region"),
    )
    name = models.CharField(_("Name"), max_length=100)
    kind = models.CharField(
        _("Kind"), max_length=20, choices=Kind.choices, default=Kind.S3
    )
    endpoint = models.CharField(_("Endpoint"), max_length=300, blank=True)
    internal_endpoint = models.BooleanField(_("Internal (VPC) endpoint"), default=False)
    bucket = models.CharField(_("Bucket"), max_length=100, blank=True)
    s3_region = models.CharField(
        _("S3 region"), max_length=50, blank=True, default="us-east-1"
    )
    root_directory = models.CharField(
        _("Root directory"), max_length=300, blank=True, default="/registry"
    )
    access_key_id = models.CharField(_("Access key ID"), max_length=200, blank=True)
    secret_access_key = EncryptedTextField(_("Secret access key"))
    # The registry `http.secret` shared by every registry on this store (the
    # site: mirror + private), so upload state and redirects verify on both.
    # Generated on first apply; Registry.http_secret is not used for this.
    http_secret = EncryptedTextField(_("HTTP secret"))

    class Meta:
        verbose_name = _("object store")
        verbose_name_plural = _("object stores")
        ordering = ["region__slug", "name"]
        constraints = [
            models.UniqueConstraint(
                fields=["region", "name"], name="store_name_per_region"
            )
        ]

    def __str__(self) -> str:
        return f"{self.region.slug}/{self.name}"


class RegistryStatus(models.TextChoices):
    PENDING = "pending", _("Pending")  # saved, never applied
    APPLYING = "applying", _("Applying")  # an apply is running now
    HEALTHY = "healthy", _("Healthy")  # last health check passed
    DEGRADED = "degraded", _("Degraded")  # running, some check failed
    FAILED = "failed", _("Failed")  # apply failed; see last_error


# Pages poll a registry's status only while an apply is running; every other
# state is where an apply (or a health check) left it.
REGISTRY_ACTIVE_STATES = {RegistryStatus.APPLYING}
REGISTRY_TERMINAL_STATES = {
    RegistryStatus.PENDING,
    RegistryStatus.HEALTHY,
    RegistryStatus.DEGRADED,
    RegistryStatus.FAILED,
}


class Registry(TimeStamped):
    class Kind(models.TextChoices):
        MIRROR = "mirror", _("Mirror")  # pull-through proxy behind nginx
        PRIVATE = "private", _("Private")  # push registry on loopback

    region = models.ForeignKey(
        Region,
        on_delete=models.PROTECT,
        related_name="registries",
        verbose_name=_("Region"),
    )
    host = models.ForeignKey(
        DockerHost,
        on_delete=models.PROTECT,
        related_name="registries",
        verbose_name=_("Docker host"),
    )
    name = models.CharField(_("Name"), max_length=100)
    kind = models.CharField(
        _("Kind"), max_length=10, choices=Kind.choices, default=Kind.MIRROR
    )
    store = models.ForeignKey(
        ObjectStore,
        on_delete=models.PROTECT,
        related_name="registries",
        verbose_name=_("Object store"),
    )
    image = models.CharField(
        _("Registry image"), max_length=200, blank=True
    )  # empty: the setting
    upstream_url = URLField(_("Upstream URL"), max_length=300, blank=True)
    upstream_username = models.CharField(
        _("Upstream username"), max_length=150, blank=True
    )
    upstream_password = EncryptedTextField(_("Upstream password"))
    listen_address = models.CharField(
        _("Listen address"), max_length=100, default="127.0.0.1"
    )
    port = models.PositiveIntegerField(
        _("Registry port"), default=5000
    )  # the registry's own port
    https_port = models.PositiveIntegerField(
        _("HTTPS port (nginx)"), null=True, blank=True
    )  # nginx, mirrors
    public_hostname = models.CharField(
        _("Public host name"), max_length=200, blank=True
    )
    tls_certificate = models.TextField(_("TLS certificate (PEM)"), blank=True)
    tls_private_key = EncryptedTextField(_("TLS private key (PEM)"))
    tls_expires_at = models.DateTimeField(
        _("TLS certificate expires"), null=True, blank=True
    )
    http_secret = EncryptedTextField(_("HTTP secret"))
    require_auth = models.BooleanField(_("Require authentication"), default=True)
    # Loopback port of the registry's debug/metrics listener.
    debug_port = models.PositiveIntegerField(_("Debug port"), null=True, blank=True)
    # Upstream gateway between a mirror and its upstream (issue: cross-region
    # bytes). Its log is the ground truth for bytes and misses upstream.
    gateway_enabled = models.BooleanField(
        _("Cache in the upstream gateway"), default=True
    )
    gateway_port = models.PositiveIntegerField(_("Gateway port"), null=True, blank=True)
    gateway_cache_max_mb = models.PositiveIntegerField(
        _("Gateway cache size (MB)"), default=10240
    )
    # Registry notifications to Ferry carry this bearer token.
    notify_token = EncryptedTextField(_("Notification token"))

    status = models.CharField(
        _("Status"),
        max_length=20,
        choices=RegistryStatus.choices,
        default=RegistryStatus.PENDING,
    )
    config_hash = models.CharField(_("Config hash"), max_length=64, blank=True)
    last_applied_at = models.DateTimeField(_("Last applied"), null=True, blank=True)
    last_error = models.TextField(_("Last error"), blank=True)
    # Last health check: {"checked_at", "ok", "checks": {name: {"ok", "detail"}},
    # "cert_days_left"}; see registries/health.py.
    health = models.JSONField(_("Health"), default=dict, blank=True)
    last_checked_at = models.DateTimeField(_("Last checked"), null=True, blank=True)
    # Per-registry apply lease (compare-and-set), so two applies never fight,
    # across web and worker processes and on every database backend.
    apply_lock = models.CharField(_("Apply lock"), max_length=64, blank=True)
    apply_lock_expires_at = models.DateTimeField(
        _("Apply lock expires"), null=True, blank=True
    )

    class Meta:
        verbose_name = _("registry")
        verbose_name_plural = _("registries")
        ordering = ["region__slug", "name"]
        constraints = [
            models.UniqueConstraint(
                fields=["region", "name"], name="registry_name_per_region"
            )
        ]

    def __str__(self) -> str:
        return f"{self.region.slug}/{self.name}"


class RegistryUser(models.Model):
    """An htpasswd entry; the password is kept encrypted to re-render bcrypt."""

    registry = models.ForeignKey(
        Registry,
        on_delete=models.CASCADE,
        related_name="users",
        verbose_name=_("Registry"),
    )
    username = models.CharField(_("Username"), max_length=100)
    password = EncryptedTextField(_("Password"))

    class Meta:
        verbose_name = _("registry user")
        verbose_name_plural = _("registry users")
        ordering = ["username"]
        constraints = [
            models.UniqueConstraint(
                fields=["registry", "username"], name="user_per_registry"
            )
        ]

    def __str__(self) -> str:
        return self.username


class RegistrySample(models.Model):
    """Counters of one sampling interval (not cumulative), from ground truth.

    requests/hits/misses count blob GETs; bytes_upstream is what really crossed
    from the upstream, bytes_served what clients really received.
    """

    registry = models.ForeignKey(
        Registry,
        on_delete=models.CASCADE,
        related_name="samples",
        verbose_name=_("Registry"),
    )
    sampled_at = models.DateTimeField(_("Sampled at"), db_index=True)
    requests = models.BigIntegerField(_("Requests"), default=0)
    hits = models.BigIntegerField(_("Hits"), default=0)
    misses = models.BigIntegerField(_("Misses"), default=0)
    bytes_upstream = models.BigIntegerField(_("Bytes from upstream"), default=0)
    bytes_served = models.BigIntegerField(_("Bytes served"), default=0)
    upstream_requests = models.BigIntegerField(_("Upstream requests"), default=0)
    # Sizes of the distinct blobs that missed, each once: amplification's
    # denominator (bytes_upstream / bytes_missed).
    bytes_missed = models.BigIntegerField(_("Bytes missed"), default=0)
    # bytes_upstream split by repository ({"team/app": bytes}, from the
    # gateway's log): which images cost cross-region traffic.
    upstream_by_repository = models.JSONField(
        _("Bytes from upstream by repository"), default=dict, blank=True
    )
    # Gauges at sampling time.
    storage_bytes = models.BigIntegerField(_("Storage bytes"), null=True, blank=True)
    object_count = models.BigIntegerField(_("Objects"), null=True, blank=True)
    abandoned_upload_bytes = models.BigIntegerField(
        _("Abandoned upload bytes"), null=True, blank=True
    )
    gateway_cache_bytes = models.BigIntegerField(
        _("Gateway cache bytes"), null=True, blank=True
    )
    # The upstream gateway at sampling time: its container running (None: not
    # a mirror or not known), and the last error it logged in the interval
    # (nginx error log or a 5xx answer; query strings cut, so no presigned
    # signatures) with its time.
    gateway_running = models.BooleanField(_("Gateway running"), null=True, blank=True)
    gateway_error = models.TextField(_("Gateway error"), blank=True)
    gateway_error_at = models.DateTimeField(
        _("Gateway error at"), null=True, blank=True
    )

    class Meta:
        verbose_name = _("registry sample")
        verbose_name_plural = _("registry samples")
        ordering = ["-sampled_at"]
        get_latest_by = "sampled_at"

    def __str__(self) -> str:
        return f"{self.registry_id} @ {self.sampled_at:%Y-%m-%d %H:%M:%S}"


class RegistryEvent(models.Model):
    """A push or pull the registry reported through its notifications."""

    registry = models.ForeignKey(
        Registry,
        on_delete=models.CASCADE,
        related_name="events",
        verbose_name=_("Registry"),
    )
    event_id = models.CharField(_("Event ID"), max_length=100)
    at = models.DateTimeField(_("Time"), db_index=True)
    action = models.CharField(_("Action"), max_length=20)  # push | pull | delete
    repository = models.CharField(_("Repository"), max_length=300, db_index=True)
    tag = models.CharField(_("Tag"), max_length=200, blank=True)
    digest = models.CharField(_("Digest"), max_length=100, blank=True)
    media_type = models.CharField(_("Media type"), max_length=200, blank=True)
    size = models.BigIntegerField(_("Size"), null=True, blank=True)
    actor = models.CharField(_("Actor"), max_length=150, blank=True)

    class Meta:
        verbose_name = _("registry event")
        verbose_name_plural = _("registry events")
        ordering = ["-at"]
        constraints = [
            models.UniqueConstraint(fields=["registry", "event_id"], name="event_once")
        ]

    def __str__(self) -> str:
        return f"{self.action} {self.repository}:{self.tag or self.digest}"
