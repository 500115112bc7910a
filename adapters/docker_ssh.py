"""ssh:// Docker engines over paramiko, with our key and a pinned host key.

The docker SDK's own paramiko transport reads ~/.ssh (config, keys,
known_hosts) of whoever runs Ferry and cannot take a key or a host key from
the database. So `ssh_session()` opens the SSH connection itself:

* log in with the host's private key (kept in memory, never written to a
  file); without one, the Ferry host's agent and ~/.ssh keys are tried;
* host keys: a recorded key must match exactly (anything else is refused,
  with both fingerprints in the reason). With none recorded, only a caller
  that passes accept_new=True (the health check) gets in: the key is
  accepted and returned as `session.host_key` so the caller records it -
  trust on first use, like `ssh -o StrictHostKeyChecking=accept-new`. Every
  other use (deploys, builds) refuses until a key is recorded.
  ~/.ssh/known_hosts is not consulted: the host row is the only truth;
* `mount()` then makes a DockerClient send its HTTP requests over that
  connection: each request opens an SSH channel running
  `docker system dial-stdio` on the remote host (what the docker CLI does).

Failures become one-line reasons (`describe_ssh`, `session.remote_failure`).
"""

import base64
import binascii
import getpass
import io
import logging
import socket
from dataclasses import dataclass, field
from urllib.parse import urlsplit

import paramiko
from cryptography.exceptions import UnsupportedAlgorithm
from cryptography.hazmat.primitives import serialization
from cryptography.hazmat.primitives.asymmetric import ec, ed25519, rsa
from docker.transport.basehttpadapter import BaseHTTPAdapter
from docker.transport.sshconn import (
    SSHConnection,
    SSHConnectionPool,
    SSHHTTPAdapter,
)

from .errors import HostConfigError

SSH_PORT = 22
# Exceptions that may escape a request made over an SSH channel.
SSH_ERRORS = (paramiko.SSHException,)
_KEY_CLASSES = (
    (rsa.RSAPrivateKey, paramiko.RSAKey),
    (ed25519.Ed25519PrivateKey, paramiko.Ed25519Key),
    (ec.EllipticCurvePrivateKey, paramiko.ECDSAKey),
)
logging.getLogger("paramiko").setLevel(logging.CRITICAL)  # we report ourselves


class KeyEncrypted(HostConfigError):
    """The private key needs a passphrase (Ferry keeps none)."""


def load_private_key(text: str) -> paramiko.PKey:
    """Parse an OpenSSH or PEM private key from text; HostConfigError if not."""
    data = text.strip().encode() + b"\n"
    try:
        try:
            loaded = serialization.load_ssh_private_key(data, password=None)
        except ValueError:
            loaded = serialization.load_pem_private_key(data, password=None)
    except TypeError as exc:  # "password was not given but key is encrypted"
        raise KeyEncrypted("the SSH private key is encrypted") from exc
    except (ValueError, UnsupportedAlgorithm) as exc:
        raise HostConfigError("not an SSH private key") from exc
    for kind, key_class in _KEY_CLASSES:
        if isinstance(loaded, kind):
            # Re-encoded as OpenSSH, which paramiko reads for every key type
            # (PKCS#8 "BEGIN PRIVATE KEY" it would not); in memory only.
            text = loaded.private_bytes(
                serialization.Encoding.PEM,
                serialization.PrivateFormat.OpenSSH,
                serialization.NoEncryption(),
            ).decode()
            try:
                return key_class.from_private_key(io.StringIO(text))
            except paramiko.SSHException as exc:
                raise HostConfigError(f"unusable SSH private key: {exc}") from exc
    raise HostConfigError("unsupported SSH key type")


def parse_host_key(text: str) -> paramiko.PKey:
    """A public host key: "ssh-ed25519 AAAA... [comment]", or a known_hosts line."""
    words = text.split()
    if len(words) >= 3 and not words[0].startswith(("ssh-", "ecdsa-")):
        words = words[1:]  # "host ssh-ed25519 AAAA..." as in known_hosts
    if len(words) < 2:
        raise HostConfigError("not an SSH public key")
    try:
        blob = base64.b64decode(words[1], validate=True)
        return paramiko.PKey.from_type_string(words[0], blob)
    except (binascii.Error, paramiko.SSHException, paramiko.UnknownKeyType) as exc:
        raise HostConfigError("not an SSH public key") from exc
    except (ValueError, TypeError) as exc:
        raise HostConfigError("not an SSH public key") from exc


def host_key_line(key: paramiko.PKey) -> str:
    """The canonical stored form: "<type> <base64>"."""
    return f"{key.get_name()} {key.get_base64()}"


class _TrustOnFirstUse(paramiko.MissingHostKeyPolicy):
    """No key recorded yet: accept; the session reports the key to record."""

    def missing_host_key(self, client, hostname, key) -> None:
        return None


@dataclass
class SshSession:
    """One authenticated SSH connection and the channels opened on it."""

    client: paramiko.SSHClient
    host_key: str  # what the server presented, "<type> <base64>"
    timeout: float
    channels: list = field(default_factory=list)

    def close(self) -> None:
        self.client.close()

    def remote_failure(self) -> str | None:
        """Why the remote `docker system dial-stdio` ended, if it did."""
        for channel in reversed(self.channels):
            if not channel.status_event.wait(min(self.timeout, 1.0)):
                continue
            status = channel.exit_status
            stderr = _stderr_of(channel)
            if status == 127:
                return (
                    "the remote host has no docker command "
                    "(`docker system dial-stdio` not found; install the docker CLI)"
                )
            if status not in (0, -1) or stderr:
                code = f" (exit {status})" if status != -1 else ""
                detail = f": {stderr}" if stderr else ""
                return f"`docker system dial-stdio` failed{code}{detail}"
        return None


def _stderr_of(channel) -> str:
    chunks = []
    while channel.recv_stderr_ready():
        chunk = channel.recv_stderr(4096)
        if not chunk:
            break
        chunks.append(chunk)
    lines = b"".join(chunks).decode(errors="replace").strip().splitlines()
    return lines[-1].strip() if lines else ""


def _target(url: str) -> tuple[str, int, str]:
    parts = urlsplit(url)
    return (
        parts.hostname or "",
        parts.port or SSH_PORT,
        (parts.username or getpass.getuser()),
    )


def ssh_session(
    url: str,
    private_key: str,
    known_host_key: str,
    timeout: float,
    accept_new: bool = False,
) -> SshSession:
    """Connect and authenticate; paramiko errors propagate (see describe_ssh)."""
    if not known_host_key and not accept_new:
        raise HostConfigError(
            "no SSH host key is recorded for this host yet (its first successful "
            "health check records it, or set it on the host)"
        )
    hostname, port, username = _target(url)
    client = paramiko.SSHClient()  # no system known_hosts: the row decides
    if known_host_key:
        pinned = parse_host_key(known_host_key)
        name = hostname if port == SSH_PORT else f"[{hostname}]:{port}"
        client.get_host_keys().add(name, pinned.get_name(), pinned)
        client.set_missing_host_key_policy(paramiko.RejectPolicy())
    else:
        client.set_missing_host_key_policy(_TrustOnFirstUse())
    pkey = load_private_key(private_key) if private_key else None
    try:
        client.connect(
            hostname, port, username=username, pkey=pkey,
            allow_agent=pkey is None, look_for_keys=pkey is None,
            timeout=timeout, banner_timeout=timeout, auth_timeout=timeout,
            channel_timeout=timeout,
        )  # fmt: skip
    except BaseException:
        client.close()
        raise
    seen = client.get_transport().get_remote_server_key()
    return SshSession(client, host_key_line(seen), timeout)


def describe_ssh(exc: BaseException, url: str, timeout: float) -> str | None:
    """A reason for an SSH-level failure, or None if `exc` is not one."""
    username = _target(url)[2]
    if isinstance(exc, paramiko.BadHostKeyException):
        return (
            f"SSH host key mismatch: the server presented {exc.key.get_name()} "
            f"{exc.key.fingerprint}, but {exc.expected_key.fingerprint} is "
            "recorded; refused (if the host was really reinstalled, clear its "
            "known host key)"
        )
    if isinstance(exc, paramiko.AuthenticationException):
        return f"SSH authentication failed for user {username!r}: key rejected"
    if isinstance(exc, paramiko.ssh_exception.NoValidConnectionsError):
        return "connection refused"
    if isinstance(exc, (socket.timeout, TimeoutError)):
        return f"no answer within {timeout:g} s"
    if isinstance(exc, paramiko.SSHException):
        text = str(exc)
        if "No authentication methods available" in text:
            return (
                f"SSH authentication failed for user {username!r}: "
                "no private key set for this host"
            )
        # No banner, or the handshake unfinished when start_client gave up.
        if "protocol banner" in text or "No existing session" in text:
            return f"no SSH server answered within {timeout:g} s"
        if "no acceptable host key" in text:
            return "the server offers no host key of the recorded type; refused"
        return f"SSH error: {text or type(exc).__name__}"
    return None


class _SessionConnection(SSHConnection):
    def __init__(self, session: SshSession, *args, **kwargs):
        super().__init__(*args, **kwargs)
        self._session = session

    def connect(self) -> None:
        super().connect()  # opens a channel running `docker system dial-stdio`
        self._session.channels.append(self.sock)

    def close(self) -> None:
        # A remote command that ended (EOF) sends its exit status right after;
        # closing first would lose it, and with it the reason we report.
        channel = self.sock
        if channel is not None and channel.eof_received:
            channel.status_event.wait(min(self.timeout, 1.0))
        super().close()


class _SessionPool(SSHConnectionPool):
    def __init__(self, session: SshSession, **kwargs):
        super().__init__(ssh_client=session.client, **kwargs)
        self._session = session

    def _new_conn(self):
        return _SessionConnection(self._session, self.ssh_transport, self.timeout)


class _SessionAdapter(SSHHTTPAdapter):
    """The SDK's SSH adapter, on our already-authenticated connection."""

    def __init__(self, session: SshSession, timeout: float, max_pool_size: int):
        # shell_out=True only skips the SDK's own paramiko login.
        super().__init__("ssh://ferry", timeout, max_pool_size=max_pool_size,
                         shell_out=True)  # fmt: skip
        self.ssh_client = session.client
        self._session = session

    def get_connection(self, url, proxies=None):
        with self.pools.lock:
            pool = self.pools.get(url)
            if pool is None:
                pool = _SessionPool(
                    self._session, timeout=self.timeout, maxsize=self.max_pool_size
                )
                self.pools[url] = pool
        return pool

    def close(self) -> None:
        # The SSH connection belongs to the session, closed by its owner.
        BaseHTTPAdapter.close(self)


def mount(api, session: SshSession) -> None:
    """Route a docker APIClient (built with use_ssh_client=True) over `session`."""
    old = api._custom_adapter  # the SDK's shell-out adapter; holds nothing yet
    adapter = _SessionAdapter(session, api.timeout, old.max_pool_size)
    old.close()
    api.mount("http+docker://ssh", adapter)
    api._custom_adapter = adapter
