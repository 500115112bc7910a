"""A realistic home-region registry and a regional mirror, for tests and bench.

Upstream side (what "crossing the region boundary" means here):

    mirror -> gateway -> upstream registry (S3 storage, redirects blob GETs)
                     \\-> S3 log proxy (nginx) -> moto

The upstream registry stores on moto S3 through a logging nginx, so its
presigned redirects point at that proxy: the registry's access log plus the
proxy's log of presigned requests is the upstream's own ground truth, which
Ferry's numbers (from the gateway's log) are checked against.

Everything runs as host-network containers bound to 127.0.0.1 on free ports;
`Rig.close()` removes exactly the containers and volumes it created.
"""

import io
import json
import re
import subprocess
import tarfile
import uuid
from dataclasses import dataclass, field

import boto3
import docker

from controlplane.testing.ports import free_port
from controlplane.testing.wait import wait_for

UP_USER = "home"
UP_PASSWORD = "home-secret-pw"
S3_KEY, S3_SECRET = "rig-key", "rig-secret"

# Registry 2.8 access log (gorilla combined format).
_REGISTRY_LOG = re.compile(
    r'"(?P<method>[A-Z]+) (?P<uri>\S+) HTTP/[\d.]+" (?P<status>\d{3}) '
    r"(?:(?P<bytes>\d+)|-)"
)
_KIND = re.compile(r"^/v2/(?P<repo>.+)/(?P<kind>blobs|manifests|tags)/")
_S3_LOG_FORMAT = (
    '{"method":"$request_method","uri":"$uri","status":"$status",'
    '"bytes":"$body_bytes_sent","presigned":"$rig_presigned"}'
)


def _tar(files: dict[str, str | bytes]) -> bytes:
    buf = io.BytesIO()
    with tarfile.open(fileobj=buf, mode="w") as tar:
        for path, content in files.items():
            data = content.encode() if isinstance(content, str) else content
            info = tarfile.TarInfo(path.lstrip("/"))
            info.size, info.mode = len(data), 0o644
            tar.addfile(info, io.BytesIO(data))
    return buf.getvalue()


def http_ok(url: str) -> bool:
    import urllib.error
    import urllib.request

    try:
        with urllib.request.urlopen(url, timeout=2) as resp:
            return resp.status < 500
    except urllib.error.HTTPError as exc:
        return exc.code < 500


@dataclass(frozen=True)
class UpstreamRequest:
    """One line of the upstream registry's access log."""

    method: str
    uri: str
    status: int
    bytes: int

    @property
    def kind(self) -> str:
        """blobs | manifests | tags | base (/v2/) | other"""
        if self.uri.rstrip("/") == "/v2":
            return "base"
        match = _KIND.match(self.uri)
        return match["kind"] if match else "other"


@dataclass
class UpstreamTruth:
    """What the upstream side really served (registry log + object store)."""

    registry_bytes: int = 0
    object_store_bytes: int = 0
    blob_gets: int = 0  # registry blob GETs (any status)
    object_gets: dict[str, int] = field(default_factory=dict)  # digest -> count
    requests: list[UpstreamRequest] = field(default_factory=list)  # in log order
    # Registry answers under /v2/<repo>/..., plus the object-store fetches of
    # the blobs the registry redirected for that repository.
    by_repository: dict[str, int] = field(default_factory=dict)

    @property
    def total_bytes(self) -> int:
        return self.registry_bytes + self.object_store_bytes


class Rig:
    """Containers on one engine; each created one is removed by close()."""

    def __init__(self, client: docker.DockerClient, images, prefix: str = ""):
        self.client, self.images = client, images
        self.prefix = prefix or f"rig-{uuid.uuid4().hex[:6]}-"
        self.containers: list[str] = []
        self.volumes: list[str] = []

    # -- lifecycle ---------------------------------------------------------
    def run(self, name: str, image: str, files: dict, **kwargs):
        """Create, write `files` into it, start; remembered for close()."""
        kwargs.setdefault("network_mode", "host")
        container = self.client.containers.create(image, name=name, **kwargs)
        self.containers.append(name)
        if files:
            container.put_archive("/", _tar(files))
        container.start()
        return container

    def remove(self, name: str) -> None:
        try:
            self.client.containers.get(name).remove(force=True)
        except docker.errors.NotFound:
            pass
        if name in self.containers:
            self.containers.remove(name)

    def volume(self, name: str) -> str:
        self.client.volumes.create(name)
        self.volumes.append(name)
        return name

    def remove_volume(self, name: str) -> None:
        try:
            self.client.volumes.get(name).remove(force=True)
        except docker.errors.NotFound:
            pass
        if name in self.volumes:
            self.volumes.remove(name)

    def close(self) -> None:
        for name in list(reversed(self.containers)):
            self.remove(name)
        for name in list(self.volumes):
            self.remove_volume(name)

    def logs(self, name: str) -> list[str]:
        raw = self.client.containers.get(name).logs(stdout=True, stderr=True)
        return raw.decode(errors="replace").splitlines()

    def wait_http(self, url: str, name: str, timeout: float = 30) -> None:
        wait_for(
            lambda: http_ok(url),
            timeout=timeout,
            message=lambda: f"{name} at {url}: " + "\n".join(self.logs(name)[-15:]),
        )

    # -- the pieces ----------------------------------------------------------
    def start_s3_proxy(self, s3_endpoint: str) -> str:
        """Logging nginx in front of moto; the Host header is kept for
        presigned signatures. Returns its endpoint."""
        port = free_port()
        conf = f"""
worker_processes 1; pid /tmp/rig-s3.pid; error_log stderr warn;
events {{ worker_connections 256; }}
http {{
  log_format rig escape=json '{_S3_LOG_FORMAT}';
  access_log /dev/stdout rig;
  map $args $rig_presigned {{ "~X-Amz-Signature=" "1"; default "0"; }}
  server {{
    listen 127.0.0.1:{port};
    client_max_body_size 0;
    proxy_request_buffering off;
    proxy_buffering off;
    location / {{
      proxy_pass {s3_endpoint};
      proxy_set_header Host $http_host;
      proxy_http_version 1.1;
    }}
  }}
}}
"""
        name = self.prefix + "s3proxy"
        self.run(name, self.images.nginx, {"/etc/nginx/nginx.conf": conf})
        self.wait_http(f"http://127.0.0.1:{port}/", name)
        self.s3_proxy = name
        return f"http://127.0.0.1:{port}"

    def start_upstream(self, s3_endpoint: str, bucket: str, tokens) -> str:
        """Registry 2.8 on S3 (through the log proxy) with token auth
        (`tokens`: a running token_standin.TokenServer)."""
        boto3.client(
            "s3",
            endpoint_url=s3_endpoint,
            aws_access_key_id=S3_KEY,
            aws_secret_access_key=S3_SECRET,
            region_name="us-east-1",
        ).create_bucket(Bucket=bucket)
        proxy = self.start_s3_proxy(s3_endpoint)
        port = free_port()
        config = f"""version: 0.1
log: {{level: info, accesslog: {{disabled: false}}, fields: {{service: upstream}}}}
storage:
  s3: {{accesskey: {S3_KEY}, secretkey: {S3_SECRET}, region: us-east-1,
       regionendpoint: "{proxy}", bucket: {bucket}, secure: false,
       v4auth: true, rootdirectory: /home}}
  redirect: {{disable: false}}
  delete: {{enabled: true}}
http: {{addr: "127.0.0.1:{port}", secret: rig-upstream-secret}}
auth:
  token: {{realm: "{tokens.realm}", service: {tokens.service},
          issuer: {tokens.issuer}, rootcertbundle: /etc/docker/registry/token.crt}}
"""
        name = self.prefix + "upstream"
        self.run(
            name,
            self.images.registry,
            {
                "/etc/docker/registry/config.yml": config,
                "/etc/docker/registry/token.crt": tokens.cert_pem,
            },
        )
        self.wait_http(f"http://127.0.0.1:{port}/v2/", name)
        self.upstream = name
        return f"http://127.0.0.1:{port}"

    def start_gateway(self, name: str, conf: str, cache_volume: str | None):
        volumes = {}
        if cache_volume:
            from registries.gateway import GATEWAY_CACHE_DIR

            volumes[cache_volume] = {"bind": GATEWAY_CACHE_DIR, "mode": "rw"}
        port = int(re.search(r"listen 127\.0\.0\.1:(\d+);", conf).group(1))
        self.run(
            name, self.images.nginx, {"/etc/nginx/nginx.conf": conf}, volumes=volumes
        )
        self.wait_http(f"http://127.0.0.1:{port}/v2/", name)
        return f"http://127.0.0.1:{port}"

    def start_mirror(
        self, name: str, remote: str, password: str = UP_PASSWORD, port: int = 0
    ) -> str:
        port = port or free_port()
        config = f"""version: 0.1
log: {{level: info, accesslog: {{disabled: false}}, fields: {{service: mirror}}}}
storage: {{filesystem: {{rootdirectory: /var/lib/registry}}, delete: {{enabled: true}}}}
proxy: {{remoteurl: "{remote}", username: {UP_USER}, password: "{password}"}}
http: {{addr: "127.0.0.1:{port}", secret: rig-mirror-secret}}
"""
        self.run(
            name, self.images.registry, {"/etc/docker/registry/config.yml": config}
        )
        self.wait_http(f"http://127.0.0.1:{port}/v2/", name)
        return f"http://127.0.0.1:{port}"

    def start_served_nginx(self, name: str, backend: str) -> str:
        """Plain-HTTP nginx in front of a mirror logging the SERVED format."""
        from registries.groundtruth import (
            LOG_FORMAT_SERVED,
            SERVED_FORMAT_NAME,
            log_format_directive,
        )

        port = free_port()
        conf = f"""
worker_processes 1; pid /tmp/rig-served.pid; error_log stderr warn;
events {{ worker_connections 256; }}
http {{
  {log_format_directive(SERVED_FORMAT_NAME, LOG_FORMAT_SERVED)}
  access_log /dev/stdout {SERVED_FORMAT_NAME};
  server {{
    listen 127.0.0.1:{port};
    client_max_body_size 0;
    location /v2/ {{
      proxy_pass {backend};
      proxy_set_header Host $http_host;
      proxy_http_version 1.1;
      proxy_buffering off;
    }}
  }}
}}
"""
        self.run(name, self.images.nginx, {"/etc/nginx/nginx.conf": conf})
        self.wait_http(f"http://127.0.0.1:{port}/v2/", name)
        return f"http://127.0.0.1:{port}"

    # -- upstream's own truth ---------------------------------------------------
    def upstream_truth(self) -> UpstreamTruth:
        truth = UpstreamTruth()
        redirected_for: dict[str, str] = {}  # digest -> first repository
        for line in self.logs(self.upstream):
            match = _REGISTRY_LOG.search(line)
            if not match or match["uri"].startswith("/debug"):
                continue
            # The registry logs a HEAD with the size its GET would send; no
            # body crossed.
            size = 0 if match["method"] == "HEAD" else int(match["bytes"] or 0)
            request = UpstreamRequest(
                match["method"], match["uri"], int(match["status"]), size
            )
            truth.requests.append(request)
            truth.registry_bytes += request.bytes
            if request.kind == "blobs" and request.method == "GET":
                truth.blob_gets += 1
            repo = _KIND.match(request.uri)
            if repo:
                _add(truth.by_repository, repo["repo"], request.bytes)
                if request.status == 307:
                    digest = request.uri.rsplit("/", 1)[-1]
                    redirected_for.setdefault(digest, repo["repo"])
        self._object_store_truth(truth, redirected_for)
        return truth

    def _object_store_truth(self, truth: UpstreamTruth, redirected_for) -> None:
        for line in self.logs(self.s3_proxy):
            if not line.startswith("{"):
                continue
            rec = json.loads(line)
            if rec["presigned"] != "1":
                continue  # the registry's own storage calls stay in-region
            truth.object_store_bytes += int(rec["bytes"])
            digest = re.search(r"/blobs/sha256/../([0-9a-f]{64})/data$", rec["uri"])
            if digest and rec["method"] == "GET" and rec["status"] == "200":
                key = "sha256:" + digest.group(1)
                truth.object_gets[key] = truth.object_gets.get(key, 0) + 1
                repo = redirected_for.get(key, "")
                _add(truth.by_repository, repo, int(rec["bytes"]))


def _add(totals: dict[str, int], key: str, value: int) -> None:
    totals[key] = totals.get(key, 0) + value


def skopeo(*args: str, timeout: float = 180) -> subprocess.CompletedProcess:
    """skopeo with an empty auth file: never this machine's credentials."""
    import os
    import tempfile

    auth = os.path.join(tempfile.gettempdir(), "ferry-skopeo-auth.json")
    if not os.path.exists(auth):
        with open(auth, "w") as handle:
            handle.write("{}")
    return subprocess.run(
        ["skopeo", "--insecure-policy", *args],
        check=False,
        capture_output=True,
        text=True,
        timeout=timeout,
        env={**os.environ, "REGISTRY_AUTH_FILE": auth},
    )


def push_image(layout: str, registry: str, ref: str) -> None:
    host = registry.split("://", 1)[1]
    proc = skopeo(
        "copy", "--dest-tls-verify=false", f"--dest-creds={UP_USER}:{UP_PASSWORD}",
        f"oci:{layout}:v1", f"docker://{host}/{ref}",
    )  # fmt: skip
    assert proc.returncode == 0, proc.stderr


def pull_image(registry: str, ref: str, dest: str) -> subprocess.CompletedProcess:
    host = registry.split("://", 1)[1]
    return skopeo(
        "copy", "--src-tls-verify=false", f"docker://{host}/{ref}", f"dir:{dest}"
    )


@dataclass(frozen=True)
class RandomImage:
    layout: str  # an OCI layout directory, tag "v1"
    blobs: dict  # digest -> size (config and layers)

    @property
    def bytes(self) -> int:
        return sum(self.blobs.values())


def build_random_image(directory: str, layers: int = 3, mb: int = 3) -> RandomImage:
    """An OCI image of `layers` gzip layers of incompressible random data."""
    import gzip
    import hashlib
    import os
    from pathlib import Path

    root = Path(directory)
    (root / "blobs/sha256").mkdir(parents=True, exist_ok=True)
    blobs: dict[str, int] = {}

    def put(data: bytes) -> str:
        digest = hashlib.sha256(data).hexdigest()
        (root / "blobs/sha256" / digest).write_bytes(data)
        blobs[f"sha256:{digest}"] = len(data)
        return f"sha256:{digest}"

    layer_descs, diff_ids = [], []
    for index in range(layers):
        tar = _tar({f"/data/layer{index}.bin": os.urandom(mb * 1024 * 1024)})
        diff_ids.append("sha256:" + hashlib.sha256(tar).hexdigest())
        blob = gzip.compress(tar, compresslevel=1, mtime=0)
        layer_descs.append(
            {"mediaType": "application/vnd.oci.image.layer.v1.tar+gzip",
             "digest": put(blob), "size": len(blob)}
        )  # fmt: skip
    config = json.dumps(
        {"architecture": "amd64", "os": "linux", "config": {},
         "rootfs": {"type": "layers", "diff_ids": diff_ids}}
    ).encode()  # fmt: skip
    manifest = json.dumps(
        {"schemaVersion": 2,
         "mediaType": "application/vnd.oci.image.manifest.v1+json",
         "config": {"mediaType": "application/vnd.oci.image.config.v1+json",
                    "digest": put(config), "size": len(config)},
         "layers": layer_descs}
    ).encode()  # fmt: skip
    man_digest = hashlib.sha256(manifest).hexdigest()
    (root / "blobs/sha256" / man_digest).write_bytes(manifest)
    (root / "oci-layout").write_text('{"imageLayoutVersion": "1.0.0"}')
    (root / "index.json").write_text(json.dumps(
        {"schemaVersion": 2, "manifests": [
            {"mediaType": "application/vnd.oci.image.manifest.v1+json",
             "digest": f"sha256:{man_digest}", "size": len(manifest),
             "annotations": {"org.opencontainers.image.ref.name": "v1"}}]}
    ))  # fmt: skip
    return RandomImage(layout=str(root), blobs=blobs)
