"""Registry metrics from ground truth: sampling service and the stats selector.

`registry_sample(registry_id)` reads, through the docker API, the access logs
of the mirror's two nginx containers since the previous sample (served side:
`ferry-reg-<id>-nginx`; upstream side: `ferry-reg-<id>-gateway`), counts the
interval with `groundtruth.summarize`, adds gauges (object-store usage, the
gateway cache's disk use) and stores one RegistrySample. The previous
sample's `sampled_at` is the cursor: a log line belongs to the sample whose
window (previous sampled_at, sampled_at] holds its docker timestamp, compared
in nanoseconds, so no line is counted twice or skipped.

`registry_stats(registry, window)` sums the samples of a window for the API
and the pages (definitions in registries/groundtruth.py).
"""

import logging
from datetime import datetime, timedelta

from django.conf import settings
from django.db import transaction
from django.db.models import Sum
from django.utils import timezone

from adapters import object_storage
from adapters.errors import AdapterError

from .gateway_status import error_from_records, error_from_stderr, gateway_status
from .groundtruth import Interval, LogRecord, docker_timestamp_ns, parse_line, summarize
from .models import Registry, RegistrySample
from .selectors import upstream_by_repository

log = logging.getLogger(__name__)

COUNTERS = ("requests", "hits", "misses", "bytes_upstream", "bytes_served")
# Also per interval, summed over a window: bytes_missed is amplification's
# denominator, upstream_requests what reached the upstream (any kind).
EXTRA_COUNTERS = ("bytes_missed", "upstream_requests")
METERED = ("nginx", "gateway")  # the containers whose access logs count


def container_name(registry_id: int, role: str) -> str:
    return f"ferry-reg-{registry_id}-{role}"


def gateway_cache_volume(registry_id: int) -> str:
    return f"ferry-reg-{registry_id}-gwcache"


def _ns(moment: datetime) -> int:
    return int(moment.timestamp()) * 10**9 + moment.microsecond * 1000


def _read(conn, name: str, since: datetime | None, until: datetime):
    """(records in (since, until], container running?) of one container."""
    from adapters.container_logs import container_log_lines

    chunk = container_log_lines(
        conn, name, since.timestamp() if since else None, until.timestamp()
    )
    if chunk is None:
        return [], False
    low, high = (_ns(since) if since else -1), _ns(until)
    records: list[LogRecord] = []
    for line in chunk.lines:
        stamp, _ = docker_timestamp_ns(line)
        if stamp is None or not low < stamp <= high:
            continue
        record = parse_line(line)
        if record is not None:
            records.append(record)
    return records, chunk.running


def _store_gauges(registry, now: datetime) -> dict:
    """storage_bytes, object_count, abandoned_upload_bytes of the object store.

    Listing a bucket is slow, so a recent sample's figures are reused.
    """
    every = timedelta(seconds=settings.FERRY_REGISTRY_USAGE_INTERVAL)
    previous = RegistrySample.objects.filter(
        registry=registry, storage_bytes__isnull=False
    ).first()
    if previous and now - previous.sampled_at < every:
        return {
            "storage_bytes": previous.storage_bytes,
            "object_count": previous.object_count,
            "abandoned_upload_bytes": previous.abandoned_upload_bytes,
        }
    gauges = {}
    try:
        usage = object_storage.store_usage(registry.store)
        if usage is not None:
            gauges.update(storage_bytes=usage.bytes, object_count=usage.objects)
        abandoned = object_storage.abandoned_upload_bytes(registry.store)
        gauges["abandoned_upload_bytes"] = abandoned
    except AdapterError as exc:
        log.warning("registry %s: store usage unavailable: %s", registry.pk, exc)
    return gauges


def _gateway_fields(conn, registry, since, until, refs, upstream, running) -> dict:
    """The gateway's columns of a sample: running, cache use, last error.

    `refs`: the gateway containers whose stderr to read (current + retiring),
    `upstream`: their access-log records of the window.
    """
    if registry.kind != Registry.Kind.MIRROR:
        return {}
    from adapters.container_logs import container_error_lines, volume_bytes

    low, high = (_ns(since) if since else -1), _ns(until)
    stderr = container_error_lines(
        conn, refs, since.timestamp() if since else None, until.timestamp()
    )
    error = error_from_stderr(stderr, low, high) or error_from_records(upstream)
    cache = volume_bytes(conn, gateway_cache_volume(registry.pk)) if running else None
    return {
        "gateway_running": running,
        "gateway_cache_bytes": cache,
        "gateway_error": error[0] if error else "",
        "gateway_error_at": error[1] if error else None,
    }


def _interval(
    registry, conn, since, until, retiring: tuple[tuple[str, str], ...] = ()
) -> tuple[Interval, dict]:
    """Both sides' records of the window counted, and the gateway's columns."""
    if registry.kind != Registry.Kind.MIRROR:
        return Interval(), {}
    gateway = container_name(registry.pk, "gateway")
    served, _ = _read(conn, container_name(registry.pk, "nginx"), since, until)
    upstream, running = _read(conn, gateway, since, until)
    refs = [gateway]
    for role, ref in retiring:
        records = _read(conn, ref, since, until)[0] if role in METERED else []
        (upstream if role == "gateway" else served).extend(records)
        refs += [ref] if role == "gateway" else []
    fields = _gateway_fields(conn, registry, since, until, refs, upstream, running)
    return summarize(served + upstream), fields


def registry_sample(
    registry_id: int,
    now: datetime | None = None,
    *,
    flush: bool = False,
    retiring: tuple[tuple[str, str], ...] = (),
    lease: str = "",
):
    """Count the interval since the previous sample; the new RegistrySample.

    1. the window ends FERRY_REGISTRY_LOG_LAG seconds ago (docker may still
       be delivering the newest lines) and starts at the previous sample;
    2. both access logs are read and counted, gauges measured;
    3. the sample is stored only if no other sample landed meanwhile
       (compare-and-set on the cursor) and no apply holds the registry's
       lease (other than `lease`); None if skipped or the host is down (the
       cursor stays, so the next sample covers the gap).

    An apply about to remove containers (replace, repair, move) calls it with
    `flush=True` after stopping them: the window then ends now (a stopped
    container's log is complete), and `retiring` lists (role, container id)
    of stopped containers no longer under their role's name, read as well,
    so none of their requests is lost with them.
    """
    registry = Registry.objects.select_related("host", "store").get(pk=registry_id)
    lag = 0 if flush else settings.FERRY_REGISTRY_LOG_LAG
    until = (now or timezone.now()) - timedelta(seconds=lag)
    last = registry.samples.order_by("-sampled_at").first()
    since = last.sampled_at if last else None
    if since is not None and until <= since:
        return None
    from regions.services import host_connection

    conn = host_connection(registry.host)
    try:
        interval, gateway = _interval(registry, conn, since, until, retiring)
    except AdapterError as exc:
        log.warning("registry %s: not sampled: %s", registry_id, exc)
        return None
    fields = {name: getattr(interval, name) for name in (*COUNTERS, *EXTRA_COUNTERS)}
    fields["upstream_by_repository"] = interval.upstream_by_repository
    fields.update(_store_gauges(registry, until), **gateway)
    return _create_if_current(registry, since, until, fields, lease)


@transaction.atomic
def _create_if_current(registry, since, until, fields, lease: str):
    row = Registry.objects.select_for_update().filter(pk=registry.pk).first()
    if row is None:
        return None  # deleted meanwhile
    expires = row.apply_lock_expires_at
    applying = row.apply_lock and expires and expires > timezone.now()
    if applying and row.apply_lock != lease:
        # The apply may be swapping containers: it samples them itself before
        # removing any, and the next sample after it covers this window.
        return None
    latest = registry.samples.order_by("-sampled_at").first()
    if (latest.sampled_at if latest else None) != since:
        return None  # another sampler counted this window already
    return RegistrySample.objects.create(registry=registry, sampled_at=until, **fields)


def registry_stats(registry, window: timedelta = timedelta(hours=24)) -> dict:
    """Counters summed over `window`, the latest gauges, and the derived rates:
    hits = requests - misses; hit_rate = hits / requests;
    amplification = bytes_upstream / bytes_missed (cross-region bytes per
    pulled byte); bytes_saved = served - upstream; upstream_by_repository =
    bytes_upstream split by repository, largest first."""
    start = timezone.now() - window
    samples = registry.samples.filter(sampled_at__gt=start)
    sums = samples.aggregate(
        **{name: Sum(name) for name in (*COUNTERS, *EXTRA_COUNTERS)}
    )
    counts = {name: int(sums[name] or 0) for name in COUNTERS}
    # Over a window, not the sum of per-sample hits: a miss's upstream fetch
    # and the client's download of it may land in consecutive samples.
    counts["hits"] = max(counts["requests"] - counts["misses"], 0)
    missed = int(sums["bytes_missed"] or 0)
    latest = registry.samples.order_by("-sampled_at").first()
    return {
        **counts,
        "hit_rate": counts["hits"] / counts["requests"] if counts["requests"] else None,
        "bytes_missed": missed,
        "amplification": counts["bytes_upstream"] / missed if missed else None,
        "bytes_saved": max(counts["bytes_served"] - counts["bytes_upstream"], 0),
        "upstream_requests": int(sums["upstream_requests"] or 0),
        "upstream_by_repository": upstream_by_repository(registry, start),
        "storage_bytes": latest.storage_bytes if latest else None,
        "objects": latest.object_count if latest else None,
        "abandoned_upload_bytes": latest.abandoned_upload_bytes if latest else None,
        "sampled_at": latest.sampled_at if latest else None,
        "window_seconds": int(window.total_seconds()),
        "gateway": gateway_status(registry, latest, start),
    }


def registries_to_sample() -> list[int]:
    """Every registry that has been applied (pending rows have no containers)."""
    return list(
        Registry.objects.exclude(last_applied_at=None)
        .order_by("pk")
        .values_list("pk", flat=True)
    )
