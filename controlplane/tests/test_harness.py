"""The test harness itself, run for real: engines, images, services, worker."""

import json
import os
import ssl
import subprocess
import sys
import time
import urllib.error
import urllib.request
import uuid
from pathlib import Path

import bcrypt
import boto3
import docker
import psycopg
import pytest
import redis

from controlplane.testing.dockerd import Dockerd
from controlplane.testing.images import (
    build_image_tar,
    import_test_images,
    push_image,
)
from controlplane.testing.ports import free_port
from controlplane.testing.services import postgres_server
from controlplane.testing.wait import wait_for

pytestmark = pytest.mark.integration


def http_get(url: str, context: ssl.SSLContext | None = None, headers=None):
    request = urllib.request.Request(url, headers=headers or {})
    try:
        with urllib.request.urlopen(request, timeout=3, context=context) as response:
            return response.status, response.read()
    except urllib.error.HTTPError as exc:
        return exc.code, exc.read()


def run_host(client, image, name, **kwargs):
    return client.containers.run(
        image, name=name, network_mode="host", detach=True, **kwargs
    )


# -- wait / ports ---------------------------------------------------------------
def test_wait_for_returns_first_truthy_value():
    calls = iter([0, None, "", "done"])
    assert wait_for(lambda: next(calls), timeout=5, interval=0.01) == "done"


def test_wait_for_reports_last_value_and_exception():
    with pytest.raises(AssertionError, match=r"never ready.*last value: 0"):
        wait_for(lambda: 0, timeout=0.2, interval=0.05, message="never ready")

    def boom():
        raise ValueError("engine down")

    with pytest.raises(AssertionError, match=r"ValueError\('engine down'\)"):
        wait_for(boom, timeout=0.2, interval=0.05)


def test_free_port_is_bindable_on_loopback():
    import socket

    port = free_port()
    with socket.socket() as sock:
        sock.bind(("127.0.0.1", port))


# -- docker engines ---------------------------------------------------------------
def test_two_engines_side_by_side_stop_and_restart(dockerd_factory, test_images):
    first = dockerd_factory()
    second = dockerd_factory(extra_args=["--insecure-registry=127.0.0.0/8"])
    assert first.url != second.url and len(first.url) < 108
    insecure = second.client.info()["RegistryConfig"]["InsecureRegistryCIDRs"]
    assert "127.0.0.0/8" in insecure
    assert first.client.ping() and second.client.ping()
    images = import_test_images(first.client)
    first.client.containers.create(images.busybox, ["-c", "true"], name="kept")
    assert [c.name for c in second.client.containers.list(all=True)] == []

    assert any(
        b"containerd" in Path(f"/proc/{pid}/cmdline").read_bytes()
        for pid in first.leftover_pids()
    ), "each engine runs its own containerd under its exec root"
    first.stop()
    assert first.leftover_pids() == []
    with pytest.raises(docker.errors.DockerException):
        docker.DockerClient(base_url=first.url, timeout=2).ping()
    assert second.client.ping(), "stopping one engine leaves the other alone"

    first.start()
    assert [c.name for c in first.client.containers.list(all=True)] == ["kept"]


def test_killed_engine_leaves_no_containers_behind(dockerd_factory, test_images):
    engine = dockerd_factory()
    images = import_test_images(engine.client)
    box = engine.client.containers.run(
        images.busybox, ["-c", "exec sleep 300"], network_mode="host", detach=True
    )
    pid = (
        box.attrs["State"]["Pid"]
        or engine.client.containers.get(box.id).attrs["State"]["Pid"]
    )
    assert pid and Path(f"/proc/{pid}").exists()
    engine.kill()
    assert engine.leftover_pids() == []
    wait_for(lambda: not Path(f"/proc/{pid}").exists(), timeout=10)
    engine.start()
    assert engine.client.containers.get(box.id).status != "running"


def test_worker_env_carries_overridden_settings(settings):
    from controlplane.testing.fixtures import settings_env

    settings.FERRY_REGISTRY_IMAGE = "ferry-test/registry:abc"
    env = settings_env()
    assert env["FERRY_REGISTRY_IMAGE"] == "ferry-test/registry:abc"
    assert env["FERRY_HOST_HEALTH_INTERVAL"] == str(settings.FERRY_HOST_HEALTH_INTERVAL)


def test_dockerd_context_manager_cleans_up():
    with Dockerd() as engine:
        root = engine.root
        assert engine.client.version()["ApiVersion"]
    assert not root.exists()
    assert engine.leftover_pids() == []


# -- images ------------------------------------------------------------------------
def test_images_are_cached_by_content_hash(dockerd, test_images):
    tar_path, tag = build_image_tar("busybox")
    assert tar_path.exists() and tag.endswith(tar_path.stem.split("-")[-1])
    assert tag == test_images.busybox
    started = time.monotonic()
    assert import_test_images(dockerd.client) == test_images
    assert time.monotonic() - started < 5, "a warm re-import must not rebuild"


def test_registry_image_serves_v2(dockerd, test_images, container_cleanup):
    port = free_port()
    run_host(
        dockerd.client,
        test_images.registry,
        container_cleanup.name("registry"),
        environment={"REGISTRY_HTTP_ADDR": f"127.0.0.1:{port}"},
    )
    status, body = wait_for(
        lambda: _try_get(f"http://127.0.0.1:{port}/v2/"),
        timeout=20,
        message="registry /v2/",
    )
    assert status == 200 and body.strip() == b"{}"
    push_image(dockerd.client, test_images.busybox, f"127.0.0.1:{port}/ferry/bb:1")
    status, body = http_get(f"http://127.0.0.1:{port}/v2/ferry/bb/tags/list")
    assert (status, json.loads(body)["tags"]) == (200, ["1"])


NGINX_SITE = """
server {
    listen 127.0.0.1:%(port)d ssl;
    ssl_certificate /etc/nginx/tls/server.crt;
    ssl_certificate_key /etc/nginx/tls/server.key;
    root /usr/share/nginx/html;
    location /private/ {
        auth_basic "ferry";
        auth_basic_user_file /etc/nginx/tls/htpasswd;
        alias /usr/share/nginx/html/;
    }
}
"""


def test_nginx_image_serves_tls_with_bcrypt_auth(
    dockerd, test_images, test_ca, tmp_path, container_cleanup
):
    port = free_port()
    conf, tls = tmp_path / "conf.d", tmp_path / "tls"
    conf.mkdir(), tls.mkdir()
    (conf / "site.conf").write_text(NGINX_SITE % {"port": port})
    cert, key = test_ca.issue(("127.0.0.1", "localhost"))
    (tls / "server.crt").write_bytes(cert)
    (tls / "server.key").write_bytes(key)
    hashed = bcrypt.hashpw(b"s3cret", bcrypt.gensalt()).decode()
    assert hashed.startswith("$2b$")
    (tls / "htpasswd").write_text(f"ops:{hashed}\n")
    run_host(
        dockerd.client,
        test_images.nginx,
        container_cleanup.name("nginx"),
        volumes={
            str(conf): {"bind": "/etc/nginx/conf.d", "mode": "ro"},
            str(tls): {"bind": "/etc/nginx/tls", "mode": "ro"},
        },
    )
    context = ssl.create_default_context(cafile=str(test_ca.cert_path))
    base = f"https://127.0.0.1:{port}"
    status, body = wait_for(lambda: _try_get(base + "/", context), timeout=20)
    assert status == 200 and b"ferry-test nginx" in body
    assert _try_get(base + "/private/", context)[0] == 401
    auth = {"Authorization": "Basic b3BzOnMzY3JldA=="}  # ops:s3cret
    assert http_get(base + "/private/", context, auth)[0] == 200


def test_busybox_image_has_applets_and_httpd_serves(
    dockerd, test_images, container_cleanup
):
    applets = "sh httpd wget sleep cat echo ls tar"
    out = dockerd.client.containers.run(
        test_images.busybox,
        ["-c", f"for a in {applets}; do command -v $a; done"],
        name=container_cleanup.name("applets"),
    )
    assert len(out.split()) == len(applets.split())
    port = free_port()
    script = (
        "mkdir -p /www && echo hello-ferry > /www/index.html && "
        f"exec httpd -f -p 127.0.0.1:{port} -h /www"
    )
    run_host(
        dockerd.client, test_images.busybox, container_cleanup.name("httpd"),
        command=["-c", script],
    )  # fmt: skip
    status, body = wait_for(
        lambda: _try_get(f"http://127.0.0.1:{port}/index.html"), timeout=20
    )
    assert (status, body) == (200, b"hello-ferry\n")


def _try_get(url, context=None):
    try:
        return http_get(url, context)
    except (urllib.error.URLError, ConnectionError):
        return None


def test_container_cleanup_removes_only_its_own(dockerd, test_images):
    from controlplane.testing.fixtures import ContainerCleanup

    mine = ContainerCleanup(dockerd.client, f"t-{uuid.uuid4().hex[:6]}-")
    other = dockerd.client.containers.create(test_images.busybox, ["-c", "true"])
    try:
        dockerd.client.containers.create(
            test_images.busybox, ["-c", "true"], name=mine.name()
        )
        mine.remove_all()
        names = [c.name for c in dockerd.client.containers.list(all=True)]
        assert other.name in names
        assert not [n for n in names if n.startswith(mine.prefix)]
    finally:
        other.remove(force=True)


# -- services ------------------------------------------------------------------------
def test_redis_answers(redis_url):
    client = redis.Redis.from_url(redis_url)
    assert client.ping()
    client.set("ferry-harness", "ok")
    assert client.get("ferry-harness") == b"ok"


def test_postgres_server_accepts_connections():
    with postgres_server() as url, psycopg.connect(url) as conn:
        conn.execute("create table t (x int)")
        conn.execute("insert into t values (42)")
        assert conn.execute("select x from t").fetchone() == (42,)
    with pytest.raises(psycopg.OperationalError):
        psycopg.connect(url, connect_timeout=2)


def test_postgres_cli_for_shell_scripts(tmp_path):
    directory = Path(f"/tmp/fp-cli-{uuid.uuid4().hex[:6]}")
    cli = [sys.executable, "-m", "controlplane.testing.services"]
    try:
        started = subprocess.run(
            [*cli, "postgres-start", str(directory)],
            capture_output=True, text=True, check=True,
        )  # fmt: skip
        url = started.stdout.strip()
        with psycopg.connect(url) as conn:
            assert conn.execute("select 1").fetchone() == (1,)
    finally:
        subprocess.run([*cli, "postgres-stop", str(directory)], check=True)
        subprocess.run(["rm", "-rf", str(directory)], check=True)
    with pytest.raises(psycopg.OperationalError):
        psycopg.connect(url, connect_timeout=2)


def test_s3_server_stores_objects(s3_server):
    s3 = boto3.client(
        "s3",
        endpoint_url=s3_server,
        region_name="us-east-1",
        aws_access_key_id="test",
        aws_secret_access_key="test",
    )
    s3.create_bucket(Bucket="harness")
    s3.put_object(Bucket="harness", Key="a/b", Body=b"bytes")
    assert s3.get_object(Bucket="harness", Key="a/b")["Body"].read() == b"bytes"


def test_ca_dir_holds_only_the_certificate(test_ca, tmp_path):
    directory = test_ca.write_ca_dir(tmp_path / "certs")
    assert sorted(os.listdir(directory)) == ["ca.crt"]
    assert (directory / "ca.crt").read_bytes() == test_ca.cert_pem


# -- celery ----------------------------------------------------------------------------
@pytest.mark.django_db(transaction=True)
def test_celery_worker_runs_tasks_against_test_database(celery_worker):
    from controlplane.models import AuditEvent
    from controlplane.tasks import ping_task

    marker = uuid.uuid4().hex
    ping_task.delay(marker)
    wait_for(
        lambda: AuditEvent.objects.filter(action="ping", object_id=marker).exists(),
        timeout=20,
        message=lambda: f"ping_task did not run:\n{celery_worker.log_tail()}",
    )
    wait_for(
        lambda: "beat: Starting" in celery_worker.log_path.read_text(),
        timeout=10,
        message=lambda: f"beat did not start:\n{celery_worker.log_tail()}",
    )
