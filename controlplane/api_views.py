"""API for cross-cutting rows: audit events (read-only) and the caller's tokens.

Audit events: every role reads them; filter by object_type, object_id,
actor (user id), actor_name, action and via. Tokens: every user with a role
manages their own (the raw value is in the create response only); DELETE
revokes (the row stays, so the audit trail can name it). Admins may revoke
anyone's token, as on the tokens page.
"""

from typing import ClassVar

import django_filters
from drf_spectacular.utils import extend_schema
from rest_framework import mixins, serializers, status, viewsets
from rest_framework.decorators import action
from rest_framework.response import Response

from . import schema  # noqa: F401 - registers the bearer scheme for OpenAPI
from .auth import has_role
from .models import ApiToken, AuditEvent, Role
from .tokens import token_create, token_revoke, tokens_of
from .viewsets import api_errors


class AuditEventSerializer(serializers.ModelSerializer):
    class Meta:
        model = AuditEvent
        fields = (
            "id",
            "at",
            "actor",
            "actor_name",
            "via",
            "action",
            "object_type",
            "object_id",
            "object_repr",
            "changes",
        )
        read_only_fields = fields


class AuditEventFilter(django_filters.FilterSet):
    since = django_filters.IsoDateTimeFilter(field_name="at", lookup_expr="gte")
    until = django_filters.IsoDateTimeFilter(field_name="at", lookup_expr="lt")

    class Meta:
        model = AuditEvent
        fields = (
            "object_type",
            "object_id",
            "actor",
            "actor_name",
            "action",
            "via",
            "since",
            "until",
        )


class AuditEventViewSet(viewsets.ReadOnlyModelViewSet):
    queryset = AuditEvent.objects.all()
    serializer_class = AuditEventSerializer
    filterset_class = AuditEventFilter
    ordering_fields = ("at", "id", "object_type", "action")
    ordering = ("-at", "-id")


class ApiTokenSerializer(serializers.ModelSerializer):
    active = serializers.BooleanField(read_only=True)

    class Meta:
        model = ApiToken
        fields = (
            "id",
            "name",
            "prefix",
            "active",
            "created_at",
            "last_used_at",
            "revoked_at",
        )
        read_only_fields = ("prefix", "created_at", "last_used_at", "revoked_at")


class NewApiTokenSerializer(ApiTokenSerializer):
    token = serializers.CharField(
        read_only=True, help_text="The raw token: shown in this response only."
    )

    class Meta(ApiTokenSerializer.Meta):
        fields = (*ApiTokenSerializer.Meta.fields, "token")


class ApiTokenViewSet(
    mixins.ListModelMixin,
    mixins.RetrieveModelMixin,
    mixins.CreateModelMixin,
    mixins.DestroyModelMixin,
    viewsets.GenericViewSet,
):
    """The caller's own API tokens; admins revoke anyone's by id."""

    serializer_class = ApiTokenSerializer
    # Managing your own tokens is not a topology write: viewers need tokens too.
    write_role = Role.VIEWER
    action_roles: ClassVar[dict] = {"revoke": Role.VIEWER}
    ordering_fields = ("created_at", "name")
    filterset_fields = ("name",)

    queryset = ApiToken.objects.none()  # typed for the schema; see get_queryset

    def get_queryset(self):
        if getattr(self, "swagger_fake_view", False):
            return ApiToken.objects.none()
        user = self.request.user
        if self.action in ("destroy", "revoke") and has_role(user, Role.ADMIN):
            return ApiToken.objects.all()  # token_revoke checks the same rule
        return tokens_of(user)

    @extend_schema(responses={201: NewApiTokenSerializer})
    def create(self, request, *args, **kwargs):
        serializer = self.get_serializer(data=request.data)
        serializer.is_valid(raise_exception=True)
        with api_errors():
            token, raw = token_create(
                request.user, serializer.validated_data["name"], via="api"
            )
        token.token = raw
        body = NewApiTokenSerializer(token, context=self.get_serializer_context()).data
        return Response(body, status=status.HTTP_201_CREATED)

    @extend_schema(responses={200: ApiTokenSerializer})
    def destroy(self, request, *args, **kwargs):
        """Revoke the token (it stays listed, inactive)."""
        return self._revoke()

    @extend_schema(request=None, responses={200: ApiTokenSerializer})
    @action(detail=True, methods=["post"])
    def revoke(self, request, pk=None):
        """Revoke the token (same as DELETE)."""
        return self._revoke()

    def _revoke(self):
        token = self.get_object()
        with api_errors():
            token = token_revoke(self.request.user, token.pk, via="api")
        return Response(self.get_serializer(token).data)


def register(router) -> None:
    """Add the audit and token viewsets to the shared router."""
    router.register("audit-events", AuditEventViewSet, basename="audit-event")
    router.register("tokens", ApiTokenViewSet, basename="token")
