"""The notification endpoint: token, envelope parsing, idempotence, and a real
registry that notifies a live Ferry when an image is pushed and pulled."""

import json

import pytest
from django.test import Client
from django.utils import timezone

from controlplane.testing.images import export_image
from controlplane.testing.ports import free_port
from controlplane.testing.wait import wait_for
from regions.models import DockerHost, Region
from registries.events import recent_events, top_repositories
from registries.models import ObjectStore, Registry, RegistryEvent
from registries.notifications import ENVELOPE_TYPE

from .registry_containers import base_config, skopeo_copy, start_registry, wait_registry

MANIFEST = "application/vnd.docker.distribution.manifest.v2+json"
TOKEN = "notify-token-123"


def _registry(token: str = TOKEN) -> Registry:
    region = Region.objects.create(slug="hk", name="Hong Kong")
    host = DockerHost.objects.create(
        region=region, name="h", docker_url="unix:///x.sock"
    )
    store = ObjectStore.objects.create(
        region=region, name="fs", kind="filesystem", root_directory="/var/lib/registry"
    )
    return Registry.objects.create(
        region=region,
        host=host,
        name="private",
        kind="private",
        store=store,
        notify_token=token,
    )


def _event(
    event_id: str, action="push", media_type=MANIFEST, repo="team/app", tag="1.0"
):
    return {
        "id": event_id,
        # Go's RFC 3339 with nanoseconds, as the registry sends it.
        "timestamp": timezone.now().strftime("%Y-%m-%dT%H:%M:%S.123456789Z"),
        "action": action,
        "target": {
            "mediaType": media_type,
            "size": 528,
            "digest": "sha256:" + "b" * 64,
            "repository": repo,
            "tag": tag,
        },
        "actor": {"name": "builder"},
    }


def _post(client, registry, body, token=TOKEN):
    headers = {"Authorization": f"Bearer {token}"} if token is not None else {}
    return client.post(
        f"/registries/notify/{registry.pk}/",
        data=json.dumps(body) if not isinstance(body, bytes) else body,
        content_type=ENVELOPE_TYPE,
        headers=headers,
    )


@pytest.fixture
def anonymous():
    return Client(enforce_csrf_checks=True)  # proves the CSRF exemption too


@pytest.mark.django_db
def test_it_refuses_a_missing_or_wrong_token(anonymous):
    registry = _registry()
    envelope = {"events": [_event("e1")]}
    assert _post(anonymous, registry, envelope, token=None).status_code == 401
    assert _post(anonymous, registry, envelope, token="wrong").status_code == 401
    assert not RegistryEvent.objects.exists()


@pytest.mark.django_db
def test_a_registry_without_token_and_an_unknown_id_get_401(anonymous):
    registry = _registry(token="")
    assert _post(anonymous, registry, {"events": []}, token="").status_code == 401
    response = anonymous.post(
        "/registries/notify/999999/",
        data="{}",
        content_type=ENVELOPE_TYPE,
        headers={"Authorization": f"Bearer {TOKEN}"},
    )
    assert response.status_code == 401


@pytest.mark.django_db
def test_it_stores_manifest_events_once_and_skips_blob_events(anonymous):
    registry = _registry()
    envelope = {
        "events": [
            _event("e1"),
            _event("e2", action="pull"),
            _event("e3", action="pull", media_type="application/octet-stream", tag=""),
        ]
    }
    first = _post(anonymous, registry, envelope)
    again = _post(anonymous, registry, envelope)  # the registry retries

    assert first.status_code == 200
    assert first.json() == {"received": 3, "stored": 2, "skipped": 1}
    assert again.json()["stored"] == 0
    rows = {e.event_id: e for e in RegistryEvent.objects.filter(registry=registry)}
    assert set(rows) == {"e1", "e2"}
    assert (rows["e1"].action, rows["e1"].repository, rows["e1"].tag) == (
        "push",
        "team/app",
        "1.0",
    )
    assert rows["e1"].actor == "builder" and rows["e1"].size == 528
    assert rows["e1"].at.microsecond == 123456


@pytest.mark.django_db
@pytest.mark.parametrize(
    "body", [b"not json", b"[]", b'{"events": [{"action": "push"}]}']
)
def test_a_malformed_envelope_is_400(anonymous, body):
    registry = _registry()
    assert _post(anonymous, registry, body).status_code == 400


@pytest.mark.django_db
def test_get_is_not_allowed(anonymous):
    registry = _registry()
    response = anonymous.get(
        f"/registries/notify/{registry.pk}/",
        headers={"Authorization": f"Bearer {TOKEN}"},
    )
    assert response.status_code == 405


@pytest.mark.django_db
def test_top_repositories_count_pulls_per_repository(anonymous):
    registry = _registry()
    events = [_event(f"p{i}", action="pull") for i in range(3)]
    events += [_event("q1", action="pull", repo="team/web"), _event("s1")]
    _post(anonymous, registry, {"events": events})
    top = top_repositories(registry, limit=5)
    assert [(r["repository"], r["pulls"], r["pushes"]) for r in top] == [
        ("team/app", 3, 1),
        ("team/web", 1, 0),
    ]


# -- a real registry notifying a live Ferry ------------------------------------------
@pytest.mark.integration
@pytest.mark.django_db(transaction=True)
def test_a_real_registry_reports_push_and_pull(
    live_server, dockerd, test_images, container_cleanup, tmp_path
):
    registry = _registry()
    port = free_port()
    config = base_config(port, {"filesystem": {"rootdirectory": "/var/lib/registry"}})
    config["notifications"] = {
        "endpoints": [
            {
                "name": "ferry",
                "url": f"http://127.0.0.1:{live_server.thread.port}"
                f"/registries/notify/{registry.pk}/",
                "headers": {"Authorization": [f"Bearer {TOKEN}"]},
                "timeout": "3s",
                "threshold": 3,
                "backoff": "1s",
            }
        ]
    }
    container = start_registry(
        dockerd.client, test_images.registry, container_cleanup.name("notify"), config
    )
    wait_registry(container, f"http://127.0.0.1:{port}")
    archive = export_image(dockerd.client, test_images.busybox, tmp_path / "img.tar")

    skopeo_copy(
        f"docker-archive:{archive}",
        f"docker://127.0.0.1:{port}/team/app:2.0",
        "--dest-tls-verify=false",
    )
    push = wait_for(
        lambda: RegistryEvent.objects.filter(registry=registry, action="push").first(),
        timeout=30,
        message=lambda: container.logs(tail=20).decode(),
    )
    skopeo_copy(
        f"docker://127.0.0.1:{port}/team/app:2.0",
        f"dir:{tmp_path / 'out'}",
        "--src-tls-verify=false",
    )
    wait_for(
        lambda: RegistryEvent.objects.filter(registry=registry, action="pull").exists(),
        timeout=30,
        message=lambda: container.logs(tail=20).decode(),
    )

    assert (push.repository, push.tag) == ("team/app", "2.0")
    assert push.digest.startswith("sha256:")
    assert top_repositories(registry)[0]["repository"] == "team/app"
    assert {e.action for e in recent_events(registry)} == {"push", "pull"}
