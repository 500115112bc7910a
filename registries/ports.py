"""A registry's ports: free defaults, and whether the host has them free.

Ports are checked in three places, each catching what the others cannot:
1. save: no two Ferry registries on the same Docker host share a port (DB);
2. apply: a probe container binds every port this apply newly needs, on the
   host's network, before anything is changed (catches non-Ferry listeners,
   also on loopback of a remote host that Ferry itself cannot reach);
3. start: a container that still fails to bind is rolled back and its
   "address already in use" is reported on the port's field.

The probe is the nginx image with `daemon on`: nginx binds every listen
socket and then daemonizes, so the container's main process exits 0 when all
binds worked and 1 with "Address already in use" when one did not.
"""

import re

from adapters import containers as engine
from adapters.errors import ContainerError

from .spec import is_loopback

PORT_FIELDS = ("port", "debug_port", "https_port", "gateway_port")
DEFAULT_BASES = {
    "port": 5000,
    "debug_port": 5001,
    "gateway_port": 5100,
    "https_port": 443,
}
PROBE_TIMEOUT = 30.0
_BOUND = re.compile(
    r"(?:bind\(\) to |listen tcp |listening on )\[?([0-9a-f.:]*?)\]?:(\d+)\D.*"
    r"(?:[Aa]ddress already in use)"
)


def binds(registry) -> dict[str, tuple[str, int]]:
    """field -> (address, port) this registry's containers listen on."""
    mirror = registry.kind == "mirror"
    wanted = {
        "port": ("127.0.0.1" if mirror else registry.listen_address, registry.port),
        "debug_port": ("127.0.0.1", registry.debug_port),
    }
    if mirror:
        wanted["https_port"] = (registry.listen_address, registry.https_port)
        wanted["gateway_port"] = ("127.0.0.1", registry.gateway_port)
    return {name: bind for name, bind in wanted.items() if bind[1]}


def taken_by_others(registry) -> dict[int, str]:
    """Ports used by other registries on the same host: port -> 'their name'."""
    from .models import Registry

    others = Registry.objects.filter(host_id=registry.host_id).exclude(pk=registry.pk)
    taken = {}
    for other in others:
        for _address, port in binds(other).values():
            taken[port] = str(other)
    return taken


def fill_default_ports(registry) -> None:
    """Give each needed port that is unset (0 / None) a value no other
    registry on the host uses; set ones are kept (validation judges them)."""
    needed = ["port", "debug_port"]
    if registry.kind == "mirror":
        needed += ["https_port", "gateway_port"]
    used = set(taken_by_others(registry))
    used |= {getattr(registry, name) for name in needed if getattr(registry, name)}
    for name in needed:
        if getattr(registry, name):
            continue
        port = DEFAULT_BASES[name]
        while port in used:
            port = 8443 if port == 443 else port + 1
        setattr(registry, name, port)
        used.add(port)


def bind_failure(logs: str) -> int | None:
    """The port an 'address already in use' line in these logs names."""
    for line in logs.splitlines():
        match = _BOUND.search(line)
        if match:
            return int(match.group(2))
    return None


def field_for_port(registry, port: int) -> str:
    for name, (_address, value) in binds(registry).items():
        if value == port:
            return name
    return "port"


def _probe_conf(listens: list[tuple[str, int]]) -> str:
    servers = "".join(
        f"    server {{ listen {'[' + a + ']' if ':' in a else a}:{p}; }}\n"
        for a, p in listens
    )
    return (
        "daemon on;\npid /tmp/ferry-port-probe.pid;\nerror_log stderr error;\n"
        "events {}\nhttp {\n" + servers + "}\n"
    )


def probe(
    client, nginx_image: str, listens: list[tuple[str, int]], name: str
) -> int | None:
    """The first of these (address, port) binds that is taken on the host, or None."""
    listens = sorted(set(listens))
    if not listens:
        return None
    conf = _probe_conf(listens)
    code, logs = engine.run_to_exit(
        client,
        engine.NewContainer(
            name=name,
            image=nginx_image,
            labels={"ferry.managed": "true", "ferry.role": "port-probe"},
            files=(engine.ContainerFile("/etc/ferry-probe/nginx.conf", conf),),
            entrypoint=("nginx", "-c", "/etc/ferry-probe/nginx.conf"),
        ),
        timeout=PROBE_TIMEOUT,
    )
    if code == 0:
        return None
    port = bind_failure(logs)
    if port is None:
        raise ContainerError(f"port probe failed (exit {code}): {logs[-300:]}")
    return port


def describe_taken(registry, port: int) -> str:
    address = {p: a for a, p in binds(registry).values()}.get(port, "")
    where = "loopback" if is_loopback(address) else address
    return f"port {port} ({where}) is already in use on host {registry.host}"
