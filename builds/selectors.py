"""Read-side views of builds shared by pages and the API.

Durations are the build's own time (start to finish, the "total" timing);
queue time is shown apart. Percentiles use the nearest-rank method over the
project's recent succeeded builds, so p95 of 20 builds is the 19th fastest.
"""

import math
from dataclasses import dataclass

from django.db.models import Count, OuterRef, Q, QuerySet, Subquery

from .models import BUILD_TERMINAL_STATES, Build, BuildCluster, BuildStatus, Project
from .queue import queue_positions, queued_outer_count

PHASES = ("source", "dependencies", "build", "push")
RECENT = 50


def percentile(values: list[float], fraction: float) -> float | None:
    """Nearest-rank percentile (fraction 0..1) of values; None when empty."""
    if not values:
        return None
    ordered = sorted(values)
    rank = max(1, math.ceil(fraction * len(ordered)))
    return ordered[rank - 1]


def _mean(values: list[float]) -> float | None:
    return sum(values) / len(values) if values else None


def build_seconds(build: Build) -> float | None:
    total = (build.timings or {}).get("total")
    return float(total) if total is not None else build.duration


@dataclass(frozen=True)
class ProjectStats:
    builds: int  # finished builds considered (succeeded + failed)
    succeeded: int
    success_rate: float | None  # 0..1
    p50: float | None  # seconds, succeeded builds
    p95: float | None
    warm_builds: int
    cold_builds: int
    warm_mean: float | None  # mean total seconds of succeeded warm builds
    cold_mean: float | None
    warm_dependencies: float | None  # mean dependency-phase seconds
    cold_dependencies: float | None


def project_stats(project: Project, recent: int = RECENT) -> ProjectStats:
    """Success rate, p50/p95 and warm-vs-cold means over recent finished builds."""
    finished = list(
        project.builds.filter(status__in=[BuildStatus.SUCCEEDED, BuildStatus.FAILED])
        .order_by("-created_at")
        .only("status", "timings", "cache", "started_at", "finished_at")[:recent]
    )
    ok = [b for b in finished if b.status == BuildStatus.SUCCEEDED]
    seconds = [s for b in ok if (s := build_seconds(b)) is not None]
    warm = [b for b in ok if (b.cache or {}).get("warm") is True]
    cold = [b for b in ok if (b.cache or {}).get("warm") is False]

    def mean_of(builds, key=None):
        if key is None:
            return _mean([s for b in builds if (s := build_seconds(b)) is not None])
        return _mean([b.timings[key] for b in builds if key in (b.timings or {})])

    return ProjectStats(
        builds=len(finished),
        succeeded=len(ok),
        success_rate=(len(ok) / len(finished)) if finished else None,
        p50=percentile(seconds, 0.50),
        p95=percentile(seconds, 0.95),
        warm_builds=len(warm),
        cold_builds=len(cold),
        warm_mean=mean_of(warm),
        cold_mean=mean_of(cold),
        warm_dependencies=mean_of(warm, "dependencies"),
        cold_dependencies=mean_of(cold, "dependencies"),
    )


def duration_trend(project: Project, recent: int = 30) -> list[dict]:
    """Oldest-first points for the trend chart: phases per finished build."""
    builds = list(
        project.builds.filter(status__in=BUILD_TERMINAL_STATES)
        .order_by("-created_at")
        .only("number", "status", "timings", "cache", "started_at", "finished_at")[
            :recent
        ]
    )
    return [
        {
            "number": b.number,
            "status": b.status,
            "warm": (b.cache or {}).get("warm"),
            "total": build_seconds(b),
            "queue": (b.timings or {}).get("queue"),
            **{phase: (b.timings or {}).get(phase) for phase in PHASES},
        }
        for b in reversed(builds)
    ]


def waterfall(build: Build) -> list[dict]:
    """Phases in order with offset and width (percent of the whole) for bars.

    Phases run one after another, so a phase starts where the previous one
    ended; queue time comes first.
    """
    timings = build.timings or {}
    names = ["queue", *PHASES]
    names += [n for n in timings if n not in names and n != "total"]
    rows = [(n, float(timings[n])) for n in names if timings.get(n) is not None]
    whole = sum(seconds for _n, seconds in rows) or 1.0
    out, offset = [], 0.0
    for name, seconds in rows:
        out.append(
            {
                "name": name,
                "seconds": seconds,
                "offset_pct": round(100 * offset / whole, 2),
                "width_pct": max(round(100 * seconds / whole, 2), 0.5),
            }
        )
        offset += seconds
    return out


def builds_with_relations() -> QuerySet:
    return Build.objects.select_related(
        "project", "project__cluster", "agent", "requested_by"
    )


def cluster_queue(cluster: BuildCluster) -> dict:
    """Running and queued builds of a cluster, queued ones with positions."""
    active = builds_with_relations().filter(
        project__cluster=cluster, status__in=[BuildStatus.RUNNING, BuildStatus.QUEUED]
    )
    running = [b for b in active if b.status == BuildStatus.RUNNING]
    queued = sorted(
        (b for b in active if b.status == BuildStatus.QUEUED),
        key=lambda b: (b.created_at, b.number),
    )
    positions: dict = {}
    for agent_id in {b.agent_id for b in queued if b.agent_id}:
        positions.update(queue_positions(agent_id))
    for build in queued:
        build.queue_position = positions.get(build.pk)
    return {"running": running, "queued": queued}


def cluster_agents(cluster: BuildCluster) -> QuerySet:
    """The cluster's agents with `running` and `queued` counts."""
    return cluster.agents.annotate(
        running=Count("builds", filter=Q(builds__status=BuildStatus.RUNNING)),
        queued=queued_outer_count(),
    ).order_by("kind")


def projects_with_last_build() -> QuerySet:
    """Projects with the number, status and id of their latest build."""
    last = Build.objects.filter(project=OuterRef("pk")).order_by("-created_at")
    return Project.objects.select_related("cluster", "cluster__region").annotate(
        last_number=Subquery(last.values("number")[:1]),
        last_status=Subquery(last.values("status")[:1]),
        last_id=Subquery(last.values("id")[:1]),
    )
