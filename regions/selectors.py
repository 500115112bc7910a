"""Read-side queries shared by pages and the API for regions and hosts."""

from django.db.models import Count, Q, QuerySet

from .models import DockerHost, HostStatus, Region


def regions_with_host_counts() -> QuerySet[Region]:
    """Regions annotated with `hosts_total`, `hosts_up` and `hosts_unreachable`."""
    return Region.objects.annotate(
        hosts_total=Count("hosts", distinct=True),
        hosts_up=Count("hosts", filter=Q(hosts__status=HostStatus.UP), distinct=True),
        hosts_unreachable=Count(
            "hosts", filter=Q(hosts__status=HostStatus.UNREACHABLE), distinct=True
        ),
    )


def hosts_with_region() -> QuerySet[DockerHost]:
    """Hosts with their region loaded (every list shows the region slug)."""
    return DockerHost.objects.select_related("region")
