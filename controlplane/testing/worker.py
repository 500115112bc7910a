"""A real Celery worker (with embedded beat) as a subprocess.

    with celery_worker({"REDIS_URL": url, "DATABASE_URL": db}) as worker:
        ...                      # tasks sent to that broker run for real
        worker.log_tail()        # for failure messages; worker.log_path too

`pool` and `concurrency` are the worker's -P and -c (solo, one task at a
time, unless a test needs tasks to overlap). The worker uses
controlplane.settings.test unless env says otherwise, so its broker is
REDIS_URL and its beat interval FERRY_HOST_HEALTH_INTERVAL. It is
ready when it answers a ping sent through the broker; it is stopped by the
pid started here (SIGTERM, then SIGKILL of its own process group).
"""

import contextlib
import functools
import os
import shutil
import sys
import tempfile
import uuid
from collections.abc import Iterator
from dataclasses import dataclass
from pathlib import Path

from celery import Celery

from .processes import log_tail, spawn, stop_process
from .wait import wait_for

REPO_ROOT = Path(__file__).resolve().parents[2]
READY_TIMEOUT = 60


@dataclass
class CeleryWorker:
    name: str
    pid: int
    log_path: Path
    broker_url: str

    def log_tail(self, lines: int = 60) -> str:
        return log_tail(self.log_path, lines)


def worker_command(
    name: str, directory: Path, beat: bool, pool: str = "solo", concurrency: int = 1
) -> list[str]:
    cmd = [
        sys.executable, "-m", "celery", "-A", "controlplane", "worker",
        "--loglevel=INFO", "-P", pool, "-c", str(concurrency),
        "-n", name, "-Q", "celery,long",
        "--without-gossip", "--without-mingle",
    ]  # fmt: skip
    if beat:
        cmd += ["-B", "-s", str(directory / "beat-schedule")]
    return cmd


@functools.cache
def _control_app(broker_url: str) -> Celery:
    # One per broker and never closed: kombu keeps connection pools in a
    # global registry keyed by URL, so closing ours would close the pool the
    # project's own Celery app publishes through.
    return Celery("ferry-test-control", broker=broker_url, set_as_current=False)


def ping(broker_url: str, name: str) -> bool:
    """True when the worker called name answers a ping through the broker."""
    app = _control_app(broker_url)
    return bool(app.control.ping(destination=[name], timeout=1.0))


@contextlib.contextmanager
def celery_worker(
    env: dict[str, str],
    beat: bool = True,
    timeout: float = READY_TIMEOUT,
    pool: str = "solo",
    concurrency: int = 1,
) -> Iterator[CeleryWorker]:
    """Start a worker (and beat) with env on top of ours; stop it on exit."""
    child_env = {**os.environ, "DJANGO_SETTINGS_MODULE": "controlplane.settings.test"}
    child_env.update(env)
    broker_url = child_env.get("REDIS_URL")
    if not broker_url:
        raise ValueError("celery_worker needs REDIS_URL in env (the broker)")
    directory = Path(tempfile.mkdtemp(prefix="ferry-celery-"))
    name = f"ferry-test-{uuid.uuid4().hex[:8]}@localhost"
    log_path = directory / "worker.log"
    proc = spawn(
        worker_command(name, directory, beat, pool, concurrency),
        log_path,
        env=child_env,
        cwd=REPO_ROOT,
    )
    worker = CeleryWorker(name, proc.pid, log_path, broker_url)
    try:
        wait_for(
            lambda: _alive(proc, worker) and ping(broker_url, name),
            timeout=timeout,
            interval=0.3,
            message=lambda: (
                f"celery worker {name} did not answer a ping; log {log_path}:\n"
                f"{worker.log_tail()}"
            ),
        )
        yield worker
    finally:
        stop_process(proc, timeout=20)
        if os.environ.get("FERRY_KEEP_WORKER_LOGS"):
            print(f"celery worker log kept at {log_path}")
        else:
            shutil.rmtree(directory, ignore_errors=True)


def _alive(proc, worker: CeleryWorker) -> bool:
    if proc.poll() is not None:
        raise AssertionError(
            f"celery worker exited with {proc.returncode}:\n{worker.log_tail()}"
        )
    return True
