"""Production-safe settings, read from the environment.

DEBUG is off, cookies are secure and there are no default keys: a deployment
that forgets FERRY_SECRET_KEY or FERRY_ENCRYPTION_KEYS fails at start-up
instead of running with a guessable key or failing at the first secret.
"""

import os
from datetime import timedelta
from pathlib import Path

import dj_database_url
from celery.schedules import schedule
from django.core.exceptions import ImproperlyConfigured
from django.utils.translation import gettext_lazy as _

BASE_DIR = Path(__file__).resolve().parent.parent.parent
VAR_DIR = Path(os.environ.get("FERRY_VAR_DIR", BASE_DIR / "var"))


def env(name: str, default: str | None = None) -> str:
    value = os.environ.get(name, default)
    if value is None:
        raise ImproperlyConfigured(f"Set the environment variable {name}.")
    return value


def env_list(name: str, default: str | None = "") -> list[str]:
    return [item.strip() for item in env(name, default).split(",") if item.strip()]


def env_float(name: str, default: float) -> float:
    return float(env(name, str(default)))


SECRET_KEY = env("FERRY_SECRET_KEY")
# Comma-separated Fernet keys; the first encrypts, all decrypt (see README).
# Required like the secret key: without one, the first secret saved would fail.
# controlplane/checks.py refuses keys that are not valid Fernet keys.
FERRY_ENCRYPTION_KEYS = env_list("FERRY_ENCRYPTION_KEYS", None)
if not FERRY_ENCRYPTION_KEYS:
    raise ImproperlyConfigured("Set the environment variable FERRY_ENCRYPTION_KEYS.")
DEBUG = False
ALLOWED_HOSTS = env_list("FERRY_ALLOWED_HOSTS", "localhost,127.0.0.1")
CSRF_TRUSTED_ORIGINS = env_list("FERRY_CSRF_TRUSTED_ORIGINS")

INSTALLED_APPS = [
    "django.contrib.admin",
    "django.contrib.auth",
    "django.contrib.contenttypes",
    "django.contrib.sessions",
    "django.contrib.messages",
    "django.contrib.staticfiles",
    "django.contrib.humanize",
    "rest_framework",
    "django_filters",
    "drf_spectacular",
    "drf_spectacular_sidecar",
    "django_htmx",
    "template_partials",
    "controlplane",
    "regions",
    "registries",
    "builds",
    "deployments",
]

MIDDLEWARE = [
    "django.middleware.security.SecurityMiddleware",
    "whitenoise.middleware.WhiteNoiseMiddleware",
    "django.contrib.sessions.middleware.SessionMiddleware",
    "django.middleware.locale.LocaleMiddleware",
    "django.middleware.common.CommonMiddleware",
    "django.middleware.csrf.CsrfViewMiddleware",
    "django.contrib.auth.middleware.AuthenticationMiddleware",
    "django.contrib.messages.middleware.MessageMiddleware",
    "django.middleware.clickjacking.XFrameOptionsMiddleware",
    "django_htmx.middleware.HtmxMiddleware",
    "controlplane.auth.LoginRequiredMiddleware",
]

ROOT_URLCONF = "controlplane.urls"
WSGI_APPLICATION = "controlplane.wsgi.application"

TEMPLATES = [
    {
        "BACKEND": "django.template.backends.django.DjangoTemplates",
        "DIRS": [BASE_DIR / "templates"],
        "APP_DIRS": True,
        "OPTIONS": {
            "context_processors": [
                "django.template.context_processors.request",
                "django.template.context_processors.i18n",
                "django.contrib.auth.context_processors.auth",
                "django.contrib.messages.context_processors.messages",
                "controlplane.auth.role_context",
            ],
        },
    },
]

DATABASES = {
    "default": dj_database_url.parse(
        env("DATABASE_URL", f"sqlite:///{VAR_DIR / 'ferry.sqlite3'}"),
        conn_max_age=60,
    )
}
DEFAULT_AUTO_FIELD = "django.db.models.BigAutoField"

AUTH_PASSWORD_VALIDATORS = [
    {"NAME": "django.contrib.auth.password_validation.MinimumLengthValidator"},
    {"NAME": "django.contrib.auth.password_validation.CommonPasswordValidator"},
]
LOGIN_URL = "login"
LOGIN_REDIRECT_URL = "overview"
LOGOUT_REDIRECT_URL = "login"

LANGUAGE_CODE = "en"
LANGUAGES = [("en", _("English")), ("zh-hans", _("Simplified Chinese"))]
LOCALE_PATHS = [BASE_DIR / "locale"]
TIME_ZONE = "UTC"
USE_I18N = True
USE_TZ = True

STATIC_URL = "static/"
STATIC_ROOT = BASE_DIR / "staticfiles"
STATICFILES_DIRS = [BASE_DIR / "static"]

REDIS_URL = env("REDIS_URL", "redis://127.0.0.1:6379/0")
CACHES = {
    "default": {
        "BACKEND": "django.core.cache.backends.redis.RedisCache",
        "LOCATION": REDIS_URL,
    }
}

CELERY_BROKER_URL = REDIS_URL
CELERY_RESULT_BACKEND = None
CELERY_TASK_IGNORE_RESULT = True
CELERY_TASK_ACKS_LATE = True
# Long work (builds, cluster provisioning, prewarm) has its own queue and
# worker (setup.sh's "builder", compose's "builder"), so it never holds up
# host checks, applies, cancels and the reaper on the default queue.
FERRY_LONG_QUEUE = "long"
CELERY_TASK_ROUTES = {
    "builds.tasks.build_run_task": {"queue": FERRY_LONG_QUEUE},
    "builds.tasks.cluster_provision_task": {"queue": FERRY_LONG_QUEUE},
    "registries.tasks.prewarm_image_task": {"queue": FERRY_LONG_QUEUE},
}
CELERY_WORKER_PREFETCH_MULTIPLIER = 1
CELERY_BROKER_CONNECTION_RETRY_ON_STARTUP = True
FERRY_HOST_HEALTH_INTERVAL = env_float("FERRY_HOST_HEALTH_INTERVAL", 30.0)
# Periodic work expires after its interval: while every worker is busy (long
# builds), stale fan-outs are dropped instead of piling up; the next beat
# sends a fresh one.
CELERY_BEAT_SCHEDULE = {
    "host-health": {
        "task": "regions.tasks.check_all_hosts_task",
        "schedule": schedule(timedelta(seconds=FERRY_HOST_HEALTH_INTERVAL)),
        "options": {"expires": FERRY_HOST_HEALTH_INTERVAL},
    },
}

# Adapters build clients lazily with these timeouts (seconds).
# How often the host pages refresh their live fragments.
FERRY_PAGE_POLL_SECONDS = env_float("FERRY_PAGE_POLL_SECONDS", 5.0)
FERRY_DOCKER_TIMEOUT = env_float("FERRY_DOCKER_TIMEOUT", 5.0)
FERRY_HTTP_TIMEOUT = env_float("FERRY_HTTP_TIMEOUT", 10.0)

# Image names are settings: production uses the public images, tests override
# them with images built locally from Debian binaries.
FERRY_REGISTRY_IMAGE = env("FERRY_REGISTRY_IMAGE", "registry:2")
FERRY_NGINX_IMAGE = env("FERRY_NGINX_IMAGE", "nginx:1.27")
FERRY_JENKINS_IMAGE = env("FERRY_JENKINS_IMAGE", "jenkins/jenkins:lts")

REST_FRAMEWORK = {
    "DEFAULT_AUTHENTICATION_CLASSES": [
        "controlplane.auth.BearerTokenAuthentication",
        "rest_framework.authentication.SessionAuthentication",
    ],
    "DEFAULT_PERMISSION_CLASSES": ["controlplane.auth.RolePermission"],
    "DEFAULT_FILTER_BACKENDS": [
        "django_filters.rest_framework.DjangoFilterBackend",
        "rest_framework.filters.OrderingFilter",
    ],
    "DEFAULT_PAGINATION_CLASS": "rest_framework.pagination.PageNumberPagination",
    "PAGE_SIZE": 50,
    "DEFAULT_SCHEMA_CLASS": "drf_spectacular.openapi.AutoSchema",
    "EXCEPTION_HANDLER": "controlplane.api.exception_handler",
}
SPECTACULAR_SETTINGS = {
    "TITLE": "Ferry API",
    "DESCRIPTION": "Regions, Docker hosts, registries, builds and rollouts.",
    "VERSION": "1",
    "SERVE_INCLUDE_SCHEMA": False,
    "SWAGGER_UI_DIST": "SIDECAR",
    "SWAGGER_UI_FAVICON_HREF": "SIDECAR",
    "REDOC_DIST": "SIDECAR",
    "COMPONENT_SPLIT_REQUEST": True,
}

# Login attempts per username+address within the window before refusing.
FERRY_LOGIN_MAX_ATTEMPTS = int(env("FERRY_LOGIN_MAX_ATTEMPTS", "5"))
FERRY_LOGIN_WINDOW = int(env("FERRY_LOGIN_WINDOW", "300"))
FERRY_LOGIN_MAX_ATTEMPTS_PER_ADDRESS = int(
    env("FERRY_LOGIN_MAX_ATTEMPTS_PER_ADDRESS", "50")
)
# How many proxies of ours stand in front of the web server (X-Forwarded-For).
FERRY_TRUSTED_PROXIES = int(env("FERRY_TRUSTED_PROXIES", "0"))

SESSION_COOKIE_SECURE = True
CSRF_COOKIE_SECURE = True
SESSION_COOKIE_HTTPONLY = True
SECURE_SSL_REDIRECT = env("FERRY_SSL_REDIRECT", "true") == "true"
SECURE_PROXY_SSL_HEADER = ("HTTP_X_FORWARDED_PROTO", "https")
SECURE_HSTS_SECONDS = int(env("FERRY_HSTS_SECONDS", "31536000"))
SECURE_HSTS_INCLUDE_SUBDOMAINS = True
SECURE_HSTS_PRELOAD = True
SECURE_CONTENT_TYPE_NOSNIFF = True
X_FRAME_OPTIONS = "DENY"

LOGGING = {
    "version": 1,
    "disable_existing_loggers": False,
    "handlers": {"console": {"class": "logging.StreamHandler"}},
    "root": {"handlers": ["console"], "level": env("FERRY_LOG_LEVEL", "INFO")},
}

# registries
# Where registries send their notifications (Ferry as seen from the hosts).
FERRY_PUBLIC_URL = env("FERRY_PUBLIC_URL", "http://127.0.0.1:8000")
# Reconcile pass over every applied registry: repairs drift, records health.
FERRY_REGISTRY_RECONCILE_INTERVAL = env_float("FERRY_REGISTRY_RECONCILE_INTERVAL", 60.0)
# How long an apply waits for its containers to listen, and for another
# apply of the same registry to finish, before giving up (seconds).
FERRY_REGISTRY_READY_TIMEOUT = env_float("FERRY_REGISTRY_READY_TIMEOUT", 30.0)
FERRY_REGISTRY_LOCK_WAIT = env_float("FERRY_REGISTRY_LOCK_WAIT", 10.0)
# Celery time limit of an apply or reconcile task (seconds); the apply lease
# lasts as long and is renewed between steps.
FERRY_REGISTRY_APPLY_TIME_LIMIT = env_float("FERRY_REGISTRY_APPLY_TIME_LIMIT", 900.0)
CELERY_BEAT_SCHEDULE["registries-reconcile"] = {
    "task": "registries.tasks.reconcile_all_registries_task",
    "schedule": schedule(timedelta(seconds=FERRY_REGISTRY_RECONCILE_INTERVAL)),
    "options": {"expires": FERRY_REGISTRY_RECONCILE_INTERVAL},
}

# builds
# A running build is failed by the reaper after this many seconds.
FERRY_BUILD_TIMEOUT = env_float("FERRY_BUILD_TIMEOUT", 3600.0)
FERRY_BUILD_REAP_INTERVAL = env_float("FERRY_BUILD_REAP_INTERVAL", 60.0)
# A build log keeps its first N bytes (the page and the API show them).
FERRY_BUILD_LOG_MAX_BYTES = int(env("FERRY_BUILD_LOG_MAX_BYTES", "5000000"))
# Executor name -> dotted path of its class (merged over the defaults in
# builds/executors/__init__.py).
FERRY_BUILD_EXECUTORS: dict[str, str] = {}
CELERY_BEAT_SCHEDULE["builds-reap"] = {
    "task": "builds.tasks.reap_builds_task",
    "schedule": schedule(timedelta(seconds=FERRY_BUILD_REAP_INTERVAL)),
    "options": {"expires": FERRY_BUILD_REAP_INTERVAL},
}

# api / auth
# The OpenAPI schema and the docs page need a role (session or token), like
# every other page and endpoint.
SPECTACULAR_SETTINGS["SERVE_PERMISSIONS"] = ["controlplane.auth.RolePermission"]

# registry metrics
# How often each registry is sampled (access-log ground truth + gauges), how
# far behind "now" a sample's window ends (docker may still be delivering the
# newest log lines), and how often the object store is listed for usage.
FERRY_REGISTRY_SAMPLE_INTERVAL = env_float("FERRY_REGISTRY_SAMPLE_INTERVAL", 60.0)
FERRY_REGISTRY_LOG_LAG = env_float("FERRY_REGISTRY_LOG_LAG", 2.0)
FERRY_REGISTRY_USAGE_INTERVAL = env_float("FERRY_REGISTRY_USAGE_INTERVAL", 600.0)
# The upstream gateway resolves redirect targets (bucket hostnames) at request
# time with this DNS server; empty: only IP-literal redirects work.
FERRY_GATEWAY_RESOLVER = env("FERRY_GATEWAY_RESOLVER", "127.0.0.53")
# CA bundle inside the gateway image for verifying https upstreams ("" = off).
FERRY_GATEWAY_CA_BUNDLE = env(
    "FERRY_GATEWAY_CA_BUNDLE", "/etc/ssl/certs/ca-certificates.crt"
)
CELERY_BEAT_SCHEDULE["registries-sample"] = {
    "task": "registries.tasks.sample_all_registries_task",
    "schedule": schedule(timedelta(seconds=FERRY_REGISTRY_SAMPLE_INTERVAL)),
    "options": {"expires": FERRY_REGISTRY_SAMPLE_INTERVAL},
}
# Stable OpenAPI enum names: several models have a "status" or "kind" field.
SPECTACULAR_SETTINGS["ENUM_NAME_OVERRIDES"] = {
    "HostStatusEnum": "regions.models.HostStatus",
    "HostRoleEnum": "regions.models.DockerHost.HostRole",
    "RegionRoleEnum": "regions.models.Region.Role",
    "ObjectStoreKindEnum": "registries.models.ObjectStore.Kind",
    "RegistryKindEnum": "registries.models.Registry.Kind",
    "RegistryStatusEnum": "registries.models.RegistryStatus",
    "BuildClusterStatusEnum": "builds.models.ClusterStatus",
    "BuildStatusEnum": "builds.models.BuildStatus",
    "RolloutStatusEnum": "deployments.models.RolloutStatus",
}

# jenkins executor
# How often a running Jenkins build is polled (queue, console, result); how
# long a build may wait in Jenkins' own queue; how long Jenkins may stop
# answering mid-build before the build fails; how long provisioning waits
# for a new master to answer; how long a stopped build may take to end.
FERRY_JENKINS_POLL_INTERVAL = env_float("FERRY_JENKINS_POLL_INTERVAL", 1.0)
FERRY_JENKINS_QUEUE_TIMEOUT = env_float("FERRY_JENKINS_QUEUE_TIMEOUT", 900.0)
FERRY_JENKINS_OUTAGE_GRACE = env_float("FERRY_JENKINS_OUTAGE_GRACE", 60.0)
FERRY_JENKINS_READY_TIMEOUT = env_float("FERRY_JENKINS_READY_TIMEOUT", 180.0)
FERRY_JENKINS_STOP_WAIT = env_float("FERRY_JENKINS_STOP_WAIT", 30.0)

# registry container logs
# Docker's json-file limits on every registry container (registry, nginx,
# gateway), so a busy mirror cannot fill the host's disk. The metrics sampler
# reads the nginx and gateway access logs through `docker logs`: size x files
# must hold at least one sampling interval of requests (a log line is about
# 0.5 KB: 50m x 3 holds ~300,000 requests).
FERRY_REGISTRY_LOG_MAX_SIZE = env("FERRY_REGISTRY_LOG_MAX_SIZE", "50m")
FERRY_REGISTRY_LOG_MAX_FILES = int(env("FERRY_REGISTRY_LOG_MAX_FILES", "3"))

# registry health probes on remote hosts
# A registry bound to loopback on a remote (tcp:// or ssh://) Docker host is
# probed from that host: a short-lived container of this image (it needs
# `sh`, `timeout` and `wget`) on the host network GETs /v2/.
FERRY_PROBE_IMAGE = env("FERRY_PROBE_IMAGE", "busybox:1.36")
