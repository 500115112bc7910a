"""Build executors: how a build really runs, chosen by the cluster's `executor`.

Backends are picked Django-style, by dotted path. `executor_for(cluster)`
looks up `cluster.executor` ("docker", "jenkins", ...) in
`settings.FERRY_BUILD_EXECUTORS` (merged over DEFAULT_EXECUTORS below) and
returns an instance of that class. Tests may point a name at the in-memory
twin `builds.executors.locmem.LocmemExecutor`.

The interface (subclass `Executor`; every method is called in a Celery
worker, never in a web request; all three receive fresh model rows):

``provision(cluster) -> None``
    Make the cluster's Docker host match the cluster and its agents
    (volumes, containers, files, jobs...). Idempotent; safe to run twice.
    Called by `builds.services.cluster_provision` after a cluster or agent is
    saved and from the "Provision" button. Return normally and the service
    marks the cluster `ready`; raise `adapters.errors.AdapterError` and its
    `reason` becomes `cluster.last_error` with status `failed`. Any other
    exception also marks it failed (with the exception text) and propagates.

``start(build) -> BuildResult``
    Run one build to the end, synchronously (it blocks the worker). Called
    by `builds.runs.build_run` only after the build claimed a slot on its
    agent: `build.status == RUNNING`, `build.started_at` set, `build.agent`
    set, the "queue" timing recorded. Record progress through
    `builds.progress.BuildProgress(build)`:

        progress = BuildProgress(build)
        with progress.phase("source"):      # timings["source"] = seconds
            progress.log("Cloning ...\n")   # appended in chunks while running
            progress.record(commit=sha)     # commit, image, image_digest,
                                            # external_id, cache (dict)
        if progress.cancelled():            # status left RUNNING (cancel or
            return BuildResult.cancelled()  # reaper): stop promptly
        # While waiting on something silent, call progress.poll() instead:
        # it also writes log text that sat in the buffer, then cancelled().
        ...
        return BuildResult.succeeded()
        # or BuildResult.failed("the failing log line", exit_code=2,
        #                       phase="build")

    Phase names used by pages: "source", "dependencies", "build", "push"
    (others are shown too, in the order recorded). Do not change
    `build.status` yourself: `build_run` finishes the build from the result
    by compare-and-set (a cancel that won the race stays cancelled), flushes
    the log, and starts the next queued build of the agent. An
    `AdapterError` escaping `start` fails the build with its `reason` as the
    failure line; any other exception fails it with the exception text.

``cancel(build) -> None``
    Stop whatever still runs for the build (builder container, docker build,
    Jenkins build). Called by `builds.tasks.build_cancel_task` after
    `build_cancel` already set the status to CANCELLED, possibly while
    `start` still runs in another worker, which should notice
    `progress.cancelled()` too. Idempotent: "already gone" is success. Do
    not change the build's status.
"""

from __future__ import annotations

from dataclasses import dataclass

from django.conf import settings
from django.utils.module_loading import import_string

from builds.models import BuildStatus

DEFAULT_EXECUTORS = {
    "docker": "builds.executors.docker.DockerExecutor",
    "jenkins": "builds.jenkins.executor.JenkinsExecutor",
}


@dataclass(frozen=True)
class BuildResult:
    """How a build ended, as reported by an executor's `start`."""

    status: str  # a terminal BuildStatus
    failure_line: str = ""
    exit_code: int | None = None
    phase: str = ""  # the phase that failed, when it failed

    @classmethod
    def succeeded(cls) -> BuildResult:
        return cls(BuildStatus.SUCCEEDED, exit_code=0)

    @classmethod
    def failed(
        cls, failure_line: str, exit_code: int | None = None, phase: str = ""
    ) -> BuildResult:
        return cls(BuildStatus.FAILED, failure_line, exit_code, phase)

    @classmethod
    def cancelled(cls) -> BuildResult:
        return cls(BuildStatus.CANCELLED)


class Executor:
    """Base class of build executors; see the module docstring."""

    name = ""

    def provision(self, cluster) -> None:
        raise NotImplementedError

    def start(self, build) -> BuildResult:
        raise NotImplementedError

    def cancel(self, build) -> None:
        raise NotImplementedError


def executor_paths() -> dict[str, str]:
    """Executor name -> dotted path, with settings.FERRY_BUILD_EXECUTORS on top."""
    return {**DEFAULT_EXECUTORS, **getattr(settings, "FERRY_BUILD_EXECUTORS", {})}


def executor_for(cluster) -> Executor:
    """An instance of the executor class named by `cluster.executor`."""
    path = executor_paths().get(cluster.executor)
    if not path:
        raise LookupError(f"No executor registered for {cluster.executor!r}")
    return import_string(path)()
