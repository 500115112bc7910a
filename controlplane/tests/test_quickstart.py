"""The README's two commands, run as a new user would run them.

The set-up test copies the working tree (what a fresh clone holds) to a temp
dir and runs ./scripts/setup.sh there: a new virtualenv, npm assets, SQLite,
Redis, gunicorn, two Celery workers and beat on free ports. It then logs in as
the admin from the environment and sees the demo regions, runs the command
again (nothing starts twice) and stops everything by pid file.
"""

import json
import os
import re
import secrets
import subprocess
from pathlib import Path

import pytest
import requests
from django.db import connection

from controlplane.testing.ports import free_port
from controlplane.testing.tree import copy_working_tree
from controlplane.testing.wait import wait_for

ROOT = Path(__file__).resolve().parents[2]
DEMO_SLUGS = ("cn-hangzhou", "cn-hongkong", "us-west-1")
SERVICES = ("redis", "worker", "builder", "beat", "web")


def run_script(cwd: Path, args: list[str], env: dict, timeout: float = 900):
    return subprocess.run(
        args, cwd=cwd, env=env, capture_output=True, text=True, timeout=timeout,
        check=False, stdin=subprocess.DEVNULL,
    )  # fmt: skip


def alive(pid: int) -> bool:
    try:
        os.kill(pid, 0)
    except ProcessLookupError:
        return False
    return True


@pytest.fixture
def quickstart(tmp_path):
    """A copied tree and the environment a new user would have."""
    tree = tmp_path / "ferry"
    copy_working_tree(tree)
    env = {
        k: v
        for k, v in os.environ.items()
        if not k.startswith(("FERRY_", "DJANGO_", "PYTEST_"))
        and k not in ("DATABASE_URL", "REDIS_URL", "VIRTUAL_ENV")
    }
    env.update(
        FERRY_PORT=str(free_port()),
        FERRY_REDIS_PORT=str(free_port()),
        FERRY_ADMIN_USER="demo-admin",
        FERRY_ADMIN_PASSWORD=secrets.token_urlsafe(16),
        FERRY_HOST_HEALTH_INTERVAL="1",  # beat -> worker -> hosts, quickly
    )
    started: dict[str, int] = {}
    yield tree, env, started
    stopped = run_script(tree, ["./scripts/setup.sh", "stop"], env, timeout=120)
    assert stopped.returncode == 0, stopped.stdout + stopped.stderr
    assert not [name for name, pid in started.items() if alive(pid)]
    assert not list((tree / "var" / "run").glob("*.pid"))


def read_pids(tree: Path) -> dict[str, int]:
    run = tree / "var" / "run"
    return {name: int((run / f"{name}.pid").read_text()) for name in SERVICES}


def log_in(session: requests.Session, url: str, username: str, password: str):
    login = url + "login/"
    assert session.get(login, timeout=30).status_code == 200
    token = session.cookies["csrftoken"]
    return session.post(
        login,
        data={"username": username, "password": password,
              "csrfmiddlewaretoken": token},
        headers={"Referer": login},
        timeout=30,
    )  # fmt: skip


def all_hosts_checked(session: requests.Session, url: str) -> bool:
    hosts = session.get(url + "api/v1/hosts/", timeout=30).json()["results"]
    assert len(hosts) == len(DEMO_SLUGS)
    return all(h["last_checked"] and h["status"] != "unknown" for h in hosts)


def active_queues(tree: Path, env: dict) -> dict[str, set[str]]:
    """Node name (before the @) -> the queues it consumes, asked via Redis."""
    broker = f"redis://127.0.0.1:{env['FERRY_REDIS_PORT']}/0"
    answer = run_script(
        tree,
        [".venv/bin/celery", "-A", "controlplane.celery", "inspect",
         "active_queues", "--json", "--timeout", "5"],
        {**env, "REDIS_URL": broker}, timeout=60,
    )  # fmt: skip
    assert answer.returncode == 0, answer.stdout + answer.stderr
    nodes = json.loads(answer.stdout)
    return {
        node.split("@")[0]: {queue["name"] for queue in queues}
        for node, queues in nodes.items()
    }


@pytest.mark.integration
def test_setup_script_brings_ferry_up_with_the_demo_regions(quickstart):
    tree, env, started = quickstart
    first = run_script(tree, ["./scripts/setup.sh"], env)
    started.update(
        {p.stem: int(p.read_text()) for p in (tree / "var/run").glob("*.pid")}
    )
    assert first.returncode == 0, first.stdout[-3000:] + first.stderr[-3000:]
    url = f"http://127.0.0.1:{env['FERRY_PORT']}/"
    assert f"Ferry is running at {url}" in first.stdout
    assert set(started) == set(SERVICES)

    htmx = requests.get(url + "static/vendor/htmx.min.js", timeout=30)
    assert htmx.status_code == 200
    assert (
        htmx.content == (tree / "node_modules/htmx.org/dist/htmx.min.js").read_bytes()
    )
    session = requests.Session()
    overview = log_in(
        session, url, env["FERRY_ADMIN_USER"], env["FERRY_ADMIN_PASSWORD"]
    )
    assert overview.status_code == 200 and overview.url == url
    for slug in DEMO_SLUGS:
        assert slug in overview.text
    # Beat schedules the health check, the worker runs it through Redis.
    wait_for(
        lambda: all_hosts_checked(session, url),
        timeout=120,
        message=lambda: (tree / "var/log/worker.log").read_text()[-2000:],
    )

    # Builds and other long work go to the builder; the worker keeps the
    # default queue (host checks, applies, cancels) free of them.
    assert active_queues(tree, env) == {"worker": {"celery"}, "builder": {"long"}}

    second = run_script(tree, ["./scripts/setup.sh"], env, timeout=300)
    assert second.returncode == 0, second.stdout + second.stderr
    assert second.stdout.count("already running") == len(SERVICES)
    assert "Seeded" not in second.stdout
    assert read_pids(tree) == started
    assert requests.get(url + "login/", timeout=30).status_code == 200


# -- ./scripts/test.sh ------------------------------------------------------------
def test_the_suite_runs_on_the_database_that_database_url_names():
    url = os.environ.get("DATABASE_URL", "")
    expected = "postgresql" if url.startswith("postgres") else "sqlite"
    assert connection.vendor == expected


def _test_script(*args: str) -> subprocess.CompletedProcess:
    env = {k: v for k, v in os.environ.items() if not k.startswith("PYTEST_")}
    env.pop("DATABASE_URL", None)
    return run_script(ROOT, ["./scripts/test.sh", *args], env, timeout=600)


def _cluster_dir(output: str) -> Path:
    found = re.search(r"PostgreSQL on 127\.0\.0\.1:\d+/\w+ \((\S+)\)", output)
    assert found, output
    return Path(found.group(1))


@pytest.mark.integration
def test_test_script_runs_pytest_on_a_throwaway_postgresql():
    result = _test_script(
        "-p", "no:cacheprovider", "-q",
        "controlplane/tests/test_quickstart.py::"
        "test_the_suite_runs_on_the_database_that_database_url_names",
    )  # fmt: skip
    assert result.returncode == 0, result.stdout + result.stderr
    assert "1 passed" in result.stdout
    assert not _cluster_dir(result.stdout).exists()  # stopped and removed


@pytest.mark.integration
def test_test_script_fails_when_pytest_collects_no_tests():
    result = _test_script(
        "-p", "no:cacheprovider", "-q", "-k", "no_test_is_named_so",
        "controlplane/tests/test_quickstart.py",
    )  # fmt: skip
    assert result.returncode == 1
    assert "collected no tests" in result.stderr
    assert not _cluster_dir(result.stdout).exists()


def test_stale_pid_files_are_not_trusted_or_signalled(tmp_path):
    """After a reboot a pid file may name an unrelated process: `status` must
    not call it running and `stop` must not kill it (nor its group)."""
    run = tmp_path / "run"
    run.mkdir(parents=True)
    # An unrelated process in its own session, as the services are.
    bystander = subprocess.Popen(
        ["sleep", "300"], stdin=subprocess.DEVNULL, start_new_session=True
    )
    try:
        for name in SERVICES:
            (run / f"{name}.pid").write_text(f"{bystander.pid}\n")
        env = {**os.environ, "FERRY_VAR_DIR": str(tmp_path)}

        status = run_script(ROOT, ["./scripts/setup.sh", "status"], env, timeout=60)
        assert status.returncode == 0, status.stderr
        assert status.stdout.count(": stopped") == len(SERVICES), status.stdout

        stop = run_script(ROOT, ["./scripts/setup.sh", "stop"], env, timeout=60)
        assert stop.returncode == 0, stop.stderr
        assert "stale pid file" in stop.stdout
        assert bystander.poll() is None, "stop killed an unrelated process"
        assert not list(run.glob("*.pid"))
    finally:
        bystander.kill()
        bystander.wait()
