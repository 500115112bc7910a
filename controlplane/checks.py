"""System checks: settings that must be right before Ferry serves a request.

`manage.py check` (and migrate, which compose runs before the web server)
fails with an error naming the setting, never showing the key itself.
"""

from cryptography.fernet import Fernet
from django.conf import settings
from django.core.checks import Error, Tags, register


@register(Tags.security)
def encryption_keys_check(app_configs, **kwargs) -> list[Error]:
    """Every FERRY_ENCRYPTION_KEYS entry is a Fernet key, and there is one."""
    keys = getattr(settings, "FERRY_ENCRYPTION_KEYS", [])
    hint = (
        "Generate one with: python3 -c 'from cryptography.fernet import Fernet; "
        "print(Fernet.generate_key().decode())'"
    )
    if not keys:
        message = "FERRY_ENCRYPTION_KEYS is empty: secrets cannot be encrypted."
        return [Error(message, hint=hint, id="ferry.E001")]
    errors = []
    for position, key in enumerate(keys, start=1):
        try:
            Fernet(key.encode() if isinstance(key, str) else key)
        except (ValueError, TypeError):
            message = (
                f"FERRY_ENCRYPTION_KEYS: key {position} of {len(keys)} is not a "
                "valid Fernet key (32 url-safe base64-encoded bytes)."
            )
            errors.append(Error(message, hint=hint, id="ferry.E002"))
    return errors
