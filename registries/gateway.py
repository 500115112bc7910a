"""The upstream gateway: an nginx between a mirror and its upstream registry.

Registry 2.8 in proxy mode fetches every cold blob from its upstream twice
(one stream to the client, one to store it), and once more per concurrent
client. The gateway makes each blob cross the region boundary once:

* blob GETs/HEADs are cached under the blob digest (never under the
  Authorization header), with a cache lock so concurrent fetches of a cold
  blob wait for the first one instead of going upstream themselves;
* only 200 answers are cached: a 401 from a wrong password, a 404 or a 5xx
  is passed through and forgotten, so fixing the password fixes the pull;
* upstreams that answer blob GETs with a redirect to object storage (S3/OSS
  presigned URLs, cloud registries) are followed by the gateway itself, so
  the mirror never goes around it and the final body is cached by digest.
  The presigned query reaches the object store intact, with the object
  store's Host, and without the registry's Authorization header;
* a HEAD of a cold blob is fetched as a GET (nginx's proxy_cache_convert_head)
  and cached: the mirror always GETs the blob right after its HEAD;
* manifests (tags move), /v2/ and everything else pass through uncached;
* Authorization and WWW-Authenticate pass through untouched. With token auth
  the mirror fetches the token from the realm itself (the realm is an
  absolute URL the upstream names; it does not go through the gateway).

Its access log (stdout, `groundtruth.LOG_FORMAT_UPSTREAM`) is Ferry's ground
truth for bytes that crossed the region boundary. With `gateway_enabled`
False the same gateway runs without a cache, still following redirects and
logging, so Ferry still measures honestly (about 2x on a cold pull).

The gateway listens on 127.0.0.1 only: its cache serves blobs by digest to
whoever asks on the host, so it must stay reachable by the mirror alone.
"""

from urllib.parse import urlsplit

from django.conf import settings

from .groundtruth import (
    LOG_FORMAT_UPSTREAM,
    UPSTREAM_FORMAT_NAME,
    log_format_directive,
)

# Paths inside the gateway container (registries/site.py writes and mounts them).
GATEWAY_CONF_PATH = "/etc/nginx/nginx.conf"
GATEWAY_CACHE_DIR = "/var/cache/ferry-gateway"
CACHE_ZONE = "ferry_blobs"
# A blob is immutable under its digest; unused entries leave after this.
CACHE_INACTIVE = "30d"
# A cold pull of a large layer over a slow cross-region link may take many
# minutes; waiters must not give up and fetch it a second time meanwhile.
LOCK_WAIT = "30m"
# Quoted: nginx would read the braces of {64} as a block.
BLOB_LOCATION = r'~ "^/v2/.+/blobs/sha256:[0-9a-f]{64}$"'

_HEADER = """\
# Ferry upstream gateway for registry {name} (id {id}).
# Rendered by registries.gateway.render_gateway_conf; edits are replaced.
# Cache: {cache_state}. Upstream: {upstream}.
worker_processes 1;
pid /tmp/ferry-gateway.pid;
error_log stderr warn;
events {{ worker_connections 1024; }}
"""

_HTTP = """\
http {{
    {log_format}
    access_log /dev/stdout {log_name};
    # The blob digest: the cache key and the log's "digest".
    map $uri $ferry_digest {{
        default "";
        "~^/v2/.+/blobs/(?<ferry_d>sha256:[0-9a-f]{{64}})$" $ferry_d;
    }}
{cache_path}{resolver}
    server {{
        listen 127.0.0.1:{port};
        server_tokens off;
        client_max_body_size 0;
        proxy_http_version 1.1;
        proxy_set_header Connection "";
        proxy_connect_timeout 30s;
        proxy_read_timeout 300s;
        proxy_send_timeout 300s;
        proxy_buffering on;
        proxy_request_buffering off;
{upstream_tls}
        # Manifests (tags move), /v2/ and the rest: straight through.
        location / {{
            proxy_pass {upstream};
        }}

        # Blobs: cached by digest (if enabled); redirects followed here.
        location {blob_location} {{
            proxy_pass {upstream};
{cache}            proxy_intercept_errors on;
            error_page 301 302 303 307 308 = @follow;
        }}

        # The redirect target (a presigned object-storage URL) as given,
        # Host from that URL, no registry credentials.
        location @follow {{
            # nginx's error log would print the upstream URL with the
            # presigned query (a short-lived credential): only crit here;
            # the access log still records every status.
            error_log stderr crit;
            set $ferry_location $upstream_http_location;
            proxy_pass $ferry_location;
            proxy_set_header Authorization "";
            proxy_set_header Connection "";
            proxy_ssl_server_name on;
{cache}        }}
    }}
}}
"""

_CACHE = """\
            proxy_cache {zone};
            proxy_cache_key $ferry_digest;
            proxy_cache_methods GET HEAD;
            proxy_cache_lock on;
            proxy_cache_lock_timeout {lock};
            proxy_cache_lock_age {lock};
            proxy_cache_valid 200 3650d;
            proxy_cache_use_stale off;
            proxy_ignore_headers Cache-Control Expires X-Accel-Expires Set-Cookie Vary;
"""


def upstream_origin(url: str) -> str:
    """scheme://host[:port] of the upstream URL (registry paths start at /v2/)."""
    parts = urlsplit(url.strip())
    return f"{parts.scheme}://{parts.netloc.rsplit('@', 1)[-1]}"


def _cache_path(registry) -> str:
    size = max(int(registry.gateway_cache_max_mb or 0), 1)
    return (
        f"    proxy_cache_path {GATEWAY_CACHE_DIR} levels=1:2"
        f" keys_zone={CACHE_ZONE}:10m max_size={size}m"
        f" inactive={CACHE_INACTIVE} use_temp_path=off;\n"
    )


def _resolver() -> str:
    # Redirect targets are hostnames in production (buckets); nginx needs a
    # resolver address to look them up at request time.
    address = getattr(settings, "FERRY_GATEWAY_RESOLVER", "")
    return f"    resolver {address} valid=60s ipv6=off;\n" if address else ""


def _upstream_tls(upstream: str) -> str:
    if not upstream.startswith("https://"):
        return ""
    bundle = getattr(settings, "FERRY_GATEWAY_CA_BUNDLE", "")
    lines = ["        proxy_ssl_server_name on;"]
    if bundle:
        lines += [
            "        proxy_ssl_verify on;",
            f"        proxy_ssl_trusted_certificate {bundle};",
        ]
    return "\n".join(lines) + "\n"


def render_gateway_conf(registry) -> str:
    """The gateway's complete nginx.conf for a mirror (see the module doc)."""
    upstream = upstream_origin(registry.upstream_url)
    enabled = bool(registry.gateway_enabled)
    cache = _CACHE.format(zone=CACHE_ZONE, lock=LOCK_WAIT) if enabled else ""
    header = _HEADER.format(
        name=registry.name,
        id=registry.pk,
        cache_state=(
            f"on, {registry.gateway_cache_max_mb} MB"
            if enabled
            else "off (logging only)"
        ),
        upstream=upstream,
    )
    return header + _HTTP.format(
        log_format=log_format_directive(UPSTREAM_FORMAT_NAME, LOG_FORMAT_UPSTREAM),
        log_name=UPSTREAM_FORMAT_NAME,
        cache_path=_cache_path(registry) if enabled else "",
        resolver=_resolver(),
        port=registry.gateway_port,
        upstream_tls=_upstream_tls(upstream),
        upstream=upstream,
        blob_location=BLOB_LOCATION,
        cache=cache,
    )
