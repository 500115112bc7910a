"""Docker engine connections (unix://, tcp:// with client TLS, ssh://).

`engine_client(conn)` is a context manager yielding a docker.DockerClient
built lazily with an explicit timeout (settings.FERRY_DOCKER_TIMEOUT unless
given). Connection failures come out as our `HostUnreachable(reason)` with a
reason people can act on; unusable settings as `HostConfigError`. Other
docker errors raised inside the `with` body pass through untouched.

`engine_info(conn)` is the health probe: engine version and container count
(and, for ssh://, the SSH host key the server presented; see docker_ssh).
"""

import os
import shutil
import socket
import ssl
import tempfile
from collections.abc import Iterator
from contextlib import contextmanager
from dataclasses import dataclass

import docker
import requests
from django.conf import settings
from docker.constants import DEFAULT_DOCKER_API_VERSION
from docker.errors import DockerException, TLSParameterError
from docker.tls import TLSConfig

from . import docker_ssh
from .errors import HostConfigError, HostUnreachable

MAX_REASON = 300


@dataclass(frozen=True)
class HostConnection:
    """How to reach one engine; TLS values are PEM text (keys are secrets).

    ssh:// uses ssh_private_key (OpenSSH or PEM text) and ssh_known_host_key
    ("ssh-ed25519 AAAA..."). With no known key, ssh_accept_new_host_key=True
    accepts the server's key and reports it (EngineInfo.ssh_host_key);
    otherwise the connection is refused (see docker_ssh).
    """

    url: str
    ca_cert: str = ""
    client_cert: str = ""
    client_key: str = ""
    ssh_private_key: str = ""
    ssh_known_host_key: str = ""
    ssh_accept_new_host_key: bool = False

    def __repr__(self) -> str:  # never print the keys
        return f"HostConnection({self.url!r}, tls={bool(self.client_cert)})"


@dataclass(frozen=True)
class EngineInfo:
    version: str  # engine (server) version, e.g. "26.1.5+dfsg1"
    api_version: str
    containers: int  # all containers, running or not
    containers_running: int
    ssh_host_key: str = ""  # ssh:// only: the server's key, "<type> <base64>"


def engine_info(conn: HostConnection, timeout: float | None = None) -> EngineInfo:
    """Ask the engine for its version and container count."""
    with _engine(conn, timeout) as (client, ssh):
        version = client.version()
        info = client.info()
    return EngineInfo(
        version=str(version.get("Version", "")),
        api_version=str(version.get("ApiVersion", "")),
        containers=int(info.get("Containers", 0)),
        containers_running=int(info.get("ContainersRunning", 0)),
        ssh_host_key=ssh.host_key if ssh else "",
    )


@contextmanager
def engine_client(
    conn: HostConnection, timeout: float | None = None
) -> Iterator[docker.DockerClient]:
    """Yield a connected DockerClient; remove its TLS files afterwards."""
    with _engine(conn, timeout) as (client, _ssh):
        yield client


# Failures of the connection itself (everything else passes through).
_CONNECT_ERRORS = (DockerException, requests.RequestException, OSError)
_LOST_ERRORS = (requests.ConnectionError, requests.Timeout, *docker_ssh.SSH_ERRORS)


@contextmanager
def _engine(conn: HostConnection, timeout: float | None):
    """(client, ssh session or None); closes both and removes TLS files."""
    timeout = float(timeout or settings.FERRY_DOCKER_TIMEOUT)
    tls_dir = client = ssh = None
    try:
        kwargs = {}
        if conn.url.startswith("tcp://") and (conn.ca_cert or conn.client_cert):
            tls_dir = tempfile.mkdtemp(prefix="ferry-tls-")  # mode 0700
            kwargs["tls"] = _tls_config(conn, tls_dir)
        elif conn.url.startswith("ssh://"):
            ssh = _ssh_session(conn, timeout)
            kwargs["use_ssh_client"] = True  # no SDK login; docker_ssh.mount
        try:
            client = _connect(conn.url, timeout, kwargs, ssh)
        except TLSParameterError as exc:
            raise HostConfigError(f"Bad TLS settings for {conn.url}: {exc}") from exc
        except (*_CONNECT_ERRORS, *docker_ssh.SSH_ERRORS) as exc:
            raise HostUnreachable(_reason(exc, conn.url, timeout, ssh)) from exc
        try:
            yield client, ssh
        except _LOST_ERRORS as exc:
            raise HostUnreachable(_reason(exc, conn.url, timeout, ssh)) from exc
    finally:
        if client is not None:
            client.close()
        if ssh is not None:
            ssh.close()
        if tls_dir:
            shutil.rmtree(tls_dir, ignore_errors=True)


def _ssh_session(conn: HostConnection, timeout: float):
    """Log in over SSH; failures come out as HostUnreachable with the reason."""
    try:
        return docker_ssh.ssh_session(
            conn.url,
            conn.ssh_private_key,
            conn.ssh_known_host_key,
            timeout,
            accept_new=conn.ssh_accept_new_host_key,
        )
    except HostConfigError as exc:
        raise HostConfigError(f"Bad SSH settings for {conn.url}: {exc}") from exc
    except (*docker_ssh.SSH_ERRORS, OSError, EOFError) as exc:
        raise HostUnreachable(_reason(exc, conn.url, timeout, None)) from exc


def _reason(exc: BaseException, url: str, timeout: float, ssh) -> str:
    """describe(), but what the SSH side knows comes first."""
    special = docker_ssh.describe_ssh(exc, url, timeout)
    if special is None and ssh is not None:
        special = ssh.remote_failure()
    if special is None:
        return describe(exc, url, timeout)
    return _clip(f"Cannot connect to {url}: {special}")


def _client(url: str, version: str, timeout: float, kwargs: dict, ssh=None):
    client = docker.DockerClient(
        base_url=url, version=version, timeout=timeout, **kwargs
    )
    # requests would let REQUESTS_CA_BUNDLE override our CA and send engine
    # traffic through HTTP(S)_PROXY: the host's own settings must win.
    client.api.trust_env = False
    if ssh is not None:
        docker_ssh.mount(client.api, ssh)
    return client


def _connect(url: str, timeout: float, kwargs: dict, ssh=None) -> docker.DockerClient:
    """Ask the engine which API version it speaks, then talk that version.

    (docker's own version="auto" asks before trust_env can be switched off.)
    The first round trip is here, so an unreachable engine fails here.
    """
    probe = _client(url, DEFAULT_DOCKER_API_VERSION, timeout, kwargs, ssh)
    try:
        api_version = probe.api.version(api_version=False)["ApiVersion"]
    finally:
        probe.close()
    return _client(url, api_version, timeout, kwargs, ssh)


def _write_private(directory: str, name: str, text: str) -> str:
    path = os.path.join(directory, name)
    fd = os.open(path, os.O_WRONLY | os.O_CREAT | os.O_EXCL, 0o600)
    with os.fdopen(fd, "w") as handle:
        handle.write(text.strip() + "\n")
    return path


def _tls_config(conn: HostConnection, directory: str) -> TLSConfig:
    ca = _write_private(directory, "ca.pem", conn.ca_cert) if conn.ca_cert else None
    client_cert = None
    if conn.client_cert and conn.client_key:
        client_cert = (
            _write_private(directory, "cert.pem", conn.client_cert),
            _write_private(directory, "key.pem", conn.client_key),
        )
    try:
        # Without a CA we still encrypt, but cannot verify the server.
        return TLSConfig(client_cert=client_cert, ca_cert=ca, verify=ca or False)
    except TLSParameterError as exc:
        raise HostConfigError(f"Bad TLS settings for {conn.url}: {exc}") from exc


def _chain(exc: BaseException) -> Iterator[BaseException]:
    """The exception and everything it wraps (causes, args, urllib3 reasons)."""
    seen, todo = set(), [exc]
    while todo:
        current = todo.pop(0)
        if id(current) in seen:
            continue
        seen.add(id(current))
        yield current
        nested = [
            current.__cause__,
            current.__context__,
            getattr(current, "reason", None),
        ]
        nested += list(getattr(current, "args", ()))
        todo.extend(item for item in nested if isinstance(item, BaseException))


def _short_reason(exc: BaseException, timeout: float) -> str | None:
    for item in _chain(exc):
        if isinstance(item, ConnectionRefusedError):
            return "connection refused"
        if isinstance(item, FileNotFoundError):
            return "no such socket (is dockerd running?)"
        if isinstance(item, PermissionError):
            return "permission denied"
        if isinstance(item, socket.gaierror):
            return "cannot resolve the host name"
        if isinstance(item, (TimeoutError, socket.timeout, requests.Timeout)):
            return f"no answer within {timeout:g} s"
        if isinstance(item, ssl.SSLError):
            return f"TLS handshake failed ({getattr(item, 'reason', None) or item})"
        if isinstance(item, (ConnectionResetError, BrokenPipeError)):
            return "connection closed by the engine"
    return None


def describe(exc: BaseException, url: str, timeout: float) -> str:
    """One line for people: 'Cannot connect to <url>: connection refused'."""
    reason = _short_reason(exc, timeout)
    if reason is None:
        reason = " ".join(str(exc).split()) or type(exc).__name__
    return _clip(f"Cannot connect to {url}: {reason}")


def _clip(text: str) -> str:
    return text if len(text) <= MAX_REASON else text[: MAX_REASON - 1] + "…"
