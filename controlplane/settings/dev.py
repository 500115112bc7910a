"""Local quick start: DEBUG on, plain-HTTP cookies, keys from var/ if unset."""

import os

from ._local_keys import ensure_local_keys

ensure_local_keys()

from .base import *  # noqa: E402,F403

DEBUG = os.environ.get("FERRY_DEBUG", "true") == "true"
SESSION_COOKIE_SECURE = False
CSRF_COOKIE_SECURE = False
SECURE_SSL_REDIRECT = False
SECURE_HSTS_SECONDS = 0
ALLOWED_HOSTS = ["*"]
