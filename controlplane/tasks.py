"""Control-plane tasks: a liveness ping that proves a worker reaches the DB."""

from celery import shared_task

from .models import AuditEvent


@shared_task
def ping_task(marker: str) -> None:
    """Leave an AuditEvent tagged with marker, so callers can see the run."""
    AuditEvent.objects.create(
        actor_name="system",
        via="system",
        action="ping",
        object_type="controlplane.worker",
        object_id=marker[:64],
        object_repr="worker ping",
    )
