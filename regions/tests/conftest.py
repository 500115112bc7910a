"""Fixtures for the regions page tests: clients per role, demo topology, catalogue."""

import io

import pytest
from django.core.management import call_command


@pytest.fixture(scope="session", autouse=True)
def compiled_catalogue(compiled_catalogue):
    """Every test here may render Chinese: the fresh .mo (testing/fixtures.py)."""
    return compiled_catalogue


def _client_for(client, user):
    client.force_login(user)
    return client


@pytest.fixture
def viewer_client(client, viewer):
    return _client_for(client, viewer)


@pytest.fixture
def operator_client(client, operator):
    return _client_for(client, operator)


@pytest.fixture
def admin_role_client(client, ferry_admin):
    return _client_for(client, ferry_admin)


@pytest.fixture
def demo(db):
    """The demo topology from the set-up command (three regions, a host each)."""
    call_command("seed_demo", stdout=io.StringIO())
