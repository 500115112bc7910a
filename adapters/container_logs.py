"""Read what Ferry-managed containers say, through the docker API.

Metrics read access logs this way (not from files on the Ferry host), so they
work for remote Docker hosts too. "Not found" is None, not an exception.
"""

import math
from dataclasses import dataclass

import docker
from docker.errors import APIError, NotFound

from .docker_engine import HostConnection, engine_client
from .errors import HostUnreachable


@dataclass(frozen=True)
class LogChunk:
    """stdout lines of one container, each prefixed with docker's RFC 3339
    nanosecond timestamp (`logs(timestamps=True)`)."""

    lines: list[str]
    running: bool


def container_log_lines(
    conn: HostConnection, name: str, since: float | None, until: float
) -> LogChunk | None:
    """stdout lines logged in [since, until] (whole seconds around them; the
    caller filters exactly by the timestamps); None when no such container."""
    with engine_client(conn) as client:
        return _log_lines(client, name, since, until)


def _log_lines(client, name: str, since: float | None, until: float) -> LogChunk | None:
    try:
        container = client.containers.get(name)
        raw = container.logs(
            stdout=True,
            stderr=False,
            timestamps=True,
            since=math.floor(since) if since and since >= 1 else None,
            until=math.ceil(until),
        )
    except NotFound:
        return None
    except APIError as exc:
        raise HostUnreachable(f"logs of {name}: {exc.explanation or exc}") from exc
    text = raw.decode("utf-8", errors="replace")
    return LogChunk(lines=text.splitlines(), running=container.status == "running")


def container_error_lines(
    conn: HostConnection, refs: list[str], since: float | None, until: float
) -> list[str]:
    """stderr lines (nginx's error log) of the containers in [since, until]
    (whole seconds around them), docker-timestamped; gone containers add
    none."""
    with engine_client(conn) as client:
        return [line for ref in refs for line in _stderr(client, ref, since, until)]


def _stderr(client, ref: str, since: float | None, until: float) -> list[str]:
    try:
        raw = client.api.logs(
            ref,
            stdout=False,
            stderr=True,
            timestamps=True,
            since=math.floor(since) if since and since >= 1 else None,
            until=math.ceil(until),
        )
    except NotFound:
        return []
    except APIError as exc:
        raise HostUnreachable(f"logs of {ref}: {exc.explanation or exc}") from exc
    return raw.decode("utf-8", errors="replace").splitlines()


def volume_bytes(conn: HostConnection, name: str) -> int | None:
    """Disk used by a named volume, as the engine measures it (no exec, so
    it works with any image); None when the volume or the figure is missing."""
    with engine_client(conn) as client:
        return _volume_bytes(client, name)


def _volume_bytes(client: docker.DockerClient, name: str) -> int | None:
    api = client.api
    # type=volume spares the engine sizing every image and container
    # (API >= 1.42; older engines ignore it and answer everything).
    result = api._result(
        api._get(api._url("/system/df"), params={"type": "volume"}), True
    )
    for volume in result.get("Volumes") or []:
        if volume.get("Name") == name:
            size = (volume.get("UsageData") or {}).get("Size", -1)
            return size if size is not None and size >= 0 else None
    return None
