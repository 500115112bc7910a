"""Running builds: the worker side of the build lifecycle.

    queued --claim--> running --executor.start--> succeeded | failed
       \\                 \\--cancel / reaper----> cancelled | failed
        \\--cancel--> cancelled

Every status change is a compare-and-set on the old status, so a cancel
that wins the race against a finishing build stays cancelled. When a build
ends, its agent's queue is kicked: the next queued build starts at once.
"""

import logging

from django.conf import settings
from django.db import transaction
from django.utils import timezone
from django.utils.translation import gettext as _

from adapters.errors import AdapterError

from .executors import BuildResult, executor_for
from .models import BUILD_ACTIVE_STATES, Build, BuildAgent, BuildStatus
from .progress import db_text
from .queue import agent_kick

log = logging.getLogger(__name__)

STARTING = "starting"  # phase set once, by the one task that runs the build


def build_run(build_id) -> str:
    """Claim a slot (or stay queued), run the executor, finish, kick the queue.

    1. Reload; return unless the build is still active.
    2. Queued: try to claim a slot for the agent; still queued -> return
       (a later kick publishes this build again).
    3. Running: take the build with a compare-and-set on `phase` so that a
       duplicate delivery of the task cannot run it twice.
    4. Run the executor, finish by compare-and-set, kick the agent's queue.
    """
    build = Build.objects.filter(pk=build_id).first()
    if build is None or not build.active:
        return "stale"
    if build.agent_id is None:
        # Its agent was deleted while it waited: nothing can ever run it.
        Build.objects.filter(pk=build.pk, status__in=BUILD_ACTIVE_STATES).update(
            status=BuildStatus.FAILED,
            finished_at=timezone.now(),
            failure_line=_("The build's agent no longer exists."),
        )
        return "failed"
    if build.status == BuildStatus.QUEUED:
        claimed = agent_kick(build.agent_id, publish=False)
        _publish_others(claimed, build.pk)
        if build.pk not in claimed:
            return "queued"
    taken = Build.objects.filter(pk=build.pk, status=BuildStatus.RUNNING, phase="")
    if not taken.update(phase=STARTING):
        return "already started"
    build.refresh_from_db()
    result = _execute(build)
    build_finish(build, result)
    return result.status


def _publish_others(claimed: list, own_id) -> None:
    from .tasks import build_run_task

    for other in claimed:
        if other != own_id:
            build_run_task.apply_async_on_commit(args=[str(other)], task_id=str(other))


def _execute(build: Build) -> BuildResult:
    """The executor's result; exceptions become a failed result."""
    cluster = build.project.cluster
    try:
        return executor_for(cluster).start(build)
    except AdapterError as exc:
        return BuildResult.failed(exc.reason)
    except Exception as exc:
        log.exception("build %s: executor crashed", build.pk)
        return BuildResult.failed(f"{type(exc).__name__}: {exc}")


def build_finish(build: Build, result: BuildResult) -> bool:
    """Record the end of a running build (compare-and-set); kick its queue.

    The row may be gone (deleted while the executor ran): nothing is left to
    record, but the agent's slot is free, so its queue is kicked all the same.
    """
    now = timezone.now()
    current = Build.objects.filter(pk=build.pk).first()
    if current is None:
        log.warning("build %s: the row vanished before it finished", build.pk)
        if build.agent_id:
            agent_kick(build.agent_id)
        return False
    timings = dict(current.timings or {})
    if current.started_at:
        timings["total"] = round((now - current.started_at).total_seconds(), 3)
    fields = {
        "timings": timings,
        "status": result.status,
        "finished_at": now,
        "failure_line": db_text(result.failure_line[:2000]),
        "exit_code": result.exit_code,
        "phase": result.phase if result.status == BuildStatus.FAILED else "",
    }
    won = Build.objects.filter(pk=build.pk, status=BuildStatus.RUNNING).update(**fields)
    if not won:
        # Cancelled or reaped meanwhile: keep that status, store the timings.
        Build.objects.filter(pk=build.pk).update(timings=timings)
    if build.agent_id:
        agent_kick(build.agent_id)
    return bool(won)


def build_stop(build_id) -> str:
    """Ask the executor to stop what still runs for an ended build."""
    build = Build.objects.filter(pk=build_id).select_related("project__cluster").first()
    if build is None:
        return "gone"
    try:
        executor_for(build.project.cluster).cancel(build)
    except AdapterError as exc:
        log.warning("build %s: stop failed: %s", build.pk, exc.reason)
        return f"failed: {exc.reason}"
    return "stopped"


def builds_reap(now=None) -> dict:
    """Fail builds running past FERRY_BUILD_TIMEOUT; kick every waiting queue."""
    from .tasks import build_cancel_task

    now = now or timezone.now()
    deadline = now - timezone.timedelta(seconds=settings.FERRY_BUILD_TIMEOUT)
    reaped = []
    for build in Build.objects.filter(
        status=BuildStatus.RUNNING, started_at__lt=deadline
    ):
        line = _("Stopped by the reaper: still running after %(s)d s (the limit).") % {
            "s": settings.FERRY_BUILD_TIMEOUT
        }
        with transaction.atomic():
            won = Build.objects.filter(pk=build.pk, status=BuildStatus.RUNNING).update(
                status=BuildStatus.FAILED, finished_at=now, failure_line=line
            )
            if won:
                reaped.append(build.pk)
                build_cancel_task.delay_on_commit(str(build.pk))
    kicked = 0
    agents = BuildAgent.objects.filter(builds__status=BuildStatus.QUEUED).distinct()
    for agent_id in agents.values_list("pk", flat=True):
        kicked += len(agent_kick(agent_id))
    return {"reaped": reaped, "kicked": kicked}
