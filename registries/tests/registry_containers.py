"""Test helpers: real registry containers started directly with the docker SDK.

Used by the prewarm and notification tests (independent of the site apply
machinery): config files are copied in with put_archive before start, every
container runs on the host network bound to 127.0.0.1 on a free port, and the
caller's `container_cleanup` fixture removes them.
"""

import io
import json
import re
import subprocess
import tarfile
import time

import bcrypt
import requests
import yaml

from adapters.registry_api import OCI_INDEX
from controlplane.testing.images import export_image
from controlplane.testing.ports import free_port
from controlplane.testing.wait import wait_for

CONFIG_DIR = "/etc/docker/registry"
BLOB_GET = re.compile(r'"GET /v2/(?P<repo>\S+)/blobs/(?P<digest>sha256:[0-9a-f]{64}) ')


def tar_of(files: dict[str, bytes | str]) -> bytes:
    buffer = io.BytesIO()
    with tarfile.open(fileobj=buffer, mode="w") as tar:
        for path, content in files.items():
            data = content.encode() if isinstance(content, str) else content
            info = tarfile.TarInfo(path.lstrip("/"))
            info.size, info.mode, info.mtime = len(data), 0o644, int(time.time())
            tar.addfile(info, io.BytesIO(data))
    return buffer.getvalue()


def start_registry(client, image: str, name: str, config: dict, files=None):
    """Create, copy config.yml (+ files) in, start; returns the container."""
    container = client.containers.create(
        image, name=name, network_mode="host", labels={"ferry.test": "h4b"}
    )
    payload = {f"{CONFIG_DIR}/config.yml": yaml.safe_dump(config), **(files or {})}
    container.put_archive("/", tar_of(payload))
    container.start()
    return container


def base_config(port: int, storage: dict) -> dict:
    return {
        "version": 0.1,
        "log": {"level": "info", "accesslog": {"disabled": False}},
        "storage": {"cache": {"blobdescriptor": "inmemory"}, **storage},
        "http": {"addr": f"127.0.0.1:{port}", "secret": "test-http-secret"},
    }


def wait_registry(container, url: str, verify=True) -> None:
    def answers():
        container.reload()
        assert container.status != "exited", container.logs(tail=30).decode()
        return requests.get(url + "/v2/", timeout=2, verify=verify).status_code in (
            200,
            401,
        )

    wait_for(answers, timeout=30, message=lambda: container.logs(tail=30).decode())


def start_upstream(client, image: str, name: str) -> tuple[object, str]:
    """A plain registry with filesystem storage and its access log on."""
    port = free_port()
    config = base_config(port, {"filesystem": {"rootdirectory": "/var/lib/registry"}})
    container = start_registry(client, image, name, config)
    url = f"http://127.0.0.1:{port}"
    wait_registry(container, url)
    return container, url


def htpasswd(users: dict[str, str]) -> str:
    return "".join(
        f"{user}:{bcrypt.hashpw(pw.encode(), bcrypt.gensalt(rounds=5)).decode()}\n"
        for user, pw in users.items()
    )


def skopeo_copy(source: str, dest: str, *args: str) -> None:
    result = subprocess.run(
        [
            "skopeo",
            "--insecure-policy",
            "copy",
            "--retry-times",
            "0",
            *args,
            source,
            dest,
        ],
        check=False,
        capture_output=True,
        text=True,
        timeout=180,
    )
    assert result.returncode == 0, result.stderr


def blob_gets(container) -> list[str]:
    """Digests of every blob GET in a registry's access log (with repeats)."""
    logs = container.logs(stdout=True, stderr=True).decode(errors="replace")
    return [m["digest"] for m in BLOB_GET.finditer(logs)]


def push_index(dockerd, test_images, url: str, tmp_path) -> dict:
    """team/multi:1.0 = an OCI index of busybox (linux/amd64) and registry
    (linux/arm64); returns {platform: image manifest digest}."""
    host = url.removeprefix("http://")
    digests = {}
    for name, platform in (("busybox", "linux/amd64"), ("registry", "linux/arm64")):
        archive = export_image(
            dockerd.client, test_images[name], tmp_path / f"{name}.tar"
        )
        skopeo_copy(
            f"docker-archive:{archive}", f"docker://{host}/team/multi:{name}",
            "--dest-tls-verify=false",
        )  # fmt: skip
        head = requests.head(
            f"{url}/v2/team/multi/manifests/{name}",
            headers={"Accept": "application/vnd.docker.distribution.manifest.v2+json"},
            timeout=10,
        )
        digests[platform] = (
            head.headers["Docker-Content-Digest"],
            int(head.headers["Content-Length"]),
            head.headers["Content-Type"],
        )
    index = {
        "schemaVersion": 2,
        "mediaType": OCI_INDEX,
        "manifests": [
            {
                "mediaType": media_type, "digest": digest, "size": size,
                "platform": {"os": p.split("/")[0], "architecture": p.split("/")[1]},
            }
            for p, (digest, size, media_type) in digests.items()
        ],
    }  # fmt: skip
    response = requests.put(
        f"{url}/v2/team/multi/manifests/1.0",
        data=json.dumps(index),
        headers={"Content-Type": OCI_INDEX},
        timeout=10,
    )
    assert response.status_code == 201, response.text
    return {p: d for p, (d, _s, _t) in digests.items()}
