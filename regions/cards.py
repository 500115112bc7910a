"""Read side of the overview: one card per region.

Each card is a dict for templates/regions/_region_card.html with keys
`region`, `hosts_up`, `hosts_down`, `hosts_unknown`, `hosts_total`,
`hit_rate` (0..1 or None), `last_build` and `last_deploy` (rows or None).
The registry, build and deploy slots come from the other apps; a slot whose
app has no data yet stays None and the card shows "—".
"""

import logging

from .models import Region
from .selectors import regions_with_host_counts

log = logging.getLogger(__name__)


def region_cards() -> list[dict]:
    """Cards for every region, in slug order, with host counts in one query."""
    regions = regions_with_host_counts()
    return [
        {
            "region": region,
            "hosts_total": region.hosts_total,
            "hosts_up": region.hosts_up,
            "hosts_down": region.hosts_unreachable,
            "hosts_unknown": (
                region.hosts_total - region.hosts_up - region.hosts_unreachable
            ),
            "hit_rate": region_hit_rate(region),
            "last_build": region_last_build(region),
            "last_deploy": region_last_deploy(region),
        }
        for region in regions
    ]


def region_hit_rate(region: Region) -> float | None:
    """Hit rate of the region's mirror, from registries.metrics.registry_stats."""
    from registries.metrics import registry_stats  # regions does not import it at load

    mirror = region.registries.filter(kind="mirror").order_by("pk").first()
    if mirror is None:
        return None
    try:
        stats = registry_stats(mirror) or {}
    except Exception:  # a broken selector must not take the overview down
        log.exception("registry_stats failed for registry %s", mirror.pk)
        return None
    return stats.get("hit_rate")


def region_last_build(region: Region):
    """Newest build of a project whose cluster lives in this region."""
    from builds.models import Build

    return (
        Build.objects.filter(project__cluster__region=region)
        .select_related("project")
        .order_by("-created_at")
        .first()
    )


def region_last_deploy(region: Region):
    """Newest rollout of a service that runs in this region."""
    from deployments.models import Rollout

    return (
        Rollout.objects.filter(service__regions=region)
        .select_related("service")
        .order_by("-created_at")
        .first()
    )
