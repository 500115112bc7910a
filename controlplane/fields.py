"""Model fields: secrets (ciphertext in the column, plaintext in Python) and URLs."""

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


class URLField(models.URLField):
    """A URLField whose forms (pages and admin) say which scheme a bare
    host name gets: Django 6 changes the default from http to https."""

    def __init__(self, *args, assume_scheme: str = "https", **kwargs):
        self.assume_scheme = assume_scheme
        super().__init__(*args, **kwargs)

    def deconstruct(self):
        name, path, args, kwargs = super().deconstruct()
        if self.assume_scheme != "https":
            kwargs["assume_scheme"] = self.assume_scheme
        return name, path, args, kwargs

    def formfield(self, **kwargs):
        return super().formfield(**{"assume_scheme": self.assume_scheme, **kwargs})


def secret_field_names(model) -> list[str]:
    return [
        f.name for f in model._meta.get_fields() if isinstance(f, EncryptedTextField)
    ]
