"""Build clusters, their agents, projects and the builds run for them."""

import re
from urllib.parse import urlsplit

from django.core.exceptions import ValidationError
from django.core.validators import MinValueValidator, RegexValidator
from django.db import models
from django.utils.translation import gettext_lazy as _

from controlplane.fields import EncryptedTextField, URLField
from controlplane.models import RunRow, TimeStamped
from regions.models import DockerHost, Region


class ClusterStatus(models.TextChoices):
    PENDING = "pending", _("Pending")  # saved, never provisioned
    PROVISIONING = "provisioning", _("Provisioning")  # provision task running
    READY = "ready", _("Ready")  # last provision succeeded
    FAILED = "failed", _("Failed")  # last provision failed; see last_error


CLUSTER_ACTIVE_STATES = {ClusterStatus.PROVISIONING}
CLUSTER_TERMINAL_STATES = {
    ClusterStatus.PENDING,
    ClusterStatus.READY,
    ClusterStatus.FAILED,
}


# Kinds every new cluster gets, with the image and caches of a plain agent.
DEFAULT_AGENTS = {
    "java": {"image": "maven:3-eclipse-temurin-21", "cache_paths": ["/root/.m2"]},
    "node": {"image": "node:22", "cache_paths": ["/root/.npm"]},
}
# A Jenkins agent container runs the inbound agent (its entrypoint takes the
# master URL, secret and node name): plain maven/node images cannot connect.
# New Jenkins clusters start from the official inbound agent; teams add their
# tools in an image built FROM it.
JENKINS_AGENT_IMAGE = "jenkins/inbound-agent:latest-jdk21"
DEFAULT_JENKINS_AGENTS = {
    kind: {**spec, "image": JENKINS_AGENT_IMAGE}
    for kind, spec in DEFAULT_AGENTS.items()
}
# Repository names of inbound agent images: jenkins/inbound-agent,
# jenkins/jnlp-slave, team/maven-inbound-agent...
INBOUND_AGENT_RE = re.compile(r"(?:^|[/._-])(?:inbound-agent|jnlp)")

IMAGE_REPOSITORY_RE = re.compile(
    r"^[a-z0-9]+(?:[._-][a-z0-9]+)*(?:/[a-z0-9]+(?:[._-][a-z0-9]+)*)*$"
)
# Git refs: branch, tag or commit; no spaces, no "..", no option-like "-x".
GIT_REF_RE = re.compile(r"^(?!-)(?!.*\.\.)[A-Za-z0-9._/@+-]{1,200}$")
# scp-like git address: user@host:path
SCP_GIT_RE = re.compile(r"^[A-Za-z0-9._-]+@[A-Za-z0-9.-]+:[^/\s-][^\s]*$")
validate_kind = RegexValidator(
    r"^[a-z][a-z0-9-]{0,29}$",
    _("Use lowercase letters, digits and dashes, starting with a letter."),
)


def validate_image_repository(value: str) -> None:
    if not IMAGE_REPOSITORY_RE.match(value or ""):
        raise ValidationError(
            _("Use a lowercase repository path such as team/api (no host, no tag).")
        )


def validate_dockerfile(value: str) -> None:
    parts = (value or "").split("/")
    if not value or value.startswith("/") or ".." in parts:
        raise ValidationError(
            _(
                "Give a path inside the repository, such as Dockerfile or "
                "docker/app.Dockerfile."
            )
        )


def validate_git_ref(value: str) -> None:
    if not GIT_REF_RE.match(value or ""):
        raise ValidationError(
            _("Give a branch, tag or commit (letters, digits, . _ / - @ +).")
        )


def validate_git_url(value: str) -> None:
    """https/http/ssh/git URLs, scp-like user@host:path, or file:///path.

    Nothing else: git would also run "ext::" transports (commands) and take
    a leading "-" as an option.
    """
    value = value or ""
    if url_has_credentials(value):
        raise ValidationError(
            _(
                "Remove the credentials from the git URL: it is shown to "
                "viewers, stored in audit events and printed in build logs. "
                "Use an ssh:// URL with a key the worker has instead."
            )
        )
    if not any(ch.isspace() for ch in value) and _git_url_ok(value):
        return
    raise ValidationError(
        _(
            "Give a git URL such as https://git.example.com/team/app.git, "
            "ssh://git@host/team/app.git, git@host:team/app.git or "
            "file:///srv/git/app.git."
        )
    )


def url_has_credentials(value: str) -> bool:
    """True when a URL carries a secret in its user part: a password
    (user:password@), or any user over http(s)/git (https://token@host/).

    A user alone is fine for ssh (ssh://git@host/..., git@host:path): it is
    the login name, the key stays with the worker.
    """
    try:
        parts = urlsplit(value or "")
        password = parts.password
    except ValueError:  # e.g. a port that is not a number
        return False
    if "@" not in parts.netloc:
        return False
    return password is not None or parts.scheme.lower() != "ssh"


def validate_jenkins_url(value: str) -> None:
    if url_has_credentials(value):
        raise ValidationError(
            _(
                "Remove the credentials from the Jenkins URL: viewers see it "
                "and it appears in error messages. Give the Jenkins user and "
                "API token in their own fields."
            )
        )


def _git_url_ok(value: str) -> bool:
    if SCP_GIT_RE.match(value):
        return True
    try:
        parts = urlsplit(value)
        host = parts.hostname
    except ValueError:  # e.g. a port that is not a number
        return False
    if parts.scheme in ("https", "http", "ssh", "git"):
        return bool(host) and parts.path.strip("/") != ""
    if parts.scheme == "file":
        return not parts.netloc and parts.path.strip("/") != ""
    return False


def jenkins_agent_image_warning(image: str) -> str:
    """Why `image` probably cannot be a Jenkins agent ("" if it looks fine)."""
    repository = (image or "").split("@")[0].lower()
    last = repository.rsplit("/", 1)[-1]
    if ":" in last:
        repository = repository[: repository.rindex(":")]
    if INBOUND_AGENT_RE.search(repository):
        return ""
    return _(
        "%(image)s does not look like a Jenkins inbound agent image. A Jenkins "
        "agent container must run the inbound agent (it connects to the "
        "master): use %(default)s or an image built FROM it with your build "
        "tools; plain maven or node images exit at once."
    ) % {"image": image, "default": JENKINS_AGENT_IMAGE}


def validate_cache_paths(value) -> None:
    if not isinstance(value, list) or not all(
        isinstance(p, str) and p.startswith("/") and p.rstrip("/") for p in value
    ):
        raise ValidationError(
            _('Give a list of absolute container paths, e.g. ["/root/.m2"].')
        )


class BuildCluster(TimeStamped):
    class Executor(models.TextChoices):
        JENKINS = "jenkins", _("Jenkins")
        DOCKER = "docker", _("Docker")

    region = models.ForeignKey(
        Region,
        on_delete=models.PROTECT,
        related_name="clusters",
        verbose_name=_("Region"),
    )
    host = models.ForeignKey(
        DockerHost,
        on_delete=models.PROTECT,
        related_name="clusters",
        verbose_name=_("Docker host"),
    )
    name = models.CharField(_("Name"), max_length=100)
    executor = models.CharField(
        _("Executor"), max_length=10, choices=Executor.choices, default=Executor.DOCKER
    )
    registry = models.ForeignKey(
        "registries.Registry",
        null=True,
        blank=True,
        on_delete=models.SET_NULL,
        related_name="clusters",
        help_text=_("Private registry that builds push to."),
        verbose_name=_("Private registry"),
    )
    jenkins_url = URLField(
        _("Jenkins URL"),
        blank=True,
        assume_scheme="http",
        validators=[validate_jenkins_url],
    )
    jenkins_username = models.CharField(_("Jenkins user"), max_length=150, blank=True)
    jenkins_token = EncryptedTextField(_("Jenkins API token"))
    status = models.CharField(
        _("Status"),
        max_length=20,
        choices=ClusterStatus.choices,
        default=ClusterStatus.PENDING,
    )
    last_error = models.TextField(_("Last error"), blank=True)
    last_provisioned_at = models.DateTimeField(
        _("Last provisioned"), null=True, blank=True
    )

    class Meta:
        verbose_name = _("build cluster")
        verbose_name_plural = _("build clusters")
        ordering = ["region__slug", "name"]
        constraints = [
            models.UniqueConstraint(
                fields=["region", "name"], name="cluster_name_per_region"
            )
        ]

    def __str__(self) -> str:
        return f"{self.region.slug}/{self.name}"

    def clean(self) -> None:
        if self.executor == self.Executor.JENKINS and not self.jenkins_url:
            raise ValidationError(
                {
                    "jenkins_url": _(
                        "A Jenkins cluster needs the Jenkins URL (e.g. "
                        "http://127.0.0.1:8080/): Ferry runs the master on its "
                        "port and drives the jobs through it."
                    )
                }
            )


class BuildAgent(TimeStamped):
    cluster = models.ForeignKey(
        BuildCluster,
        on_delete=models.CASCADE,
        related_name="agents",
        verbose_name=_("Build cluster"),
    )
    kind = models.CharField(
        _("Kind"), max_length=30, default="java", validators=[validate_kind]
    )  # java | node | ...
    image = models.CharField(_("Image"), max_length=200)
    # Container paths to keep in named volumes, e.g. ["/root/.m2"].
    cache_paths = models.JSONField(
        _("Cache paths"), default=list, blank=True, validators=[validate_cache_paths]
    )
    settings_xml = EncryptedTextField(
        _("Maven settings.xml"), help_text=_("Private Maven settings.xml")
    )
    # Where builder containers see settings.xml (read-only), when it is set.
    settings_xml_path = models.CharField(
        _("settings.xml path in the container"),
        max_length=200,
        default="/root/.m2/settings.xml",
    )
    concurrency = models.PositiveIntegerField(
        _("Concurrent builds"), default=1, validators=[MinValueValidator(1)]
    )
    # Total size of the cache volumes, last measured (provision or build).
    cache_bytes = models.BigIntegerField(_("Cache size (bytes)"), null=True, blank=True)
    cache_measured_at = models.DateTimeField(_("Cache measured"), null=True, blank=True)

    class Meta:
        verbose_name = _("build agent")
        verbose_name_plural = _("build agents")
        ordering = ["cluster", "kind"]
        constraints = [
            models.UniqueConstraint(
                fields=["cluster", "kind"], name="agent_kind_per_cluster"
            )
        ]

    def __str__(self) -> str:
        return f"{self.cluster}/{self.kind}"

    @property
    def image_warning(self) -> str:
        """Why the image will not work on this cluster's executor ("" if fine)."""
        if self.cluster.executor != BuildCluster.Executor.JENKINS:
            return ""
        return jenkins_agent_image_warning(self.image)


class Project(TimeStamped):
    cluster = models.ForeignKey(
        BuildCluster,
        on_delete=models.PROTECT,
        related_name="projects",
        verbose_name=_("Build cluster"),
    )
    agent_kind = models.CharField(_("Agent kind"), max_length=30, default="java")
    name = models.SlugField(_("Name"), max_length=100, unique=True)
    git_url = models.CharField(
        _("Git URL"), max_length=500, validators=[validate_git_url]
    )
    default_ref = models.CharField(
        _("Default ref"), max_length=200, default="main", validators=[validate_git_ref]
    )
    dockerfile = models.CharField(
        _("Dockerfile"),
        max_length=200,
        default="Dockerfile",
        validators=[validate_dockerfile],
    )
    # Shell command run in the agent's builder container before `docker build`.
    dependency_command = models.TextField(_("Dependency command"), blank=True)
    image_repository = models.CharField(
        _("Image repository"),
        max_length=200,
        help_text=_("e.g. team/api"),
        validators=[validate_image_repository],
    )

    class Meta:
        verbose_name = _("project")
        verbose_name_plural = _("projects")
        ordering = ["name"]

    def __str__(self) -> str:
        return self.name

    def clean(self) -> None:
        if (
            self.cluster_id
            and self.agent_kind
            and not self.cluster.agents.filter(kind=self.agent_kind).exists()
        ):
            kinds = ", ".join(self.cluster.agents.values_list("kind", flat=True))
            raise ValidationError(
                {
                    "agent_kind": _(
                        "The cluster has no %(kind)s agent (it has: %(kinds)s)."
                    )
                    % {"kind": self.agent_kind, "kinds": kinds or "-"}
                }
            )


class BuildStatus(models.TextChoices):
    QUEUED = "queued", _("Queued")  # waiting for an agent slot
    RUNNING = "running", _("Running")  # an executor is working on it
    SUCCEEDED = "succeeded", _("Succeeded")  # image pushed, digest recorded
    FAILED = "failed", _("Failed")  # a phase failed; see failure_line
    CANCELLED = "cancelled", _("Cancelled")  # stopped by a person


BUILD_ACTIVE_STATES = {BuildStatus.QUEUED, BuildStatus.RUNNING}
BUILD_TERMINAL_STATES = {
    BuildStatus.SUCCEEDED,
    BuildStatus.FAILED,
    BuildStatus.CANCELLED,
}


class Build(RunRow):
    id = models.UUIDField(_("ID"), primary_key=True)
    # PROTECT: deleting a project must not erase its build history (or a
    # running build under its executor); the API answers 409.
    project = models.ForeignKey(
        Project,
        on_delete=models.PROTECT,
        related_name="builds",
        verbose_name=_("Project"),
    )
    # The agent whose slot the build holds (or waits for); set at creation.
    agent = models.ForeignKey(
        BuildAgent,
        null=True,
        blank=True,
        on_delete=models.SET_NULL,
        related_name="builds",
        verbose_name=_("Agent"),
    )
    number = models.PositiveIntegerField(_("Number"))
    ref = models.CharField(_("Ref"), max_length=200)
    commit = models.CharField(_("Commit"), max_length=64, blank=True)
    status = models.CharField(
        _("Status"),
        max_length=20,
        choices=BuildStatus.choices,
        default=BuildStatus.QUEUED,
    )
    # Seconds per phase: queue, source, dependencies, build, push.
    timings = models.JSONField(_("Timings"), default=dict, blank=True)
    cache = models.JSONField(
        _("Cache"), default=dict, blank=True
    )  # sizes before/after, warm
    image = models.CharField(_("Image"), max_length=300, blank=True)
    image_digest = models.CharField(_("Image digest"), max_length=100, blank=True)
    log = models.TextField(_("Log"), blank=True)
    failure_line = models.TextField(_("Failure line"), blank=True)
    phase = models.CharField(
        _("Phase"), max_length=30, blank=True
    )  # current, or the failed one
    exit_code = models.IntegerField(_("Exit code"), null=True, blank=True)
    external_id = models.CharField(
        _("External ID"), max_length=100, blank=True
    )  # Jenkins build no.

    class Meta:
        verbose_name = _("build")
        verbose_name_plural = _("builds")
        ordering = ["-created_at"]
        constraints = [
            models.UniqueConstraint(fields=["project", "number"], name="build_number")
        ]

    def __str__(self) -> str:
        return f"{self.project.name}#{self.number}"

    @property
    def active(self) -> bool:
        return self.status in BUILD_ACTIVE_STATES

    @property
    def duration(self) -> float | None:
        """Seconds from start to finish (queue time excluded)."""
        if self.started_at and self.finished_at:
            return (self.finished_at - self.started_at).total_seconds()
        return None
