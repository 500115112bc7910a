"""Ground truth for registry metrics: the nginx access-log formats and parsers.

Two nginx instances per mirror write one JSON object per line to stdout:

* the SERVED side (`ferry-reg-<id>-nginx`, in front of the mirror): what
  clients really received;
* the UPSTREAM side (`ferry-reg-<id>-gateway`, between the mirror and its
  upstream): what really crossed the region boundary, including the bytes of
  object-storage fetches the gateway made when the upstream redirected.

Registry 2.8's own proxy counters are wrong, so hit rate and bytes come from
these lines. Neither format contains Authorization, cookies, query strings
(presigned URLs carry signatures) or passwords; `remote_user` is the htpasswd
user name only.

Definitions used by `summarize` (one sampling interval):

* requests       - client blob GETs answered 200/206 on the served side;
* misses         - distinct blob digests whose body really came from upstream;
* hits           - requests - misses (never below 0);
* bytes_upstream - body bytes received from upstream, every hop summed
                   (registry answer + redirected object-storage fetch);
* bytes_missed   - the sizes of those distinct missed blobs, each once;
* amplification  - bytes_upstream / bytes_missed: cross-region bytes per
                   pulled byte (1.0 ideal; about 2.0 for a bare 2.8 mirror).
"""

import json
import re
from collections.abc import Iterable
from dataclasses import dataclass, field
from datetime import UTC, datetime

SERVED_FORMAT_NAME = "ferry_served"
UPSTREAM_FORMAT_NAME = "ferry_upstream"

# nginx `log_format <name> escape=json '<body>';` bodies. Every value is
# quoted because nginx logs an empty string for unset variables under
# escape=json, which would otherwise make invalid JSON. `$uri` (not
# `$request_uri`) keeps query strings out of the log.
_COMMON = (
    '"time":"$msec","method":"$request_method","uri":"$uri",'
    '"status":"$status","bytes":"$body_bytes_sent",'
    '"request_time":"$request_time","cache":"$upstream_cache_status",'
    '"upstream_status":"$upstream_status",'
    '"upstream_length":"$upstream_response_length",'
    '"upstream_received":"$upstream_bytes_received",'
    '"upstream_time":"$upstream_response_time"'
)
LOG_FORMAT_SERVED = '{"side":"served",' + _COMMON + ',"remote_user":"$remote_user"}'
# `$ferry_digest` is the gateway's cache key (a `map` in the gateway config);
# the upstream address tells registry hops from object-storage hops.
LOG_FORMAT_UPSTREAM = (
    '{"side":"upstream",'
    + _COMMON
    + ',"digest":"$ferry_digest","upstream_addr":"$upstream_addr"}'
)

BLOB_RE = re.compile(r"^/v2/(?P<repo>.+)/blobs/(?P<digest>sha256:[0-9a-f]{64})$")
REPO_RE = re.compile(r"^/v2/(?P<repo>.+)/(?:blobs|manifests|tags)/")
# nginx separates upstream values by ", " (several servers of one group) and
# " : " (an internal redirect, e.g. error_page to the redirect follower).
_UPSTREAM_SPLIT = re.compile(r"\s*[,:]\s*")
_DOCKER_TS = re.compile(
    r"^(\d{4}-\d\d-\d\dT\d\d:\d\d:\d\d(?:\.\d+)?Z) (.*)$", re.DOTALL
)


def log_format_directive(name: str, body: str) -> str:
    """The full nginx directive for a format body (bodies hold no ')."""
    return f"log_format {name} escape=json '{body}';"


@dataclass(frozen=True)
class LogRecord:
    """One access-log line of either side."""

    side: str
    time: float
    method: str
    uri: str
    status: int
    bytes: int
    request_time: float = 0.0
    cache: str = ""
    upstream_statuses: tuple[int, ...] = ()
    upstream_bytes: int = 0  # response bodies received from upstream
    upstream_received: int = 0  # on the wire, headers included
    digest: str = ""
    repository: str = ""
    remote_user: str = ""

    @property
    def is_blob_get(self) -> bool:
        return self.method == "GET" and bool(self.digest)

    @property
    def went_upstream(self) -> bool:
        return bool(self.upstream_statuses)

    @property
    def fetched_blob_upstream(self) -> bool:
        """A blob body really came from upstream (any hop answered 200/206)."""
        return (
            bool(self.digest)
            and self.upstream_bytes > 0
            and any(s in (200, 206) for s in self.upstream_statuses)
        )


def _int(value: str) -> int:
    try:
        return int(value)
    except (TypeError, ValueError):
        return 0


def _float(value: str) -> float:
    try:
        return float(value)
    except (TypeError, ValueError):
        return 0.0


def _numbers(value: str) -> list[int]:
    """Numbers of an nginx upstream variable ("307 : 200", "-", "")."""
    return [int(p) for p in _UPSTREAM_SPLIT.split(value or "") if p.isdigit()]


def split_docker_timestamp(line: str) -> tuple[datetime | None, str]:
    """Split `container.logs(timestamps=True)`'s RFC 3339 prefix off a line."""
    match = _DOCKER_TS.match(line)
    if not match:
        return None, line
    stamp = match.group(1)
    if "." in stamp:  # docker gives nanoseconds; Python takes microseconds
        head, frac = stamp[:-1].split(".")
        stamp = f"{head}.{frac[:6]:0<6}"
    else:
        stamp = stamp[:-1]
    return datetime.fromisoformat(stamp).replace(tzinfo=UTC), match.group(2)


def docker_timestamp_ns(line: str) -> tuple[int | None, str]:
    """Like split_docker_timestamp, as integer nanoseconds since the epoch
    (exact, so consecutive sampling windows never share a line)."""
    match = _DOCKER_TS.match(line)
    if not match:
        return None, line
    head, _, frac = match.group(1)[:-1].partition(".")
    seconds = datetime.fromisoformat(head).replace(tzinfo=UTC).timestamp()
    return int(seconds) * 10**9 + int(f"{frac:0<9}"[:9]), match.group(2)


def parse_line(line: str) -> LogRecord | None:
    """One log line (optionally docker-timestamped) -> LogRecord, or None.

    Lines that are not our JSON (nginx error log on stderr, startup noise)
    are skipped, not errors.
    """
    _, text = split_docker_timestamp(line.strip())
    if not text.startswith("{"):
        return None
    try:
        data = json.loads(text)
    except ValueError:
        return None
    if not isinstance(data, dict) or data.get("side") not in ("served", "upstream"):
        return None
    uri = data.get("uri", "")
    blob = BLOB_RE.match(uri)
    repo = REPO_RE.match(uri)
    digest = data.get("digest") or (blob.group("digest") if blob else "")
    return LogRecord(
        side=data["side"],
        time=_float(data.get("time")),
        method=data.get("method", ""),
        uri=uri,
        status=_int(data.get("status")),
        bytes=_int(data.get("bytes")),
        request_time=_float(data.get("request_time")),
        cache=data.get("cache", "") or "",
        upstream_statuses=tuple(_numbers(data.get("upstream_status", ""))),
        upstream_bytes=sum(_numbers(data.get("upstream_length", ""))),
        upstream_received=sum(_numbers(data.get("upstream_received", ""))),
        digest=digest if blob else "",
        repository=repo.group("repo") if repo else "",
        remote_user=data.get("remote_user", "") or "",
    )


def parse_lines(lines: Iterable[str]) -> list[LogRecord]:
    return [rec for rec in map(parse_line, lines) if rec is not None]


@dataclass
class Interval:
    """Counters of one sampling interval, from both sides' records."""

    requests: int = 0
    hits: int = 0
    misses: int = 0
    bytes_served: int = 0
    bytes_upstream: int = 0
    bytes_missed: int = 0
    upstream_requests: int = 0
    missed_digests: set[str] = field(default_factory=set)
    upstream_by_repository: dict[str, int] = field(default_factory=dict)

    @property
    def hit_rate(self) -> float | None:
        return self.hits / self.requests if self.requests else None

    @property
    def amplification(self) -> float | None:
        return self.bytes_upstream / self.bytes_missed if self.bytes_missed else None


def summarize(records: Iterable[LogRecord]) -> Interval:
    """Count one interval (see the module docstring for the definitions).

    1. served side: blob GETs answered 200/206 are requests; every body byte
       sent is bytes_served;
    2. upstream side: every request that reached upstream counts, its body
       bytes (all hops) are bytes_upstream; blob bodies mark their digest as
       missed, sized by the largest body seen for it on either side;
    3. hits = requests - misses.
    """
    out = Interval()
    sizes: dict[str, int] = {}
    for rec in records:
        if rec.digest:
            sizes[rec.digest] = max(
                sizes.get(rec.digest, 0), rec.bytes, rec.upstream_bytes
            )
        if rec.side == "served":
            out.bytes_served += rec.bytes
            if rec.is_blob_get and rec.status in (200, 206):
                out.requests += 1
            continue
        if not rec.went_upstream:
            continue
        out.upstream_requests += 1
        out.bytes_upstream += rec.upstream_bytes
        if rec.repository:
            repo = out.upstream_by_repository
            repo[rec.repository] = repo.get(rec.repository, 0) + rec.upstream_bytes
        if rec.fetched_blob_upstream:
            out.missed_digests.add(rec.digest)
    out.misses = len(out.missed_digests)
    out.bytes_missed = sum(sizes[d] for d in out.missed_digests)
    out.hits = max(out.requests - out.misses, 0)
    return out
