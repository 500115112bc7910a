"""Headless Chromium for page tests: a page that records failures, a login.

Screenshots land in artifacts/screenshots/ (gitignored) for a human to look at.
"""

import os
from collections.abc import Iterator
from contextlib import contextmanager
from pathlib import Path

import pytest
from django.conf import settings
from playwright import sync_api

from .users import password_of

CHROMIUM = "/usr/bin/chromium"
CHROMIUM_ARGS = [
    "--headless",
    "--no-sandbox",
    "--disable-gpu",
    "--disable-background-networking",
    "--disable-component-update",
    "--no-first-run",
    "--disable-sync",
    "--disable-quic",
]
SHOTS = Path(settings.BASE_DIR) / "artifacts" / "screenshots"


@contextmanager
def chromium_page(*, height: int = 900, timeout_ms: int = 15_000) -> Iterator:
    """A 1280-wide Chromium page; fails the test without Chromium.

    ./scripts/test.sh installs Chromium and playwright; a browser test that
    skipped would let the suite pass without ever rendering a page.

    Every 4xx/5xx response is collected in `page.bad` as (status, url), every
    uncaught script error in `page.errors`.
    """
    if not os.path.exists(CHROMIUM):
        pytest.fail("Chromium is not installed (apt-get install chromium)")
    SHOTS.mkdir(parents=True, exist_ok=True)
    with pytest.MonkeyPatch.context() as env, sync_api.sync_playwright() as pw:
        # Playwright's sync API runs an event loop in this thread; the ORM calls
        # the test makes between page actions are plain synchronous code.
        env.setenv("DJANGO_ALLOW_ASYNC_UNSAFE", "true")
        browser = pw.chromium.launch(executable_path=CHROMIUM, args=CHROMIUM_ARGS)
        try:
            page = browser.new_page(viewport={"width": 1280, "height": height})
            page.set_default_timeout(timeout_ms)
            page.bad = []
            page.errors = []
            page.on(
                "response",
                lambda r: r.status >= 400 and page.bad.append((r.status, r.url)),
            )
            page.on("pageerror", lambda exc: page.errors.append(str(exc)))
            yield page
        finally:
            browser.close()
            _close_connections_made_under_playwright()


def login(page, base_url: str, username: str, password: str | None = None) -> None:
    """Log in through the login form (default password: `user_with_role`'s)."""
    page.goto(base_url + "/login/")
    page.fill("input[name=username]", username)
    page.fill("input[name=password]", password or password_of(username))
    page.click(".login button[type=submit]")


def shot(page, name: str) -> None:
    """A full-page screenshot, artifacts/screenshots/<name>.png."""
    path = SHOTS / f"{name}.png"
    page.screenshot(path=str(path), full_page=True)
    assert path.stat().st_size > 0, path


def _close_connections_made_under_playwright() -> None:
    """While Playwright's event loop runs in this thread, Django keeps this
    thread's connections per async context, not per thread: the ones the test
    opened between page actions would be lost, still open, once it stops."""
    from django.db import connections

    if not any(conn.in_atomic_block for conn in connections.all()):
        connections.close_all()
