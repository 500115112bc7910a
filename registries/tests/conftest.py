"""Fixtures for registry tests: an upstream registry, a test image, skopeo.

* `test_image_archive` (session): a docker-archive tarball of a small image
  (the busybox test image plus layers of random data), built on the session
  dockerd; `.path`, `.ref` (its name:tag in the archive), `.size` (bytes of
  its uncompressed layer tars; a push gzips them: the busybox layer shrinks,
  the 3 x 1 MB random layers do not), `.layers`.
* `upstream_registry`: a plain registry container (filesystem storage, no
  auth, access log on) on the session dockerd at 127.0.0.1:<free port>, with
  the test image pushed as `ns/app:v1`; `.url`, `.port`, `.name`, `.push()`.
* `skopeo_copy(src, dest, *flags)`, `pull_through(...)`: skopeo helpers that
  return the CompletedProcess (assert on .returncode / .stderr yourself).

Other helpers may append fixtures at the end in a clearly separated section.
"""

import io
import json
import os
import subprocess
import tarfile
import tempfile
import uuid
from contextlib import contextmanager
from dataclasses import dataclass
from pathlib import Path

import pytest

from controlplane.testing.ports import free_port
from controlplane.testing.wait import wait_for

UPSTREAM_IMAGE = "ns/app:v1"
SKOPEO_TIMEOUT = 180


# -- skopeo ----------------------------------------------------------------------
def _empty_auth_file() -> str:
    path = Path(tempfile.gettempdir()) / "ferry-skopeo-auth.json"
    if not path.exists():
        path.write_text("{}")
    return str(path)


def skopeo(*args: str, timeout: float = SKOPEO_TIMEOUT) -> subprocess.CompletedProcess:
    """Run skopeo with an empty auth file (never the machine's credentials)."""
    env = {**os.environ, "REGISTRY_AUTH_FILE": _empty_auth_file()}
    return subprocess.run(
        ["skopeo", "--insecure-policy", *args],
        capture_output=True,
        text=True,
        timeout=timeout,
        check=False,
        env=env,
    )


def skopeo_copy(src: str, dest: str, *flags: str) -> subprocess.CompletedProcess:
    return skopeo("copy", "--retry-times", "0", *flags, src, dest)


def push_archive(archive: Path, registry: str, ref: str, *flags: str) -> None:
    """Push a docker-archive to 127.0.0.1:PORT (plain HTTP unless flags say)."""
    result = skopeo_copy(
        f"docker-archive:{archive}",
        f"docker://{registry}/{ref}",
        "--dest-tls-verify=false",
        *flags,
    )
    assert result.returncode == 0, f"push to {registry} failed: {result.stderr}"


def pull_through(
    registry: str,
    ref: str,
    dest_dir: str,
    creds: str | None = None,
    cert_dir: str | None = None,
    tls_verify: bool = True,
) -> subprocess.CompletedProcess:
    """skopeo copy docker://registry/ref -> dir:dest_dir (a full pull)."""
    flags = [f"--src-tls-verify={'true' if tls_verify else 'false'}"]
    if creds is not None:
        flags.append(f"--src-creds={creds}")
    if cert_dir is not None:
        flags.append(f"--src-cert-dir={cert_dir}")
    return skopeo_copy(f"docker://{registry}/{ref}", f"dir:{dest_dir}", *flags)


# -- the test image -----------------------------------------------------------------
@dataclass(frozen=True)
class ImageArchive:
    path: Path
    ref: str
    size: int  # uncompressed layer tars (pushed blobs are gzipped)
    layers: int


def _build_context(base: str, layers: int, mb: int) -> bytes:
    buf = io.BytesIO()
    lines = [f"FROM {base}"]
    with tarfile.open(fileobj=buf, mode="w") as tar:
        for index in range(layers):
            data = os.urandom(mb * 1024 * 1024)  # random: does not compress
            info = tarfile.TarInfo(f"layer{index}.bin")
            info.size = len(data)
            tar.addfile(info, io.BytesIO(data))
            lines.append(f"COPY layer{index}.bin /data/layer{index}.bin")
        dockerfile = ("\n".join(lines) + "\n").encode()
        info = tarfile.TarInfo("Dockerfile")
        info.size = len(dockerfile)
        tar.addfile(info, io.BytesIO(dockerfile))
    return buf.getvalue()


def build_test_image(client, base: str, tag: str, layers: int = 3, mb: int = 1) -> str:
    """Build busybox + `layers` layers of random data on the engine; the tag."""
    context = _build_context(base, layers, mb)
    client.images.build(
        fileobj=io.BytesIO(context), custom_context=True, tag=tag, rm=True
    )
    return tag


@pytest.fixture(scope="session")
def test_image_archive(dockerd, test_images, tmp_path_factory) -> ImageArchive:
    tag = f"ferry-test/app:{uuid.uuid4().hex[:8]}"
    build_test_image(dockerd.client, test_images.busybox, tag, layers=3, mb=1)
    path = tmp_path_factory.mktemp("image") / "app.tar"
    with open(path, "wb") as handle:
        handle.writelines(dockerd.client.images.get(tag).save(named=True))
    with tarfile.open(path) as tar:
        manifest = json.load(tar.extractfile("manifest.json"))
        layer_names = manifest[0]["Layers"]
        size = sum(tar.getmember(name).size for name in layer_names)
    dockerd.client.images.remove(tag, force=True)
    return ImageArchive(path=path, ref=tag, size=size, layers=len(layer_names))


# -- the upstream ("home region") registry ---------------------------------------------
UPSTREAM_CONFIG = """\
version: 0.1
log:
  accesslog:
    disabled: false
  level: info
storage:
  filesystem:
    rootdirectory: /var/lib/registry
  delete:
    enabled: true
http:
  addr: 127.0.0.1:{port}
"""


@dataclass
class UpstreamRegistry:
    client: object
    name: str
    port: int

    @property
    def host(self) -> str:
        return f"127.0.0.1:{self.port}"

    @property
    def url(self) -> str:
        return f"http://{self.host}"

    def push(self, archive: Path, ref: str = UPSTREAM_IMAGE) -> None:
        push_archive(archive, self.host, ref)

    def logs(self) -> str:
        return self.client.containers.get(self.name).logs().decode(errors="replace")

    def remove(self) -> None:
        import docker

        try:
            self.client.containers.get(self.name).remove(force=True)
        except docker.errors.NotFound:
            return  # already gone is fine


def _tar_file(path: str, text: str) -> bytes:
    buf = io.BytesIO()
    data = text.encode()
    with tarfile.open(fileobj=buf, mode="w") as tar:
        info = tarfile.TarInfo(path.lstrip("/"))
        info.size = len(data)
        tar.addfile(info, io.BytesIO(data))
    return buf.getvalue()


def start_upstream(client, registry_image: str) -> UpstreamRegistry:
    """A plain registry container on a free loopback port, answering /v2/."""
    import urllib.request

    port = free_port()
    name = f"t-upstream-{uuid.uuid4().hex[:8]}"
    container = client.containers.create(
        registry_image, name=name, network_mode="host", labels={"ferry-test": "1"}
    )
    upstream = UpstreamRegistry(client=client, name=name, port=port)
    try:
        config = UPSTREAM_CONFIG.format(port=port)
        container.put_archive("/", _tar_file("/etc/docker/registry/config.yml", config))
        container.start()
        wait_for(
            lambda: (
                urllib.request.urlopen(f"{upstream.url}/v2/", timeout=2).status == 200
            ),
            timeout=30,
            message=f"upstream registry on {port}",
        )
    except BaseException:
        upstream.remove()
        raise
    return upstream


@pytest.fixture
def upstream_registry(dockerd, test_images, test_image_archive):
    upstream = start_upstream(dockerd.client, test_images.registry)
    try:
        upstream.push(test_image_archive.path)
        yield upstream
    finally:
        upstream.remove()


@pytest.fixture
def cert_dir(test_ca):
    """A directory holding only the test CA's ca.crt (for --src-cert-dir)."""
    directory = tempfile.mkdtemp(prefix="ferry-ca-")
    test_ca.write_ca_dir(directory)
    return directory


# -- a registry site (mirror + private on one S3 bucket) -----------------------
@dataclass
class Site:
    mirror: object  # Registry
    private: object  # Registry
    store: object  # ObjectStore
    user: str
    password: str


def make_bucket(endpoint: str, bucket: str) -> None:
    import boto3

    boto3.client(
        "s3",
        endpoint_url=endpoint,
        region_name="us-east-1",
        aws_access_key_id="test",
        aws_secret_access_key="test",
    ).create_bucket(Bucket=bucket)


def remove_registry_containers(client, registry_ids) -> None:
    """Remove what Ferry created for these registries (containers, cache volume)."""
    import docker

    from adapters import containers as engine

    for registry_id in registry_ids:
        for state in engine.list_owned(client, f"registry:{registry_id}"):
            engine.remove(client, state.id)
        for suffix in ("probe",):
            engine.remove(client, f"ferry-reg-{registry_id}-{suffix}")
        try:
            client.volumes.get(f"ferry-reg-{registry_id}-gwcache").remove(force=True)
        except docker.errors.NotFound:
            pass


@contextmanager
def registry_site(dockerd, s3_server: str, upstream_url: str, test_ca):
    """Saved (not applied) mirror + private registry rows sharing an S3 store.

    A plain function (a context manager) so that other apps' tests can make a
    site too (builds pushes into it). Needs the database and the test image
    settings (`use_test_images`). The mirror proxies `upstream_url`, has a
    test-CA certificate for 127.0.0.1 and user ops/<password>; all ports are
    free loopback ports. Containers are removed on exit.
    """
    from regions.models import DockerHost, Region
    from registries.models import ObjectStore, Registry, RegistryUser

    region = Region.objects.create(slug=f"r{uuid.uuid4().hex[:6]}", name="Test region")
    host = DockerHost.objects.create(region=region, name="h1", docker_url=dockerd.url)
    bucket = f"site-{uuid.uuid4().hex[:8]}"
    make_bucket(s3_server, bucket)
    store = ObjectStore.objects.create(
        region=region, name="s3", kind="s3", endpoint=s3_server, bucket=bucket,
        s3_region="us-east-1", root_directory="/registry",
        access_key_id="test", secret_access_key="test",
    )  # fmt: skip
    cert, key = test_ca.issue(("127.0.0.1", "localhost"))
    common = {"region": region, "host": host, "store": store, "debug_port": 0}
    mirror = Registry.objects.create(
        name="mirror", kind="mirror", upstream_url=upstream_url,
        port=free_port(), https_port=free_port(), gateway_port=free_port(),
        tls_certificate=cert.decode(), tls_private_key=key.decode(), **common,
    )  # fmt: skip
    private = Registry.objects.create(
        name="private", kind="private", port=free_port(), **common
    )
    for registry in (mirror, private):
        Registry.objects.filter(pk=registry.pk).update(debug_port=free_port())
        registry.refresh_from_db()
    password = uuid.uuid4().hex
    RegistryUser.objects.create(registry=mirror, username="ops", password=password)
    try:
        yield Site(mirror, private, store, "ops", password)
    finally:
        remove_registry_containers(dockerd.client, [mirror.pk, private.pk])


@pytest.fixture
def site(db, dockerd, use_test_images, s3_server, upstream_registry, test_ca):
    """A registry site in front of `upstream_registry` (see registry_site)."""
    with registry_site(dockerd, s3_server, upstream_registry.url, test_ca) as made:
        yield made
