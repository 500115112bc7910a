"""Root conftest: the real-service test harness (controlplane/testing)."""

import warnings

import pytest

pytest_plugins = ["controlplane.testing.fixtures"]


@pytest.fixture(scope="session")
def django_db_setup(django_db_setup, django_db_blocker):
    """pytest-django's test database, plus a check at the end of the session:
    a PostgreSQL connection still open then (a thread or process the tests
    started and did not close) would stop the test database from being
    dropped. Name it, then end it so the teardown can go on."""
    yield
    with django_db_blocker.unblock():
        from django.db import connection

        if connection.vendor != "postgresql":
            return
        with connection.cursor() as cursor:
            cursor.execute(
                "SELECT pid, backend_start, state, left(query, 200)"
                " FROM pg_stat_activity"
                " WHERE datname = current_database() AND pid <> pg_backend_pid()"
            )
            others = cursor.fetchall()
            for pid, *_rest in others:
                cursor.execute("SELECT pg_terminate_backend(%s)", [pid])
    if others:
        warnings.warn(f"test database sessions left open: {others}", stacklevel=1)
