"""Read-side series for the registry page charts and the API.

Samples are per-interval counters (registries/metrics.py); these group them
into equal time buckets. A bucket without requests has hit_rate None (a gap
in the chart, not a 0%).
"""

from dataclasses import dataclass
from datetime import datetime, timedelta

from django.db.models import Sum
from django.utils import timezone

from .models import RegistrySample

WINDOWS = {"24h": (timedelta(hours=24), 24), "7d": (timedelta(days=7), 28)}


@dataclass
class Bucket:
    start: datetime
    requests: int = 0
    hits: int = 0
    misses: int = 0
    bytes_upstream: int = 0
    bytes_served: int = 0

    @property
    def hit_rate(self) -> float | None:
        return self.hits / self.requests if self.requests else None

    def add(self, requests: int, misses: int, up: int, served: int) -> None:
        self.requests += requests
        self.misses += misses
        self.bytes_upstream += up
        self.bytes_served += served
        # requests - misses over the bucket (see metrics.registry_stats).
        self.hits = max(self.requests - self.misses, 0)

    def as_dict(self) -> dict:
        return {
            "start": self.start.isoformat(),
            "requests": self.requests,
            "hits": self.hits,
            "misses": self.misses,
            "hit_rate": self.hit_rate,
            "bytes_upstream": self.bytes_upstream,
            "bytes_served": self.bytes_served,
        }


def _buckets(
    window: timedelta, count: int, now: datetime
) -> tuple[datetime, timedelta]:
    step = window / count
    return now - window, step


def hit_rate_series(
    registry, window: str = "24h", now: datetime | None = None
) -> list[dict]:
    """`window` "24h" (hourly buckets) or "7d" (6-hourly): one dict per bucket,
    oldest first, with requests, hits, misses, hit_rate and bytes."""
    span, count = WINDOWS[window]
    start, step = _buckets(span, count, now or timezone.now())
    buckets = [Bucket(start=start + step * i) for i in range(count)]
    samples = registry.samples.filter(sampled_at__gt=start).values_list(
        "sampled_at", "requests", "misses", "bytes_upstream", "bytes_served"
    )
    for at, *counts in samples:
        buckets[min(int((at - start) / step), count - 1)].add(*counts)
    return [bucket.as_dict() for bucket in buckets]


def bytes_saved(registry, window: timedelta = timedelta(days=7)) -> int:
    """Bytes clients received that did not cross the region boundary."""
    series = registry.samples.filter(sampled_at__gt=timezone.now() - window)
    served = sum(series.values_list("bytes_served", flat=True))
    upstream = sum(series.values_list("bytes_upstream", flat=True))
    return max(served - upstream, 0)


def storage_growth(
    registry, window: str = "7d", now: datetime | None = None
) -> list[dict]:
    """The last storage gauge of each bucket (None where nothing was measured)."""
    span, count = WINDOWS[window]
    start, step = _buckets(span, count, now or timezone.now())
    points: list[dict] = [
        {
            "start": (start + step * i).isoformat(),
            "storage_bytes": None,
            "objects": None,
        }
        for i in range(count)
    ]
    samples = (
        registry.samples.filter(sampled_at__gt=start, storage_bytes__isnull=False)
        .order_by("sampled_at")
        .values_list("sampled_at", "storage_bytes", "object_count")
    )
    for at, size, objects in samples:
        index = min(int((at - start) / step), count - 1)
        points[index].update(storage_bytes=size, objects=objects)
    return points


def combined_hit_rate(registries, window: timedelta = timedelta(hours=24)):
    """Hit rate of several mirrors together (a region card), defined as in
    metrics.registry_stats: (requests - misses) / requests; None without
    traffic."""
    totals = RegistrySample.objects.filter(
        registry__in=registries, sampled_at__gt=timezone.now() - window
    ).aggregate(requests=Sum("requests"), misses=Sum("misses"))
    requests, misses = totals["requests"] or 0, totals["misses"] or 0
    return max(requests - misses, 0) / requests if requests else None


def upstream_by_repository(registry, start: datetime) -> list[dict]:
    """Bytes from upstream per repository since `start`, largest first:
    [{"repository": "team/app", "bytes_upstream": n}] (the samples' split of
    bytes_upstream; requests without a repository, like /v2/, are not in it)."""
    totals: dict[str, int] = {}
    rows = registry.samples.filter(sampled_at__gt=start).values_list(
        "upstream_by_repository", flat=True
    )
    for split in rows:
        for repository, size in (split or {}).items():
            totals[repository] = totals.get(repository, 0) + int(size or 0)
    ranked = sorted(totals.items(), key=lambda item: (-item[1], item[0]))
    return [{"repository": r, "bytes_upstream": n} for r, n in ranked]
