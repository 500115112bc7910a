"""A sandboxed Docker engine per test host or region.

Each `Dockerd` runs its own dockerd (and, under it, its own containerd) in a
fresh short directory under /tmp: unix socket paths must stay below 108
characters and containerd nests its sockets under the exec root. Only
loopback networking: `--bridge=none --iptables=false --ip-masq=false`, so
containers run with `network_mode="host"`.

    with Dockerd() as engine:
        engine.client.containers.run(...)
        engine.stop()    # the host goes away (same data kept)
        engine.start()   # and comes back

Everything is stopped by the pid this object started; leftover processes
are found by the unique directory in their command line, never by name.
"""

import os
import shutil
import signal
import subprocess
import tempfile
import time
from pathlib import Path
from typing import Self

import docker

from .wait import wait_for

START_TIMEOUT = 60
STOP_TIMEOUT = 30


def dockerd_binary() -> str:
    path = shutil.which("dockerd") or (
        "/usr/sbin/dockerd" if os.path.exists("/usr/sbin/dockerd") else None
    )
    if not path:
        raise RuntimeError(
            "dockerd is not installed: run `apt-get install -y docker.io` "
            "(scripts/test.sh installs it)."
        )
    return path


class Dockerd:
    """One dockerd with its own data root, exec root, socket and pidfile."""

    def __init__(self, root: str | None = None, extra_args: list[str] | None = None):
        self.root = Path(root or tempfile.mkdtemp(prefix="fd-", dir="/tmp"))
        # e.g. ["--insecure-registry=127.0.0.0/8"]; TLS trust for a registry
        # is global (/etc/docker/certs.d/127.0.0.1:PORT/ca.crt): unique ports.
        self.extra_args = list(extra_args or [])
        self.url = f"unix://{self.root}/docker.sock"
        self.log_path = self.root / "dockerd.log"
        self.process: subprocess.Popen | None = None
        self._client: docker.DockerClient | None = None

    def __repr__(self) -> str:
        return f"<Dockerd {self.url} running={self.running}>"

    # -- lifecycle -------------------------------------------------------
    def __enter__(self) -> Self:
        self.start()
        return self

    def __exit__(self, *exc_info) -> None:
        self.close()

    @property
    def running(self) -> bool:
        return self.process is not None and self.process.poll() is None

    def command(self) -> list[str]:
        root = self.root
        return [
            dockerd_binary(),
            f"--data-root={root}/data",
            f"--exec-root={root}/exec",
            f"-H={self.url}",
            f"--pidfile={root}/docker.pid",
            "--bridge=none",
            "--iptables=false",
            "--ip-masq=false",
            *self.extra_args,
        ]

    def start(self, timeout: float = START_TIMEOUT) -> "Dockerd":
        """Start dockerd and wait until it answers a ping."""
        if self.running:
            return self
        self.root.mkdir(parents=True, exist_ok=True)
        log = open(self.log_path, "ab")  # noqa: SIM115 - owned by the child
        try:
            # A new session: a Ctrl-C in the terminal must not reach dockerd
            # before we stop it cleanly (containerd would be orphaned).
            self.process = subprocess.Popen(
                self.command(),
                stdin=subprocess.DEVNULL,
                stdout=log,
                stderr=subprocess.STDOUT,
                start_new_session=True,
            )
        finally:
            log.close()
        self._client = None
        wait_for(
            self._ready,
            timeout=timeout,
            interval=0.1,
            message=f"dockerd at {self.url} did not answer",
        )
        return self

    def _ready(self) -> bool:
        if self.process.poll() is not None:
            raise AssertionError(
                f"dockerd exited with {self.process.returncode}:\n{self.log_tail()}"
            )
        if not (self.root / "docker.sock").exists():
            return False
        return bool(self.client.ping())

    def stop(self, timeout: float = STOP_TIMEOUT) -> None:
        """SIGTERM our dockerd, SIGKILL it after `timeout`; reap containerd."""
        if self._client is not None:
            self._client.close()
            self._client = None
        if self.process is not None and self.process.poll() is None:
            self.process.send_signal(signal.SIGTERM)
            try:
                self.process.wait(timeout)
            except subprocess.TimeoutExpired:
                self.process.kill()
                self.process.wait(10)
        self.process = None
        self._kill_leftovers()

    def kill(self) -> None:
        """An abrupt host failure: SIGKILL dockerd, then reap what it leaves."""
        if self._client is not None:
            self._client.close()
            self._client = None
        if self.process is not None and self.process.poll() is None:
            self.process.kill()
            self.process.wait(10)
        self.process = None
        self._kill_leftovers(force=True)

    def close(self) -> None:
        """Stop and delete the directory (after unmounting what is left)."""
        self.stop()
        _unmount_under(self.root)
        shutil.rmtree(self.root, ignore_errors=True)

    # -- helpers ---------------------------------------------------------
    @property
    def client(self) -> docker.DockerClient:
        if self._client is None:
            self._client = docker.DockerClient(base_url=self.url, timeout=60)
        return self._client

    def log_tail(self, lines: int = 40) -> str:
        try:
            text = self.log_path.read_text(errors="replace")
        except OSError:
            return "(no dockerd log)"
        return "\n".join(text.splitlines()[-lines:])

    def leftover_pids(self) -> list[int]:
        """Processes (containerd, shims) whose command line names our directory."""
        marker = str(self.root).encode()
        found = []
        for entry in Path("/proc").iterdir():
            if not entry.name.isdigit() or int(entry.name) == os.getpid():
                continue
            try:
                cmdline = (entry / "cmdline").read_bytes()
            except OSError:
                continue
            if marker + b"/" in cmdline or cmdline.endswith(marker):
                found.append(int(entry.name))
        return found

    def _kill_leftovers(self, force: bool = False) -> None:
        # containerd normally exits with dockerd; a killed dockerd leaves it
        # and the shims, whose children are container inits (kill those too,
        # or the containers outlive their engine).
        deadline = time.monotonic() + 10
        signalled: set[int] = set()
        while (pids := self.leftover_pids()) and time.monotonic() < deadline:
            late = force or time.monotonic() > deadline - 5
            for pid in _children(pids) + pids:
                _signal(pid, signal.SIGKILL if late else signal.SIGTERM)
                signalled.add(pid)
            time.sleep(0.1)
        # Orphans are reaped by pid 1, sometimes late: a zombie still "exists"
        # for kill(pid, 0), and a restarted dockerd would then wait a minute
        # for a containerd that is gone. Wait for death, drop the stale pidfile.
        wait_for(
            lambda: all(_dead(pid) for pid in signalled),
            timeout=10,
            interval=0.05,
            message=f"processes of {self.root} did not die",
        )
        (self.root / "exec/containerd/containerd.pid").unlink(missing_ok=True)


def _dead(pid: int) -> bool:
    try:
        stat = Path(f"/proc/{pid}/stat").read_text()
    except OSError:
        return True
    return stat.rsplit(")", 1)[1].split()[0] in ("Z", "X")


def _children(parents: list[int]) -> list[int]:
    wanted, found = set(parents), []
    for status in Path("/proc").glob("[0-9]*/status"):
        try:
            text = status.read_text()
        except OSError:
            continue
        ppid = next(
            (ln.split()[1] for ln in text.splitlines() if ln.startswith("PPid:")), "0"
        )
        if int(ppid) in wanted:
            found.append(int(status.parent.name))
    return found


def _signal(pid: int, sig: int) -> None:
    try:
        os.kill(pid, sig)
    except ProcessLookupError:
        pass


def _unmount_under(root: Path) -> None:
    prefix = str(root) + "/"
    try:
        mounts = Path("/proc/self/mountinfo").read_text().splitlines()
    except OSError:
        return
    points = [line.split()[4] for line in mounts]
    for point in sorted((p for p in points if p.startswith(prefix)), reverse=True):
        subprocess.run(["umount", "-l", point], check=False, capture_output=True)
