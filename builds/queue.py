"""Agent slots: which queued builds may start, and in what order.

A build holds a slot of its agent while RUNNING. `agent_kick` fills free
slots with the oldest queued builds of that agent and publishes their run
tasks; it runs when a build is created, when one ends or is cancelled, and
from the reaper (so a lost message cannot strand a queue).

Claiming is one conditional UPDATE (queued -> running only while the agent
has fewer RUNNING builds than its concurrency), under a row lock on the
agent: PostgreSQL serialises claimers on that lock, SQLite on its single
writer, so two workers can never both take the last slot.
"""

from django.db import transaction
from django.db.models import Count, IntegerField, OuterRef, Subquery, Value
from django.db.models.functions import Coalesce
from django.utils import timezone

from .models import Build, BuildAgent, BuildStatus


def _running_count(agent_id: int) -> Coalesce:
    running = (
        Build.objects.filter(agent_id=agent_id, status=BuildStatus.RUNNING)
        .order_by()
        .values("agent_id")
        .annotate(n=Count("pk"))
        .values("n")
    )
    return Coalesce(Subquery(running), Value(0), output_field=IntegerField())


def build_claim(agent: BuildAgent, build_id) -> bool:
    """Move one queued build to RUNNING if the agent has a free slot."""
    now = timezone.now()
    claimed = (
        Build.objects.filter(pk=build_id, status=BuildStatus.QUEUED)
        .alias(running=_running_count(agent.pk))
        .filter(running__lt=agent.concurrency)
        .update(status=BuildStatus.RUNNING, started_at=now, phase="")
    )
    if claimed:
        build = Build.objects.get(pk=build_id)
        queue_seconds = round((now - build.created_at).total_seconds(), 3)
        timings = {**build.timings, "queue": max(queue_seconds, 0.0)}
        Build.objects.filter(pk=build_id).update(timings=timings)
    return bool(claimed)


def agent_claim_next(agent_id: int) -> list:
    """Claim the oldest queued builds of the agent into its free slots; their ids."""
    claimed = []
    with transaction.atomic():
        # NO KEY UPDATE: still serialises claimers, but does not block (or
        # deadlock with) transactions inserting builds that reference the agent.
        agent = (
            BuildAgent.objects.select_for_update(no_key=True)
            .filter(pk=agent_id)
            .first()
        )
        if agent is None:
            return claimed
        queued = Build.objects.filter(agent=agent, status=BuildStatus.QUEUED)
        for build_id in queued.order_by("created_at", "number").values_list(
            "pk", flat=True
        )[: agent.concurrency]:
            if not build_claim(agent, build_id):
                break  # slots are full
            claimed.append(build_id)
    return claimed


def agent_kick(agent_id: int, publish: bool = True) -> list:
    """Fill the agent's free slots and publish a run task per claimed build."""
    from .tasks import build_run_task  # tasks import services; avoid a cycle

    claimed = agent_claim_next(agent_id)
    if publish:
        for build_id in claimed:
            build_run_task.apply_async_on_commit(
                args=[str(build_id)], task_id=str(build_id)
            )
    return claimed


def queue_positions(agent_id: int) -> dict:
    """Queued build id -> 1-based position in its agent's queue."""
    ids = Build.objects.filter(agent_id=agent_id, status=BuildStatus.QUEUED).order_by(
        "created_at", "number"
    )
    return {pk: index for index, pk in enumerate(ids.values_list("pk", flat=True), 1)}


def queue_position(build: Build) -> int | None:
    """1-based position of a queued build among its agent's queued builds."""
    if build.status != BuildStatus.QUEUED or build.agent_id is None:
        return None
    ahead = Build.objects.filter(
        agent_id=build.agent_id,
        status=BuildStatus.QUEUED,
        created_at__lt=build.created_at,
    ).count()
    return ahead + 1


def running_count(agent_id: int) -> int:
    return Build.objects.filter(agent_id=agent_id, status=BuildStatus.RUNNING).count()


def queued_outer_count():
    """Subquery: queued builds per agent (for annotating agent lists)."""
    rows = (
        Build.objects.filter(agent_id=OuterRef("pk"), status=BuildStatus.QUEUED)
        .order_by()
        .values("agent_id")
        .annotate(n=Count("pk"))
        .values("n")
    )
    return Coalesce(Subquery(rows), Value(0), output_field=IntegerField())
