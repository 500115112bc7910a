"""Labelled containers on a Docker engine: the verbs reconcilers need.

Callers get a client from adapters.docker_engine.engine_client (which turns
connection failures into HostUnreachable) and pass it in. Containers run with
host networking and restart policy unless-stopped; config files are copied in
with put_archive before the first start, because the engine may be remote
(no bind mounts of the control plane's own files). "Already gone" is success
for every removal; other engine refusals become ContainerError.
"""

import datetime
import io
import tarfile
import time
from dataclasses import dataclass, field, replace

import docker
from docker.errors import APIError, NotFound
from docker.errors import ImageNotFound as DockerImageNotFound

from .errors import ContainerError, ImageNotFound

OWNER_LABEL = "ferry.owner"
LOG_TAIL = 30
DEFAULT_LOG_OPTIONS = (("max-size", "50m"), ("max-file", "3"))


@dataclass(frozen=True)
class ContainerFile:
    path: str  # absolute path inside the container
    content: str
    mode: int = 0o644


@dataclass(frozen=True)
class MountSpec:
    source: str  # volume name, or host path when kind == "bind"
    target: str
    kind: str = "volume"
    read_only: bool = False
    # bind only: create a missing host directory (legacy bind); False makes
    # the engine refuse a missing source instead (a socket, a single file).
    create_missing: bool = True


@dataclass(frozen=True)
class NewContainer:
    name: str
    image: str
    labels: dict[str, str]
    files: tuple[ContainerFile, ...] = ()
    entrypoint: tuple[str, ...] = ()
    command: tuple[str, ...] = ()  # arguments to the entrypoint; () = the image's
    environment: tuple[tuple[str, str], ...] = ()
    user: str = ""  # "" = the image's
    mounts: tuple[MountSpec, ...] = ()
    restart: str = "unless-stopped"  # "no" for one-shot helpers
    # json-file options: bounded, so a chatty container cannot fill the disk.
    log_options: tuple[tuple[str, str], ...] = DEFAULT_LOG_OPTIONS


@dataclass(frozen=True)
class ContainerState:
    id: str
    name: str
    labels: dict[str, str] = field(default_factory=dict)
    running: bool = False
    status: str = ""  # created | running | exited | ...
    exit_code: int | None = None
    image_id: str = ""
    started_at: str = ""  # engine clock, RFC 3339
    finished_at: str = ""  # end of the previous run ("0001-..." if none)
    restart_count: int = 0


def _state(container) -> ContainerState:
    attrs = container.attrs
    state = attrs.get("State", {})
    return ContainerState(
        id=container.id,
        name=container.name,
        labels=dict(attrs.get("Config", {}).get("Labels") or {}),
        running=bool(state.get("Running")),
        status=str(state.get("Status", "")),
        exit_code=state.get("ExitCode"),
        image_id=str(attrs.get("Image", "")),
        started_at=str(state.get("StartedAt", "")),
        finished_at=str(state.get("FinishedAt", "")),
        restart_count=int(attrs.get("RestartCount") or 0),
    )


def _refused(what: str, exc: APIError) -> ContainerError:
    reason = exc.explanation or str(exc)
    return ContainerError(f"{what}: {reason}")


def list_owned(client: docker.DockerClient, owner: str) -> list[ContainerState]:
    """Every container (running or not) labelled ferry.owner=<owner>."""
    found = client.containers.list(
        all=True, filters={"label": f"{OWNER_LABEL}={owner}"}
    )
    return sorted((_state(c) for c in found), key=lambda s: s.name)


def inspect(client: docker.DockerClient, ref: str) -> ContainerState | None:
    try:
        return _state(client.containers.get(ref))
    except NotFound:
        return None


def image_id(client: docker.DockerClient, image: str, pull: bool = True) -> str:
    """The engine's id for `image`, pulling it once when missing."""
    try:
        return client.images.get(image).id
    except DockerImageNotFound:
        if not pull:
            raise ImageNotFound(f"image {image} is not on the host") from None
    except APIError as exc:
        raise _refused(f"inspect image {image}", exc) from exc
    try:
        return client.images.pull(image).id
    except (APIError, DockerImageNotFound) as exc:
        reason = getattr(exc, "explanation", None) or str(exc)
        raise ImageNotFound(
            f"image {image} is not on the host and pulling failed: {reason}"
        ) from exc


@dataclass(frozen=True)
class ImageConfig:
    labels: dict[str, str]
    command: list[str]  # entrypoint followed by cmd, as the engine runs them


def image_config(client: docker.DockerClient, image: str) -> ImageConfig | None:
    """The labels and command of an image on the host (None: not there)."""
    try:
        config = client.images.get(image).attrs.get("Config") or {}
    except DockerImageNotFound:
        return None
    except APIError as exc:
        raise _refused(f"inspect image {image}", exc) from exc
    command = list(config.get("Entrypoint") or []) + list(config.get("Cmd") or [])
    return ImageConfig(labels=dict(config.get("Labels") or {}), command=command)


def files_tar(files: tuple[ContainerFile, ...]) -> bytes:
    """A tarball of the files (and their parent directories), root-owned."""
    buf = io.BytesIO()
    dirs: set[str] = set()
    with tarfile.open(fileobj=buf, mode="w") as tar:
        for item in files:
            parts = item.path.strip("/").split("/")
            for depth in range(1, len(parts)):
                directory = "/".join(parts[:depth])
                if directory not in dirs:
                    dirs.add(directory)
                    info = tarfile.TarInfo(directory)
                    info.type, info.mode = tarfile.DIRTYPE, 0o755
                    tar.addfile(info)
            data = item.content.encode()
            info = tarfile.TarInfo("/".join(parts))
            info.size, info.mode = len(data), item.mode
            tar.addfile(info, io.BytesIO(data))
    return buf.getvalue()


def _legacy_bind(mount: MountSpec) -> bool:
    return mount.kind == "bind" and mount.create_missing


def create(client: docker.DockerClient, new: NewContainer) -> ContainerState:
    """Create (not start) the container and copy its files in."""
    mounts = [
        docker.types.Mount(m.target, m.source, type=m.kind, read_only=m.read_only)
        for m in new.mounts
        if not _legacy_bind(m)
    ]
    # Host directories as legacy binds: the engine creates a missing one
    # (a Mount of type bind would refuse), which a fresh store needs.
    binds = [
        f"{m.source}:{m.target}:{'ro' if m.read_only else 'rw'}"
        for m in new.mounts
        if _legacy_bind(m)
    ]
    try:
        container = client.containers.create(
            new.image,
            command=list(new.command) or None,
            name=new.name,
            labels=new.labels,
            entrypoint=list(new.entrypoint) or None,
            environment=dict(new.environment) or None,
            user=new.user or None,
            mounts=mounts,
            volumes=binds or None,
            network_mode="host",
            restart_policy={"Name": new.restart},
            log_config={"Type": "json-file", "Config": dict(new.log_options)},
        )
    except DockerImageNotFound as exc:
        raise ImageNotFound(f"image {new.image} is not on the host") from exc
    except APIError as exc:
        raise _refused(f"create {new.name}", exc) from exc
    try:
        if new.files and not container.put_archive("/", files_tar(new.files)):
            raise ContainerError(f"copy files into {new.name}: refused")
    except APIError as exc:
        remove(client, container.id)
        raise _refused(f"copy files into {new.name}", exc) from exc
    container.reload()
    return _state(container)


def start(client: docker.DockerClient, ref: str) -> None:
    try:
        client.api.start(ref)
    except APIError as exc:
        raise _refused(f"start {ref}", exc) from exc


def stop(client: docker.DockerClient, ref: str, timeout: int = 10) -> None:
    try:
        client.api.stop(ref, timeout=timeout)
    except NotFound:
        return
    except APIError as exc:
        raise _refused(f"stop {ref}", exc) from exc


def rename(client: docker.DockerClient, ref: str, name: str) -> None:
    try:
        client.api.rename(ref, name)
    except APIError as exc:
        raise _refused(f"rename {ref} to {name}", exc) from exc


def remove(client: docker.DockerClient, ref: str) -> None:
    """Force-remove a container; already gone is fine."""
    try:
        client.api.remove_container(ref, force=True)
    except NotFound:
        return
    except APIError as exc:
        if exc.status_code == 409 and "already in progress" in str(exc):
            return
        raise _refused(f"remove {ref}", exc) from exc


def remove_volume(client: docker.DockerClient, name: str) -> None:
    try:
        client.api.remove_volume(name, force=True)
    except NotFound:
        return
    except APIError as exc:
        raise _refused(f"remove volume {name}", exc) from exc


def logs_tail(
    client: docker.DockerClient, ref: str, lines: int = LOG_TAIL, since: str = ""
) -> str:
    """The last lines of stdout+stderr; with `since` (RFC 3339, engine clock)
    only what was logged from then on (e.g. since the last start)."""
    kwargs = {}
    if since and not since.startswith("0001-"):
        kwargs["since"] = _timestamp(since)
    try:
        raw = client.api.logs(ref, stdout=True, stderr=True, tail=lines, **kwargs)
    except (NotFound, APIError):
        return ""
    return raw.decode(errors="replace")


def _timestamp(rfc3339: str) -> float:
    """Seconds since the epoch; the engine gives nanoseconds, Python takes micro."""
    head, _, frac = rfc3339.rstrip("Z").partition(".")
    moment = datetime.datetime.fromisoformat(head).replace(tzinfo=datetime.UTC)
    return moment.timestamp() + float(f"0.{frac[:6] or 0}")


def processes(client: docker.DockerClient, ref: str) -> list[str]:
    """Command lines of the container's processes ([] when not running)."""
    try:
        top = client.api.top(ref)
    except (NotFound, APIError):
        return []
    titles = top.get("Titles") or []
    column = titles.index("CMD") if "CMD" in titles else -1
    return [row[column] for row in top.get("Processes") or []]


def read_file(client: docker.DockerClient, ref: str, path: str) -> str | None:
    """A file's text from inside a container; None when it is not there."""
    try:
        stream, _stat = client.api.get_archive(ref, path)
        data = b"".join(stream)
    except (NotFound, APIError):
        return None
    with tarfile.open(fileobj=io.BytesIO(data)) as tar:
        member = next((m for m in tar.getmembers() if m.isfile()), None)
        if member is None:
            return None
        return tar.extractfile(member).read().decode(errors="replace")


def run_to_exit(
    client: docker.DockerClient, new: NewContainer, timeout: float
) -> tuple[int, str]:
    """Run a short-lived container to its end: (exit code, logs); always removed."""
    remove(client, new.name)  # a leftover of an interrupted run
    state = create(client, replace(new, restart="no"))
    try:
        start(client, state.id)
        deadline = time.monotonic() + timeout
        while True:
            current = inspect(client, state.id)
            if current is None or not current.running and current.status != "created":
                break
            if time.monotonic() > deadline:
                raise ContainerError(f"{new.name} did not finish within {timeout:g} s")
            time.sleep(0.1)
        return (current.exit_code if current else -1), logs_tail(client, state.id, 50)
    finally:
        remove(client, state.id)
