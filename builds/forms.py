"""Forms of the build pages: the build button, and the create/edit forms of
clusters, agents and projects.

Secrets (the Jenkins API token, settings.xml) are "replace" inputs: the page
says set / not set, blank keeps the stored value. Writes go through the
builds services (audited; a cluster or agent change re-provisions).
"""

from typing import ClassVar

from django import forms
from django.core.exceptions import ValidationError
from django.utils.translation import gettext_lazy as _

from controlplane.forms import AuditedModelForm
from regions.models import DockerHost
from registries.models import Registry

from . import services
from .models import BuildAgent, BuildCluster, Project, jenkins_agent_image_warning
from .services import validate_ref


class BuildTriggerForm(forms.Form):
    """The build button's ref field; empty means the project's default ref."""

    ref = forms.CharField(
        label=_("Ref"),
        required=False,
        max_length=200,
        help_text=_("Branch, tag or commit. Empty: the project's default ref."),
    )

    def clean_ref(self) -> str:
        ref = self.cleaned_data["ref"].strip()
        if not ref:
            return ""
        try:
            return validate_ref(ref)
        except ValidationError as exc:
            raise ValidationError(exc.message_dict["ref"]) from exc


class SecretTextarea(forms.Textarea):
    """A textarea that never renders a value (a secret file such as
    settings.xml: a password input would lose its line breaks)."""

    def get_context(self, name, value, attrs):
        return super().get_context(name, None, attrs)


class PathListField(forms.CharField):
    """A list of paths typed one per line (stored as a JSON list)."""

    widget = forms.Textarea(attrs={"rows": 3})

    def prepare_value(self, value):
        if isinstance(value, list):
            return "\n".join(value)
        return value

    def to_python(self, value) -> list[str]:
        text = super().to_python(value) or ""
        return [line.strip() for line in text.splitlines() if line.strip()]


class ClusterForm(AuditedModelForm):
    """A build cluster (admin): where it runs, its executor, Jenkins access."""

    jenkins_url = forms.URLField(
        label=_("Jenkins URL"),
        required=False,
        assume_scheme="http",
        help_text=_(
            "Jenkins executor only: Ferry runs the master on this URL's port "
            "(bound to 127.0.0.1) and drives the jobs through it."
        ),
    )

    class Meta:
        model = BuildCluster
        fields = (
            "region",
            "host",
            "name",
            "executor",
            "registry",
            "jenkins_url",
            "jenkins_username",
            "jenkins_token",
        )
        labels: ClassVar[dict] = {
            "region": _("Region"),
            "host": _("Docker host"),
            "name": _("Name"),
            "executor": _("Executor"),
            "registry": _("Private registry"),
            "jenkins_username": _("Jenkins user"),
            "jenkins_token": _("Jenkins API token"),
        }
        help_texts: ClassVar[dict] = {
            "host": _("A Docker host of the same region; builds run on its engine."),
            "registry": _("Builds push to it: a private registry of the region."),
            "jenkins_username": _("Jenkins executor only: the user Ferry acts as."),
        }

    def __init__(self, *args, **kwargs):
        super().__init__(*args, **kwargs)
        registries = Registry.objects.filter(kind=Registry.Kind.PRIVATE)
        self.fields["registry"].queryset = registries.select_related("region")
        self.fields["host"].queryset = DockerHost.objects.select_related("region")

    def write(self, actor, target, data, via):
        return services.cluster_save(actor, target, data, via=via)


class AgentForm(AuditedModelForm):
    """An agent of a cluster (admin): image, caches, settings.xml, slots."""

    cache_paths = PathListField(
        label=_("Cache paths"),
        required=False,
        help_text=_(
            "Container paths kept in named volumes between builds, one per "
            "line, e.g. /root/.m2 or /root/.npm."
        ),
    )
    clear_settings_xml = forms.BooleanField(
        label=_("Remove the stored settings.xml"), required=False
    )
    image_confirmed = forms.BooleanField(
        label=_("This image runs the Jenkins inbound agent"),
        required=False,
        help_text=_("Tick to keep an image Ferry does not recognise as one."),
    )

    class Meta:
        model = BuildAgent
        fields = (
            "kind",
            "image",
            "cache_paths",
            "settings_xml",
            "settings_xml_path",
            "concurrency",
        )
        labels: ClassVar[dict] = {
            "kind": _("Kind"),
            "image": _("Image"),
            "settings_xml": _("Maven settings.xml"),
            "settings_xml_path": _("settings.xml path in the container"),
            "concurrency": _("Concurrent builds"),
        }
        help_texts: ClassVar[dict] = {
            "kind": _("Projects pick their agent by kind: java, node, ..."),
            "settings_xml_path": _("Mounted there read-only when settings.xml is set."),
            "concurrency": _("Builds beyond this wait in the queue."),
        }

    def __init__(self, *args, cluster: BuildCluster, **kwargs):
        super().__init__(*args, **kwargs)
        self.cluster = cluster
        secret = self.fields["settings_xml"]
        secret.widget = SecretTextarea(attrs={"rows": 6, "autocomplete": "off"})
        if not secret.is_set:
            del self.fields["clear_settings_xml"]
        if cluster.executor != BuildCluster.Executor.JENKINS:
            del self.fields["image_confirmed"]
        # Each checkbox right below the field it is about.
        self.order_fields(
            ["kind", "image", "image_confirmed", "cache_paths", "settings_xml",
             "clear_settings_xml"]
        )  # fmt: skip

    def clean_settings_xml(self) -> str:
        # Browsers send a textarea's line breaks as CRLF; store the file as typed.
        return self.cleaned_data["settings_xml"].replace("\r\n", "\n")

    def clean_kind(self) -> str:
        kind = self.cleaned_data["kind"]
        others = self.cluster.agents.exclude(pk=self.instance.pk)
        if others.filter(kind=kind).exists():
            raise ValidationError(_("The cluster already has a %s agent.") % kind)
        return kind

    def clean(self) -> dict:
        cleaned = super().clean()
        if cleaned.get("clear_settings_xml") and cleaned.get("settings_xml"):
            self.add_error(
                "settings_xml", _("Either replace settings.xml or remove it, not both.")
            )
        image = cleaned.get("image")
        if image and "image_confirmed" in self.fields:
            warning = jenkins_agent_image_warning(image)
            if warning and not cleaned.get("image_confirmed"):
                self.add_error("image", warning)
        return cleaned

    def audited_data(self) -> dict:
        data = super().audited_data()
        data["cluster"] = self.cluster
        if self.cleaned_data.get("clear_settings_xml"):
            data["settings_xml"] = None  # object_save: None clears a secret
        return data

    def write(self, actor, target, data, via):
        return services.agent_save(actor, target, data, via=via)


class ProjectForm(AuditedModelForm):
    """A project (operator): what to build, on which agent, where to push."""

    class Meta:
        model = Project
        fields = (
            "cluster",
            "agent_kind",
            "name",
            "git_url",
            "default_ref",
            "dockerfile",
            "dependency_command",
            "image_repository",
        )
        labels: ClassVar[dict] = {
            "cluster": _("Build cluster"),
            "agent_kind": _("Agent kind"),
            "name": _("Name"),
            "git_url": _("Git URL"),
            "default_ref": _("Default ref"),
            "dockerfile": _("Dockerfile"),
            "dependency_command": _("Dependency command"),
            "image_repository": _("Image repository"),
        }
        help_texts: ClassVar[dict] = {
            "git_url": _("https://, ssh://, git@host:path or file:///path"),
            "default_ref": _("Built when a build names no ref."),
            "dockerfile": _("Path inside the repository."),
            "dependency_command": _(
                "Shell command run in the agent's container with its caches "
                "before docker build, e.g. mvn -B package or npm ci."
            ),
        }
        widgets: ClassVar[dict] = {
            "dependency_command": forms.Textarea(attrs={"rows": 3}),
        }

    def __init__(self, *args, **kwargs):
        super().__init__(*args, **kwargs)
        clusters = BuildCluster.objects.select_related("region").prefetch_related(
            "agents"
        )
        self.fields["cluster"].queryset = clusters
        kinds = "; ".join(
            f"{cluster}: {', '.join(a.kind for a in cluster.agents.all()) or '-'}"
            for cluster in clusters
        )
        self.fields["agent_kind"].help_text = (
            _("An agent kind of the cluster (%s).") % kinds
        )

    def write(self, actor, target, data, via):
        return services.project_save(actor, target, data, via=via)
