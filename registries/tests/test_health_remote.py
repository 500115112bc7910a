"""Health of a registry on a remote (tcp://) Docker host is probed in-host.

A second sandboxed dockerd listens on tcp://127.0.0.1:<free port>; the host
row uses that URL, so Ferry treats it as remote and probes the loopback-bound
private registry, and a mirror's upstream, through a short-lived probe
container on that engine.
"""

import time
import uuid

import pytest

from adapters import containers as engine
from adapters.host_probe import parse_wget_status, wget_reason
from controlplane.testing.images import import_test_images
from controlplane.testing.ports import free_port
from registries import services
from registries.models import RegistryStatus
from registries.tests.conftest import remove_registry_containers

from .gateway_fixtures import home_fixture  # noqa: F401 - fixture

WGET_401 = """\
Connecting to 127.0.0.1:5000 (127.0.0.1:5000)
  HTTP/1.1 401 Unauthorized
  Www-Authenticate: Basic realm="registry"
wget: server returned error: HTTP/1.1 401 Unauthorized
"""
WGET_REDIRECT_THEN_200 = """\
  HTTP/1.1 301 Moved Permanently
  Location: /v2/
  HTTP/1.0 200 OK
  Content-Length: 2
"""
WGET_REFUSED = """\
Connecting to 127.0.0.1:1 (127.0.0.1:1)
wget: can't connect to remote host (127.0.0.1): Connection refused
"""


def test_wget_status_parsing():
    assert parse_wget_status(WGET_401) == 401
    assert parse_wget_status(WGET_REDIRECT_THEN_200) == 200
    assert parse_wget_status(WGET_REFUSED) is None
    assert parse_wget_status("") is None
    assert wget_reason(WGET_REFUSED, 1).endswith("Connection refused")
    assert wget_reason("", 124) == "no answer in time"


def _probe_events(client, since: float) -> list[dict]:
    return list(
        client.events(
            since=int(since),
            until=int(time.time()) + 1,
            filters={"label": "ferry.role=health-probe", "event": "create"},
            decode=True,
        )
    )


@pytest.fixture
def remote_engine(dockerd_factory):
    port = free_port()
    engine_ = dockerd_factory(
        extra_args=["-H", f"tcp://127.0.0.1:{port}", "--tls=false"]
    )
    images = import_test_images(engine_.client)
    return engine_, f"tcp://127.0.0.1:{port}", images


@pytest.mark.integration
@pytest.mark.django_db
def test_loopback_registry_on_a_remote_host_is_probed_from_that_host(
    remote_engine, settings, tmp_path
):
    from regions.models import DockerHost, Region
    from registries.models import ObjectStore, Registry

    remote, url, images = remote_engine
    settings.FERRY_REGISTRY_IMAGE = images.registry
    settings.FERRY_NGINX_IMAGE = images.nginx
    settings.FERRY_PROBE_IMAGE = images.busybox
    region = Region.objects.create(slug=f"r{uuid.uuid4().hex[:6]}", name="Remote")
    host = DockerHost.objects.create(region=region, name="far", docker_url=url)
    store = ObjectStore.objects.create(
        region=region, name="disk", kind="filesystem",
        root_directory=str(tmp_path / "store"),
    )  # fmt: skip
    registry = Registry.objects.create(
        region=region, host=host, store=store, name="private", kind="private",
        port=free_port(), debug_port=free_port(),
    )  # fmt: skip
    try:
        since = time.time() - 1
        registry = services.registry_apply(registry.pk)
        assert registry.status == RegistryStatus.HEALTHY, (
            registry.last_error,
            registry.health,
        )
        endpoint = registry.health["checks"]["endpoint"]
        assert endpoint["ok"], endpoint
        assert "probed on the Docker host" in endpoint["detail"]
        assert f"127.0.0.1:{registry.port}: 200" in endpoint["detail"]
        # The probe really ran on the remote engine, and was removed.
        assert _probe_events(remote.client, since)
        leftovers = remote.client.containers.list(
            all=True, filters={"label": "ferry.role=health-probe"}
        )
        assert leftovers == []

        for state in engine.list_owned(remote.client, f"registry:{registry.pk}"):
            engine.stop(remote.client, state.id, timeout=5)
        registry = services.registry_health_check(registry.pk)
        endpoint = registry.health["checks"]["endpoint"]
        assert not endpoint["ok"]
        assert "unreachable from the Docker host" in endpoint["detail"]
        assert "Connection refused" in endpoint["detail"]
        assert registry.status == RegistryStatus.DEGRADED
        assert "unreachable" in registry.last_error
    finally:
        remove_registry_containers(remote.client, [registry.pk])


@pytest.mark.integration
@pytest.mark.django_db
def test_a_remote_mirrors_upstream_is_probed_from_its_host(
    remote_engine, dockerd, test_images, home, settings
):
    """Plain upstream: 200 on the host. Token-auth upstream (the realm dance
    busybox cannot do): 401 on the host, credentials then checked from Ferry.
    Nothing listening: unreachable from the host, with wget's reason."""
    from regions.models import DockerHost, Region
    from registries.health import check_upstream
    from registries.models import ObjectStore, Registry

    from .conftest import start_upstream
    from .gateway_rig import UP_PASSWORD, UP_USER

    remote, url, images = remote_engine
    settings.FERRY_PROBE_IMAGE = images.busybox
    region = Region.objects.create(slug=f"r{uuid.uuid4().hex[:6]}", name="Remote")
    host = DockerHost.objects.create(region=region, name="far", docker_url=url)
    store = ObjectStore.objects.create(region=region, name="disk", kind="filesystem")
    mirror = Registry(region=region, host=host, store=store, name="m", kind="mirror")
    since = time.time() - 1

    plain = start_upstream(dockerd.client, test_images.registry)
    try:
        mirror.upstream_url = plain.url
        assert check_upstream(mirror) == {
            "ok": True,
            "detail": "reachable from the Docker host",
        }
    finally:
        plain.remove()
    assert _probe_events(remote.client, since), "the probe ran on the remote host"

    mirror.upstream_url = home.url
    result = check_upstream(mirror)
    assert result["ok"] and "(it asks to log in)" in result["detail"], result
    mirror.upstream_username, mirror.upstream_password = UP_USER, UP_PASSWORD
    result = check_upstream(mirror)
    assert result["ok"] and "credentials accepted" in result["detail"], result
    mirror.upstream_password = "wrong"
    result = check_upstream(mirror)
    assert not result["ok"] and "refused the credentials" in result["detail"]

    mirror.upstream_url = f"http://127.0.0.1:{free_port()}"
    result = check_upstream(mirror)
    assert not result["ok"]
    assert "unreachable from the Docker host" in result["detail"]
    assert "Connection refused" in result["detail"]
    assert (
        remote.client.containers.list(
            all=True, filters={"label": "ferry.role=health-probe"}
        )
        == []
    )
