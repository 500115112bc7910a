"""ssh:// Docker hosts against a real, throwaway sshd on 127.0.0.1.

The sshd (controlplane/testing/sshd.py) lets in one generated key and hands
every session DOCKER_HOST=<the session's sandboxed dockerd>, so the remote
`docker system dial-stdio` that Ferry runs reaches a real engine.
"""

import socket
import subprocess
import time

import pytest
from django.core.exceptions import ValidationError

from adapters.docker_engine import HostConnection, engine_client, engine_info
from adapters.errors import HostConfigError, HostUnreachable
from controlplane.models import AuditEvent
from controlplane.testing.secrets import (
    assert_ciphertext,
    assert_responses_hide,
    key_body,
    raw_column,
)
from controlplane.testing.sshd import Sshd, keygen
from controlplane.tests.apiclient import token_client
from regions.models import DockerHost, HostStatus, Region
from regions.services import host_check, host_connection, host_save
from regions.validators import validate_host_connection

pytestmark = pytest.mark.integration


@pytest.fixture
def sshd(dockerd):
    with Sshd(docker_host=dockerd.url) as server:
        yield server


def make_host(url: str, name: str = "ssh1", **keys) -> DockerHost:
    region, _ = Region.objects.get_or_create(slug="cn-hongkong", name="Hong Kong")
    return DockerHost.objects.create(region=region, name=name, docker_url=url, **keys)


def key_line(public_key: str) -> str:
    """ "ssh-ed25519 AAAA... comment" -> what Ferry stores: type and base64."""
    return " ".join(public_key.split()[:2])


def other_key(tmp_path) -> str:
    keygen(tmp_path / "stranger")
    return (tmp_path / "stranger").read_text()


@pytest.mark.django_db
def test_ssh_host_with_its_key_is_up_and_the_host_key_is_recorded(
    sshd, dockerd, tmp_path, monkeypatch
):
    monkeypatch.setattr("tempfile.tempdir", str(tmp_path))  # see what is left
    host = make_host(sshd.url, ssh_private_key=sshd.client_key)

    checked = host_check(host.pk)
    assert checked.status == HostStatus.UP, checked.last_error
    assert checked.engine_version == dockerd.client.version()["Version"]
    assert checked.container_count == len(dockerd.client.containers.list(all=True))
    # Trust on first use: the key the server presented is now pinned.
    assert checked.ssh_known_host_key == key_line(sshd.host_key)
    trusted = AuditEvent.objects.get(action="trust_host_key")
    assert trusted.changes == {"ssh_known_host_key": ["", key_line(sshd.host_key)]}
    assert trusted.actor_name == "system"
    assert list(tmp_path.iterdir()) == []  # the key never went to a file

    again = host_check(host.pk)  # now verified against the recorded key
    assert (again.status, again.last_error) == (HostStatus.UP, "")
    assert AuditEvent.objects.filter(action="trust_host_key").count() == 1


@pytest.mark.django_db
def test_other_engine_users_wait_for_a_recorded_host_key(sshd, dockerd):
    # Deploys and builds never trust a new key: only the health check does.
    host = make_host(sshd.url, ssh_private_key=sshd.client_key)
    with pytest.raises(HostConfigError) as caught:
        with engine_client(host_connection(host)):
            pass
    assert "no SSH host key is recorded for this host yet" in caught.value.reason

    host = host_check(host.pk)
    with engine_client(host_connection(host)) as client:
        assert client.version()["Version"] == dockerd.client.version()["Version"]


@pytest.mark.django_db
def test_a_pinned_host_key_from_a_known_hosts_line_is_accepted(sshd):
    line = f"[127.0.0.1]:{sshd.port} {sshd.host_key}"
    host = make_host(sshd.url, ssh_private_key=sshd.client_key)
    host = host_save(None, host, {"ssh_known_host_key": line}, via="test")
    assert host.ssh_known_host_key == key_line(sshd.host_key)  # normalised

    checked = host_check(host.pk)
    assert checked.status == HostStatus.UP, checked.last_error


@pytest.mark.django_db
def test_a_key_the_server_does_not_know_is_reported_as_auth_failure(sshd, tmp_path):
    host = host_check(make_host(sshd.url, ssh_private_key=other_key(tmp_path)).pk)
    assert host.status == HostStatus.UNREACHABLE
    assert host.last_error == (
        f"Cannot connect to {sshd.url}: SSH authentication failed for user "
        f"'{sshd.user}': key rejected"
    )
    assert host.ssh_known_host_key == ""  # nothing is trusted from a failed check


@pytest.mark.django_db
def test_a_changed_host_key_is_refused_until_an_admin_clears_it(sshd):
    host = make_host(sshd.url, ssh_private_key=sshd.client_key)
    first = host_check(host.pk)
    assert first.status == HostStatus.UP, first.last_error
    recorded = first.ssh_known_host_key

    sshd.stop()
    sshd.rekey()  # e.g. the host was reinstalled, or someone else answers
    sshd.start()
    refused = host_check(host.pk)
    assert refused.status == HostStatus.UNREACHABLE
    assert refused.last_error.startswith(
        f"Cannot connect to {sshd.url}: SSH host key mismatch: the server presented "
        "ssh-ed25519 SHA256:"
    )
    assert "is recorded; refused" in refused.last_error
    assert refused.ssh_known_host_key == recorded  # not overwritten

    host_save(None, refused, {"ssh_known_host_key": ""}, via="test")
    trusted = host_check(host.pk)
    assert trusted.status == HostStatus.UP, trusted.last_error
    assert trusted.ssh_known_host_key == key_line(sshd.host_key) != recorded


@pytest.mark.django_db
def test_stopping_sshd_turns_the_host_unreachable(sshd):
    host = make_host(sshd.url, ssh_private_key=sshd.client_key)
    assert host_check(host.pk).status == HostStatus.UP

    sshd.stop()
    down = host_check(host.pk)
    assert down.status == HostStatus.UNREACHABLE
    assert down.last_error == f"Cannot connect to {sshd.url}: connection refused"


@pytest.mark.django_db
def test_a_remote_host_without_the_docker_cli_says_so():
    # The remote shell's PATH has no docker in it.
    no_docker = 'ForceCommand env PATH=/nonexistent /bin/sh -c "$SSH_ORIGINAL_COMMAND"'
    with Sshd(extra_config=[no_docker]) as server:
        host = host_check(make_host(server.url, ssh_private_key=server.client_key).pk)
    assert host.status == HostStatus.UNREACHABLE
    assert host.last_error == (
        f"Cannot connect to {server.url}: the remote host has no docker command "
        "(`docker system dial-stdio` not found; install the docker CLI)"
    )


@pytest.mark.django_db
def test_a_remote_docker_cli_without_an_engine_reports_its_error(tmp_path):
    with Sshd(docker_host=f"unix://{tmp_path}/gone.sock") as server:
        host = host_check(make_host(server.url, ssh_private_key=server.client_key).pk)
    assert host.status == HostStatus.UNREACHABLE
    assert host.last_error.startswith(
        f"Cannot connect to {server.url}: `docker system dial-stdio` failed (exit 1): "
    )
    assert f"{tmp_path}/gone.sock" in host.last_error


def test_an_ssh_server_that_never_answers_fails_within_the_timeout(tmp_path):
    with socket.socket() as silent:  # accepts TCP, never sends an SSH banner
        silent.bind(("127.0.0.1", 0))
        silent.listen(8)
        url = f"ssh://ops@127.0.0.1:{silent.getsockname()[1]}"
        conn = HostConnection(
            url, ssh_private_key=other_key(tmp_path), ssh_accept_new_host_key=True
        )
        started = time.monotonic()
        with pytest.raises(HostUnreachable) as caught:
            engine_info(conn, timeout=0.5)
        elapsed = time.monotonic() - started
    assert caught.value.reason == (
        f"Cannot connect to {url}: no SSH server answered within 0.5 s"
    )
    assert elapsed < 3, elapsed


@pytest.mark.django_db
def test_api_never_returns_the_ssh_key_and_stores_ciphertext(sshd, dockerd):
    api = token_client("admin")
    region = Region.objects.create(slug="cn-hangzhou", name="Hangzhou")
    key = sshd.client_key
    created = api.post(
        "/api/v1/hosts/",
        {
            "region": region.pk,
            "name": "ssh-host",
            "docker_url": sshd.url,
            "ssh_private_key": key,
        },
        format="json",
    )
    assert created.status_code == 201, created.content
    host_id = created.json()["id"]
    checked = api.post(f"/api/v1/hosts/{host_id}/check/")
    assert checked.status_code == 200
    assert checked.json()["status"] == "up", checked.json()["last_error"]
    assert checked.json()["engine_version"] == dockerd.client.version()["Version"]
    assert checked.json()["ssh_known_host_key"] == key_line(sshd.host_key)

    responses = [
        created,
        checked,
        api.get("/api/v1/hosts/"),
        api.get(f"/api/v1/hosts/{host_id}/"),
        api.patch(f"/api/v1/hosts/{host_id}/", {"name": "renamed"}, format="json"),
        api.get("/api/v1/audit-events/"),
    ]
    assert_responses_hide(responses, [key_body(key)])
    assert created.json()["ssh_private_key_set"] is True
    assert "ssh_private_key" not in created.json()
    assert_ciphertext(
        raw_column("regions_dockerhost", "ssh_private_key", host_id), key_body(key)
    )
    assert DockerHost.objects.get(pk=host_id).ssh_private_key == key


@pytest.mark.django_db
def test_api_rejects_unusable_ssh_keys_naming_the_field(tmp_path):
    api = token_client("admin")
    region = Region.objects.create(slug="cn-hangzhou", name="Hangzhou")
    base = {"region": region.pk, "name": "h", "docker_url": "ssh://ops@127.0.0.1"}
    cases = [
        ({"ssh_private_key": "not a key"}, "ssh_private_key", "not an SSH private"),
        (
            {
                "docker_url": "tcp://127.0.0.1:2376",
                "ssh_private_key": other_key(tmp_path),
            },
            "ssh_private_key",
            "only to ssh://",
        ),
        ({"ssh_known_host_key": "ssh-ed25519 !!"}, "ssh_known_host_key", "one line"),
    ]
    for extra, field, words in cases:
        response = api.post("/api/v1/hosts/", {**base, **extra}, format="json")
        assert response.status_code == 400, response.content
        errors = {e["field"]: e["message"] for e in response.json()["errors"]}
        assert words in errors[field], errors
    assert not DockerHost.objects.exists()


def test_an_encrypted_private_key_is_refused_with_the_reason(tmp_path):
    path = tmp_path / "locked"
    keygen(path)
    subprocess.run(
        ["ssh-keygen", "-q", "-p", "-N", "pass-phrase", "-P", "", "-f", path],
        check=True,
        capture_output=True,
    )
    with pytest.raises(ValidationError) as caught:
        validate_host_connection("ssh://ops@h", ssh_private_key=path.read_text())
    assert "passphrase" in caught.value.message_dict["ssh_private_key"][0]


@pytest.mark.django_db
def test_host_form_shows_ssh_key_as_set_and_keeps_it_when_left_blank(
    admin_role_client, sshd
):
    host = make_host(sshd.url, ssh_private_key=sshd.client_key)
    page = admin_role_client.get(f"/hosts/{host.pk}/edit/")
    assert page.status_code == 200
    html = page.content.decode()
    assert key_body(sshd.client_key) not in html
    assert page.context["form"].fields["ssh_private_key"].is_set is True

    response = admin_role_client.post(
        f"/hosts/{host.pk}/edit/",
        {
            "region": host.region_id,
            "name": "renamed",
            "docker_url": sshd.url,
            "ssh_private_key": "",
            "ssh_known_host_key": "",
        },
    )
    assert response.status_code == 302, response.context["form"].errors
    host.refresh_from_db()
    assert (host.name, host.ssh_private_key) == ("renamed", sshd.client_key)
    detail = admin_role_client.get(f"/hosts/{host.pk}/").content.decode()
    assert 'data-testid="secret-ssh_private_key"><span class="secret-set">' in detail
    assert key_body(sshd.client_key) not in detail
