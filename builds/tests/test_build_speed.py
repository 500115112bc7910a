"""What keeps a Docker-executor build close to a raw `docker build` + push.

For real on the session's dockerd: no extra builder step for an image
label, and the cache volume measurements run beside the work instead of
before and after it, while still measuring the right moments (the "before"
size is taken before the builder writes anything).
"""

import threading
import time

import pytest

import builds.executors.cache_meter as cache_meter
import builds.executors.docker_run as docker_run
from builds.models import BuildStatus

from .test_docker_executor import run_build

pytestmark = [pytest.mark.integration, pytest.mark.django_db]

SLOW_MEASURE = 0.8


def test_the_image_gets_no_extra_label_step(project, dockerd):
    build = run_build(project)

    assert build.status == BuildStatus.SUCCEEDED, (build.failure_line, build.log)
    history = dockerd.client.images.get(build.image).history()
    steps = " | ".join(entry.get("CreatedBy", "") for entry in history)
    assert "LABEL" not in steps, steps
    # The Dockerfile's two steps plus the base image's, nothing else.
    base = dockerd.client.images.get(project.cluster.agents.get(kind="java").image)
    assert len(history) == len(base.history()) + 2, steps


def test_cache_sizes_are_measured_beside_the_build_at_the_right_moments(
    project, monkeypatch
):
    """A slow measurement overlaps the image build, yet a cold cache still
    measures empty "before" (the builder waited for it) and full "after"."""
    measured: list[tuple[float, float, str]] = []
    image_built: list[tuple[float, float]] = []
    real_measure = cache_meter.agent_cache_size
    real_build = docker_run.image_build

    def slow_measure(client, agent):
        started = time.monotonic()
        time.sleep(SLOW_MEASURE)  # a busy engine's `docker system df`
        sizes = real_measure(client, agent)
        measured.append((started, time.monotonic(), threading.current_thread().name))
        return sizes

    def timed_build(*args, **kwargs):
        started = time.monotonic()
        try:
            return real_build(*args, **kwargs)
        finally:
            image_built.append((started, time.monotonic()))

    monkeypatch.setattr(cache_meter, "agent_cache_size", slow_measure)
    monkeypatch.setattr(docker_run, "image_build", timed_build)

    build = run_build(project)

    assert build.status == BuildStatus.SUCCEEDED, (build.failure_line, build.log)
    assert len(measured) == 2 and len(image_built) == 1
    (_before_start, _before_end, thread), (after_start, after_end, _t) = measured
    assert thread != threading.current_thread().name  # not the build's thread
    build_start, build_end = image_built[0]
    # "after" ran while the image was being built, not ahead of it.
    assert after_start < build_end and after_end > build_start
    # The cold cache was empty before the step and holds the 8 MB after.
    assert not build.cache["before"], build.cache
    assert build.cache["after"] > 4_000_000 and build.cache["warm"] is False
    assert build.timings["dependencies"] >= SLOW_MEASURE  # the builder waited
