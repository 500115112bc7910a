"""The containers a registry should have on its host (the desired state).

A mirror is three containers: `gateway` (nginx between the mirror and its
upstream, conf by registries.gateway), `registry` (proxy mode, remoteurl =
the gateway) and `nginx` (TLS + htpasswd front). A private registry is one
`registry` container. Each has deterministic names, `ferry.*` labels and a
hash of everything that defines it; files are copied into the container
before it starts (the Docker host may be remote: no bind mounts of Ferry's
files).
"""

import hashlib
import json
from dataclasses import dataclass, field

from . import gateway, render
from .spec import RegistrySpec, registry_spec

ROLE_ORDER = ("gateway", "registry", "nginx")  # start order: dependencies first


@dataclass(frozen=True)
class Mount:
    source: str  # volume name, or host path for kind "bind"
    target: str
    kind: str = "volume"  # volume | bind
    read_only: bool = False


@dataclass(frozen=True)
class ContainerSpec:
    role: str  # registry | nginx | gateway
    name: str
    image: str
    owner: str  # "registry:<id>"
    files: tuple[tuple[str, str, int], ...] = ()  # (path, content, mode)
    entrypoint: tuple[str, ...] = ()
    mounts: tuple[Mount, ...] = ()
    binds: tuple[tuple[str, int], ...] = ()  # (address, port) it listens on
    log_options: tuple[tuple[str, str], ...] = ()  # docker json-file options
    labels: tuple[tuple[str, str], ...] = field(default=(), compare=False)

    @property
    def config_hash(self) -> str:
        return dict(self.labels)["ferry.config-hash"]

    @property
    def files_digest(self) -> str:
        return files_digest({path: content for path, content, _ in self.files})


def owner_label(registry_id: int) -> str:
    return f"registry:{registry_id}"


def container_name(registry_id: int, role: str) -> str:
    return f"ferry-reg-{registry_id}-{role}"


def gateway_cache_volume(registry_id: int) -> str:
    return f"ferry-reg-{registry_id}-gwcache"


def files_digest(files: dict[str, str]) -> str:
    """sha256 over the files' paths and contents (what drift checks compare)."""
    sha = hashlib.sha256()
    for path in sorted(files):
        sha.update(path.encode() + b"\0" + files[path].encode() + b"\0")
    return sha.hexdigest()


def _finish(spec: RegistrySpec, role: str, image: str, **kwargs) -> ContainerSpec:
    """A ContainerSpec with its labels and config hash computed."""
    draft = ContainerSpec(
        role=role,
        name=container_name(spec.id, role),
        image=image,
        owner=owner_label(spec.id),
        log_options=(
            ("max-size", spec.log_max_size),
            ("max-file", str(spec.log_max_files)),
        ),
        **kwargs,
    )
    identity = {
        "image": draft.image,
        "entrypoint": list(draft.entrypoint),
        "files": [list(item) for item in draft.files],
        "mounts": [vars(m) for m in draft.mounts],
        "binds": [list(b) for b in draft.binds],
        "log": [list(item) for item in draft.log_options],
    }
    digest = hashlib.sha256(json.dumps(identity, sort_keys=True).encode()).hexdigest()
    labels = (
        ("ferry.managed", "true"),
        ("ferry.owner", draft.owner),
        ("ferry.role", role),
        ("ferry.config-hash", digest),
        ("ferry.ports", ",".join(str(port) for _a, port in draft.binds)),
    )
    return ContainerSpec(**{**vars(draft), "labels": labels})


def registry_container(spec: RegistrySpec) -> ContainerSpec:
    directory = render.registry_config_dir(spec)
    files = [(f"{directory}/config.yml", render.render_registry_config(spec), 0o644)]
    if spec.exposed:
        if spec.require_auth:
            files.append(
                (f"{directory}/htpasswd", render.render_htpasswd(spec.users), 0o644)
            )
        files.append((f"{directory}/tls.crt", spec.tls_certificate, 0o644))
        files.append((f"{directory}/tls.key", spec.tls_private_key, 0o600))
    mounts = ()
    if spec.store.kind == "filesystem":
        # The store is a directory on the Docker host, shared by the site.
        mounts = (Mount(spec.store.root_directory, "/var/lib/registry", "bind"),)
    address = "127.0.0.1" if spec.is_mirror else spec.listen_address
    return _finish(
        spec,
        "registry",
        spec.image,
        files=tuple(files),
        mounts=mounts,
        binds=((address, spec.port), ("127.0.0.1", spec.debug_port)),
    )


def nginx_container(spec: RegistrySpec) -> ContainerSpec:
    directory = render.NGINX_DIR
    files = [(f"{directory}/nginx.conf", render.render_nginx_conf(spec), 0o644)]
    if spec.require_auth:
        # Workers read it per request, as the unprivileged nginx user.
        files.append(
            (f"{directory}/htpasswd", render.render_htpasswd(spec.users), 0o644)
        )
    files.append((f"{directory}/tls.crt", spec.tls_certificate, 0o644))
    files.append((f"{directory}/tls.key", spec.tls_private_key, 0o600))
    return _finish(
        spec,
        "nginx",
        spec.nginx_image,
        files=tuple(files),
        entrypoint=("nginx", "-c", f"{directory}/nginx.conf", "-g", "daemon off;"),
        binds=((spec.listen_address, spec.https_port),),
    )


def gateway_container(spec: RegistrySpec, registry) -> ContainerSpec:
    """The upstream gateway (registries.gateway renders its nginx.conf)."""
    conf_path = gateway.GATEWAY_CONF_PATH
    return _finish(
        spec,
        "gateway",
        spec.nginx_image,
        files=((conf_path, gateway.render_gateway_conf(registry), 0o644),),
        entrypoint=("nginx", "-c", conf_path, "-g", "daemon off;"),
        mounts=(Mount(gateway_cache_volume(spec.id), gateway.GATEWAY_CACHE_DIR),),
        binds=(("127.0.0.1", spec.gateway_port),),
    )


def site_containers(
    registry, masked: bool = False
) -> tuple[RegistrySpec, list[ContainerSpec]]:
    """The registry's spec and its desired containers, in start order."""
    use_gateway = registry.kind == "mirror" and bool(registry.gateway_port)
    spec = registry_spec(
        registry,
        masked=masked,
        gateway_port=registry.gateway_port if use_gateway else None,
    )
    containers = []
    if use_gateway:
        containers.append(gateway_container(spec, registry))
    containers.append(registry_container(spec))
    if spec.is_mirror:
        containers.append(nginx_container(spec))
    return spec, containers
