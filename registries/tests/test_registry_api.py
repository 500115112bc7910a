"""adapters/registry_api.py against real registries: the Bearer token dance
(registry `auth.token` + the token stand-in), and OCI indexes."""

import pytest

from adapters.errors import RegistryAuthError
from adapters.registry_api import RegistryClient, parse_challenge
from controlplane.testing.images import export_image
from controlplane.testing.ports import free_port

from .registry_containers import (
    CONFIG_DIR,
    base_config,
    push_index,
    skopeo_copy,
    start_registry,
    wait_registry,
)
from .token_standin import TokenServer

pytestmark = pytest.mark.integration


def test_challenges_parse():
    scheme, params = parse_challenge(
        'Bearer realm="https://auth.example/token",service="reg",'
        'scope="repository:team/app:pull"'
    )
    assert scheme == "bearer"
    assert params == {
        "realm": "https://auth.example/token",
        "service": "reg",
        "scope": "repository:team/app:pull",
    }


@pytest.fixture
def token_registry(dockerd, test_images, container_cleanup, tmp_path):
    """A registry with token auth, holding team/app:1.0."""
    with TokenServer({"ci": "ci-secret"}) as tokens:
        port = free_port()
        config = base_config(
            port, {"filesystem": {"rootdirectory": "/var/lib/registry"}}
        )
        config["auth"] = {
            "token": {
                "realm": tokens.realm, "service": tokens.service,
                "issuer": tokens.issuer, "rootcertbundle": f"{CONFIG_DIR}/token.crt",
            }
        }  # fmt: skip
        container = start_registry(
            dockerd.client, test_images.registry, container_cleanup.name("tok"),
            config, {f"{CONFIG_DIR}/token.crt": tokens.cert_pem},
        )  # fmt: skip
        url = f"http://127.0.0.1:{port}"
        wait_registry(container, url)
        archive = export_image(dockerd.client, test_images.busybox, tmp_path / "i.tar")
        skopeo_copy(
            f"docker-archive:{archive}", f"docker://127.0.0.1:{port}/team/app:1.0",
            "--dest-tls-verify=false", "--dest-creds=ci:ci-secret",
        )  # fmt: skip
        yield url, tokens


def test_it_does_the_bearer_token_dance(token_registry):
    url, tokens = token_registry
    with RegistryClient(url, username="ci", password="ci-secret") as client:
        client.ping()
        manifest = client.manifest("team/app", "1.0")
        sizes = [client.fetch_blob("team/app", b.digest) for b in manifest.blobs]
    assert not manifest.is_index and len(manifest.blobs) == 2
    assert sizes == [b.size for b in manifest.blobs]
    assert ("ci", 200) in tokens.requests  # the realm really issued our token


def test_a_missing_tag_is_none_and_a_wrong_password_is_an_auth_error(token_registry):
    url, _tokens = token_registry
    with RegistryClient(url, username="ci", password="ci-secret") as client:
        assert client.manifest("team/app", "no-such-tag") is None
    client = RegistryClient(url, username="ci", password="wrong")
    with client, pytest.raises(RegistryAuthError):
        client.manifest("team/app", "1.0")


@pytest.fixture
def plain_registry(dockerd, test_images, container_cleanup, tmp_path):
    port = free_port()
    config = base_config(port, {"filesystem": {"rootdirectory": "/var/lib/registry"}})
    container = start_registry(
        dockerd.client, test_images.registry, container_cleanup.name("plain"), config
    )
    url = f"http://127.0.0.1:{port}"
    wait_registry(container, url)
    return url, container


def test_an_index_lists_its_platform_children(
    plain_registry, dockerd, test_images, tmp_path
):
    url, _container = plain_registry
    digests = push_index(dockerd, test_images, url, tmp_path)
    with RegistryClient(url) as client:
        index = client.manifest("team/multi", "1.0")
        child = client.manifest("team/multi", digests["linux/amd64"])
    assert index.is_index
    assert {c.platform: c.digest for c in index.children} == digests
    assert not child.is_index and child.digest == digests["linux/amd64"]
