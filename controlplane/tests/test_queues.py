"""Long work is routed to its own queue, through the real broker.

Builds, cluster provisioning and prewarm publish to the "long" queue (the
builder worker's); everything else stays on the default "celery" queue, so
a few long builds never delay host checks, applies or cancels.
"""

import json

import pytest
import redis
from django.conf import settings

from builds.tasks import build_cancel_task, build_run_task, cluster_provision_task
from registries.tasks import prewarm_image_task, registry_apply_task

LONG = (build_run_task, cluster_provision_task, prewarm_image_task)
QUICK = (build_cancel_task, registry_apply_task)


def queued(broker, queue: str) -> dict[str, bytes]:
    """task id -> raw message, for what waits in `queue`."""
    found = {}
    for raw in broker.lrange(queue, 0, -1):
        found[json.loads(raw)["headers"]["id"]] = raw
    return found


@pytest.mark.integration
def test_long_tasks_go_to_the_long_queue_and_the_rest_stay_on_the_default(
    redis_url,
):
    assert settings.FERRY_LONG_QUEUE == "long"
    broker = redis.Redis.from_url(redis_url)
    args = {prewarm_image_task: (0, "no/such:image")}
    sent = {
        task.name: task.apply_async(args.get(task, ("no-such-id",))).id
        for task in LONG + QUICK
    }
    long_queue, default_queue = queued(broker, "long"), queued(broker, "celery")
    try:
        for task in LONG:
            assert sent[task.name] in long_queue, task.name
            assert sent[task.name] not in default_queue, task.name
        for task in QUICK:
            assert sent[task.name] in default_queue, task.name
    finally:
        for queue, messages in (("long", long_queue), ("celery", default_queue)):
            for task_id, raw in messages.items():
                if task_id in sent.values():
                    broker.lrem(queue, 0, raw)
