"""Root conftest: the real-service test harness (controlplane/testing)."""

import time
import warnings

import pytest

pytest_plugins = ["controlplane.testing.fixtures"]

OTHER_SESSIONS = (
    "SELECT pid, backend_start, state, left(query, 200) FROM pg_stat_activity"
    " WHERE datname = current_database() AND pid <> pg_backend_pid()"
)


@pytest.fixture(scope="session")
def django_db_setup(django_db_setup, django_db_blocker):
    """pytest-django's test database, plus a check at the end of the session:
    a PostgreSQL session still open then would stop the test database from
    being dropped. One the live server's threads just closed can take a
    moment to end; one still there after that (a thread or process the tests
    started and did not close) is named, then ended."""
    yield
    with django_db_blocker.unblock():
        from django.db import connection

        if connection.vendor != "postgresql":
            return
        with connection.cursor() as cursor:
            deadline = time.monotonic() + 5
            while True:
                cursor.execute(OTHER_SESSIONS)
                others = cursor.fetchall()
                if not others or time.monotonic() > deadline:
                    break
                time.sleep(0.1)
            for pid, *_rest in others:
                cursor.execute("SELECT pg_terminate_backend(%s)", [pid])
    if others:
        warnings.warn(f"test database sessions left open: {others}", stacklevel=1)


@pytest.fixture(scope="session")
def live_server(django_db_setup, live_server):
    """pytest-django's live server, stopped before the test database is
    dropped (its threads hold connections to it until they end)."""
    return live_server
