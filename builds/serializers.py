"""API representations of clusters, agents, projects and builds.

Secrets (the Jenkins token, the Maven settings.xml) are write-only with a
read-only `<name>_set` flag (SecretsModelSerializer). Builds are run rows:
read-only, with the queue position of a waiting build.
"""

from django.core.exceptions import ValidationError as DjangoValidationError
from drf_spectacular.types import OpenApiTypes
from drf_spectacular.utils import extend_schema_field
from rest_framework import serializers

from controlplane.serializers import SecretsModelSerializer

from . import selectors
from .models import Build, BuildAgent, BuildCluster, Project
from .queue import queue_position
from .services import validate_ref


class BuildAgentSerializer(SecretsModelSerializer):
    image_warning = serializers.CharField(read_only=True)

    class Meta:
        model = BuildAgent
        fields = (
            "id",
            "cluster",
            "kind",
            "image",
            "image_warning",
            "cache_paths",
            "settings_xml",
            "settings_xml_path",
            "concurrency",
            "cache_bytes",
            "cache_measured_at",
            "created_at",
            "updated_at",
        )
        read_only_fields = ("cache_bytes", "cache_measured_at")


class AgentSummarySerializer(serializers.ModelSerializer):
    settings_xml_set = serializers.SerializerMethodField()
    image_warning = serializers.CharField(read_only=True)

    class Meta:
        model = BuildAgent
        fields = ("id", "kind", "image", "image_warning", "cache_paths", "concurrency",
                  "cache_bytes", "settings_xml_set")  # fmt: skip

    def get_settings_xml_set(self, agent) -> bool:
        return bool(agent.settings_xml)


class BuildClusterSerializer(SecretsModelSerializer):
    region_slug = serializers.CharField(source="region.slug", read_only=True)
    agents = AgentSummarySerializer(many=True, read_only=True)

    class Meta:
        model = BuildCluster
        fields = (
            "id",
            "region",
            "region_slug",
            "host",
            "name",
            "executor",
            "registry",
            "jenkins_url",
            "jenkins_username",
            "jenkins_token",
            "status",
            "last_error",
            "last_provisioned_at",
            "agents",
            "created_at",
            "updated_at",
        )
        read_only_fields = ("status", "last_error", "last_provisioned_at")


class ProjectSerializer(serializers.ModelSerializer):
    stats = serializers.SerializerMethodField()

    class Meta:
        model = Project
        fields = (
            "id",
            "cluster",
            "agent_kind",
            "name",
            "git_url",
            "default_ref",
            "dockerfile",
            "dependency_command",
            "image_repository",
            "stats",
            "created_at",
            "updated_at",
        )

    @extend_schema_field(OpenApiTypes.OBJECT)
    def get_stats(self, project) -> dict:
        stats = selectors.project_stats(project)
        return stats.__dict__


class BuildSerializer(serializers.ModelSerializer):
    project_name = serializers.CharField(source="project.name", read_only=True)
    agent_kind = serializers.CharField(
        source="agent.kind", read_only=True, default=None
    )
    requested_by = serializers.CharField(
        source="requested_by.username", read_only=True, default=None
    )
    queue_position = serializers.SerializerMethodField()
    duration = serializers.FloatField(read_only=True)

    class Meta:
        model = Build
        fields = (
            "id",
            "project",
            "project_name",
            "number",
            "ref",
            "commit",
            "status",
            "phase",
            "queue_position",
            "agent_kind",
            "requested_by",
            "created_at",
            "started_at",
            "finished_at",
            "duration",
            "timings",
            "cache",
            "image",
            "image_digest",
            "exit_code",
            "failure_line",
            "external_id",
        )
        read_only_fields = fields

    def get_queue_position(self, build) -> int | None:
        return queue_position(build)


class BuildDetailSerializer(BuildSerializer):
    class Meta(BuildSerializer.Meta):
        fields = (*BuildSerializer.Meta.fields, "log")
        read_only_fields = fields


class BuildTriggerSerializer(serializers.Serializer):
    ref = serializers.CharField(required=False, allow_blank=True, max_length=200)

    def validate_ref(self, value: str) -> str:
        if not value.strip():
            return ""
        try:
            return validate_ref(value)
        except DjangoValidationError as exc:
            raise serializers.ValidationError(exc.message_dict["ref"]) from exc
