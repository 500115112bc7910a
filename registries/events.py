"""Read-side queries over registry events and samples for the pages.

Kept apart from registries/selectors.py (metrics series) so the pages can
show repositories, events and a region's hit rate on their own.
"""

from __future__ import annotations

from datetime import timedelta

from django.db.models import Count, Max, Q
from django.utils import timezone

from .models import Registry, RegistryEvent
from .selectors import combined_hit_rate

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
    """(requests - misses) / requests over the window, as registry_stats
    defines it (not the sum of per-sample hits: a miss's upstream fetch and
    the client's download may land in consecutive samples); None without
    traffic."""
    return combined_hit_rate(registries, window)


def region_hit_rate(region, window: timedelta = timedelta(hours=24)) -> float | None:
    """The hit rate of the region's mirrors together (None: no samples/traffic)."""
    return hit_rate(Registry.objects.filter(region=region, kind="mirror"), window)
