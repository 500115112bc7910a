"""Root conftest: the real-service test harness (controlplane/testing)."""

import warnings

import pytest

from controlplane.testing.wait import wait_for

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

            def others_now() -> list:
                cursor.execute(OTHER_SESSIONS)
                return cursor.fetchall()

            try:
                wait_for(lambda: not others_now(), timeout=5, interval=0.1)
            except AssertionError:
                pass  # named and ended below
            others = others_now()
            for pid, *_rest in others:
                cursor.execute("SELECT pg_terminate_backend(%s)", [pid])
    if others:
        warnings.warn(f"test database sessions left open: {others}", stacklevel=1)


@pytest.fixture(scope="session")
def live_server(django_db_setup, live_server):
    """pytest-django's live server, stopped before the test database is
    dropped (its threads hold connections to it until they end)."""
    return live_server
