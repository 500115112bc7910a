#!/usr/bin/env python
"""Benchmark: a Ferry docker-executor build versus the same steps by hand,
and a warm dependency cache versus a cold one. Prints both ratios.

    .venv/bin/python bench/build.py [--runs 3]

Standalone and loopback only: it starts its own sandboxed dockerd and a
registry container on a free 127.0.0.1 port, uses a throwaway SQLite
database, and removes everything it started when it ends (also on error).
Ferry's build runs in this process (Celery in eager mode), so the numbers
are the executor's own cost without broker latency.

The sample project is the one the tests use: a git repository whose
dependency step "downloads" 8 MB of artifacts into the Maven cache unless
they are there (cold vs warm), and a Dockerfile serving the page.
"""

import argparse
import os
import shutil
import statistics
import subprocess
import sys
import tempfile
import time
import uuid
from pathlib import Path

ROOT = Path(__file__).resolve().parent.parent
sys.path.insert(0, str(ROOT))

WORK = Path(tempfile.mkdtemp(prefix="ferry-bench-build-"))
os.environ["DJANGO_SETTINGS_MODULE"] = "controlplane.settings.test"
os.environ["DATABASE_URL"] = f"sqlite:///{WORK / 'bench.sqlite3'}"


def setup_django() -> None:
    import django
    from django.core.management import call_command

    django.setup()
    call_command("migrate", verbosity=0)
    from controlplane.celery import app

    app.conf.task_always_eager = True  # run tasks in-process, no broker


def run(cmd: list[str], **kwargs) -> str:
    done = subprocess.run(cmd, capture_output=True, text=True, check=False, **kwargs)
    if done.returncode != 0:
        raise RuntimeError(f"{' '.join(cmd)} failed:\n{done.stderr or done.stdout}")
    return done.stdout


class Bench:
    def __init__(self, engine, images, registry_port: int):
        from builds.tests.conftest import DEPENDENCY_COMMAND, GitProject

        self.engine, self.images, self.port = engine, images, registry_port
        self.dependency_command = DEPENDENCY_COMMAND
        repo = WORK / "repo"
        repo.mkdir()
        self.git = GitProject(repo, images.busybox)
        self.git.commit("v0")

    # -- Ferry ------------------------------------------------------------------
    def make_project(self):
        from builds.models import BuildAgent, BuildCluster, Project
        from regions.models import DockerHost, Region
        from registries.models import ObjectStore, Registry

        region = Region.objects.create(slug="bench", name="Bench")
        host = DockerHost.objects.create(
            region=region, name="b", docker_url=self.engine.url
        )
        store = ObjectStore.objects.create(region=region, name="fs", kind="filesystem")
        registry = Registry.objects.create(
            region=region,
            host=host,
            name="p",
            kind="private",
            store=store,
            port=self.port,
        )
        cluster = BuildCluster.objects.create(
            region=region, host=host, name="bench", registry=registry
        )
        BuildAgent.objects.create(
            cluster=cluster, kind="java", image=self.images.busybox,
            cache_paths=["/root/.m2"], concurrency=1,
        )  # fmt: skip
        return Project.objects.create(
            cluster=cluster, name="bench", git_url=self.git.url,
            dependency_command=self.dependency_command, image_repository="bench/ferry",
        )  # fmt: skip

    def ferry_build(self, project) -> tuple[float, dict]:
        from builds.models import Build
        from builds.services import build_create

        self.git.commit(f"ferry {uuid.uuid4().hex[:6]}")
        # Wall time from the request to the recorded end (DB writes included).
        started = time.perf_counter()
        build = build_create(None, project, via="api")  # runs eagerly on commit
        wall = time.perf_counter() - started
        build = Build.objects.get(pk=build.pk)
        if build.status != "succeeded":
            raise RuntimeError(f"Ferry build failed: {build.failure_line}\n{build.log}")
        return wall, build.timings

    def drop_cache(self, project) -> None:
        from builds.executors.docker import cache_volume_name

        agent = project.cluster.agents.get()
        self.engine.client.volumes.get(cache_volume_name(agent, 0)).remove(force=True)

    # -- raw docker -------------------------------------------------------------
    def raw_build(self, number: int) -> tuple[float, dict]:
        """git clone, deps in a container with the cache, docker build, push."""
        self.git.commit(f"raw {uuid.uuid4().hex[:6]}")
        src = WORK / f"raw-{number}"
        docker = ["docker", "-H", self.engine.url]
        env = {**os.environ, "DOCKER_BUILDKIT": "0"}  # the builder Ferry drives
        tag = f"127.0.0.1:{self.port}/bench/raw:{number}"
        steps = {
            "source": ["git", "clone", "-q", "--depth", "1", self.git.url, str(src)],
            "dependencies": [
                *docker, "run", "--rm", "--network", "host",
                "-v", "ferry-bench-raw-cache:/root/.m2", "-v", f"{src}:/workspace",
                "-w", "/workspace", "-e", "FERRY_COMMIT=raw",
                self.images.busybox, "-c", self.dependency_command,
            ],
            "build": [*docker, "build", "-q", "--network", "host", "-t", tag, str(src)],
            "push": [*docker, "push", "-q", tag],
        }  # fmt: skip
        timings = {}
        for name, cmd in steps.items():
            started = time.perf_counter()
            run(cmd, env=env)
            timings[name] = time.perf_counter() - started
        shutil.rmtree(src, ignore_errors=True)
        return sum(timings.values()), timings


def start_registry(engine, image: str) -> tuple[int, str]:
    import requests

    from controlplane.testing.ports import free_port
    from controlplane.testing.wait import wait_for

    port = free_port()
    name = f"ferry-bench-registry-{uuid.uuid4().hex[:6]}"
    engine.client.containers.run(
        image, detach=True, name=name, network_mode="host",
        environment={"REGISTRY_HTTP_ADDR": f"127.0.0.1:{port}"},
    )  # fmt: skip
    wait_for(
        lambda: requests.get(f"http://127.0.0.1:{port}/v2/", timeout=2).ok,
        timeout=30,
        message="registry",
    )
    return port, name


def report(runs: int, ferry: list, raw: list, cold: list, warm: list) -> None:
    median = statistics.median
    f_wall, r_wall = median(w for w, _t in ferry), median(w for w, _t in raw)
    c_wall, w_wall = median(w for w, _t in cold), median(w for w, _t in warm)
    c_dep = median(t["dependencies"] for _w, t in cold)
    w_dep = median(t["dependencies"] for _w, t in warm)
    print(f"Build benchmark (median of {runs} runs each, seconds)")
    print(f"  Ferry docker-executor build, warm cache : {f_wall:6.2f}")
    print(f"  raw git clone + docker run + build + push: {r_wall:6.2f}")
    print(f"  ratio Ferry / raw                        : {f_wall / r_wall:6.2f}")
    # Each Ferry build runs right before a raw one: the median of those
    # pairs' ratios shrugs off the machine's drift between pairs.
    pairs = median(f / r for (f, _t), (r, _u) in zip(ferry, raw, strict=True))
    print(f"  ratio Ferry / raw, median of pairs       : {pairs:6.2f}")
    names = ("queue", "source", "dependencies", "build", "push")
    phases = {k: round(median(t[k] for _w, t in ferry), 2) for k in names}
    print(f"  Ferry phases: {phases}")
    raw_phases = {k: round(median(t[k] for _w, t in raw), 2)
                  for k in ("source", "dependencies", "build", "push")}  # fmt: skip
    print(f"  raw steps:    {raw_phases}")
    print(f"  cold cache build: {c_wall:6.2f} (dependencies {c_dep:.2f})")
    print(f"  warm cache build: {w_wall:6.2f} (dependencies {w_dep:.2f})")
    print(f"  ratio cold / warm, whole build           : {c_wall / w_wall:6.2f}")
    print(f"  ratio cold / warm, dependency phase      : {c_dep / w_dep:6.2f}")


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--runs", type=int, default=3)
    args = parser.parse_args()
    setup_django()
    from controlplane.testing.dockerd import Dockerd
    from controlplane.testing.images import import_test_images

    engine = Dockerd()
    try:
        engine.start()
        images = import_test_images(engine.client)
        port, _name = start_registry(engine, images.registry)
        bench = Bench(engine, images, port)
        project = bench.make_project()
        cold, warm, ferry, raw = [], [], [], []
        bench.raw_build(0)  # warm the raw side's cache and layers too
        for index in range(args.runs):
            if index:
                bench.drop_cache(project)
            cold.append(bench.ferry_build(project))
            warm.append(bench.ferry_build(project))
            ferry.append(bench.ferry_build(project))
            raw.append(bench.raw_build(index + 1))
        report(args.runs, ferry, raw, cold, warm)
    finally:
        engine.close()  # containers and volumes go with its data root
        shutil.rmtree(WORK, ignore_errors=True)


if __name__ == "__main__":
    main()
