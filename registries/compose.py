"""The docker-compose equivalent of a registry site, as Ferry deploys it.

A site is every registry on one object store and one Docker host: the
mirror (gateway + registry + nginx) and the private push registry share the
bucket and the http secret, so exporting one of them without the other would
not reproduce what clients see. `render_compose(site)` renders the document
(pure); `load_site(registry)` reads the rows; `export_files(site)` lists the
files the compose document mounts, where it mounts them from.
"""

from dataclasses import dataclass

import yaml
from django.utils.text import slugify
from django.utils.translation import gettext as _

from .site import ContainerSpec, site_containers
from .spec import RegistrySpec, is_loopback


class NotExportable(ValueError):
    """A registry of the site cannot be rendered as deployed yet; str() says why."""


@dataclass(frozen=True)
class SiteMember:
    spec: RegistrySpec
    containers: tuple[ContainerSpec, ...]  # in start order
    service_base: str  # "<registry name>": services are "<base>-<role>"

    def service(self, container: ContainerSpec) -> str:
        return f"{self.service_base}-{container.role}"


@dataclass(frozen=True)
class ComposeSite:
    store: str  # "region/store", for the header
    host: str
    members: tuple[SiteMember, ...]


def service_bases(registries) -> dict[int, str]:
    """registry id -> a readable, stable service prefix: the slugged name,
    with the id added where two registries of the site would share it."""
    bases = {r.pk: slugify(r.name) or f"registry-{r.pk}" for r in registries}
    taken = list(bases.values())
    return {
        pk: base if taken.count(base) == 1 else f"{base}-{pk}"
        for pk, base in bases.items()
    }


def site_registries(registry) -> list:
    """The registries sharing this one's store and host, mirrors first."""
    from .models import Registry

    return list(
        Registry.objects.filter(store_id=registry.store_id, host_id=registry.host_id)
        .select_related("region", "host", "store")
        .order_by("kind", "pk")
    )


def load_site(registry, masked: bool = True, strict: bool = True) -> ComposeSite:
    """The site of `registry` with every member's desired containers.

    strict: refuse (NotExportable) when a member was never applied or lacks a
    value its apply generates, instead of rendering something Ferry would not
    deploy (the page renders leniently, to show what an apply would write).
    """
    registries = site_registries(registry)
    if strict:
        for member in registries:
            check_exportable(member)
    bases = service_bases(registries)
    members = []
    for member in registries:
        spec, containers = site_containers(member, masked=masked)
        members.append(SiteMember(spec, tuple(containers), bases[member.pk]))
    return ComposeSite(str(registry.store), str(registry.host), tuple(members))


def check_exportable(registry) -> None:
    if registry.last_applied_at is None:
        raise NotExportable(
            _("registry %(registry)s has never been applied; apply it first")
            % {"registry": registry}
        )
    missing = missing_values(registry)
    if missing:
        raise NotExportable(
            _("registry %(registry)s has no %(fields)s yet; apply it again")
            % {"registry": registry, "fields": ", ".join(missing)}
        )


def missing_values(registry) -> list[str]:
    """Names of the values an apply generates that the row lacks."""
    needed = ["port", "debug_port", "notify_token"]
    if registry.kind == "mirror":
        needed.append("https_port")
    if registry.kind == "mirror" or not is_loopback(registry.listen_address):
        needed += ["tls_certificate", "tls_private_key"]
    fields = registry._meta
    missing = [
        str(fields.get_field(n).verbose_name)
        for n in needed
        if not getattr(registry, n)
    ]
    if not registry.store.http_secret:
        missing.append(str(registry.store._meta.get_field("http_secret").verbose_name))
    return missing


# -- rendering (pure) ---------------------------------------------------------
def render_compose(site: ComposeSite) -> str:
    """docker-compose.yml running the site's containers with the same images,
    names, labels, logging, restart policy and files as Ferry deploys.

    Each container's files are bind-mounted from ./<service>/<file name>
    (export_files); named volumes are declared once, under their own names.
    """
    services: dict = {}
    volumes: dict = {}
    for member in site.members:
        previous = None
        for container in member.containers:
            service = _service(member, container)
            if previous is not None:
                # Ferry starts a registry's containers in this order too.
                service["depends_on"] = [member.service(previous)]
            services[member.service(container)] = service
            previous = container
            for mount in container.mounts:
                if mount.kind == "volume":
                    volumes[mount.source] = {"name": mount.source}
    document: dict = {"services": services}
    if volumes:
        document["volumes"] = volumes
    body = yaml.safe_dump(
        document, sort_keys=False, default_flow_style=False, width=200
    )
    names = ", ".join(f"{m.spec.name} ({m.spec.kind})" for m in site.members)
    return (
        f"# docker-compose.yml for the registry site on store {site.store}, "
        f"host {site.host}: {names}. Rendered by Ferry.\n" + body
    )


def _service(member: SiteMember, container: ContainerSpec) -> dict:
    service: dict = {
        "image": container.image,
        "container_name": container.name,
        "network_mode": "host",
        "restart": "unless-stopped",
    }
    if container.entrypoint:
        service["entrypoint"] = list(container.entrypoint)
    directory = member.service(container)
    volumes = [
        f"./{directory}/{_file_name(path)}:{path}:ro"
        for path, _content, _mode in container.files
    ]
    volumes += [
        f"{m.source}:{m.target}" + (":ro" if m.read_only else "")
        for m in container.mounts
    ]
    service["volumes"] = volumes
    service["labels"] = dict(container.labels)
    if container.log_options:
        options = dict(container.log_options)
        service["logging"] = {"driver": "json-file", "options": options}
    return service


def _file_name(path: str) -> str:
    return path.rsplit("/", 1)[-1]


def export_files(site: ComposeSite) -> list[tuple[str, str, int]]:
    """(path relative to the compose file, content, mode) of every file, and
    the compose file itself; paths never collide (one directory per service)."""
    files = [("docker-compose.yml", render_compose(site), 0o644)]
    for member in site.members:
        for container in member.containers:
            directory = member.service(container)
            for path, content, mode in container.files:
                files.append((f"{directory}/{_file_name(path)}", content, mode))
    return files
