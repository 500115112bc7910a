"""REST API of the builds app.

/api/v1/build-clusters/  clusters (admin writes: they hold the Jenkins
                         token); POST {id}/provision/ (operator)
/api/v1/build-agents/    agents (admin writes: settings.xml is a secret);
                         `image_warning` says why an image will not work
                         (e.g. not an inbound agent on a Jenkins cluster);
                         DELETE refuses while projects build on the agent
/api/v1/projects/        projects (operator writes);
                         POST {id}/builds/ {"ref"?} queues a build -> 201
/api/v1/builds/          builds, read-only; POST {id}/cancel/ (operator)

Viewers read everything but secrets; they cannot trigger or cancel. The
pages (builds.edit_views) apply the same roles: admin for clusters and
agents, operator for projects.
"""

from typing import ClassVar

import django_filters
from drf_spectacular.utils import extend_schema
from rest_framework import status, viewsets
from rest_framework.decorators import action
from rest_framework.response import Response

from controlplane.models import Role
from controlplane.viewsets import AuditedModelViewSet, api_errors

from . import selectors, services
from .models import Build, BuildAgent, BuildCluster, BuildStatus, Project
from .serializers import (
    BuildAgentSerializer,
    BuildClusterSerializer,
    BuildDetailSerializer,
    BuildSerializer,
    BuildTriggerSerializer,
    ProjectSerializer,
)


class BuildClusterViewSet(AuditedModelViewSet):
    queryset = BuildCluster.objects.select_related("region").prefetch_related("agents")
    serializer_class = BuildClusterSerializer
    write_role = Role.ADMIN
    action_roles: ClassVar[dict] = {"provision": Role.OPERATOR}
    filterset_fields = ("region", "executor", "status")
    ordering_fields = ("name", "region__slug", "status", "created_at")
    ordering = ("region__slug", "name")

    def save_object(self, instance, data):
        return services.cluster_save(self.request.user, instance, data, via=self.via)

    @extend_schema(request=None, responses=BuildClusterSerializer)
    @action(detail=True, methods=["post"])
    def provision(self, request, pk=None):
        """Provision the cluster's host again (by a task); 202."""
        cluster = self.get_object()
        services.cluster_request_provision(request.user, cluster, via=self.via)
        return Response(
            self.get_serializer(cluster).data, status=status.HTTP_202_ACCEPTED
        )


class BuildAgentViewSet(AuditedModelViewSet):
    queryset = BuildAgent.objects.select_related("cluster")
    serializer_class = BuildAgentSerializer
    write_role = Role.ADMIN
    filterset_fields = ("cluster", "kind")
    ordering = ("cluster", "kind")

    def save_object(self, instance, data):
        return services.agent_save(self.request.user, instance, data, via=self.via)

    def delete_object(self, instance):
        services.agent_delete(self.request.user, instance, via=self.via)


class ProjectViewSet(AuditedModelViewSet):
    queryset = Project.objects.select_related("cluster")
    serializer_class = ProjectSerializer
    write_role = Role.OPERATOR
    action_roles: ClassVar[dict] = {"builds": Role.OPERATOR}
    filterset_fields = ("cluster", "agent_kind", "name")
    ordering_fields = ("name", "created_at")
    ordering = ("name",)

    def save_object(self, instance, data):
        return services.project_save(self.request.user, instance, data, via=self.via)

    @extend_schema(
        request=BuildTriggerSerializer, responses={201: BuildDetailSerializer}
    )
    @action(detail=True, methods=["post"])
    def builds(self, request, pk=None):
        """Queue a build of `ref` (default: the project's default ref)."""
        project = self.get_object()
        form = BuildTriggerSerializer(data=request.data)
        form.is_valid(raise_exception=True)
        with api_errors():
            build = services.build_create(
                request.user, project, form.validated_data.get("ref", ""), via=self.via
            )
        return Response(
            BuildDetailSerializer(build).data, status=status.HTTP_201_CREATED
        )


class BuildFilter(django_filters.FilterSet):
    status = django_filters.ChoiceFilter(choices=BuildStatus.choices)
    cluster = django_filters.NumberFilter(field_name="project__cluster")

    class Meta:
        model = Build
        fields = ("project", "status", "cluster", "ref", "commit")


class BuildViewSet(viewsets.ReadOnlyModelViewSet):
    queryset = selectors.builds_with_relations()
    action_roles: ClassVar[dict] = {"cancel": Role.OPERATOR}
    filterset_class = BuildFilter
    ordering_fields = ("created_at", "number", "status")
    ordering = ("-created_at",)

    def get_serializer_class(self):
        return BuildDetailSerializer if self.action != "list" else BuildSerializer

    @extend_schema(request=None, responses=BuildDetailSerializer)
    @action(detail=True, methods=["post"])
    def cancel(self, request, pk=None):
        """Cancel a queued or running build; 400 if it already ended."""
        build = self.get_object()
        with api_errors():
            build = services.build_cancel(request.user, build, via="api")
        return Response(BuildDetailSerializer(build).data)


def register(router) -> None:
    """Add this app's viewsets to the shared router."""
    router.register("build-clusters", BuildClusterViewSet, basename="build-cluster")
    router.register("build-agents", BuildAgentViewSet, basename="build-agent")
    router.register("projects", ProjectViewSet, basename="project")
    router.register("builds", BuildViewSet, basename="build")
