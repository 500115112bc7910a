"""Celery tasks of the builds app: ids in, one service call each.

A build's run task has the build's uuid as its task id. `build_run_task`
blocks its worker for the whole build, so its time limit follows the build
timeout (the reaper fails it earlier and says why).
"""

from celery import shared_task
from django.conf import settings

from . import runs, services
from .queue import agent_kick


@shared_task(ignore_result=True, time_limit=int(settings.FERRY_BUILD_TIMEOUT) + 600)
def build_run_task(build_id: str) -> str:
    """Run a build if it can have a slot (or leave it queued)."""
    return runs.build_run(build_id)


@shared_task(ignore_result=True, time_limit=300)
def build_cancel_task(build_id: str) -> str:
    """Stop what still runs for a cancelled (or reaped) build."""
    return runs.build_stop(build_id)


@shared_task(ignore_result=True, time_limit=60)
def agent_kick_task(agent_id: int) -> int:
    """Start the agent's next queued builds if it has free slots."""
    return len(agent_kick(agent_id))


@shared_task(ignore_result=True, time_limit=900)
def cluster_provision_task(cluster_id: int) -> str:
    """Make the cluster's host match the cluster (volumes, files, images)."""
    cluster = services.cluster_provision(cluster_id)
    return cluster.status if cluster else "gone"


@shared_task(ignore_result=True, time_limit=300)
def reap_builds_task() -> dict:
    """Fail builds stuck past the deadline; restart waiting queues."""
    result = runs.builds_reap()
    return {"reaped": [str(pk) for pk in result["reaped"]], "kicked": result["kicked"]}
