"""Test settings: fast hashing, local keys, database from DATABASE_URL."""

from .dev import *  # noqa: F403

PASSWORD_HASHERS = ["django.contrib.auth.hashers.MD5PasswordHasher"]
DEBUG = False
FERRY_HOST_HEALTH_INTERVAL = 1.0
CACHES = {"default": {"BACKEND": "django.core.cache.backends.locmem.LocMemCache"}}
