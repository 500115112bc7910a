"""Test settings: fast hashing, local keys, database from DATABASE_URL."""

import os

# Read by base.py when it builds the beat schedule, so set it before importing.
os.environ.setdefault("FERRY_HOST_HEALTH_INTERVAL", "1")

from .dev import *

PASSWORD_HASHERS = ["django.contrib.auth.hashers.MD5PasswordHasher"]
DEBUG = False
FERRY_HOST_HEALTH_INTERVAL = float(os.environ["FERRY_HOST_HEALTH_INTERVAL"])
CACHES = {"default": {"BACKEND": "django.core.cache.backends.locmem.LocMemCache"}}

# Close each request's connection when it ends: live-server request threads
# die with their persistent connections still open, and PostgreSQL then
# refuses to drop the test database ("being accessed by other users").
DATABASES["default"]["CONN_MAX_AGE"] = 0

# A Celery worker process shares the SQLite test database (a file, see
# controlplane/testing/fixtures.py) with pytest: wait for locks rather than
# fail, and let readers run beside the writer.
if DATABASES["default"]["ENGINE"] == "django.db.backends.sqlite3":
    DATABASES["default"].setdefault("OPTIONS", {}).update(
        {
            "timeout": 20,
            "init_command": "PRAGMA journal_mode=WAL;",
            "transaction_mode": "IMMEDIATE",
        }
    )

# Tests serve static files through Django's finders (live_server); WhiteNoise
# would only warn that the collected STATIC_ROOT does not exist.
MIDDLEWARE = [m for m in MIDDLEWARE if not m.startswith("whitenoise.")]
