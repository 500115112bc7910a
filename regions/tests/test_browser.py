"""Headless Chromium against a live server: log in, overview, hosts, Chinese.

Screenshots land in artifacts/screenshots/ (gitignored) for a human to look at.
"""

import io

import pytest
from django.contrib.auth.models import Group, User
from django.core.management import call_command

from controlplane.testing.browser import chromium_page, login, shot
from controlplane.testing.wait import wait_for
from regions.models import DockerHost, HostStatus

pytestmark = [pytest.mark.browser, pytest.mark.integration]

MISSING_SOCKET = "unix:///nonexistent/ferry-browser-test/docker.sock"


@pytest.fixture
def browser_page():
    """A Chromium page; every 4xx/5xx response is collected in `page.bad`."""
    with chromium_page(height=820, timeout_ms=15_000) as page:
        yield page


@pytest.fixture
def topology(transactional_db):
    """Demo regions; the Hong Kong host points at a socket that is not there."""
    call_command("seed_demo", stdout=io.StringIO())
    DockerHost.objects.filter(name="hk-demo-1").update(docker_url=MISSING_SOCKET)
    user = User.objects.create_user("olga", password="olga-pass-123")
    user.groups.add(Group.objects.get_or_create(name="operator")[0])
    return user


def test_login_overview_host_page_and_chinese(live_server, topology, browser_page):
    page = browser_page
    page.goto(live_server.url + "/")
    assert "/login/" in page.url  # every page needs a login
    shot(page, "01-login")
    login(page, live_server.url, "olga", "olga-pass-123")
    page.wait_for_selector("#region-cn-hongkong")

    for slug in ("cn-hangzhou", "cn-hongkong", "us-west-1"):
        assert page.locator(f"#region-{slug}").is_visible()
    assert page.evaluate("typeof htmx") == "object"  # vendored htmx loaded
    assert page.evaluate("typeof Chart") == "function"  # and chart.js
    shot(page, "02-overview")

    # Hosts list: the table body replaces itself while the tab is visible, so a
    # status written elsewhere shows up without a reload.
    page.click("nav >> text=Hosts")
    row = page.locator("tr[data-host]", has_text="sv-demo-1")
    assert row.locator("[data-testid=host-status]").inner_text() == "Unknown"
    DockerHost.objects.filter(name="sv-demo-1").update(
        status=HostStatus.UP, engine_version="26.1.5", container_count=3
    )
    page.wait_for_function(
        """() => [...document.querySelectorAll('tr[data-host]')].some(
               r => r.innerText.includes('sv-demo-1')
                    && r.innerText.includes('26.1.5'))""",
        timeout=20_000,
    )
    assert row.locator("[data-testid=host-status]").inner_text() == "Up"
    shot(page, "03-hosts")

    # Host page: "Check now" runs a real check; the reason shows in place.
    page.click("text=hk-demo-1")
    page.wait_for_selector("#host-status")
    page.click("[data-testid=check-now]")
    error = page.locator("[data-testid=last-error]")
    error.wait_for()
    assert page.locator("#host-status [data-testid=host-status]").inner_text() == (
        "Unreachable"
    )
    assert error.inner_text().strip()
    shot(page, "04-host-detail")

    # Switch to Chinese with the switcher; the same page comes back translated.
    page.click("[data-testid=lang-zh-hans]")
    page.wait_for_selector("html[lang=zh-hans]")
    assert "立即检查" in page.inner_text("body")
    assert page.locator("#host-status [data-testid=host-status]").inner_text() == (
        "无法连接"
    )
    shot(page, "05-host-detail-zh")
    page.click("nav >> text=概览")
    page.wait_for_selector("#region-cn-hongkong")
    body = page.inner_text("body")
    assert "区域" in body and "在线主机" in body and "缓存命中率" in body
    shot(page, "06-overview-zh")
    page.click("nav >> text=审计")
    page.wait_for_selector("#audit-events")
    assert "审计日志" in page.inner_text("body")
    shot(page, "07-audit-zh")

    assert page.bad == [], f"failed requests: {page.bad}"


def test_admin_forms_and_token_shown_once(live_server, topology, browser_page):
    """An admin: a bad docker URL is a field error; a token is shown once."""
    page = browser_page
    user = User.objects.create_user("ana", password="ana-pass-123")
    user.groups.add(Group.objects.get_or_create(name="admin")[0])
    login(page, live_server.url, "ana", "ana-pass-123")
    page.wait_for_selector("#region-cn-hongkong")

    page.click("nav >> text=Hosts")
    page.click("text=Add host")
    page.select_option("select[name=region]", label="cn-hongkong")
    page.fill("input[name=name]", "hk-2")
    page.fill("input[name=docker_url]", "http://wrong")
    page.click("form >> text=Save")
    error = page.locator("#field-docker_url .errorlist")
    error.wait_for()
    assert "unix://" in error.inner_text()
    shot(page, "08-host-form-error")
    page.fill("input[name=docker_url]", MISSING_SOCKET)
    page.click("form >> text=Save")
    page.wait_for_selector("#host-status")
    assert DockerHost.objects.filter(name="hk-2").exists()

    page.click("nav >> text=API tokens")
    page.fill("#token-name", "ci")
    page.click("text=Create token")
    raw = page.locator("#raw-token").inner_text()
    assert raw.startswith("fy_")
    shot(page, "09-token-created")
    page.reload()  # a GET: the raw value is gone for good
    assert raw not in page.content()
    assert page.locator("tr[data-token]").count() == 1
    page.click("nav >> text=Admin")
    page.wait_for_selector("#site-name")
    shot(page, "10-admin")

    # When the session ends, the next poll takes the tab to the login page
    # rather than swapping a login form into the hosts table.
    page.goto(live_server.url + "/hosts/")
    page.wait_for_selector("#host-rows")
    page.context.clear_cookies()
    page.wait_for_url("**/login/**", timeout=20_000)
    assert page.locator(".login").is_visible()
    assert page.bad == [], f"failed requests: {page.bad}"


def test_hidden_tabs_stop_polling_and_the_api_docs_work_offline(
    live_server, topology, browser_page, settings
):
    settings.FERRY_PAGE_POLL_SECONDS = 0.5
    page = browser_page
    requested = []
    page.on("request", lambda request: requested.append(request))

    def polls() -> int:
        page.wait_for_timeout(100)  # lets playwright deliver request events
        return sum(1 for r in requested if r.headers.get("hx-request") == "true")

    def set_visibility(state: str) -> None:
        page.evaluate(
            """state => {
                Object.defineProperty(document, 'visibilityState',
                    {get: () => state, configurable: true});
                document.dispatchEvent(new Event('visibilitychange'));
            }""",
            state,
        )

    login(page, live_server.url, "olga", "olga-pass-123")
    page.wait_for_selector("#region-cn-hongkong")
    page.goto(live_server.url + "/hosts/")
    page.wait_for_selector("#host-rows")
    wait_for(lambda: polls() >= 2, timeout=10, message="the host list polls")

    # Hidden: the trigger's filter stops the polling. Showing that nothing
    # happens takes a wait; six intervals long.
    set_visibility("hidden")
    page.wait_for_timeout(500)  # a request already in flight may still land
    hidden_from = polls()
    page.wait_for_timeout(3_000)
    assert polls() == hidden_from

    set_visibility("visible")
    wait_for(lambda: polls() > hidden_from, timeout=10, message="polling resumes")

    # The API docs load their assets from Ferry itself, never a CDN.
    page.goto(live_server.url + "/api/v1/docs/")
    page.wait_for_selector(".swagger-ui .info .title", timeout=20_000)
    assert "Ferry" in page.inner_text(".swagger-ui .info .title")
    shot(page, "11-api-docs")
    elsewhere = [r.url for r in requested if not r.url.startswith(live_server.url)]
    assert elsewhere == [], elsewhere
    assert page.bad == [] and page.errors == [], (page.bad, page.errors)
