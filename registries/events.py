"""Read-side queries over registry events and samples for the pages.

Kept apart from registries/selectors.py (metrics series) so the pages can
show repositories, events and a region's hit rate on their own.
"""

from __future__ import annotations

from datetime import timedelta

from django.db.models import Count, Max, Q, Sum
from django.utils import timezone

from .models import Registry, RegistryEvent, RegistrySample

DEFAULT_WINDOW = timedelta(days=7)


def top_repositories(
    registry: Registry, window: timedelta = DEFAULT_WINDOW, limit: int = 10
) -> list[dict]:
    """Repositories by manifest pulls in the window, with pushes and last seen."""
    since = timezone.now() - window
    rows = (
        RegistryEvent.objects.filter(registry=registry, at__gte=since)
        .values("repository")
        .annotate(
            pulls=Count("id", filter=Q(action="pull")),
            pushes=Count("id", filter=Q(action="push")),
            last_at=Max("at"),
        )
        .order_by("-pulls", "-pushes", "repository")[:limit]
    )
    return list(rows)


def recent_events(registry: Registry, limit: int = 20) -> list[RegistryEvent]:
    return list(RegistryEvent.objects.filter(registry=registry).order_by("-at")[:limit])


def hit_rate(registries, window: timedelta = timedelta(hours=24)) -> float | None:
    """hits / requests over the window's samples (as registry_stats defines it);
    None without traffic."""
    since = timezone.now() - window
    totals = RegistrySample.objects.filter(
        registry__in=registries, sampled_at__gt=since
    ).aggregate(hits=Sum("hits"), requests=Sum("requests"))
    hits, requests = totals["hits"] or 0, totals["requests"] or 0
    return hits / requests if requests else None


def region_hit_rate(region, window: timedelta = timedelta(hours=24)) -> float | None:
    """The hit rate of the region's mirrors together (None: no samples/traffic)."""
    return hit_rate(Registry.objects.filter(region=region, kind="mirror"), window)
