"""Reusable DRF viewset base: every write goes through an audited service.

Subclass `AuditedModelViewSet` and set `queryset`, `serializer_class`,
`write_role` (operator by default; admin for rows with secrets), plus
`filterset_fields` / `ordering_fields`. To route writes through an app
service instead of the generic `object_save`, override `save_object` (and
`delete_object`). After a write the row is re-read through get_queryset,
so annotated fields appear in the response. A Django ValidationError
becomes a 400 naming the fields, a ProtectedError a 409.
"""

from contextlib import contextmanager

from django.core.exceptions import NON_FIELD_ERRORS
from django.core.exceptions import ValidationError as DjangoValidationError
from django.db import models
from django.db.models import ProtectedError, RestrictedError
from django.utils.translation import gettext as _
from rest_framework import exceptions, status, viewsets
from rest_framework.settings import api_settings

from .models import Role
from .services import object_delete, object_save


class Conflict(exceptions.APIException):
    status_code = status.HTTP_409_CONFLICT
    default_detail = "The object is still in use."
    default_code = "conflict"


def drf_validation_error(exc: DjangoValidationError) -> exceptions.ValidationError:
    """A Django ValidationError as DRF's, keyed by field ("__all__" → non-field)."""
    if hasattr(exc, "error_dict"):
        detail = {
            (
                api_settings.NON_FIELD_ERRORS_KEY if key == NON_FIELD_ERRORS else key
            ): msgs
            for key, msgs in exc.message_dict.items()
        }
    else:
        detail = {api_settings.NON_FIELD_ERRORS_KEY: exc.messages}
    return exceptions.ValidationError(detail)


@contextmanager
def api_errors():
    """Translate service-layer errors into DRF exceptions (400 / 409)."""
    try:
        yield
    except DjangoValidationError as exc:
        raise drf_validation_error(exc) from exc
    except (ProtectedError, RestrictedError) as exc:
        objs = getattr(exc, "protected_objects", None) or exc.restricted_objects
        names = sorted({str(obj) for obj in objs})[:5]
        raise Conflict(_("Still in use by: %s") % ", ".join(names)) from exc


class AuditedModelViewSet(viewsets.ModelViewSet):
    """ModelViewSet whose writes call audited services (actor = request.user)."""

    write_role = Role.OPERATOR
    via = "api"

    def save_object(self, instance: models.Model, data: dict) -> models.Model:
        return object_save(self.request.user, instance, data, via=self.via)

    def delete_object(self, instance: models.Model) -> None:
        object_delete(self.request.user, instance, via=self.via)

    def reload(self, instance: models.Model) -> models.Model:
        """Re-read a saved row through get_queryset (annotations, joins)."""
        return self.get_queryset().filter(pk=instance.pk).first() or instance

    def perform_create(self, serializer):
        model = serializer.Meta.model
        with api_errors():
            instance = self.save_object(model(), dict(serializer.validated_data))
        serializer.instance = self.reload(instance)

    def perform_update(self, serializer):
        with api_errors():
            instance = self.save_object(
                serializer.instance, dict(serializer.validated_data)
            )
        serializer.instance = self.reload(instance)

    def perform_destroy(self, instance):
        with api_errors():
            self.delete_object(instance)
