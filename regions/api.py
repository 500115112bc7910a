"""REST API for regions, Docker hosts and object stores (/api/v1/...).

Roles: everyone with a role reads. Regions, hosts and object stores are
topology and carry secrets (host TLS and SSH keys, storage keys), so writing them
needs admin; checking a host now (`POST hosts/{id}/check/`) is an operator
action. Object stores live in the registries app but are served here, next
to the hosts they share a region with.
"""

from typing import ClassVar

import django_filters
from django.core.exceptions import ValidationError as DjangoValidationError
from drf_spectacular.utils import extend_schema
from rest_framework import serializers
from rest_framework.decorators import action
from rest_framework.response import Response

from controlplane.models import Role
from controlplane.serializers import SecretsModelSerializer
from controlplane.viewsets import AuditedModelViewSet, api_errors
from registries.models import ObjectStore

from . import selectors, services, validators
from .models import DockerHost, HostStatus, Region

OBSERVED_FIELDS = (
    "status",
    "engine_version",
    "container_count",
    "last_seen",
    "last_checked",
    "last_error",
)


class RegionSerializer(serializers.ModelSerializer):
    hosts_total = serializers.IntegerField(read_only=True)
    hosts_up = serializers.IntegerField(read_only=True)
    hosts_unreachable = serializers.IntegerField(read_only=True)

    class Meta:
        model = Region
        fields = (
            "id",
            "slug",
            "name",
            "provider",
            "role",
            "hosts_total",
            "hosts_up",
            "hosts_unreachable",
            "created_at",
            "updated_at",
        )


class HostSerializer(SecretsModelSerializer):
    region_slug = serializers.CharField(source="region.slug", read_only=True)
    roles = serializers.ListField(
        child=serializers.ChoiceField(choices=DockerHost.HostRole.choices),
        required=False,
        allow_empty=True,
    )

    class Meta:
        model = DockerHost
        fields = (
            "id",
            "region",
            "region_slug",
            "name",
            "docker_url",
            "roles",
            "tls_ca_cert",
            "tls_client_cert",
            "tls_client_key",
            "ssh_private_key",
            "ssh_known_host_key",
            *OBSERVED_FIELDS,
            "created_at",
            "updated_at",
        )
        read_only_fields = OBSERVED_FIELDS

    def validate_docker_url(self, value: str) -> str:
        value = value.strip()
        try:
            validators.validate_docker_url(value)
        except DjangoValidationError as exc:
            raise serializers.ValidationError(exc.messages) from exc
        return value

    def validate_roles(self, value: list) -> list:
        return sorted(set(value))


class ObjectStoreSerializer(SecretsModelSerializer):
    region_slug = serializers.CharField(source="region.slug", read_only=True)

    class Meta:
        model = ObjectStore
        fields = (
            "id",
            "region",
            "region_slug",
            "name",
            "kind",
            "endpoint",
            "internal_endpoint",
            "bucket",
            "s3_region",
            "root_directory",
            "access_key_id",
            "secret_access_key",
            "created_at",
            "updated_at",
        )


class RegionFilter(django_filters.FilterSet):
    class Meta:
        model = Region
        fields = ("slug", "role", "provider")


class HostFilter(django_filters.FilterSet):
    region_slug = django_filters.CharFilter(field_name="region__slug")
    status = django_filters.ChoiceFilter(choices=HostStatus.choices)
    role = django_filters.ChoiceFilter(
        choices=DockerHost.HostRole.choices, method="filter_role"
    )

    class Meta:
        model = DockerHost
        fields = ("region", "region_slug", "status", "name", "role")

    def filter_role(self, queryset, name, value):
        # roles is a JSON list; "contains" on JSON is not portable to SQLite,
        # so match the quoted role inside the JSON text.
        return queryset.filter(roles__icontains=f'"{value}"')


class StoreFilter(django_filters.FilterSet):
    region_slug = django_filters.CharFilter(field_name="region__slug")

    class Meta:
        model = ObjectStore
        fields = ("region", "region_slug", "kind", "name")


class RegionViewSet(AuditedModelViewSet):
    serializer_class = RegionSerializer
    write_role = Role.ADMIN
    filterset_class = RegionFilter
    ordering_fields = ("slug", "name", "role", "created_at")
    ordering = ("slug",)

    def get_queryset(self):
        return selectors.regions_with_host_counts().order_by("slug")


class HostViewSet(AuditedModelViewSet):
    queryset = selectors.hosts_with_region()
    serializer_class = HostSerializer
    write_role = Role.ADMIN
    action_roles: ClassVar[dict] = {"check": Role.OPERATOR}
    filterset_class = HostFilter
    ordering_fields = ("name", "region__slug", "status", "last_seen", "last_checked")
    ordering = ("region__slug", "name")

    def save_object(self, instance, data):
        return services.host_save(self.request.user, instance, data, via=self.via)

    @extend_schema(request=None, responses=HostSerializer)
    @action(detail=True, methods=["post"])
    def check(self, request, pk=None):
        """Check the host's engine now and return what was recorded."""
        host = self.get_object()
        with api_errors():
            host = services.host_check_now(request.user, host.pk, via=self.via) or host
        return Response(self.get_serializer(self.reload(host)).data)


class ObjectStoreViewSet(AuditedModelViewSet):
    queryset = ObjectStore.objects.select_related("region")
    serializer_class = ObjectStoreSerializer
    write_role = Role.ADMIN
    filterset_class = StoreFilter
    ordering_fields = ("name", "region__slug", "kind", "created_at")
    ordering = ("region__slug", "name")


def register(router) -> None:
    """Add this app's viewsets to the shared router."""
    router.register("regions", RegionViewSet, basename="region")
    router.register("hosts", HostViewSet, basename="host")
    router.register("object-stores", ObjectStoreViewSet, basename="object-store")
