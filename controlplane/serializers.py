"""Serializer base that keeps secrets out of every API response.

`SecretsModelSerializer` makes each EncryptedTextField of its model
write-only (optional; "" keeps the stored value, null clears it) and adds a
read-only `<name>_set` boolean so clients can tell "set / not set".
"""

from drf_spectacular.types import OpenApiTypes
from drf_spectacular.utils import extend_schema_field
from rest_framework import serializers

from .fields import secret_field_names


@extend_schema_field(OpenApiTypes.BOOL)
class SecretSetField(serializers.Field):
    """True when the secret named by `source` holds a value; never the value."""

    def __init__(self, **kwargs):
        kwargs["read_only"] = True
        super().__init__(**kwargs)

    def to_representation(self, value) -> bool:
        return bool(value)


class SecretsModelSerializer(serializers.ModelSerializer):
    """ModelSerializer for rows with secrets: write-only values, `_set` flags."""

    def get_fields(self):
        fields = super().get_fields()
        for name in secret_field_names(self.Meta.model):
            if name in fields:
                fields[name] = serializers.CharField(
                    write_only=True,
                    required=False,
                    allow_blank=True,
                    allow_null=True,
                    trim_whitespace=False,
                    style={"input_type": "password"},
                    help_text='Write-only. Omit it or send "" to keep the stored '
                    "value; send null to clear it.",
                )
            fields[f"{name}_set"] = SecretSetField(source=name)
        return fields
