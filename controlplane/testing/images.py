"""Small test images built from this machine's Debian binaries.

Nothing can be pulled here, so `registry`, `nginx` and `busybox` are built
from the installed Debian packages (docker-registry, nginx, busybox-static):
the binary, the libraries ldd lists, and a few config files. Each rootfs
tarball is cached under $FERRY_TEST_CACHE (default /tmp/ferry-test-cache),
keyed by a hash of every input byte, and imported into an engine as
`ferry-test/<name>:<hash12>` (the registry's as `:2.8-<hash12>`) only when
that tag is missing.

    images = import_test_images(dockerd.client)
    client.containers.run(images.registry, network_mode="host", ...)

The images behave like the public ones Ferry uses in production:
* registry: `docker-registry serve /etc/docker/registry/config.yml`, the
  config of the official `registry:2` image (filesystem storage at
  /var/lib/registry, `:5000`; override with REGISTRY_HTTP_ADDR or a mount).
* nginx: `nginx -g 'daemon off;'`, /etc/nginx/nginx.conf includes
  /etc/nginx/conf.d/*.conf (empty: mount your server blocks there); loads no
  dynamic modules; users root, www-data, nobody.
* busybox: busybox-static with applet symlinks in /bin; entrypoint `sh`.
"""

import os
import shutil
import subprocess
import tempfile
from dataclasses import dataclass
from pathlib import Path

import docker

from .rootfs import RootFS

# Bump when a recipe changes in a way the hashed inputs do not show.
RECIPE_VERSION = "1"
REPOSITORY = "ferry-test"
DEFAULT_PATH = "/usr/local/sbin:/usr/local/bin:/usr/sbin:/usr/bin:/sbin:/bin"

PASSWD = (
    "root:x:0:0:root:/root:/bin/sh\n"
    "www-data:x:33:33:www-data:/var/www:/usr/sbin/nologin\n"
    "nobody:x:65534:65534:nobody:/nonexistent:/usr/sbin/nologin\n"
)
GROUP = "root:x:0:\nwww-data:x:33:\nnogroup:x:65534:\n"

REGISTRY_CONFIG = """\
version: 0.1
log:
  fields:
    service: registry
storage:
  cache:
    blobdescriptor: inmemory
  filesystem:
    rootdirectory: /var/lib/registry
http:
  addr: :5000
  headers:
    X-Content-Type-Options: [nosniff]
health:
  storagedriver:
    enabled: true
    interval: 10s
    threshold: 3
"""

NGINX_CONFIG = """\
user www-data;
worker_processes 1;
pid /run/nginx.pid;
error_log stderr warn;
events { worker_connections 512; }
http {
    include /etc/nginx/mime.types;
    default_type application/octet-stream;
    access_log /dev/stdout;
    sendfile on;
    include /etc/nginx/conf.d/*.conf;
}
"""


@dataclass(frozen=True)
class TestImages:
    __test__ = False  # not a pytest test class

    registry: str
    nginx: str
    busybox: str

    def __getitem__(self, name: str) -> str:
        return getattr(self, name)


def _base(fs: RootFS) -> None:
    fs.add_bytes("/etc/passwd", PASSWD)
    fs.add_bytes("/etc/group", GROUP)
    fs.add_bytes("/etc/hosts", "127.0.0.1 localhost\n::1 localhost\n")
    fs.add_dir("/tmp", 0o1777)
    fs.add_dir("/run", 0o755)
    fs.add_symlink("/var/run", "/run")
    if os.path.exists("/etc/ssl/certs/ca-certificates.crt"):
        fs.add_file("/etc/ssl/certs/ca-certificates.crt")


def registry_rootfs() -> RootFS:
    fs = RootFS()
    _base(fs)
    fs.add_binary("/usr/bin/docker-registry")
    fs.add_bytes("/etc/docker/registry/config.yml", REGISTRY_CONFIG)
    fs.add_dir("/var/lib/registry")
    return fs


def nginx_rootfs() -> RootFS:
    fs = RootFS()
    _base(fs)
    fs.add_binary("/usr/sbin/nginx")
    fs.add_bytes("/etc/nginx/nginx.conf", NGINX_CONFIG)
    fs.add_file("/etc/nginx/mime.types")
    fs.add_dir("/etc/nginx/conf.d")
    fs.add_dir("/etc/nginx/modules-enabled")
    for name in ("body", "fastcgi", "proxy", "scgi", "uwsgi"):
        fs.add_dir(f"/var/lib/nginx/{name}", 0o755)
    fs.add_dir("/var/lib/nginx", 0o777)
    fs.add_dir("/var/log/nginx", 0o777)
    fs.add_dir("/var/lock", 0o1777)
    fs.add_dir("/usr/share/nginx/html")
    fs.add_bytes("/usr/share/nginx/html/index.html", "<h1>ferry-test nginx</h1>\n")
    return fs


def busybox_rootfs() -> RootFS:
    fs = RootFS()
    _base(fs)
    fs.add_file("/bin/busybox", "/bin/busybox", 0o755)
    applets = subprocess.run(
        ["/bin/busybox", "--list"], capture_output=True, text=True, check=True
    ).stdout.split()
    for applet in applets:
        if applet != "busybox":
            fs.add_symlink(f"/bin/{applet}", "busybox")
    fs.add_dir("/var/www")
    fs.add_dir("/root", 0o700)
    return fs


# Ferry reads a registry image's major version from its tag (registry:2,
# registry:3.0.0), so the test registry's tag says what it is: Debian's 2.8.
TAG_PREFIX = {"registry": "2.8-"}

RECIPES = {
    "registry": (
        registry_rootfs,
        (
            'ENTRYPOINT ["/usr/bin/docker-registry", "serve", '
            '"/etc/docker/registry/config.yml"]'
        ),
    ),
    "nginx": (nginx_rootfs, 'ENTRYPOINT ["/usr/sbin/nginx", "-g", "daemon off;"]'),
    "busybox": (busybox_rootfs, 'ENTRYPOINT ["/bin/sh"]'),
}


def cache_dir() -> Path:
    path = Path(os.environ.get("FERRY_TEST_CACHE", "/tmp/ferry-test-cache"))
    path.mkdir(parents=True, exist_ok=True)
    return path


def build_image_tar(name: str) -> tuple[Path, str]:
    """The cached rootfs tarball for `name` and its tag; built when missing."""
    recipe = RECIPES[name][0]
    fs = recipe()
    fs.add_bytes("/.ferry-test-recipe", "\n".join([RECIPE_VERSION, *_changes(name)]))
    digest = fs.digest()[:12]
    tar_path = cache_dir() / f"{name}-{digest}.tar"
    if not tar_path.exists():
        # Parallel sessions may build the same tarball: write aside, rename.
        fd, tmp = tempfile.mkstemp(dir=tar_path.parent, suffix=".part")
        os.close(fd)
        try:
            fs.write_tar(Path(tmp))
            os.chmod(tmp, 0o644)
            os.replace(tmp, tar_path)
        finally:
            if os.path.exists(tmp):
                os.unlink(tmp)
    return tar_path, f"{REPOSITORY}/{name}:{TAG_PREFIX.get(name, '')}{digest}"


def import_image(client: docker.DockerClient, name: str) -> str:
    """Import the `name` test image into the engine unless its tag is there."""
    tar_path, tag = build_image_tar(name)
    try:
        client.images.get(tag)
        return tag
    except docker.errors.ImageNotFound:
        pass
    repository, version = tag.rsplit(":", 1)
    with open(tar_path, "rb") as handle:
        client.api.import_image_from_data(
            handle, repository=repository, tag=version, changes=_changes(name)
        )
    client.images.get(tag)  # raises with the engine's reason if import failed
    return tag


def _changes(name: str) -> list[str]:
    return [f"ENV PATH={DEFAULT_PATH}", RECIPES[name][1]]


def import_test_images(client: docker.DockerClient) -> TestImages:
    """Import registry, nginx and busybox into `client`'s engine; their tags."""
    return TestImages(**{name: import_image(client, name) for name in RECIPES})


def export_image(client: docker.DockerClient, tag: str, path: Path) -> Path:
    """`docker save` an image to a docker-archive tarball (for skopeo copy)."""
    with open(path, "wb") as handle:
        handle.writelines(client.images.get(tag).save(named=True))
    return path


def push_image(
    client: docker.DockerClient,
    tag: str,
    dest: str,
    *,
    cert_dir: str | Path | None = None,
    creds: str | None = None,
) -> None:
    """Copy an engine's image to a registry with skopeo.

    dest is "127.0.0.1:PORT/ns/name:tag". Without cert_dir the registry is
    reached without TLS verification (plain HTTP works too); cert_dir must
    hold only the CA's ca.crt. creds is "user:password".
    """
    with tempfile.TemporaryDirectory(prefix="ferry-push-") as tmp:
        archive = export_image(client, tag, Path(tmp) / "image.tar")
        cmd = ["skopeo", "copy", "--quiet"]
        cmd += (
            [f"--dest-cert-dir={cert_dir}"] if cert_dir else ["--dest-tls-verify=false"]
        )
        cmd += [f"--dest-creds={creds}"] if creds else []
        result = subprocess.run(
            [*cmd, f"docker-archive:{archive}", f"docker://{dest}"],
            capture_output=True, text=True, check=False,
        )  # fmt: skip
    if result.returncode != 0:
        raise RuntimeError(f"skopeo copy to {dest} failed: {result.stderr.strip()}")


def require_binaries() -> None:
    missing = [
        pkg
        for pkg, path in (
            ("docker-registry", "/usr/bin/docker-registry"),
            ("nginx", "/usr/sbin/nginx"),
            ("busybox-static", "/bin/busybox"),
        )
        if not shutil.which(path)
    ]
    if missing:
        raise RuntimeError(f"apt-get install -y {' '.join(missing)} (for test images)")
