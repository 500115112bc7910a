"""Real Redis, PostgreSQL and S3 (moto) servers for tests, on free ports.

Context managers (each stops what it started, also on failure):

    with redis_server() as url:        # redis://127.0.0.1:PORT/0
    with postgres_server() as url:     # postgres://postgres@127.0.0.1:PORT/ferry
    with moto_server() as endpoint:    # http://127.0.0.1:PORT
    with celery_worker(env) as worker: # see controlplane/testing/worker.py

Command line, for shell scripts (scripts/test.sh) that need a throwaway
cluster without duplicating this logic; DIR should live under /tmp (the
postgres user must reach it). `postgres-start` prints the DATABASE_URL:

    python -m controlplane.testing.services postgres-start DIR
    python -m controlplane.testing.services postgres-stop DIR
    python -m controlplane.testing.services redis-start DIR   # prints REDIS_URL
    python -m controlplane.testing.services redis-stop DIR
"""

import contextlib
import glob
import os
import pwd
import shutil
import subprocess
import sys
import tempfile
import urllib.request
from collections.abc import Iterator
from pathlib import Path

from .ports import free_port
from .processes import log_tail, spawn, stop_pid, stop_process
from .wait import wait_for
from .worker import celery_worker  # noqa: F401 - part of this module's API

BIN_DIR = Path(sys.executable).parent


# -- Redis ---------------------------------------------------------------
def redis_start(directory: Path) -> str:
    """Start redis-server in directory (pid and port files there); its URL."""
    binary = shutil.which("redis-server")
    if not binary:
        raise RuntimeError("redis-server is missing: apt-get install -y redis-server")
    directory.mkdir(parents=True, exist_ok=True)
    port = free_port()
    proc = spawn(
        [binary, "--port", str(port), "--bind", "127.0.0.1", "--save", "",
         "--appendonly", "no", "--dir", str(directory)],
        directory / "redis.log",
    )  # fmt: skip
    (directory / "redis.pid").write_text(str(proc.pid))
    url = f"redis://127.0.0.1:{port}/0"
    wait_for(
        lambda: _redis_ping(url, proc),
        timeout=20,
        message=f"redis on {port}: {log_tail(directory / 'redis.log', 5)}",
    )
    return url


def _redis_ping(url: str, proc: subprocess.Popen | None = None) -> bool:
    import redis

    if proc is not None and proc.poll() is not None:
        raise AssertionError(f"redis-server exited with {proc.returncode}")
    with redis.Redis.from_url(url, socket_timeout=1) as client:
        return client.ping()


def redis_stop(directory: Path) -> None:
    pid_file = directory / "redis.pid"
    if pid_file.exists():
        stop_pid(int(pid_file.read_text()))
        pid_file.unlink()


@contextlib.contextmanager
def redis_server() -> Iterator[str]:
    directory = Path(tempfile.mkdtemp(prefix="ferry-redis-"))
    try:
        yield redis_start(directory)
    finally:
        redis_stop(directory)
        shutil.rmtree(directory, ignore_errors=True)


# -- PostgreSQL ------------------------------------------------------------
def postgres_bin() -> Path:
    """Newest /usr/lib/postgresql/<version>/bin with initdb in it."""
    found = glob.glob("/usr/lib/postgresql/*/bin/initdb")
    if not found:
        raise RuntimeError("PostgreSQL is missing: apt-get install -y postgresql")
    found.sort(key=lambda path: int(Path(path).parts[4].split(".")[0]))
    return Path(found[-1]).parent


def _as_postgres(cmd: list[str], **kwargs) -> subprocess.CompletedProcess:
    # initdb refuses to run as root: run the cluster as the postgres user.
    if os.geteuid() == 0:
        cmd = ["runuser", "-u", "postgres", "--", *cmd]
    return subprocess.run(cmd, check=True, capture_output=True, text=True, **kwargs)


def postgres_start(directory: Path) -> str:
    """initdb + pg_ctl start a cluster in directory; its DATABASE_URL."""
    binaries = postgres_bin()
    directory.mkdir(parents=True, exist_ok=True)
    if os.geteuid() == 0:
        user = pwd.getpwnam("postgres")
        os.chown(directory, user.pw_uid, user.pw_gid)
    data, port = directory / "data", free_port()
    _as_postgres([str(binaries / "initdb"), "-D", str(data), "-A", "trust",
                  "-U", "postgres", "-E", "UTF8",
                  "--locale=C", "--no-sync"])  # fmt: skip
    options = (
        f"-p {port} -k {directory} -c listen_addresses=127.0.0.1 "
        "-c fsync=off -c synchronous_commit=off -c full_page_writes=off"
    )
    _as_postgres([str(binaries / "pg_ctl"), "-D", str(data),
                  "-l", str(directory / "postgres.log"),
                  "-o", options, "-w", "start"])  # fmt: skip
    (directory / "port").write_text(str(port))
    _as_postgres([str(binaries / "createdb"), "-h", "127.0.0.1", "-p", str(port),
                  "-U", "postgres", "ferry"])  # fmt: skip
    return f"postgres://postgres@127.0.0.1:{port}/ferry"


def postgres_stop(directory: Path) -> None:
    data = directory / "data"
    if (data / "postmaster.pid").exists():
        _as_postgres(
            [
                str(postgres_bin() / "pg_ctl"),
                "-D",
                str(data),
                "-m",
                "fast",
                "-w",
                "stop",
            ]
        )


@contextlib.contextmanager
def postgres_server() -> Iterator[str]:
    directory = Path(tempfile.mkdtemp(prefix="fp-"))
    try:
        yield postgres_start(directory)
    finally:
        postgres_stop(directory)
        shutil.rmtree(directory, ignore_errors=True)


# -- S3 (moto) -------------------------------------------------------------
@contextlib.contextmanager
def moto_server() -> Iterator[str]:
    """moto_server on a free loopback port; yields the endpoint URL."""
    binary = BIN_DIR / "moto_server"
    if not binary.exists():
        binary = Path(shutil.which("moto_server") or "moto_server")
    directory = Path(tempfile.mkdtemp(prefix="ferry-moto-"))
    port = free_port()
    proc = spawn([str(binary), "-H", "127.0.0.1", "-p", str(port)], directory / "log")
    endpoint = f"http://127.0.0.1:{port}"
    try:
        wait_for(
            lambda: _http_ok(endpoint, proc),
            timeout=30,
            message=f"moto_server on {port}",
        )
        yield endpoint
    finally:
        stop_process(proc)
        shutil.rmtree(directory, ignore_errors=True)


def _http_ok(url: str, proc: subprocess.Popen) -> bool:
    if proc.poll() is not None:
        raise AssertionError(f"exited with {proc.returncode}")
    with urllib.request.urlopen(url, timeout=2) as response:
        return response.status == 200


# -- command line ------------------------------------------------------------
COMMANDS = {
    "postgres-start": postgres_start,
    "postgres-stop": postgres_stop,
    "redis-start": redis_start,
    "redis-stop": redis_stop,
}


def main(argv: list[str]) -> int:
    if len(argv) != 2 or argv[0] not in COMMANDS:
        print(f"usage: services {{{'|'.join(COMMANDS)}}} DIR", file=sys.stderr)
        return 2
    try:
        result = COMMANDS[argv[0]](Path(argv[1]).resolve())
    except subprocess.CalledProcessError as exc:
        print(f"{exc.cmd} failed:\n{exc.stdout}{exc.stderr}", file=sys.stderr)
        return 1
    if result:
        print(result)
    return 0


if __name__ == "__main__":
    sys.exit(main(sys.argv[1:]))
