"""Registry pages with the Django test client: what each role sees and may do."""

import io
import json
import re
import zipfile
from datetime import timedelta

import pytest
from django.contrib.auth.models import Group, User
from django.utils import timezone

from controlplane.models import AuditEvent
from regions.models import DockerHost, Region
from registries.models import (
    ObjectStore,
    Registry,
    RegistryEvent,
    RegistrySample,
    RegistryUser,
)

from .oss_standin import OssStandin

pytestmark = pytest.mark.django_db
SECRETS = ("upstream-pass-XYZ", "store-secret-XYZ", "notify-token-XYZ", "user-pass-XYZ")


def _login(client, name: str, role: str | None):
    user = User.objects.create_user(name, password="pw")
    if role:
        user.groups.add(Group.objects.get_or_create(name=role)[0])
    client.force_login(user)
    return client


@pytest.fixture
def viewer(client):
    return _login(client, "vera", "viewer")


@pytest.fixture
def operator(client):
    return _login(client, "otto", "operator")


@pytest.fixture
def admin(client):
    return _login(client, "ada", "admin")


@pytest.fixture
def mirror():
    region = Region.objects.create(slug="cn-hongkong", name="Hong Kong")
    host = DockerHost.objects.create(
        region=region, name="hk1", docker_url="unix:///x.sock"
    )
    store = ObjectStore.objects.create(
        region=region,
        name="oss",
        kind="s3",
        endpoint="http://127.0.0.1:9",
        bucket="hk-bucket",
        access_key_id="AKID",
        secret_access_key=SECRETS[1],
    )
    registry = Registry.objects.create(
        region=region,
        host=host,
        name="hk-mirror",
        kind="mirror",
        store=store,
        upstream_url="https://registry.example.com",
        upstream_username="pull",
        upstream_password=SECRETS[0],
        port=15000,
        https_port=15443,
        debug_port=15001,
        gateway_port=15002,
        notify_token=SECRETS[2],
        status="failed",
        last_error="storage: bucket missing (NoSuchBucket)",
        health={
            "checks": {
                "storage": {"ok": False, "detail": "bucket missing"},
                "endpoint": {"ok": True, "detail": "200"},
            }
        },
    )
    RegistryUser.objects.create(
        registry=registry, username="puller", password=SECRETS[3]
    )
    return registry


def _samples(registry, hits: int, misses: int, storage: int = 5_000_000):
    now = timezone.now()
    RegistrySample.objects.create(
        registry=registry,
        sampled_at=now - timedelta(hours=2),
        requests=hits + misses,
        hits=hits,
        misses=misses,
        bytes_served=10_000_000,
        bytes_upstream=2_000_000,
        storage_bytes=storage,
        object_count=42,
        abandoned_upload_bytes=1234,
    )


def test_list_shows_status_region_kind_hit_rate_and_storage(viewer, mirror):
    _samples(mirror, hits=3, misses=1)
    page = viewer.get("/registries/").content.decode()
    row = page[page.index(f'data-registry="{mirror.pk}"') :]
    assert "hk-mirror" in row and "cn-hongkong" in row and "Mirror" in row
    assert "75.0%" in row
    assert "4.8\xa0MB" in row  # 5,000,000 bytes as filesizeformat shows them
    assert "Failed" in row


def test_detail_shows_health_reason_endpoints_metrics_and_events(viewer, mirror):
    _samples(mirror, hits=9, misses=1)
    RegistryEvent.objects.create(
        registry=mirror,
        event_id="e1",
        at=timezone.now(),
        action="pull",
        repository="team/app",
        tag="1.0",
        digest="sha256:" + "a" * 64,
    )
    page = viewer.get(f"/registries/{mirror.pk}/").content.decode()

    assert "bucket missing" in page  # the reason when red
    assert "https://127.0.0.1:15443" in page
    assert 'data-testid="hit-rate-24h">90.0%' in page
    assert "team/app" in page
    chart = json.loads(
        re.search(r'id="registry-chart-data"[^>]*>(.*?)</script>', page, re.DOTALL)[1]
    )
    rates = [p["hit_rate"] for p in chart["hit_rate_24h"] if p["hit_rate"] is not None]
    assert rates == [0.9]
    assert len(chart["hit_rate_7d"]) > 0 and "storage_7d" in chart


def _gateway_sample(registry, running: bool = True, error: str = ""):
    now = timezone.now()
    RegistrySample.objects.create(
        registry=registry, sampled_at=now - timedelta(minutes=1), requests=10,
        misses=1, bytes_served=9_000_000, bytes_upstream=2_000_000,
        bytes_missed=1_000_000, gateway_running=running,
        gateway_cache_bytes=3 * 1024 * 1024 if running else None,
        gateway_error=error, gateway_error_at=now - timedelta(minutes=2),
    )  # fmt: skip


def test_detail_shows_amplification_beside_the_hit_rate_and_the_gateway(viewer, mirror):
    Registry.objects.filter(pk=mirror.pk).update(gateway_cache_max_mb=100)
    _gateway_sample(mirror, error="[error] connect() failed (111: refused)")
    page = viewer.get(f"/registries/{mirror.pk}/").content.decode()

    order = [
        page.index(f'data-testid="{testid}"')
        for testid in ("hit-rate-24h", "amplification", "hit-rate-7d")
    ]
    assert order == sorted(order)  # amplification right after the hit rate
    assert 'data-testid="hit-rate-24h">90.0%' in page
    assert 'data-testid="amplification">2.00×' in page
    gateway = page[page.index('id="registry-gateway"') :]
    assert 'data-testid="gateway-status">caching' in gateway
    assert 'data-testid="gateway-running">running' in gateway
    assert "3.0\xa0MB of 100.0\xa0MB" in gateway
    assert "connect() failed (111: refused)" in gateway
    assert "cache off" not in gateway


def test_detail_shows_a_stopped_pass_through_gateway(viewer, mirror):
    Registry.objects.filter(pk=mirror.pk).update(gateway_enabled=False)
    _gateway_sample(mirror, running=False)
    page = viewer.get(f"/registries/{mirror.pk}/").content.decode()
    gateway = page[page.index('id="registry-gateway"') :]
    assert 'data-testid="gateway-status">not running' in gateway
    assert "not running</span></dd>" in gateway
    assert "limit 10.0\xa0GB" in gateway and "(cache off)" in gateway
    assert 'data-testid="gateway-error"><span class="muted">none' in gateway


def test_the_list_shows_each_mirrors_gateway(viewer, mirror):
    _gateway_sample(mirror)
    Registry.objects.filter(pk=mirror.pk).update(gateway_enabled=False)
    page = viewer.get("/registries/").content.decode()
    row = page[page.index(f'data-registry="{mirror.pk}"') :]
    assert "pass-through (cache off)" in row[: row.index("</tr>")]


def test_detail_shows_rendered_files_with_secrets_masked(viewer, mirror):
    page = viewer.get(f"/registries/{mirror.pk}/").content.decode()
    assert 'data-file="hk-mirror-registry/config.yml"' in page
    assert "notifications" in page and "********" in page
    for secret in SECRETS:
        assert secret not in page


def test_viewer_sees_no_write_buttons_and_gets_403_on_writes(viewer, mirror):
    page = viewer.get(f"/registries/{mirror.pk}/").content.decode()
    for testid in ("apply", "prewarm", "rotate-password", "edit"):
        assert f'data-testid="{testid}"' not in page
    for action in ("apply", "prewarm", "rotate-password", "delete"):
        response = viewer.post(f"/registries/{mirror.pk}/{action}/", {"image": "a:1"})
        assert response.status_code == 403, action
    assert viewer.get(f"/registries/{mirror.pk}/edit/").status_code == 403
    assert viewer.get("/registries/stores/new/").status_code == 403
    assert viewer.get(f"/registries/{mirror.pk}/export/?secrets=1").status_code == 403


def test_operator_sees_apply_and_prewarm_but_not_admin_buttons(operator, mirror):
    page = operator.get(f"/registries/{mirror.pk}/").content.decode()
    assert 'data-testid="apply"' in page and 'data-testid="prewarm"' in page
    assert 'data-testid="rotate-password"' not in page
    assert operator.post(f"/registries/{mirror.pk}/rotate-password/").status_code == 403


def test_prewarm_with_a_malformed_image_shows_the_field_error(operator, mirror):
    response = operator.post(
        f"/registries/{mirror.pk}/prewarm/", {"image": "Bad Image!"}
    )
    page = response.content.decode()
    assert response.status_code == 200
    error = page[page.index('id="field-image"') :][:1500]
    assert "Not an image reference" in error


def test_prewarm_queues_the_task_after_commit(
    operator, mirror, django_capture_on_commit_callbacks
):
    with django_capture_on_commit_callbacks(execute=False) as callbacks:
        response = operator.post(
            f"/registries/{mirror.pk}/prewarm/", {"image": "team/app:1.0"}
        )
    assert response.status_code == 302
    assert len(callbacks) == 1  # published only when the request commits


def test_apply_button_queues_an_apply(
    operator, mirror, django_capture_on_commit_callbacks
):
    with django_capture_on_commit_callbacks(execute=False) as callbacks:
        response = operator.post(f"/registries/{mirror.pk}/apply/")
    assert response.status_code == 302
    assert len(callbacks) == 1
    assert AuditEvent.objects.filter(action="apply", object_id=str(mirror.pk)).exists()


def test_admin_rotates_a_password_and_sees_it_once(
    admin, mirror, django_capture_on_commit_callbacks
):
    with django_capture_on_commit_callbacks(execute=False) as callbacks:
        response = admin.post(
            f"/registries/{mirror.pk}/rotate-password/", {"username": "puller"}
        )
    assert len(callbacks) == 1  # the apply that gives nginx the new htpasswd
    page = response.content.decode()
    shown = re.search(r'data-testid="new-password">([^<]+)<', page)[1]
    assert response["Cache-Control"] == "no-store"
    assert RegistryUser.objects.get(registry=mirror).password == shown != SECRETS[3]
    assert shown not in admin.get(f"/registries/{mirror.pk}/").content.decode()


@pytest.fixture
def applied_site(mirror):
    """The mirror as an apply left it, and a private registry on its store and
    host (their site), plus a registry on another host that is not part of it."""
    Registry.objects.filter(pk=mirror.pk).update(
        last_applied_at=timezone.now(), tls_certificate="CERT", tls_private_key="KEY"
    )
    ObjectStore.objects.filter(pk=mirror.store_id).update(http_secret="site-XYZ")
    common = {"region": mirror.region, "store": mirror.store, "kind": "private"}
    private = Registry.objects.create(
        host=mirror.host, name="hk-private", port=15010, debug_port=15011,
        notify_token="private-token-XYZ", last_applied_at=timezone.now(), **common,
    )  # fmt: skip
    other = DockerHost.objects.create(
        region=mirror.region, name="hk2", docker_url="unix:///y.sock"
    )
    Registry.objects.create(
        host=other, name="elsewhere", port=15020, debug_port=15021, **common
    )
    mirror.refresh_from_db()
    return mirror, private


def _export(client, registry, query=""):
    response = client.get(f"/registries/{registry.pk}/export/{query}")
    assert response.status_code == 200, response
    archive = zipfile.ZipFile(io.BytesIO(response.content))
    prefix = f"ferry-registry-{registry.pk}/"
    return {
        info.filename.removeprefix(prefix): info for info in archive.infolist()
    }, archive


def test_export_is_a_zip_of_the_whole_site_with_masked_files(viewer, applied_site):
    mirror, private = applied_site
    for exported in (mirror, private):
        infos, archive = _export(viewer, exported)
        assert {
            "docker-compose.yml", "hk-mirror-registry/config.yml",
            "hk-mirror-nginx/nginx.conf", "hk-mirror-gateway/nginx.conf",
            "hk-private-registry/config.yml",
        } <= set(infos)  # fmt: skip
        assert not any(name.startswith("elsewhere") for name in infos)
        everything = b"".join(archive.read(i) for i in infos.values()).decode()
        for secret in (*SECRETS, "private-token-XYZ", "site-XYZ", "KEY"):
            assert secret not in everything
        assert infos["hk-mirror-nginx/tls.key"].external_attr >> 16 == 0o100600


def test_export_of_a_site_not_applied_yet_says_why(viewer, mirror, applied_site):
    _mirror, private = applied_site
    Registry.objects.filter(pk=private.pk).update(last_applied_at=None)
    response = viewer.get(f"/registries/{mirror.pk}/export/", follow=True)
    page = response.content.decode()
    assert response.redirect_chain[-1][0] == f"/registries/{mirror.pk}/"
    assert "Cannot export yet: registry cn-hongkong/hk-private has never been" in page
    Registry.objects.filter(pk=private.pk).update(
        last_applied_at=timezone.now(), debug_port=None
    )
    page = viewer.get(f"/registries/{mirror.pk}/export/", follow=True)
    assert "hk-private has no Debug port yet" in page.content.decode()


def test_admin_export_with_secrets_is_audited(admin, applied_site):
    mirror, _private = applied_site
    infos, archive = _export(admin, mirror, "?secrets=1")
    config = archive.read(infos["hk-mirror-registry/config.yml"]).decode()
    assert SECRETS[2] in config  # the notify token, really
    private = archive.read(infos["hk-private-registry/config.yml"]).decode()
    assert "private-token-XYZ" in private and "site-XYZ" in private
    event = AuditEvent.objects.get(action="export_secrets")
    assert event.changes == {
        "registries": ["cn-hongkong/hk-mirror", "cn-hongkong/hk-private"]
    }


# -- forms ---------------------------------------------------------------------
@pytest.fixture
def oss():
    with OssStandin() as standin:
        standin.add_key("ak", "right-secret")
        standin.create_bucket("hk-bucket")
        yield standin


def _store_post(region, endpoint, secret, **extra):
    data = {
        "region": region.pk,
        "name": "hk-oss",
        "kind": "oss",
        "endpoint": endpoint,
        "bucket": "hk-bucket",
        "s3_region": "",
        "root_directory": "/registry",
        "access_key_id": "ak",
        "secret_access_key": secret,
        "check_storage": "on",
    }
    return {**data, **extra}


def test_store_form_names_the_wrong_field(admin, oss):
    region = Region.objects.create(slug="hk", name="HK")
    response = admin.post(
        "/registries/stores/new/", _store_post(region, oss.endpoint, "wrong")
    )
    page = response.content.decode()
    error = page[page.index('id="field-secret_access_key"') :][:1500]
    assert "credentials rejected" in error
    assert not ObjectStore.objects.exists()

    response = admin.post(
        "/registries/stores/new/",
        _store_post(region, oss.endpoint, "right-secret", bucket="nope"),
    )
    error = response.content.decode()
    assert "bucket missing" in error[error.index('id="field-bucket"') :][:1500]


def test_store_form_saves_a_working_store_and_keeps_the_secret(admin, oss):
    region = Region.objects.create(slug="hk", name="HK")
    response = admin.post(
        "/registries/stores/new/", _store_post(region, oss.endpoint, "right-secret")
    )
    assert response.status_code == 302
    store = ObjectStore.objects.get()
    assert store.secret_access_key == "right-secret"
    page = admin.get(f"/registries/stores/{store.pk}/").content.decode()
    assert "right-secret" not in page and "Set." in page
    # Blank secret on edit keeps the stored one (and the check uses it).
    response = admin.post(
        f"/registries/stores/{store.pk}/",
        _store_post(region, oss.endpoint, "", name="hk-oss-2"),
    )
    assert response.status_code == 302
    store.refresh_from_db()
    assert (store.name, store.secret_access_key) == ("hk-oss-2", "right-secret")


def test_registry_form_refuses_bad_input_with_field_errors(admin, mirror):
    data = {
        "region": mirror.region.pk,
        "host": mirror.host.pk,
        "name": "second",
        "kind": "mirror",
        "store": mirror.store.pk,
        "upstream_url": "ftp://nope",
        "listen_address": "127.0.0.1",
        "port": "",
        "gateway_cache_max_mb": 100,
    }
    response = admin.post("/registries/new/", data)
    page = response.content.decode()
    assert response.status_code == 200
    assert 'class="field has-error" id="field-upstream_url"' in page
    assert Registry.objects.count() == 1


def test_registry_form_creates_a_registry(admin, mirror):
    data = {
        "region": mirror.region.pk,
        "host": mirror.host.pk,
        "name": "private",
        "kind": "private",
        "store": mirror.store.pk,
        "listen_address": "127.0.0.1",
        "port": "",
        "require_auth": "",
        "gateway_cache_max_mb": 100,
    }
    response = admin.post("/registries/new/", data)
    assert response.status_code == 302, re.findall(
        r'class="errorlist[^"]*">(.*?)</ul>', response.content.decode(), re.DOTALL
    )
    created = Registry.objects.get(name="private")
    assert response.status_code == 302
    assert response["Location"] == f"/registries/{created.pk}/"
    assert AuditEvent.objects.filter(
        action="create", object_id=str(created.pk)
    ).exists()


def test_region_card_shows_the_mirror_hit_rate(viewer, mirror):
    _samples(mirror, hits=1, misses=3)
    page = viewer.get("/").content.decode()
    card = page[page.index('id="region-cn-hongkong"') :]
    assert re.search(r'data-testid="hit-rate">\s*25\.0%', card)
