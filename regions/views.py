"""Overview and host pages."""

from django.shortcuts import render

from .models import Region


def overview(request):
    regions = Region.objects.prefetch_related("hosts")
    return render(request, "regions/overview.html", {"regions": regions})
