"""Named volumes on a Docker engine: dependency caches and read-only files.

Verbs take a connected `docker.DockerClient` (see adapters.docker_engine)
and return plain values or our dataclasses. Creating is idempotent (an
existing volume is kept, never recreated: it holds a warm cache), removing
treats "already gone" as success.
"""

import io
import tarfile
import time
import uuid
from dataclasses import dataclass

import docker
from docker.errors import APIError, NotFound

from .errors import ContainerError, ImageNotFound


@dataclass(frozen=True)
class VolumeInfo:
    name: str
    created_at: str  # the engine's CreatedAt, unchanged while the volume lives
    mountpoint: str  # path on the engine's host (for read-only bind mounts)
    labels: dict


def _info(volume) -> VolumeInfo:
    attrs = volume.attrs
    return VolumeInfo(
        name=attrs["Name"],
        created_at=attrs.get("CreatedAt", ""),
        mountpoint=attrs.get("Mountpoint", ""),
        labels=attrs.get("Labels") or {},
    )


def volume_get(client: docker.DockerClient, name: str) -> VolumeInfo | None:
    try:
        return _info(client.volumes.get(name))
    except NotFound:
        return None


def volume_ensure(client: docker.DockerClient, name: str, labels: dict) -> VolumeInfo:
    """The volume `name`, created with `labels` only when it does not exist."""
    found = volume_get(client, name)
    if found is not None:
        return found
    try:
        return _info(client.volumes.create(name=name, labels=labels))
    except APIError as exc:
        raise ContainerError(f"Cannot create volume {name}: {exc.explanation}") from exc


def volume_remove(client: docker.DockerClient, name: str) -> None:
    try:
        client.volumes.get(name).remove(force=True)
    except NotFound:
        pass
    except APIError as exc:
        raise ContainerError(f"Cannot remove volume {name}: {exc.explanation}") from exc


def volume_sizes(
    client: docker.DockerClient, names: list[str]
) -> dict[str, int | None]:
    """Bytes used by each named volume (`docker system df -v`); None if unknown."""
    usage = None
    for attempt in range(20):
        try:
            usage = client.api.df()
            break
        except APIError as exc:
            # The engine runs one disk-usage scan at a time; wait for the other.
            if "already running" not in str(exc) or attempt == 19:
                raise ContainerError(f"Cannot measure volumes: {exc}") from exc
            time.sleep(0.25)
    sizes: dict[str, int | None] = dict.fromkeys(names)
    for volume in usage.get("Volumes") or []:
        if volume.get("Name") in sizes:
            size = (volume.get("UsageData") or {}).get("Size")
            sizes[volume["Name"]] = size if size is not None and size >= 0 else None
    return sizes


def volume_write_files(
    client: docker.DockerClient, volume: str, image: str, files: dict[str, bytes]
) -> None:
    """Replace the volume's files with `files` (name -> bytes), mode 0444.

    Done with put_archive into a created (never started) helper container of
    `image` that mounts the volume, so nothing runs and no shell is needed.
    """
    name = f"ferry-files-writer-{uuid.uuid4().hex[:12]}"
    try:
        client.api.create_container(
            image,
            command=["true"],
            name=name,
            labels={"ferry.managed": "true", "ferry.owner": f"volume:{volume}"},
            host_config=client.api.create_host_config(
                mounts=[docker.types.Mount("/ferry-files", volume, type="volume")],
                network_mode="none",
            ),
        )
    except docker.errors.ImageNotFound as exc:
        raise ImageNotFound(f"Image {image} is not on the host") from exc
    except APIError as exc:
        raise ContainerError(
            f"Cannot write files to {volume}: {exc.explanation}"
        ) from exc
    try:
        client.api.put_archive(name, "/ferry-files", _tar(files))
    finally:
        client.api.remove_container(name, force=True)


def _tar(files: dict[str, bytes]) -> bytes:
    buffer = io.BytesIO()
    with tarfile.open(fileobj=buffer, mode="w") as archive:
        for path, data in files.items():
            info = tarfile.TarInfo(path)
            info.size, info.mode, info.mtime = len(data), 0o444, int(time.time())
            archive.addfile(info, io.BytesIO(data))
    return buffer.getvalue()


def image_ensure(client: docker.DockerClient, image: str) -> None:
    """Make sure `image` is on the engine: present, or pulled now."""
    try:
        client.images.get(image)
        return
    except docker.errors.ImageNotFound:
        pass
    try:
        client.images.pull(image)
    except APIError as exc:
        raise ImageNotFound(
            f"Image {image} is not on the host and could not be pulled: "
            f"{exc.explanation or exc}"
        ) from exc
