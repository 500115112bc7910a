"""pytest plugin: real services for Ferry's tests (see shared/TESTING.md).

Registered by the root conftest.py. Session fixtures: `dockerd`,
`test_images`, `redis_url`, `s3_server`, `test_ca`. Function fixtures:
`dockerd_factory`, `celery_worker` (+ `celery_worker_env` to extend its
environment, `celery_worker_pool` for its -P and -c), `container_cleanup`,
`use_test_images` (image settings point at the local images), users
`viewer`, `operator` and `ferry_admin`, and `compiled_catalogue` (the
zh_Hans .mo, fresh from the .po). A test using `celery_worker` must be
`@pytest.mark.django_db(transaction=True)`: the worker is another process
and sees only committed rows.
"""

import os
import shutil
import subprocess
import tempfile
import uuid
from pathlib import Path
from urllib.parse import quote

import pytest

from . import services
from .dockerd import Dockerd
from .images import import_test_images
from .tls import TestCA


@pytest.fixture(scope="session")
def django_db_modify_db_settings(django_db_modify_db_settings_parallel_suffix):
    """SQLite test databases live in a file, so a worker process can open it."""
    from django.conf import settings

    db = settings.DATABASES["default"]
    if db["ENGINE"] != "django.db.backends.sqlite3":
        yield
        return
    directory = tempfile.mkdtemp(prefix="ferry-testdb-")
    db.setdefault("TEST", {})["NAME"] = os.path.join(directory, "test.sqlite3")
    yield
    shutil.rmtree(directory, ignore_errors=True)  # after the test DB is dropped


# -- docker ------------------------------------------------------------------
@pytest.fixture(scope="session")
def dockerd():
    with Dockerd() as engine:
        yield engine


@pytest.fixture
def dockerd_factory():
    """Call it (optionally with extra_args=[...]) to start another Dockerd;
    all are stopped and deleted at teardown."""
    started: list[Dockerd] = []

    def start(extra_args: list[str] | None = None) -> Dockerd:
        engine = Dockerd(extra_args=extra_args)
        started.append(engine)
        return engine.start()

    yield start
    for engine in reversed(started):
        engine.close()


@pytest.fixture(scope="session")
def test_images(dockerd):
    return import_test_images(dockerd.client)


class ContainerCleanup:
    """Names containers with a unique prefix and removes only those."""

    def __init__(self, client, prefix: str):
        self.client, self.prefix = client, prefix

    def name(self, suffix: str = "") -> str:
        return f"{self.prefix}{suffix or uuid.uuid4().hex[:6]}"

    def remove_all(self) -> None:
        for container in self.client.containers.list(all=True):
            if container.name.startswith(self.prefix):
                container.remove(force=True)


@pytest.fixture
def container_cleanup(dockerd):
    """`container_cleanup.name("web")` -> a name removed after the test."""
    cleanup = ContainerCleanup(dockerd.client, f"t-{uuid.uuid4().hex[:8]}-")
    yield cleanup
    cleanup.remove_all()


# -- services ----------------------------------------------------------------
@pytest.fixture(scope="session")
def redis_url():
    """REDIS_URL_TEST if given, else a fresh redis-server; Celery points at it."""
    given = os.environ.get("REDIS_URL_TEST")
    if given:
        point_celery_at(given)
        yield given
        return
    with services.redis_server() as url:
        point_celery_at(url)
        yield url


def point_celery_at(url: str) -> None:
    """Make this process publish tasks to the test broker."""
    from django.conf import settings

    from controlplane.celery import app

    settings.REDIS_URL = settings.CELERY_BROKER_URL = url
    app.conf.broker_url = url
    # Pools are built lazily from broker_url; drop one built for an old URL.
    if app._pool is not None:
        app._pool.force_close_all()
        app._pool = None
        app.amqp._producer_pool = None


@pytest.fixture(scope="session")
def s3_server():
    with services.moto_server() as endpoint:
        yield endpoint


@pytest.fixture(scope="session")
def test_ca(tmp_path_factory):
    return TestCA.create(tmp_path_factory.mktemp("test-ca"))


# -- celery --------------------------------------------------------------------
def database_url() -> str:
    """A URL for the database this test process uses now (the test DB)."""
    from django.db import connection

    info = connection.settings_dict
    if info["ENGINE"] == "django.db.backends.sqlite3":
        return f"sqlite:///{info['NAME']}"
    auth = quote(info["USER"] or "", safe="")
    if info.get("PASSWORD"):
        auth += ":" + quote(info["PASSWORD"], safe="")
    host = quote(info.get("HOST") or "127.0.0.1", safe="")  # a socket dir too
    port = f":{info['PORT']}" if info.get("PORT") else ""
    return f"postgres://{auth}@{host}{port}/{quote(info['NAME'], safe='')}"


def settings_env() -> dict[str, str]:
    """FERRY_* settings as environment variables, so a worker started now
    sees what this test set (e.g. image names, timeouts) via base.py's env()."""
    from django.conf import settings

    env = {}
    for name in dir(settings):
        if not name.startswith("FERRY_"):
            continue
        value = getattr(settings, name)
        if isinstance(value, bool):
            env[name] = "true" if value else "false"
        elif isinstance(value, (str, int, float)):
            env[name] = str(value)
        elif isinstance(value, (list, tuple)) and all(
            isinstance(v, str) for v in value
        ):
            env[name] = ",".join(value)
    env["FERRY_SECRET_KEY"] = settings.SECRET_KEY
    return env


@pytest.fixture
def celery_worker_env():
    """Extra environment for the worker; override this fixture to add to it."""
    return {}


@pytest.fixture
def celery_worker_pool():
    """The worker's pool and concurrency; parametrize it to let tasks overlap,
    e.g. @pytest.mark.parametrize("celery_worker_pool", [("threads", 2)])."""
    return ("solo", 1)


@pytest.fixture
def celery_worker(redis_url, transactional_db, celery_worker_env, celery_worker_pool):
    """A real worker + beat on the test broker and the current test database.

    Its settings are controlplane.settings.test plus this process's FERRY_*
    settings at the time the fixture runs (request `settings` overrides
    before it) plus `celery_worker_env`.
    """
    env = {
        **settings_env(),
        "REDIS_URL": redis_url,
        "DATABASE_URL": database_url(),
        "DJANGO_SETTINGS_MODULE": "controlplane.settings.test",
        **celery_worker_env,
    }
    pool, concurrency = celery_worker_pool
    with services.celery_worker(env, pool=pool, concurrency=concurrency) as worker:
        yield worker


@pytest.fixture
def use_test_images(settings, test_images):
    """Point FERRY_REGISTRY_IMAGE / FERRY_NGINX_IMAGE at the local images."""
    settings.FERRY_REGISTRY_IMAGE = test_images.registry
    settings.FERRY_NGINX_IMAGE = test_images.nginx
    return test_images


# -- users with a role (password "pw-<name>", see users.py) -------------------------
def _user(username: str, role: str):
    from .users import user_with_role  # the auth models need Django set up

    return user_with_role(username, role)


@pytest.fixture
def viewer(db):
    return _user("vera", "viewer")


@pytest.fixture
def operator(db):
    return _user("otto", "operator")


@pytest.fixture
def ferry_admin(db):
    return _user("ada", "admin")


@pytest.fixture(scope="session")
def compiled_catalogue():
    """Compile the zh_Hans catalogue when the .mo is missing or older than the .po."""
    from django.conf import settings
    from django.utils.translation import trans_real

    po = Path(settings.BASE_DIR) / "locale/zh_Hans/LC_MESSAGES/django.po"
    mo = po.with_suffix(".mo")
    if po.exists() and (not mo.exists() or mo.stat().st_mtime < po.stat().st_mtime):
        subprocess.run(["msgfmt", "--check", "-o", str(mo), str(po)], check=True)
    # Django caches catalogues per process; drop them so the fresh .mo is read.
    trans_real._translations = {}
    trans_real._active = trans_real.Local()
