"""REST API of registries: /api/v1/registries/ and its actions.

* CRUD through registries.services.registry_save / registry_delete (admin:
  rows hold secrets, which are write-only with `<name>_set` flags);
* POST {id}/apply/ (operator): queues the apply and answers 202 with the
  status; `?wait=1` applies in the request and answers 200 with the result,
  or 400 naming the field that failed (port, store, host, image...);
* GET {id}/stats/ (viewer): registries.metrics.registry_stats (with
  `upstream_by_repository`: [{"repository", "bytes_upstream"}], largest first);
* POST {id}/prewarm/ {"image": "ns/name:tag"} (operator): pulls the image
  through the mirror now (registries.prewarm.prewarm_image);
* POST {id}/rotate-password/ {"username"?, "password"?} (admin): the new
  password, shown once; the registry is re-applied so nginx gets it;
* POST {id}/check/ (operator): run the health checks now.
Object stores are served by regions/api.py.
"""

from typing import ClassVar

from drf_spectacular.utils import OpenApiParameter, extend_schema
from rest_framework import serializers, status
from rest_framework.decorators import action
from rest_framework.response import Response

from controlplane.models import Role
from controlplane.serializers import SecretsModelSerializer
from controlplane.viewsets import AuditedModelViewSet, Conflict, api_errors

from . import services
from .models import Registry
from .stats_schema import RegistryStatsSerializer
from .validators import image_reference_error, upstream_url_error

OBSERVED = (
    "status",
    "config_hash",
    "last_applied_at",
    "last_error",
    "health",
    "last_checked_at",
    "tls_expires_at",
)


class RegistrySerializer(SecretsModelSerializer):
    region_slug = serializers.CharField(source="region.slug", read_only=True)
    users = serializers.SerializerMethodField()

    class Meta:
        model = Registry
        # The site's http secret lives on the object store; Ferry generates
        # the notification token. Neither is the client's to set.
        exclude = ("apply_lock", "apply_lock_expires_at", "http_secret", "notify_token")
        read_only_fields = OBSERVED

    def get_users(self, registry) -> list[str]:
        return [user.username for user in registry.users.all()]

    def validate_upstream_url(self, value: str) -> str:
        value = value.strip()
        reason = upstream_url_error(value) if value else None
        if reason:
            raise serializers.ValidationError(reason)
        return value

    def get_fields(self):
        fields = super().get_fields()
        # Unset ports get free defaults (service), so none is required.
        for name in ("port", "debug_port", "https_port", "gateway_port"):
            fields[name].required = False
        return fields


class ApplySerializer(serializers.Serializer):
    status = serializers.CharField()
    last_error = serializers.CharField()
    config_hash = serializers.CharField()
    queued = serializers.BooleanField()


class PrewarmRequest(serializers.Serializer):
    image = serializers.CharField(max_length=300)

    def validate_image(self, value: str) -> str:
        reason = image_reference_error(value.strip())
        if reason:
            raise serializers.ValidationError(reason)
        return value.strip()


class RotateRequest(serializers.Serializer):
    username = serializers.CharField(max_length=100, required=False, allow_blank=True)
    password = serializers.CharField(
        max_length=200, required=False, allow_blank=True, write_only=True
    )


def _apply_body(registry: Registry, queued: bool) -> dict:
    return {
        "status": registry.status,
        "last_error": registry.last_error,
        "config_hash": registry.config_hash,
        "queued": queued,
    }


class RegistryViewSet(AuditedModelViewSet):
    serializer_class = RegistrySerializer
    write_role = Role.ADMIN
    action_roles: ClassVar[dict] = {
        "apply": Role.OPERATOR,
        "prewarm": Role.OPERATOR,
        "check": Role.OPERATOR,
        "stats": Role.VIEWER,
        "rotate_password": Role.ADMIN,
    }
    filterset_fields = ("region", "kind", "status", "host", "store")
    ordering_fields = ("name", "region__slug", "status", "last_applied_at")
    ordering = ("region__slug", "name")

    def get_queryset(self):
        return Registry.objects.select_related(
            "region", "host", "store"
        ).prefetch_related("users")

    def save_object(self, instance, data):
        return services.registry_save(self.request.user, instance, data, via=self.via)

    def delete_object(self, instance):
        try:
            services.registry_delete(self.request.user, instance, via=self.via)
        except services.ApplyBusy as exc:
            raise Conflict(str(exc)) from exc

    @extend_schema(
        request=None,
        responses={200: ApplySerializer, 202: ApplySerializer},
        parameters=[OpenApiParameter("wait", bool, description="apply in the request")],
    )
    @action(detail=True, methods=["post"])
    def apply(self, request, pk=None):
        """Apply the registry to its host (202 queued; 200 with ?wait=1)."""
        registry = self.get_object()
        if request.query_params.get("wait") in ("1", "true", "yes"):
            with api_errors():
                try:
                    registry = services.registry_apply(
                        registry.pk, actor=request.user, via=self.via
                    )
                except services.ApplyBusy as exc:
                    raise Conflict(str(exc)) from exc
            return Response(_apply_body(registry, queued=False))
        registry = services.registry_request_apply(request.user, registry, via=self.via)
        return Response(
            _apply_body(registry, queued=True), status=status.HTTP_202_ACCEPTED
        )

    @extend_schema(request=None, responses=RegistrySerializer)
    @action(detail=True, methods=["post"])
    def check(self, request, pk=None):
        """Run the health checks now and return the registry."""
        registry = services.registry_check_now(
            request.user, self.get_object().pk, via=self.via
        )
        return Response(self.get_serializer(registry).data)

    @extend_schema(request=None, responses=RegistryStatsSerializer)
    @action(detail=True, methods=["get"])
    def stats(self, request, pk=None):
        """Counters, rates and gauges from ground truth (registries.metrics)."""
        from .metrics import registry_stats

        stats = registry_stats(self.get_object())
        return Response(RegistryStatsSerializer(stats).data)

    @extend_schema(request=PrewarmRequest, responses=None)
    @action(detail=True, methods=["post"])
    def prewarm(self, request, pk=None):
        """Pull an image (manifest and every blob) through the mirror now."""
        from .prewarm import prewarm_image

        registry = self.get_object()
        body = PrewarmRequest(data=request.data)
        body.is_valid(raise_exception=True)
        with api_errors():
            result = prewarm_image(
                registry, body.validated_data["image"], actor=request.user, via=self.via
            )
        return Response(
            {
                "image": result.image,
                "manifest_digest": result.manifest_digest,
                "blobs": result.blobs,
                "bytes": result.bytes,
                "seconds": result.seconds,
                "stored": result.stored,
            }
        )

    @extend_schema(request=RotateRequest, responses=None)
    @action(detail=True, methods=["post"], url_path="rotate-password")
    def rotate_password(self, request, pk=None):
        """A new password for an htpasswd user (shown once), then re-apply."""
        registry = self.get_object()
        body = RotateRequest(data=request.data)
        body.is_valid(raise_exception=True)
        with api_errors():
            username, password = services.registry_rotate_password(
                request.user,
                registry,
                body.validated_data.get("username", ""),
                body.validated_data.get("password", ""),
                via=self.via,
            )
        services.registry_request_apply(request.user, registry, via=self.via)
        response = Response({"username": username, "password": password})
        response["Cache-Control"] = "no-store"
        return response


def register(router) -> None:
    """Add this app's viewsets to the shared router."""
    router.register("registries", RegistryViewSet, basename="registry")
