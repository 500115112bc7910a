"""Fixtures for the regions page tests: clients per role, demo topology, catalogue."""

import io
import subprocess
from pathlib import Path

import pytest
from django.conf import settings
from django.core.management import call_command

LOCALE_PO = Path(settings.BASE_DIR) / "locale/zh_Hans/LC_MESSAGES/django.po"


@pytest.fixture(scope="session", autouse=True)
def compiled_catalogue():
    """Compile the zh_Hans catalogue when the .mo is missing or older than the .po."""
    mo = LOCALE_PO.with_suffix(".mo")
    if LOCALE_PO.exists() and (
        not mo.exists() or mo.stat().st_mtime < LOCALE_PO.stat().st_mtime
    ):
        subprocess.run(["msgfmt", "--check", "-o", str(mo), str(LOCALE_PO)], check=True)
    # Django caches catalogues per process; drop them so the fresh .mo is read.
    from django.utils.translation import trans_real

    trans_real._translations = {}
    trans_real._active = trans_real.Local()


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
