"""One build on the Jenkins executor, from trigger to result.

1. trigger: create or update the project's job (skipped when its config hash
   is unchanged) and queue it with GIT_REF and IMAGE_TAG; the queue item is
   recorded as external_id `queue:<id>`.
2. jenkins-queue: follow the queue item until Jenkins gives it a build
   number (recorded as external_id), within FERRY_JENKINS_QUEUE_TIMEOUT.
3. follow: append the progressive console to the build log as it grows;
   pipeline stages become phases (source, dependencies, build, push) timed
   from when their markers arrive; commit and digest are read from the
   console; Jenkins' own duration is recorded as timings["jenkins"].
4. result: SUCCESS succeeds; anything else fails with the line that explains
   it. A cancel stops the Jenkins build (or takes it out of the queue).

The agent's cache volumes (on the cluster's host, mounted by the agent
container) are measured before the trigger and after the end, whatever the
end, as the docker executor does: sizes, and warm when not empty before.

Never a hang: every wait has a deadline from settings, and an unreachable
Jenkins is waited out only for FERRY_JENKINS_OUTAGE_GRACE seconds.
"""

import time
from collections.abc import Callable
from typing import TypeVar

from django.conf import settings
from django.utils.translation import gettext as _

from adapters.errors import JenkinsError
from adapters.jenkins import JenkinsUnreachable
from builds.executors import BuildResult
from builds.executors.cache_meter import CacheMeter
from builds.models import Build, BuildStatus
from builds.progress import BuildProgress

from .connection import cluster_jenkins
from .console import ConsoleWatch
from .template import image_name, job_name, render_job_config

T = TypeVar("T")


class Cancelled(Exception):
    """The build left RUNNING in Ferry (cancel, reaper) while we followed it."""


class JenkinsBuild:
    def __init__(self, build: Build):
        self.build = build
        self.project = build.project
        self.cluster = self.project.cluster
        self.jenkins = cluster_jenkins(self.cluster)
        self.job = job_name(self.project)
        self.progress = BuildProgress(build)
        self.watch = ConsoleWatch()
        self.interval = float(settings.FERRY_JENKINS_POLL_INTERVAL)
        self.deadline = time.monotonic() + float(settings.FERRY_BUILD_TIMEOUT)
        self.stage = None  # the open phase context of the current stage
        self.stage_name = ""
        self.number: int | None = None
        self.offset = 0
        self._outage_since: float | None = None
        self.meter = CacheMeter(self.cluster, build.agent)

    def run(self) -> BuildResult:
        phase = "trigger"
        self.meter.measure_before()
        try:
            queue_id = self._trigger()
            phase = "jenkins-queue"
            self.number = self._wait_for_number(queue_id)
            phase = "build"
            return self._follow()
        except Cancelled:
            self._stop_in_jenkins()
            return self._stopped()
        except JenkinsError as exc:
            failed_in = self.stage_name or phase
            self.progress.log(f"\nFAILED: {exc.reason}\n")
            return BuildResult.failed(exc.reason, phase=failed_in)
        finally:
            self._close_stage()
            self.meter.measure_after()
            self.meter.record(self.progress)
            self.meter.close()
            self.progress.flush()

    # -- 1. trigger ------------------------------------------------------------
    def _trigger(self) -> int:
        self._check_cancel()
        with self.progress.phase("trigger"):
            change = self.jenkins.ensure_job(self.job, render_job_config(self.project))
            self.progress.log(f"Jenkins job {self.job}: {change}\n")
            self.meter.wait_before()  # before the agent can write to the cache
            params = {"GIT_REF": self.build.ref, "IMAGE_TAG": str(self.build.number)}
            queue_id = self.jenkins.trigger(self.job, params)
            self.progress.record(external_id=f"queue:{queue_id}")
            self.progress.log(
                f"Queued in Jenkins (queue item {queue_id}) with GIT_REF="
                f"{self.build.ref} IMAGE_TAG={self.build.number}\n"
            )
        return queue_id

    # -- 2. queue --------------------------------------------------------------
    def _wait_for_number(self, queue_id: int) -> int:
        timeout = float(settings.FERRY_JENKINS_QUEUE_TIMEOUT)
        deadline = time.monotonic() + timeout
        with self.progress.phase("jenkins-queue"):
            while True:
                state = self._call(lambda: self.jenkins.queue_item(queue_id))
                if state is None:
                    raise JenkinsError(
                        _(
                            "Jenkins forgot queue item %(id)s before the build "
                            "started (HTTP 404): was Jenkins restarted?"
                        )
                        % {"id": queue_id}
                    )
                if state.state == "started":
                    return self._started(state.build_number)
                if state.state == "cancelled":
                    raise JenkinsError(
                        _("The build was cancelled in Jenkins while it was queued.")
                    )
                if time.monotonic() >= deadline:
                    self._quietly(lambda: self.jenkins.cancel_queue(queue_id))
                    raise JenkinsError(
                        _("Jenkins kept the build queued for %(s)g s (%(why)s).")
                        % {"s": timeout, "why": state.why or _("no reason given")}
                    )
                self._pause()

    def _started(self, number: int) -> int:
        self.progress.record(external_id=str(number))
        url = f"{self.cluster.jenkins_url.rstrip('/')}/job/{self.job}/{number}/"
        self.progress.log(f"Jenkins build #{number}: {url}\n")
        return number

    # -- 3. follow -------------------------------------------------------------
    def _follow(self) -> BuildResult:
        while True:
            more = self._read_console()
            if not more:
                info = self._call(
                    lambda: self.jenkins.build_info(self.job, self.number)
                )
                if not info.building:
                    return self._result(info)
            if time.monotonic() >= self.deadline:
                self._stop_in_jenkins()
                raise JenkinsError(
                    _("The Jenkins build did not finish within %(s)g s.")
                    % {"s": settings.FERRY_BUILD_TIMEOUT}
                )
            self._pause()

    def _read_console(self) -> bool:
        """Append what is new in the console; whether more is coming."""
        text, self.offset, more = self._call(
            lambda: self.jenkins.console_since(self.job, self.number, self.offset)
        )
        if text:
            self.progress.log(text)
            self._handle(self.watch.feed(text))
        if not more:
            self._handle(self.watch.finish())
        return more

    def _handle(self, events) -> None:
        for event in events:
            if event.kind == "stage-start":
                self._close_stage()
                self.stage_name = event.value
                self.stage = self.progress.phase(event.value)
                self.stage.__enter__()
            elif event.kind == "stage-end":
                self._close_stage()
            elif event.kind == "commit":
                self.progress.record(commit=event.value)
            elif event.kind == "digest":
                self.progress.record(image_digest=event.value)

    def _close_stage(self) -> None:
        if self.stage is not None:
            stage, self.stage = self.stage, None
            stage.__exit__(None, None, None)

    # -- 4. result -------------------------------------------------------------
    def _result(self, info) -> BuildResult:
        self._close_stage()
        timings = {
            **self.progress.timings,
            "jenkins": round(info.duration_ms / 1000, 3),
        }
        self.progress.timings = timings
        Build.objects.filter(pk=self.build.pk).update(timings=timings)
        if info.result == "SUCCESS":
            self.progress.record(
                image=f"{image_name(self.project)}:{self.build.number}"
            )
            return BuildResult.succeeded()
        if info.result == "ABORTED":
            if self.progress.cancelled(fresh=True):
                return self._stopped()
            line = _("The build was aborted in Jenkins (stopped there, or timed out).")
        elif info.result == "UNSTABLE":
            line = _("Jenkins marked the build UNSTABLE (e.g. failing tests).")
        else:
            line = self.watch.failure_line() or _("Jenkins reported %(result)s.") % {
                "result": info.result or "no result"
            }
        return BuildResult.failed(
            line, self.watch.exit_code, self.stage_name or "build"
        )

    # -- waiting, cancel, outages ----------------------------------------------
    def _check_cancel(self) -> None:
        if self.progress.poll():
            raise Cancelled

    def _pause(self) -> None:
        self._check_cancel()
        time.sleep(self.interval)

    def _call(self, fn: Callable[[], T]) -> T:
        """fn(), waiting out an unreachable Jenkins for the outage grace."""
        grace = float(settings.FERRY_JENKINS_OUTAGE_GRACE)
        while True:
            try:
                value = fn()
            except JenkinsUnreachable as exc:
                now = time.monotonic()
                self._outage_since = self._outage_since or now
                if now - self._outage_since >= grace:
                    raise JenkinsUnreachable(
                        _("%(reason)s (for %(s)g s; the build's state is unknown)")
                        % {"reason": exc.reason, "s": grace}
                    ) from exc
                self._pause()
                continue
            self._outage_since = None
            return value

    def _stop_in_jenkins(self) -> None:
        """Stop our Jenkins build (or queue item); wait a little for its end."""
        if self.number is None:
            queue = (self.progress.build.external_id or "").removeprefix("queue:")
            if queue.isdigit():
                self._quietly(lambda: self.jenkins.cancel_queue(int(queue)))
            return
        self._quietly(lambda: self.jenkins.stop(self.job, self.number))
        deadline = time.monotonic() + float(settings.FERRY_JENKINS_STOP_WAIT)
        while time.monotonic() < deadline:
            # Not through _call: the build is cancelled, outages are not waited out.
            chunk = self._quietly(
                lambda: self.jenkins.console_since(self.job, self.number, self.offset)
            )
            if chunk is None:
                return
            text, self.offset, more = chunk
            self.progress.log(text)
            if not more:
                return
            time.sleep(self.interval)

    def _stopped(self) -> BuildResult:
        """Ended by Ferry (a cancel, or the reaper): the log says which."""
        row = Build.objects.filter(pk=self.build.pk)
        status, line = row.values_list("status", "failure_line").first() or ("", "")
        reaped = status == BuildStatus.FAILED and line
        self.progress.log("\n" + (line if reaped else _("Cancelled.")) + "\n")
        return BuildResult.cancelled()

    def _quietly(self, fn: Callable[[], T]) -> T | None:
        try:
            return fn()
        except JenkinsError as exc:
            self.progress.log(f"\n(Jenkins: {exc.reason})\n")
            return None


def stop_build(build: Build) -> None:
    """The executor's cancel: stop the Jenkins build or drop its queue item."""
    jenkins = cluster_jenkins(build.project.cluster)
    external = build.external_id or ""
    if external.startswith("queue:") and external[6:].isdigit():
        jenkins.cancel_queue(int(external[6:]))
    elif external.isdigit():
        jenkins.stop(job_name(build.project), int(external))
