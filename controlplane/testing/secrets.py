"""Checks that a secret stays secret: raw column values and response bodies."""

from django.db import connection


def raw_column(table: str, column: str, pk) -> str:
    """The stored value, bypassing the model field (no decryption)."""
    with connection.cursor() as cursor:
        cursor.execute(f'SELECT "{column}" FROM "{table}" WHERE id = %s', [pk])
        return cursor.fetchone()[0]


def raw_field(model, field: str, pk) -> str:
    """raw_column for a model field."""
    return raw_column(model._meta.db_table, model._meta.get_field(field).column, pk)


def assert_ciphertext(stored: str, plaintext: str) -> None:
    assert stored.startswith("fernet:"), stored[:20]
    assert plaintext not in stored
    assert plaintext.encode().hex() not in stored


def key_body(pem: str) -> str:
    """A distinctive line of a PEM key (what a leak would contain)."""
    return max(pem.splitlines(), key=len)


def assert_responses_hide(responses, leaks) -> None:
    """Every response succeeded and none of its bodies holds a leak."""
    for response in responses:
        assert response.status_code in (200, 201)
        body = response.content.decode()
        assert not any(leak in body for leak in leaks), response.request["PATH_INFO"]
