"""REST API for services and rollouts (/api/v1/services/, /api/v1/rollouts/).

Services are spec rows that operators edit; rollouts are run rows and are
read-only here until the rolling-update engine lands.
"""

from rest_framework import serializers, viewsets

from controlplane.viewsets import AuditedModelViewSet

from .models import Rollout, Service


class ServiceSerializer(serializers.ModelSerializer):
    class Meta:
        model = Service
        fields = (
            "id",
            "name",
            "project",
            "regions",
            "image",
            "replicas",
            "port",
            "health_path",
            "created_at",
            "updated_at",
        )


class RolloutSerializer(serializers.ModelSerializer):
    service_name = serializers.CharField(source="service.name", read_only=True)

    class Meta:
        model = Rollout
        fields = (
            "id",
            "service",
            "service_name",
            "image",
            "status",
            "requested_by",
            "created_at",
            "started_at",
            "finished_at",
            "progress",
        )


class ServiceViewSet(AuditedModelViewSet):
    queryset = Service.objects.prefetch_related("regions")
    serializer_class = ServiceSerializer
    filterset_fields = ("name", "project", "regions__slug")
    ordering_fields = ("name", "created_at")


class RolloutViewSet(viewsets.ReadOnlyModelViewSet):
    queryset = Rollout.objects.select_related("service")
    serializer_class = RolloutSerializer
    filterset_fields = ("service", "status")
    ordering_fields = ("created_at",)


def register(router) -> None:
    router.register("services", ServiceViewSet, basename="service")
    router.register("rollouts", RolloutViewSet, basename="rollout")
