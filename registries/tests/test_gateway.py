"""The upstream gateway against real components (issue 5).

Home registry: registry 2.8 with token auth, storage on moto S3, answering
blob GETs with 307 to presigned URLs; its access log plus the object store's
log of presigned fetches is the upstream's own truth (gateway_rig.py). Each
test starts a Ferry-named mirror site (gateway, mirror, served nginx) on the
session dockerd and pulls a 3 x 3 MiB random image with skopeo.
"""

import threading

import pytest

from controlplane.testing.ports import free_port
from controlplane.testing.wait import wait_for
from regions.models import DockerHost, Region
from registries import groundtruth as gt
from registries import metrics
from registries.health import check_upstream
from registries.models import ObjectStore, Registry

from .gateway_fixtures import (  # noqa: F401 - fixtures
    IMAGE_REF,
    assert_no_credentials,
    bearer_token,
    cache_files,
    cache_key,
    gateway_records,
    home_fixture,
    http_get,
    mirror_site_fixture,
    scratch_dir,
    upstream_delta,
)
from .gateway_fixtures import settle as settle_logs
from .gateway_rig import UP_USER, pull_image, push_image

COPY_REF = "ferry/copy:v1"  # the same layers under a second repository

pytestmark = [pytest.mark.integration, pytest.mark.django_db]


@pytest.fixture
def make_registry(dockerd, home, tmp_path):
    region = Region.objects.create(slug="hk", name="Hong Kong")
    host = DockerHost.objects.create(region=region, name="h", docker_url=dockerd.url)
    store = ObjectStore.objects.create(
        region=region, name="fs", kind="filesystem", root_directory=str(tmp_path)
    )

    def make(enabled: bool = True) -> Registry:
        return Registry.objects.create(
            region=region, host=host, name=f"m{Registry.objects.count()}",
            kind="mirror", store=store, upstream_url=home.url,
            gateway_enabled=enabled, gateway_port=free_port(),
        )  # fmt: skip

    return make


def pull(site, ref: str = IMAGE_REF) -> None:
    proc = pull_image(site.served, ref, scratch_dir())
    assert proc.returncode == 0, proc.stderr


def settle(site, image) -> None:
    settle_logs(site._rig.client, site.registry.pk, image.blobs)


def start(mirror_site, registry, **kw):
    site = mirror_site(registry, **kw)
    site._rig = mirror_site.rig
    return site


def sample_total(registry) -> dict:
    metrics.registry_sample(registry.pk)
    return metrics.registry_stats(registry)


def by_repository(stats) -> dict[str, int]:
    return {
        r["repository"]: r["bytes_upstream"] for r in stats["upstream_by_repository"]
    }


def repo_delta(after, before, repository: str) -> int:
    return after.by_repository.get(repository, 0) - before.by_repository.get(
        repository, 0
    )


def assert_no_blob_traffic(delta: dict, requests) -> None:
    """Only manifest/tag checks (and /v2/ pings) reached the upstream: no blob
    request, no object-store byte, a few KiB at most."""
    assert delta["object_bytes"] == 0 and delta["blob_gets"] == 0, delta
    assert {r.kind for r in requests} <= {"base", "manifests", "tags"}, requests
    assert delta["bytes"] <= 16 * 1024, delta


def test_cold_pull_crosses_once_warm_pull_sends_no_blob_bytes(
    home,
    mirror_site,
    make_registry,
    settings,
    client,
):
    settings.FERRY_REGISTRY_LOG_LAG = 0
    registry = make_registry(enabled=True)
    # From before the site starts: Ferry counts its start-up probes too.
    start_truth = before = home.rig.upstream_truth()
    site = start(mirror_site, registry)
    image_bytes = home.image.bytes
    pull(site)
    settle(site, home.image)
    cold = upstream_delta(home.rig.upstream_truth(), before)
    print(f"cold pull with gateway: upstream {cold['bytes']} B for {image_bytes} B")
    assert cold["bytes"] <= 1.05 * image_bytes
    assert cold["digests"] == set(home.image.blobs)

    # Ferry's numbers equal the upstream's own log.
    stats = wait_for(
        lambda: (s := sample_total(registry))["misses"] == len(home.image.blobs) and s,
        timeout=20,
        message="misses never matched",
    )
    assert stats["bytes_upstream"] == cold["bytes"]
    assert stats["requests"] == len(home.image.blobs) and stats["hits"] == 0
    assert 1.0 <= stats["amplification"] <= 1.05
    # No password, token or signature in the gateway's logs or cache; the
    # cache holds the blobs under their bare digests.
    assert assert_no_credentials(site._rig.client, registry.pk) >= len(home.image.blobs)

    before = home.rig.upstream_truth()
    pull(site)
    after = home.rig.upstream_truth()
    warm = upstream_delta(after, before)
    assert_no_blob_traffic(warm, after.requests[len(before.requests) :])
    stats = wait_for(
        lambda: (
            (s := sample_total(registry))["requests"] == 2 * len(home.image.blobs) and s
        ),
        timeout=20,
        message="warm requests never counted",
    )
    assert stats["misses"] == len(home.image.blobs)
    assert stats["hit_rate"] == 0.5
    assert stats["bytes_upstream"] == cold["bytes"] + warm["bytes"]
    assert stats["gateway"]["status"] == "caching"
    assert stats["gateway"]["cache_bytes"] >= image_bytes

    # The same layers under a second repository: served from the cache
    # (keyed by digest), not one object-store byte.
    push_image(home.image.layout, home.url, COPY_REF)
    before = home.rig.upstream_truth()
    pull(site, COPY_REF)
    after = home.rig.upstream_truth()
    shared = upstream_delta(after, before)
    assert_no_blob_traffic(shared, after.requests[len(before.requests) :])
    assert_per_repository_bytes_match_the_upstream(
        registry,
        client,
        {"ferry/rand": (after, start_truth), "ferry/copy": (after, before)},
    )


def assert_per_repository_bytes_match_the_upstream(registry, client, truths) -> None:
    """Ferry's split by repository (stats, API, page) equals the upstream's
    own per-repository truth: its access log plus the object-store fetches
    of the blobs it redirected for that repository."""
    from controlplane.testing.users import user_with_role

    stats = sample_total(registry)
    ferry = by_repository(stats)
    truth = {repo: repo_delta(*pair, repo) for repo, pair in truths.items()}
    print("upstream bytes by repository, Ferry:", ferry, "upstream:", truth)
    assert ferry == truth
    client.force_login(user_with_role("vera", "viewer"))
    api = client.get(f"/api/v1/registries/{registry.pk}/stats/").json()
    assert by_repository(api) == ferry
    page = client.get(f"/registries/{registry.pk}/").content.decode()
    panel = page.split('id="upstream-by-repository"', 1)[1].split("</section>", 1)[0]
    for repo, size in ferry.items():
        assert f'<td class="mono">{repo}</td><td class="num" title="{size}">' in panel


def test_without_gateway_cache_a_cold_pull_costs_about_twice(
    home,
    mirror_site,
    make_registry,
    settings,
):
    settings.FERRY_REGISTRY_LOG_LAG = 0
    registry = make_registry(enabled=False)
    before = home.rig.upstream_truth()
    site = start(mirror_site, registry)
    pull(site)
    settle(site, home.image)
    cold = upstream_delta(home.rig.upstream_truth(), before)
    ratio = cold["bytes"] / home.image.bytes
    print(f"cold pull without gateway cache: {ratio:.3f}x the image upstream")
    assert ratio >= 1.6
    stats = wait_for(
        lambda: (s := sample_total(registry))["misses"] == len(home.image.blobs) and s,
        timeout=20,
        message="misses never matched",
    )
    assert stats["bytes_upstream"] == cold["bytes"]
    assert 1.6 <= stats["amplification"] <= 2.05
    assert stats["gateway"]["status"] == "pass-through"
    assert assert_no_credentials(site._rig.client, registry.pk) == 0


def pull_three_at_once(site) -> None:
    barrier = threading.Barrier(3)
    results = []

    def one():
        barrier.wait()
        results.append(pull_image(site.served, IMAGE_REF, scratch_dir()))

    threads = [threading.Thread(target=one) for _ in range(3)]
    for thread in threads:
        thread.start()
    for thread in threads:
        thread.join()
    assert [r.returncode for r in results] == [0, 0, 0], [r.stderr for r in results]


def all_three_overlapped(site) -> list[str]:
    """Digests whose three client downloads were in flight at one moment
    (served side: each GET spans time - request_time .. time)."""
    served = gt.parse_lines(
        site._rig.logs(metrics.container_name(site.registry.pk, "nginx"))
    )
    spans: dict[str, list[tuple[float, float]]] = {}
    for rec in served:
        if rec.is_blob_get and rec.status == 200:
            spans.setdefault(rec.digest, []).append(
                (rec.time - rec.request_time, rec.time)
            )
    return [
        digest
        for digest, got in spans.items()
        if len(got) == 3 and max(s for s, _ in got) < min(e for _, e in got)
    ]


def test_three_concurrent_cold_pulls_cross_once_with_the_cache_not_without(
    home,
    mirror_site,
    make_registry,
):
    ratios = {}
    for enabled in (True, False):
        site = start(mirror_site, make_registry(enabled=enabled))
        before = home.rig.upstream_truth()
        pull_three_at_once(site)
        settle(site, home.image)
        cold = upstream_delta(home.rig.upstream_truth(), before)
        overlapped = all_three_overlapped(site)
        ratios[enabled] = cold["bytes"] / home.image.bytes
        print(
            f"3 concurrent cold pulls, cache {'on' if enabled else 'off'}: "
            f"upstream {ratios[enabled]:.3f}x; {len(overlapped)} blobs in flight "
            f"to all three clients at once"
        )
        # The three clients really pulled at the same time (else 1.05x
        # would prove nothing about the cache lock).
        assert overlapped, "the three pulls did not overlap"
    assert ratios[True] <= 1.05
    # Without the cache, registry 2.8 fetches a blob once per client that
    # asks while it is in flight, plus once to store it.
    assert ratios[False] > 2.2, ratios


def test_wrong_upstream_password_fails_clearly_and_is_not_cached(
    home,
    mirror_site,
    make_registry,
):
    site = start(mirror_site, make_registry(enabled=True), password="wrong")
    failed_tokens = sum(1 for _, status in home.tokens.requests if status == 401)
    proc = pull_image(site.served, IMAGE_REF, scratch_dir())
    assert proc.returncode != 0
    print("pull error with a wrong upstream password:", proc.stderr.strip()[-300:])
    # Registry 2.8 turns the refusal into "manifest unknown" for the client;
    # what really happened is in the token server's and the gateway's logs.
    assert sum(1 for _, s in home.tokens.requests if s == 401) > failed_tokens
    gateway_lines = gt.parse_lines(
        site._rig.logs(metrics.container_name(site.registry.pk, "gateway"))
    )
    assert not [r for r in gateway_lines if r.cache in ("HIT", "MISS")]
    digest = failed_blob_requests_straight_to_the_gateway(home, site)
    # Ferry's health check names the cause (what the registry page shows).
    registry = site.registry
    registry.upstream_username, registry.upstream_password = UP_USER, "wrong"
    check = check_upstream(registry)
    assert not check["ok"] and "credentials" in check["detail"], check

    # Fix the password: same gateway and cache; the pull now works and the
    # blobs really come from upstream (nothing failed was cached).
    mirror_name = metrics.container_name(site.registry.pk, "registry")
    port = int(site.mirror.rsplit(":", 1)[1])
    site._rig.remove(mirror_name)
    site._rig.start_mirror(mirror_name, site.gateway, port=port)
    before = home.rig.upstream_truth()
    pull(site)
    cold = upstream_delta(home.rig.upstream_truth(), before)
    assert cold["digests"] == set(home.image.blobs)
    assert cold["bytes"] <= 1.05 * home.image.bytes
    # The first good request for the blob that failed went upstream (307 to
    # the object store, then 200): a miss, not a cached failure.
    first = next(
        r
        for r in gateway_records(site._rig.client, site.registry.pk)
        if r.digest == digest and r.status == 200
    )
    assert (first.cache, first.upstream_statuses) == ("MISS", (307, 200)), first


def failed_blob_requests_straight_to_the_gateway(home, site) -> str:
    """401s (no token, a bad token) and a 404 (a repository without the
    blob) for one real blob digest, sent to the gateway as a mirror would:
    each is passed back as the upstream gave it and nothing is cached."""
    digest = max(home.image.blobs, key=home.image.blobs.get)
    url = f"{site.gateway}/v2/ferry/rand/blobs/{digest}"
    status, headers, _ = http_get(url)
    assert status == 401 and "realm=" in headers.get("Www-Authenticate", ""), headers
    assert http_get(url, token="not-a-token")[0] == 401
    token = bearer_token(home.tokens, "ferry/none")
    assert http_get(f"{site.gateway}/v2/ferry/none/blobs/{digest}", token)[0] == 404
    files = cache_files(site._rig.client, site.registry.pk)
    assert not files, {path: cache_key(content) for path, content in files.items()}
    return digest


def test_the_gateway_cache_stays_within_its_size_limit(home, mirror_site, dockerd):
    from adapters.container_logs import volume_bytes
    from adapters.docker_engine import HostConnection

    from .gateway_fixtures import stand_in_registry

    registry = stand_in_registry(9000 + free_port() % 1000, home.url)
    registry.gateway_cache_max_mb = 4  # less than the 9 MiB image
    site = start(mirror_site, registry)
    pull(site)
    settle(site, home.image)
    conn = HostConnection(dockerd.url)
    volume = metrics.gateway_cache_volume(registry.pk)
    # nginx's cache manager evicts least recently used blobs past max_size.
    size = wait_for(
        lambda: (
            (b := volume_bytes(conn, volume)) is not None and b <= 4.5 * 2**20 and b
        ),
        timeout=60,
        message=lambda: f"{volume} holds {volume_bytes(conn, volume)} bytes",
    )
    print(f"gateway cache after a {home.image.bytes} B pull: {size} B (limit 4 MiB)")
    pull(site)  # the mirror keeps its own copy: still served
