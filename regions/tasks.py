"""Host health tasks: beat runs `check_all_hosts_task`, which fans out.

Each host check holds a per-host lock in the cache (cache.add, with an
expiry so a killed worker cannot hold it forever); a host whose check is
still running is skipped rather than queued twice, and a queued check
expires after one interval (workers busy with builds do not pile them up).
"""

from celery import shared_task
from django.conf import settings
from django.core.cache import cache

from .models import DockerHost
from .services import host_check


def host_lock_key(host_id: int) -> str:
    return f"ferry:host-check:{host_id}"


def host_lock_ttl() -> int:
    # Long enough for the slowest check (connect + two calls), short enough
    # that a crashed worker's lock does not stop checks for long.
    return int(settings.FERRY_DOCKER_TIMEOUT * 3) + 5


@shared_task(ignore_result=True, time_limit=120)
def check_host_task(host_id: int) -> str:
    """Check one host unless another check of it holds the lock."""
    key = host_lock_key(host_id)
    if not cache.add(key, "1", timeout=host_lock_ttl()):
        return "skipped: check already running"
    try:
        host = host_check(host_id)
    finally:
        cache.delete(key)
    return host.status if host else "gone"


@shared_task(ignore_result=True)
def check_all_hosts_task() -> int:
    """Queue a check for every host whose lock is free; return how many."""
    queued = 0
    for host_id in DockerHost.objects.values_list("pk", flat=True):
        if cache.get(host_lock_key(host_id)) is not None:
            continue
        # A check still queued when the next fan-out comes is worthless.
        check_host_task.apply_async(
            (host_id,), expires=settings.FERRY_HOST_HEALTH_INTERVAL
        )
        queued += 1
    return queued
