"""API error bodies: every error is {"errors": [{"field", "message"}], "detail"}."""

from django.core.exceptions import ValidationError as DjangoValidationError
from django.db.models import ProtectedError
from rest_framework import exceptions, status
from rest_framework.response import Response
from rest_framework.views import exception_handler as drf_handler


def _flatten(detail, field=None) -> list[dict]:
    if isinstance(detail, dict):
        out = []
        for key, value in detail.items():
            name = key if field is None else f"{field}.{key}"
            if key == "non_field_errors":
                name = field
            out.extend(_flatten(value, name))
        return out
    if isinstance(detail, list):
        out = []
        for index, item in enumerate(detail):
            name = field
            if isinstance(item, dict) and field is not None:
                name = f"{field}[{index}]"
            out.extend(_flatten(item, name))
        return out
    return [{"field": field, "message": str(detail)}]


def exception_handler(exc, context):
    if isinstance(exc, DjangoValidationError):
        detail = exc.message_dict if hasattr(exc, "error_dict") else exc.messages
        exc = exceptions.ValidationError(detail)
    if isinstance(exc, ProtectedError):
        names = sorted({str(obj) for obj in exc.protected_objects})[:5]
        return Response(
            {
                "detail": "Still in use by: " + ", ".join(names),
                "errors": [{"field": None, "message": "Still in use."}],
            },
            status=status.HTTP_409_CONFLICT,
        )
    response = drf_handler(exc, context)
    if response is None:
        return None
    if isinstance(exc, exceptions.ValidationError):
        errors = _flatten(response.data)
        detail = errors[0]["message"] if len(errors) == 1 else "Invalid input."
    else:
        detail = str(response.data.get("detail", exc))
        errors = [{"field": None, "message": detail}]
    response.data = {"detail": detail, "errors": errors}
    return response
