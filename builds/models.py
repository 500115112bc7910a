"""Build clusters, their agents, projects and the builds run for them."""

from django.conf import settings
from django.db import models
from django.utils.translation import gettext_lazy as _

from controlplane.fields import EncryptedTextField
from controlplane.models import TimeStamped
from regions.models import DockerHost, Region


class BuildCluster(TimeStamped):
    class Executor(models.TextChoices):
        JENKINS = "jenkins", _("Jenkins")
        DOCKER = "docker", _("Docker")

    region = models.ForeignKey(Region, on_delete=models.PROTECT, related_name="clusters")
    host = models.ForeignKey(DockerHost, on_delete=models.PROTECT, related_name="clusters")
    name = models.CharField(max_length=100)
    executor = models.CharField(
        max_length=10, choices=Executor.choices, default=Executor.DOCKER
    )
    registry = models.ForeignKey(
        "registries.Registry",
        null=True,
        blank=True,
        on_delete=models.SET_NULL,
        related_name="clusters",
        help_text=_("Private registry that builds push to."),
    )
    jenkins_url = models.URLField(blank=True)
    jenkins_username = models.CharField(max_length=150, blank=True)
    jenkins_token = EncryptedTextField()
    status = models.CharField(max_length=20, default="pending")
    last_error = models.TextField(blank=True)

    class Meta:
        ordering = ["region__slug", "name"]
        constraints = [
            models.UniqueConstraint(fields=["region", "name"], name="cluster_name_per_region")
        ]

    def __str__(self) -> str:
        return f"{self.region.slug}/{self.name}"


class BuildAgent(TimeStamped):
    cluster = models.ForeignKey(BuildCluster, on_delete=models.CASCADE, related_name="agents")
    kind = models.CharField(max_length=30, default="java")  # java | node | ...
    image = models.CharField(max_length=200)
    # Container paths to keep in named volumes, e.g. ["/root/.m2"].
    cache_paths = models.JSONField(default=list, blank=True)
    settings_xml = EncryptedTextField(help_text=_("Private Maven settings.xml"))
    concurrency = models.PositiveIntegerField(default=1)

    class Meta:
        ordering = ["cluster", "kind"]
        constraints = [
            models.UniqueConstraint(fields=["cluster", "kind"], name="agent_kind_per_cluster")
        ]

    def __str__(self) -> str:
        return f"{self.cluster}/{self.kind}"


class Project(TimeStamped):
    cluster = models.ForeignKey(BuildCluster, on_delete=models.PROTECT, related_name="projects")
    agent_kind = models.CharField(max_length=30, default="java")
    name = models.SlugField(max_length=100, unique=True)
    git_url = models.CharField(max_length=500)
    default_ref = models.CharField(max_length=200, default="main")
    dockerfile = models.CharField(max_length=200, default="Dockerfile")
    # Shell command run in the agent's builder container before `docker build`.
    dependency_command = models.TextField(blank=True)
    image_repository = models.CharField(max_length=200, help_text=_("e.g. team/api"))

    class Meta:
        ordering = ["name"]

    def __str__(self) -> str:
        return self.name


class BuildStatus(models.TextChoices):
    QUEUED = "queued", _("Queued")  # waiting for an agent slot
    RUNNING = "running", _("Running")  # an executor is working on it
    SUCCEEDED = "succeeded", _("Succeeded")  # image pushed, digest recorded
    FAILED = "failed", _("Failed")  # a phase failed; see failure_line
    CANCELLED = "cancelled", _("Cancelled")  # stopped by a person


BUILD_ACTIVE_STATES = {BuildStatus.QUEUED, BuildStatus.RUNNING}
BUILD_TERMINAL_STATES = {BuildStatus.SUCCEEDED, BuildStatus.FAILED, BuildStatus.CANCELLED}


class Build(models.Model):
    id = models.UUIDField(primary_key=True)
    project = models.ForeignKey(Project, on_delete=models.CASCADE, related_name="builds")
    number = models.PositiveIntegerField()
    ref = models.CharField(max_length=200)
    commit = models.CharField(max_length=64, blank=True)
    status = models.CharField(
        max_length=20, choices=BuildStatus.choices, default=BuildStatus.QUEUED
    )
    requested_by = models.ForeignKey(
        settings.AUTH_USER_MODEL, null=True, blank=True, on_delete=models.SET_NULL
    )
    created_at = models.DateTimeField(auto_now_add=True)
    started_at = models.DateTimeField(null=True, blank=True)
    finished_at = models.DateTimeField(null=True, blank=True)
    # Seconds per phase: queue, source, dependencies, build, push.
    timings = models.JSONField(default=dict, blank=True)
    cache = models.JSONField(default=dict, blank=True)  # sizes before/after, warm
    image = models.CharField(max_length=300, blank=True)
    image_digest = models.CharField(max_length=100, blank=True)
    log = models.TextField(blank=True)
    failure_line = models.TextField(blank=True)
    external_id = models.CharField(max_length=100, blank=True)  # Jenkins build no.

    class Meta:
        ordering = ["-created_at"]
        constraints = [
            models.UniqueConstraint(fields=["project", "number"], name="build_number")
        ]

    def __str__(self) -> str:
        return f"{self.project.name}#{self.number}"
