"""A throwaway OpenSSH server on 127.0.0.1 for ssh:// Docker host tests.

Everything lives in a fresh temp directory: its own config, host key
(ssh-keygen), an authorized_keys holding one generated client key, the pid
file and the log. Password login and PAM are off; only the client key gets
in, as the user running the tests. `docker_host` (e.g. a sandboxed dockerd's
unix:// URL) is given to every session as DOCKER_HOST, so the remote
`docker system dial-stdio` reaches that engine.

    with Sshd(docker_host=engine.url) as sshd:
        sshd.url, sshd.client_key, sshd.host_key
        sshd.rekey()   # a new host key (restart to serve it)
        sshd.stop()    # by the pid we started; sshd.start() again

Needs /usr/sbin/sshd (Debian's openssh-server; scripts/lib.sh installs it).
The system's own sshd, if any, is never touched.
"""

import getpass
import os
import shutil
import socket
import subprocess
import tempfile
from pathlib import Path
from typing import Self

from .ports import free_port
from .processes import log_tail, spawn, stop_process
from .wait import wait_for

SSHD = "/usr/sbin/sshd"


def sshd_binary() -> str:
    if not os.access(SSHD, os.X_OK):
        raise RuntimeError(
            "sshd is not installed: run `apt-get install -y openssh-server` "
            "(scripts/test.sh installs it)."
        )
    return SSHD


def keygen(path: Path, comment: str = "ferry-test") -> None:
    """A new ed25519 key pair at path / path.pub (no passphrase, mode 0600)."""
    for stale in (path, path.with_suffix(".pub")):
        stale.unlink(missing_ok=True)
    subprocess.run(
        ["ssh-keygen", "-q", "-t", "ed25519", "-N", "", "-C", comment, "-f", path],
        check=True,
        capture_output=True,
    )


class Sshd:
    """One sshd listening on a free loopback port, run from its own directory."""

    def __init__(self, docker_host: str = "", extra_config: list[str] | None = None):
        self.root = Path(tempfile.mkdtemp(prefix="fsshd-"))  # mode 0700
        self.port = free_port()
        self.user = getpass.getuser()
        self.url = f"ssh://{self.user}@127.0.0.1:{self.port}"
        self.docker_host = docker_host
        self.extra_config = list(extra_config or [])
        self.log_path = self.root / "sshd.log"
        self.process: subprocess.Popen | None = None
        keygen(self.root / "host_key", "ferry-test-host")
        keygen(self.root / "client_key", "ferry-test-client")
        shutil.copy(self.root / "client_key.pub", self.root / "authorized_keys")

    def __repr__(self) -> str:
        return f"<Sshd {self.url} running={self.running}>"

    def __enter__(self) -> Self:
        return self.start()

    def __exit__(self, *exc_info) -> None:
        self.close()

    @property
    def client_key(self) -> str:
        """The private key that the server lets in (OpenSSH format)."""
        return (self.root / "client_key").read_text()

    @property
    def host_key(self) -> str:
        """The server's public host key line, "ssh-ed25519 AAAA... comment"."""
        return (self.root / "host_key.pub").read_text().strip()

    def rekey(self) -> None:
        """Replace the host key (as a reinstalled host would); restart to use it."""
        keygen(self.root / "host_key", "ferry-test-host-new")

    @property
    def running(self) -> bool:
        return self.process is not None and self.process.poll() is None

    def config(self) -> str:
        lines = [
            f"Port {self.port}",
            "ListenAddress 127.0.0.1",
            f"HostKey {self.root / 'host_key'}",
            f"PidFile {self.root / 'sshd.pid'}",
            f"AuthorizedKeysFile {self.root / 'authorized_keys'}",
            f"AllowUsers {self.user}",
            "PermitRootLogin prohibit-password",
            "PubkeyAuthentication yes",
            "PasswordAuthentication no",
            "KbdInteractiveAuthentication no",
            "UsePAM no",
            # /tmp is world-writable, which StrictModes would refuse.
            "StrictModes no",
            "UseDNS no",
            "PrintMotd no",
            "AllowTcpForwarding no",
            "X11Forwarding no",
            "LogLevel VERBOSE",
        ]
        if self.docker_host:
            lines.append(f"SetEnv DOCKER_HOST={self.docker_host}")
        return "\n".join([*lines, *self.extra_config]) + "\n"

    def start(self, timeout: float = 30) -> "Sshd":
        """Start sshd in the foreground (-D) and wait for its SSH banner."""
        if self.running:
            return self
        config = self.root / "sshd_config"
        config.write_text(self.config())
        if os.geteuid() == 0:
            # Debian's sshd insists on its privilege separation directory,
            # which only the (absent) system service would create.
            os.makedirs("/run/sshd", mode=0o755, exist_ok=True)
        self.process = spawn(
            [sshd_binary(), "-D", "-e", "-f", str(config)], self.log_path
        )
        wait_for(
            self._ready,
            timeout=timeout,
            interval=0.05,
            message=lambda: f"sshd on {self.port} did not answer\n{self.log_tail()}",
        )
        return self

    def _ready(self) -> bool:
        if self.process.poll() is not None:
            raise AssertionError(
                f"sshd exited with {self.process.returncode}:\n{self.log_tail()}"
            )
        try:
            with socket.create_connection(("127.0.0.1", self.port), 1) as sock:
                return sock.recv(64).startswith(b"SSH-2.0-")
        except OSError:
            return False

    def stop(self) -> None:
        """Stop the listener we started (sessions end with their clients)."""
        stop_process(self.process)
        self.process = None

    def close(self) -> None:
        self.stop()
        shutil.rmtree(self.root, ignore_errors=True)

    def log_tail(self, lines: int = 40) -> str:
        return log_tail(self.log_path, lines)
