"""Model fields for secrets: ciphertext in the column, plaintext in Python."""

from django.db import models

from . import crypto


class EncryptedTextField(models.TextField):
    """Holds a secret, encrypted with Fernet before it reaches the database.

    Serializers mark these write-only and pages show only "set / not set".
    """

    def __init__(self, *args, **kwargs):
        kwargs.setdefault("blank", True)
        kwargs.setdefault("default", "")
        super().__init__(*args, **kwargs)

    def from_db_value(self, value, expression, connection):
        if value is None:
            return value
        return crypto.decrypt(value)

    def get_prep_value(self, value):
        value = super().get_prep_value(value)
        if value is None:
            return value
        return crypto.encrypt(value)


def secret_field_names(model) -> list[str]:
    return [
        f.name for f in model._meta.get_fields() if isinstance(f, EncryptedTextField)
    ]
