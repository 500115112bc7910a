"""HTTP probes run on a Docker host itself, through its engine.

A service bound to 127.0.0.1 on a remote Docker host cannot be reached from
the control plane's machine. `http_status_in_host` runs a short-lived
container (host networking, busybox-style image with `wget` and `timeout`)
on that host which GETs the URL; the status comes from `wget -S` output.

Credentials never appear in the container's configuration (which `docker
inspect` shows): an Authorization header is copied in as a file and read by
the shell. The container is named `<prefix>-<random>`, labelled ferry.*, and
removed afterwards (adapters.containers.run_to_exit).

`wget` is run under `timeout` because Debian's busybox wget has no
--timeout option. TLS is not verified (busybox cannot check against a given
CA): callers check certificates separately.
"""

import re
import uuid
from dataclasses import dataclass

import docker

from . import containers as engine

AUTH_FILE = "/run/ferry-probe/authorization"
_STATUS_LINE = re.compile(r"^\s*HTTP/\d(?:\.\d)?\s+(\d{3})\b", re.MULTILINE)
_WGET_ERROR = re.compile(r"^wget: (.+)$", re.MULTILINE)


@dataclass(frozen=True)
class ProbeResult:
    status: int | None  # last HTTP status seen; None: no HTTP answer
    reason: str  # wget's own error line (or a short summary) for people


def parse_wget_status(output: str) -> int | None:
    """The last HTTP status in `wget -S` output (after redirects), or None."""
    found = _STATUS_LINE.findall(output)
    return int(found[-1]) if found else None


def wget_reason(output: str, exit_code: int) -> str:
    """wget's last error line; else a note about the exit code."""
    errors = _WGET_ERROR.findall(output)
    if errors:
        return errors[-1].strip()
    if exit_code in (124, 143):  # timeout(1) / SIGTERM
        return "no answer in time"
    return f"probe exited with {exit_code}" if exit_code else "ok"


def _script(url: str, timeout: int, with_auth: bool) -> str:
    header = f' --header "Authorization: $(cat {AUTH_FILE})"' if with_auth else ""
    return (
        f"exec timeout {timeout} wget -S -O /dev/null --no-check-certificate"
        f"{header} '{url}' 2>&1"
    )


def http_status_in_host(
    client: docker.DockerClient,
    image: str,
    url: str,
    *,
    name_prefix: str,
    labels: dict[str, str],
    authorization: str = "",
    timeout: int = 10,
) -> ProbeResult:
    """GET `url` from the engine's host; the HTTP status wget saw.

    Raises ImageNotFound (image missing and not pullable) or ContainerError.
    """
    if "'" in url:
        raise ValueError("url must not contain quotes")
    engine.image_id(client, image)  # pulls it once when missing
    files = ()
    if authorization:
        files = (engine.ContainerFile(AUTH_FILE, authorization, 0o600),)
    new = engine.NewContainer(
        name=f"{name_prefix}-{uuid.uuid4().hex[:8]}",
        image=image,
        labels={"ferry.managed": "true", **labels},
        files=files,
        entrypoint=("sh", "-c", _script(url, timeout, bool(authorization))),
        restart="no",
    )
    code, logs = engine.run_to_exit(client, new, timeout=timeout + 20)
    return ProbeResult(parse_wget_status(logs), wget_reason(logs, code))
