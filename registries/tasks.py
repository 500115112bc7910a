"""Celery tasks of the registries app (ids only; each calls one service).

Beat runs `reconcile_all_registries_task` every FERRY_REGISTRY_RECONCILE_INTERVAL
seconds; it fans out one `registry_reconcile_task` per applied registry, and
each of those skips at once if an apply of that registry holds the lease.
"""

from celery import shared_task
from django.conf import settings
from django.core.exceptions import ValidationError

from . import services
from .apply import error_text
from .models import Registry

# The apply lease lasts FERRY_REGISTRY_APPLY_TIME_LIMIT too (registries.lease).
APPLY_TIME_LIMIT = int(settings.FERRY_REGISTRY_APPLY_TIME_LIMIT)


@shared_task(ignore_result=True, time_limit=APPLY_TIME_LIMIT)
def registry_apply_task(registry_id: int) -> str:
    """Apply one registry (asked for through the API or a page)."""
    try:
        registry = services.registry_apply(registry_id)
    except Registry.DoesNotExist:
        return "gone"
    except services.ApplyBusy as exc:
        return f"skipped: {exc}"
    except ValidationError as exc:
        return f"failed: {error_text(exc)}"
    return registry.status if registry else "gone"


@shared_task(ignore_result=True, time_limit=APPLY_TIME_LIMIT)
def registry_reconcile_task(registry_id: int) -> str:
    return services.registry_reconcile(registry_id)


@shared_task(ignore_result=True)
def reconcile_all_registries_task() -> int:
    """Queue a reconcile pass for every applied registry; how many."""
    ids = services.registries_reconcile_all()
    for registry_id in ids:
        registry_reconcile_task.apply_async(
            (registry_id,), expires=settings.FERRY_REGISTRY_RECONCILE_INTERVAL
        )
    return len(ids)


# -- prewarm ------------------------------------------------------------------------
@shared_task(ignore_result=True, time_limit=3600)
def prewarm_image_task(
    registry_id: int, image: str, actor_id: int | None = None
) -> str:
    """Pull `image` through the mirror (registries.prewarm); audited there."""
    from django.contrib.auth import get_user_model

    from .prewarm import prewarm_image

    registry = Registry.objects.select_related("host", "store").filter(pk=registry_id)
    registry = registry.first()
    if registry is None:
        return "gone"
    actor = get_user_model().objects.filter(pk=actor_id).first() if actor_id else None
    try:
        result = prewarm_image(registry, image, actor=actor, via="task")
    except ValidationError as exc:  # recorded as prewarm_failed by the service
        return f"failed: {'; '.join(exc.messages)}"
    return f"warm: {result.blobs} blobs, {result.bytes} bytes in {result.seconds}s"


# -- metrics (registries/metrics.py) -----------------------------------------------
@shared_task(ignore_result=True, time_limit=300)
def registry_sample_task(registry_id: int) -> str:
    """Count one registry's interval since its previous sample."""
    from . import metrics

    try:
        sample = metrics.registry_sample(registry_id)
    except Registry.DoesNotExist:
        return "gone"
    return f"sample {sample.pk}" if sample else "skipped"


@shared_task(ignore_result=True)
def sample_all_registries_task() -> int:
    """Beat, every FERRY_REGISTRY_SAMPLE_INTERVAL: one sample task per registry."""
    from . import metrics

    ids = metrics.registries_to_sample()
    for registry_id in ids:
        # Dropping an expired sample loses nothing: the next one's window
        # starts where the previous stored sample ended.
        registry_sample_task.apply_async(
            (registry_id,), expires=settings.FERRY_REGISTRY_SAMPLE_INTERVAL
        )
    return len(ids)
