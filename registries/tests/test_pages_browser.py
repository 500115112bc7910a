"""The registry detail page in headless Chromium: Chart.js really draws the
hit-rate and storage charts from the JSON the page embeds.

Screenshots land in artifacts/screenshots/ (gitignored) for a human to look at.
"""

from datetime import timedelta

import pytest
from django.contrib.auth.models import Group, User
from django.utils import timezone

from controlplane.testing.browser import chromium_page, login, shot
from regions.models import DockerHost, Region
from registries.models import ObjectStore, Registry, RegistryEvent, RegistrySample

pytestmark = [pytest.mark.browser, pytest.mark.integration]

# Non-transparent pixels of a canvas: 0 means Chart.js drew nothing.
PAINTED = """(id) => {
  const c = document.getElementById(id);
  const d = c.getContext('2d').getImageData(0, 0, c.width, c.height).data;
  let n = 0; for (let i = 3; i < d.length; i += 4) if (d[i]) n++; return n;
}"""


@pytest.fixture
def page():
    with chromium_page(height=900, timeout_ms=15_000) as tab:
        yield tab


@pytest.fixture
def mirror_with_history(transactional_db):
    region = Region.objects.create(slug="cn-hongkong", name="Hong Kong")
    host = DockerHost.objects.create(region=region, name="hk1", docker_url="unix:///x")
    store = ObjectStore.objects.create(
        region=region, name="s3", kind="s3", endpoint="http://127.0.0.1:9", bucket="b"
    )
    registry = Registry.objects.create(
        region=region, host=host, name="hk-mirror", kind="mirror", store=store,
        upstream_url="https://home.example.com", port=15000, https_port=15443,
        debug_port=15001, gateway_port=15002, status="healthy",
    )  # fmt: skip
    now = timezone.now()
    for hours in range(0, 48, 3):  # a warming cache: the hit rate climbs
        hits = min(hours, 40)
        RegistrySample.objects.create(
            registry=registry, sampled_at=now - timedelta(hours=hours), requests=40,
            hits=40 - hits, misses=hits, bytes_served=40_000_000,
            bytes_upstream=hits * 1_000_000, storage_bytes=(60 - hours) * 10_000_000,
            object_count=100,
        )  # fmt: skip
    RegistryEvent.objects.create(
        registry=registry, event_id="e1", at=now, action="pull",
        repository="team/app", tag="1.0",
    )  # fmt: skip
    user = User.objects.create_user("olga", password="olga-pass-123")
    user.groups.add(Group.objects.get_or_create(name="operator")[0])
    return registry


def test_the_detail_page_draws_its_charts(live_server, mirror_with_history, page):
    login(page, live_server.url, "olga", "olga-pass-123")
    page.goto(f"{live_server.url}/registries/{mirror_with_history.pk}/")
    page.wait_for_function("typeof Chart !== 'undefined'")

    for canvas in ("chart-hit-24h", "chart-hit-7d", "chart-storage"):
        assert page.evaluate(PAINTED, canvas) > 500, canvas
    assert page.errors == []
    assert "team/app" in page.inner_text("#top-repositories")
    shot(page, "registry-detail")
