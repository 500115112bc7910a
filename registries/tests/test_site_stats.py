"""Issue 3's first "Done when", end to end on a site Ferry applied itself.

A mirror (gateway + registry + nginx with TLS from the test CA and htpasswd)
and a private registry on one moto S3 bucket, in front of a plain upstream
registry whose own access log is the ground truth. skopeo pulls cold, then
warm, through nginx; the sampling service counts; the stats API and the
detail page must show what the upstream's log says happened. The same site
then proves prewarm (the next pull is all hits) and Ferry-rendered
notifications (events and top repositories, sent to a live server).
"""

import re
import uuid
from dataclasses import dataclass
from pathlib import Path

import boto3
import pytest
import requests
from django.template.defaultfilters import filesizeformat
from django.test import Client

from controlplane.testing.wait import wait_for
from controlplane.tests.apiclient import token_client
from regions.templatetags.ferry import percent
from registries import groundtruth as gt
from registries import metrics, services
from registries.models import RegistryEvent
from registries.tests.conftest import UPSTREAM_IMAGE, build_test_image, pull_through

from .gateway_fixtures import scratch_dir, settle

pytestmark = [pytest.mark.integration]

ACCESS = re.compile(
    r'"(?P<method>GET|HEAD) (?P<path>/v2/\S*) HTTP/[\d.]+" (?P<status>\d{3}) '
    r"(?P<size>\d+|-)"
)
BLOB = re.compile(r"/blobs/(?P<digest>sha256:[0-9a-f]{64})$")
STAT_KEYS = (
    "requests", "hits", "misses", "hit_rate", "bytes_upstream", "bytes_served",
    "bytes_saved", "bytes_missed", "amplification", "storage_bytes", "objects",
    "abandoned_upload_bytes",
)  # fmt: skip


# -- the upstream's own access log ---------------------------------------------
@dataclass
class UpstreamWindow:
    blob_gets: list[str]  # digests answered 200, with repeats
    bytes: int  # body bytes of every GET answered in the window


def upstream_lines(upstream) -> list[re.Match]:
    return list(ACCESS.finditer(upstream.logs()))


def upstream_since(upstream, mark: int) -> UpstreamWindow:
    lines = upstream_lines(upstream)[mark:]
    gets = [
        BLOB.search(m["path"])["digest"]
        for m in lines
        if m["method"] == "GET" and m["status"] == "200" and BLOB.search(m["path"])
    ]
    # A HEAD answer carries no body, whatever size the registry logs for it.
    size = sum(int(m["size"]) for m in lines if m["method"] == "GET")
    return UpstreamWindow(blob_gets=gets, bytes=size)


# -- what clients got ----------------------------------------------------------
@dataclass
class Pulled:
    digests: list[str]
    bytes: int  # the image as served: every blob, compressed as pushed


def pull(site, ref: str, cert_dir: str) -> Pulled:
    endpoint = f"127.0.0.1:{site.mirror.https_port}"
    dest = scratch_dir()
    done = pull_through(endpoint, ref, dest, f"{site.user}:{site.password}", cert_dir)
    assert done.returncode == 0, done.stderr
    blobs = [p for p in Path(dest).iterdir() if re.fullmatch(r"[0-9a-f]{64}", p.name)]
    return Pulled(
        [f"sha256:{p.name}" for p in blobs], sum(p.stat().st_size for p in blobs)
    )


def served_blob_gets(dockerd, registry) -> int:
    name = metrics.container_name(registry.pk, "nginx")
    raw = dockerd.client.containers.get(name).logs(stdout=True, stderr=False)
    records = gt.parse_lines(raw.decode(errors="replace").splitlines())
    return sum(r.is_blob_get and r.status in (200, 206) for r in records)


def sample_after(dockerd, registry, served: int):
    """Sample once the served nginx logged `served` blob GETs in all (docker
    delivers log lines a moment late; a late line would fall in the next
    window)."""
    wait_for(
        lambda: served_blob_gets(dockerd, registry) >= served,
        timeout=30,
        message=f"served nginx: fewer than {served} blob GETs",
    )
    sample = metrics.registry_sample(registry.pk)
    assert sample is not None
    return sample


def counted_like_upstream(upstream, mark: int, sample) -> UpstreamWindow:
    """The upstream's log of the window, once it agrees with the sample's
    bytes (its last lines may still be on their way to docker's log)."""
    return wait_for(
        lambda: (
            (w := upstream_since(upstream, mark)).bytes == sample.bytes_upstream and w
        ),
        timeout=15,
        message=lambda: (
            f"upstream log says {upstream_since(upstream, mark).bytes} bytes, "
            f"Ferry counted {sample.bytes_upstream}"
            + "\n".join(m.group(0) for m in upstream_lines(upstream)[mark:])
        ),
    )


# -- what the page says -------------------------------------------------------
def shown(html: str, name: str) -> str:
    found = re.search(rf'data-testid="{name}"[^>]*>([^<]*)<', html)
    assert found, f"no {name} on the page"
    return found.group(1).strip()


def page_of(registry, user) -> str:
    browser = Client()
    browser.force_login(user)
    response = browser.get(f"/registries/{registry.pk}/")
    assert response.status_code == 200
    return response.content.decode()


# -- the site ------------------------------------------------------------------
def abandon_upload(private) -> int:
    """Start a blob upload on the private registry and never finish it; the
    bytes sent."""
    base = f"http://127.0.0.1:{private.port}"
    started = requests.post(f"{base}/v2/team/tmp/blobs/uploads/", timeout=10)
    assert started.status_code == 202, started.text
    location = started.headers["Location"]
    url = location if location.startswith("http") else base + location
    data = b"x" * 65536
    patched = requests.patch(
        url, data=data, timeout=10,
        headers={"Content-Type": "application/octet-stream"},
    )  # fmt: skip
    assert patched.status_code == 202, patched.text
    return len(data)


def upload_bytes_in_bucket(store) -> int:
    """What the bucket itself holds under the repositories' _uploads/."""
    s3 = boto3.client(
        "s3", endpoint_url=store.endpoint, region_name="us-east-1",
        aws_access_key_id="test", aws_secret_access_key="test",
    )  # fmt: skip
    pages = s3.get_paginator("list_objects_v2").paginate(Bucket=store.bucket)
    objects = [o for page in pages for o in page.get("Contents", [])]
    return sum(o["Size"] for o in objects if "/_uploads/" in o["Key"])


def push_second_image(dockerd, test_images, upstream, tmp: Path) -> str:
    """ns/app:v2 upstream: the busybox base (already mirrored) + a new layer."""
    tag = f"ferry-test/app2:{uuid.uuid4().hex[:8]}"
    build_test_image(dockerd.client, test_images.busybox, tag, layers=1, mb=1)
    try:
        archive = tmp / "app2.tar"
        with open(archive, "wb") as handle:
            handle.writelines(dockerd.client.images.get(tag).save(named=True))
    finally:
        dockerd.client.images.remove(tag, force=True)
    upstream.push(archive, "ns/app:v2")
    return "ns/app:v2"


@pytest.fixture
def applied(site, live_server, settings):
    """The site applied through the API (mirror) and the service (private),
    notifying the live server; the first sample sets the cursor."""
    settings.FERRY_PUBLIC_URL = live_server.url
    settings.FERRY_REGISTRY_LOG_LAG = 0
    settings.FERRY_REGISTRY_USAGE_INTERVAL = 0
    response = token_client("operator").post(
        f"/api/v1/registries/{site.mirror.pk}/apply/?wait=1"
    )
    assert response.status_code == 200, response.json()
    assert response.json()["status"] == "healthy", response.json()
    services.registry_apply(site.private.pk)
    metrics.registry_sample(site.mirror.pk)
    return site


def test_cold_then_warm_pull_shows_the_measured_hit_rate_in_api_and_page(
    applied, dockerd, test_images, upstream_registry, cert_dir, viewer, tmp_path
):
    site, upstream = applied, upstream_registry
    mirror = site.mirror

    mark = len(upstream_lines(upstream))
    cold = pull(site, UPSTREAM_IMAGE, cert_dir)
    settle(dockerd.client, mirror.pk, cold.digests)
    first = sample_after(dockerd, mirror, len(cold.digests))
    went = counted_like_upstream(upstream, mark, first)
    assert set(went.blob_gets) == set(cold.digests)  # every blob came from upstream
    assert first.requests == len(cold.digests)
    assert first.misses == len(set(went.blob_gets))
    assert cold.bytes <= first.bytes_upstream <= 1.05 * cold.bytes

    mark = len(upstream_lines(upstream))
    warm = pull(site, UPSTREAM_IMAGE, cert_dir)
    second = sample_after(dockerd, mirror, len(cold.digests) + len(warm.digests))
    went_warm = counted_like_upstream(upstream, mark, second)
    assert went_warm.blob_gets == []
    assert (second.requests, second.misses) == (len(warm.digests), 0)
    assert second.bytes_upstream <= 0.01 * cold.bytes

    # Hit rate as the upstream's log implies it: every client blob GET that
    # did not make the upstream serve a new digest was a hit.
    requests_ = len(cold.digests) + len(warm.digests)
    misses = len(set(went.blob_gets) | set(went_warm.blob_gets))
    expected = (requests_ - misses) / requests_
    api = token_client("viewer").get(f"/api/v1/registries/{mirror.pk}/stats/")
    assert api.status_code == 200
    stats = api.json()
    assert (stats["requests"], stats["misses"]) == (requests_, misses)
    assert stats["hit_rate"] == expected
    selector = metrics.registry_stats(mirror)
    assert {k: stats[k] for k in STAT_KEYS} == {k: selector[k] for k in STAT_KEYS}
    assert (
        stats["sampled_at"].replace("Z", "+00:00") == selector["sampled_at"].isoformat()
    )

    html = page_of(mirror, viewer)
    assert shown(html, "hit-rate-24h") == percent(expected) == "50.0%"
    saved = stats["bytes_served"] - stats["bytes_upstream"]
    assert saved >= 0.95 * cold.bytes  # the warm pull crossed no boundary
    assert shown(html, "bytes-saved") == filesizeformat(saved)

    # Abandoned uploads: measured from the bucket the site shares. The
    # objects listed under _uploads/, and the uploaded data itself, which
    # waits in an unfinished S3 multipart upload that listings do not show.
    sent = abandon_upload(site.private)
    stored = metrics.registry_sample(mirror.pk)
    listed = upload_bytes_in_bucket(site.store)
    assert listed > 0
    assert stored.abandoned_upload_bytes >= listed + sent

    check_prewarm_makes_the_next_pull_all_hits(
        applied, dockerd, test_images, upstream, cert_dir
    )
    check_notifications_fill_events_and_top_repositories(applied, viewer)


def check_prewarm_makes_the_next_pull_all_hits(
    site, dockerd, test_images, upstream, cert_dir
):
    mirror = site.mirror
    image = push_second_image(dockerd, test_images, upstream, Path(scratch_dir()))
    served_before = served_blob_gets(dockerd, mirror)
    mark = len(upstream_lines(upstream))
    response = token_client("operator", "prewarmer").post(
        f"/api/v1/registries/{mirror.pk}/prewarm/", {"image": image}, format="json"
    )
    assert response.status_code == 200, response.json()
    warmed = response.json()
    assert warmed["stored"] is True, warmed
    fetched = set(upstream_since(upstream, mark).blob_gets)
    assert fetched and len(fetched) < warmed["blobs"]  # the base was mirrored
    settle(dockerd.client, mirror.pk, fetched)
    sample_after(dockerd, mirror, served_before + warmed["blobs"])

    mark = len(upstream_lines(upstream))
    pulled = pull(site, image, cert_dir)
    after = sample_after(dockerd, mirror, served_before + 2 * warmed["blobs"])
    assert (after.requests, after.misses) == (len(pulled.digests), 0)
    assert counted_like_upstream(upstream, mark, after).blob_gets == []


def check_notifications_fill_events_and_top_repositories(site, viewer):
    # Four manifest pulls of ns/app: cold, warm, prewarm and the pull after it.
    wait_for(
        lambda: (
            RegistryEvent.objects.filter(
                registry=site.mirror, action="pull", repository="ns/app"
            ).count()
            >= 4
        ),
        timeout=30,
        message="the mirror's pull notifications did not arrive",
    )
    pulls = RegistryEvent.objects.filter(registry=site.mirror, action="pull")
    assert set(pulls.values_list("repository", flat=True)) == {"ns/app"}
    assert {"v1", "v2"} <= set(pulls.values_list("tag", flat=True))
    html = page_of(site.mirror, viewer)
    top = re.search(r'id="top-repositories".*?</section>', html, re.DOTALL).group(0)
    count = pulls.count()
    assert re.search(rf'<td class="mono">ns/app</td><td class="num">{count}</td>', top)
