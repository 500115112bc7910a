"""The upstream gateway's state as the registry pages and the API show it.

Sampling (registries.metrics) records per interval whether the gateway's
container ran and the last error it logged; `gateway_status` turns the
samples into mode (caching | pass-through), running, cache size and limit,
and the last error of the window. Errors come from nginx's error log
(stderr, level error or worse: an upstream refusing connections, timing out,
a redirect target that does not resolve) and from answers of 500 and above
in its access log. Query strings are cut from the text, so presigned
signatures never reach the database or a page.
"""

import re
from datetime import UTC, datetime

from .groundtruth import LogRecord, docker_timestamp_ns
from .models import Registry

MAX_ERROR = 300
_ERROR_LINE = re.compile(
    r"^\d{4}/\d\d/\d\d \d\d:\d\d:\d\d \[(?P<level>error|crit|alert|emerg)\] "
    r"\d+#\d+: (?:\*\d+ )?(?P<text>.*)$"
)
_QUERY = re.compile(r"\?[^\s\",]*")


def _clean(text: str) -> str:
    return _QUERY.sub("?...", text.strip())[:MAX_ERROR]


def error_from_stderr(
    lines: list[str], low_ns: int, high_ns: int
) -> tuple[str, datetime] | None:
    """The last nginx error-log line of level error+ in (low_ns, high_ns]."""
    found = None
    for line in lines:
        stamp, text = docker_timestamp_ns(line)
        if stamp is None or not low_ns < stamp <= high_ns:
            continue
        match = _ERROR_LINE.match(text.strip())
        if match:
            moment = datetime.fromtimestamp(stamp / 1e9, tz=UTC)
            found = (f"[{match['level']}] {_clean(match['text'])}", moment)
    return found


def error_from_records(records: list[LogRecord]) -> tuple[str, datetime] | None:
    """The last gateway answer of 500 or more (e.g. 502: upstream unreachable)."""
    found = None
    for rec in records:
        if rec.side == "upstream" and rec.status >= 500:
            hops = " : ".join(str(s) for s in rec.upstream_statuses) or "-"
            text = f"HTTP {rec.status}: {rec.method} {rec.uri} (upstream {hops})"
            found = (_clean(text), datetime.fromtimestamp(rec.time, tz=UTC))
    return found


def _running(sample) -> bool | None:
    if sample is None:
        return None
    if sample.gateway_running is not None:
        return sample.gateway_running
    return sample.gateway_cache_bytes is not None  # samples before 0005


def gateway_status(registry, latest, since: datetime) -> dict:
    """Mode, running, cache size and limit, last error since `since`."""
    if registry.kind != Registry.Kind.MIRROR:
        return {"status": "none"}
    running = _running(latest)
    if latest is None:
        state = "unknown"
    elif not running:
        state = "down"
    else:
        state = "caching" if registry.gateway_enabled else "pass-through"
    failed = (
        registry.samples.filter(sampled_at__gt=since)
        .exclude(gateway_error="")
        .order_by("-sampled_at")
        .first()
    )
    return {
        "status": state,
        "enabled": registry.gateway_enabled,
        "running": running,
        "port": registry.gateway_port,
        "cache_bytes": latest.gateway_cache_bytes if latest else None,
        "cache_max_bytes": registry.gateway_cache_max_mb * 1024 * 1024,
        "last_error": failed.gateway_error if failed else "",
        "last_error_at": failed.gateway_error_at if failed else None,
    }
