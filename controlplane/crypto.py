"""Encryption of secrets at rest with Fernet keys from the environment.

FERRY_ENCRYPTION_KEYS holds one or more keys, comma-separated. The first
encrypts; every key decrypts, so a new key can be put in front, the data
re-encrypted with `manage.py rotate_encryption_key`, and the old key removed.
"""

from functools import cache

from cryptography.fernet import Fernet, InvalidToken, MultiFernet
from django.conf import settings
from django.core.exceptions import ImproperlyConfigured

PREFIX = "fernet:"


@cache
def _fernet() -> MultiFernet:
    keys = settings.FERRY_ENCRYPTION_KEYS
    if not keys:
        raise ImproperlyConfigured("Set FERRY_ENCRYPTION_KEYS to encrypt secrets.")
    return MultiFernet([Fernet(key.encode()) for key in keys])


def encrypt(plaintext: str) -> str:
    if plaintext == "":
        return ""
    return PREFIX + _fernet().encrypt(plaintext.encode()).decode()


def decrypt(stored: str) -> str:
    if not stored:
        return ""
    if not stored.startswith(PREFIX):
        raise ValueError("Stored secret is not encrypted.")
    try:
        return _fernet().decrypt(stored[len(PREFIX) :].encode()).decode()
    except InvalidToken as exc:
        raise ImproperlyConfigured(
            "A stored secret cannot be decrypted with FERRY_ENCRYPTION_KEYS."
        ) from exc


def rotate(stored: str) -> str:
    """Re-encrypt with the first key."""
    if not stored:
        return ""
    return PREFIX + _fernet().rotate(stored[len(PREFIX) :].encode()).decode()
