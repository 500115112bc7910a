"""The files of a registry site, one pure function each, exactly as deployed.

* `render_registry_config(spec)`  registry config.yml (storage, proxy, secret,
  debug/metrics on loopback, notifications to Ferry, access log)
* `render_nginx_conf(spec)`       the mirror's TLS + htpasswd front (/v2/ only)
* `render_htpasswd(users)`        bcrypt ($2b$) entries, stable across renders
* `render_site_files(registry, masked=True)` all of them by file name, for pages,
  with the site's docker-compose.yml (rendered by registries.compose)

A stable render matters: the config hash decides whether reconcile replaces
a container, so the same row must always give the same bytes (bcrypt salts
are derived from the entry instead of random).
"""

import hashlib

import bcrypt
import yaml

from . import groundtruth
from .spec import MASK, RegistrySpec, StoreSpec, UserSpec

# nginx verifies the bcrypt hash on every request (each blob GET of a pull);
# Apache's `htpasswd -B` default cost 5 keeps that cheap.
BCRYPT_ROUNDS = 5
_BCRYPT_ALPHABET = b"./ABCDEFGHIJKLMNOPQRSTUVWXYZabcdefghijklmnopqrstuvwxyz0123456789"

NGINX_DIR = "/etc/nginx/ferry"


def registry_config_dir(spec: RegistrySpec) -> str:
    """Where the image reads config.yml: registry 3 moved it."""
    return "/etc/distribution" if spec.registry_major == 3 else "/etc/docker/registry"


def _header(spec: RegistrySpec, what: str) -> str:
    return f"# {what} for registry {spec.name} (id {spec.id}), rendered by Ferry.\n"


# -- config.yml ------------------------------------------------------------------
def render_registry_config(spec: RegistrySpec) -> str:
    """The registry's config.yml."""
    config: dict = {
        "version": 0.1,
        "log": {
            "level": "info",
            "formatter": "text",
            "accesslog": {"disabled": False},
            "fields": {"service": "registry", "ferry_registry": str(spec.id)},
        },
        "storage": storage_section(spec),
        "http": _http_section(spec),
        "notifications": _notifications_section(spec),
        "health": {
            "storagedriver": {"enabled": True, "interval": "30s", "threshold": 3}
        },
    }
    if spec.is_mirror:
        config["proxy"] = _proxy_section(spec)
    if spec.exposed and spec.require_auth:
        config["auth"] = {
            "htpasswd": {
                "realm": "ferry-registry",
                "path": f"{registry_config_dir(spec)}/htpasswd",
            }
        }
    body = yaml.safe_dump(config, sort_keys=False, default_flow_style=False, width=200)
    return _header(spec, "config.yml") + body


def storage_section(spec: RegistrySpec) -> dict:
    """storage: the driver for the store kind and image, plus shared options."""
    store = spec.store
    if store.kind == "filesystem":
        driver = {"filesystem": {"rootdirectory": "/var/lib/registry"}}
    elif store.kind == "oss" and spec.registry_major < 3:
        driver = {"oss": _oss_driver(store)}
    else:
        # registry 3 dropped the oss driver: OSS speaks S3 on its own endpoint.
        driver = {"s3": _s3_driver(store, spec.registry_major)}
    return {
        **driver,
        "cache": {"blobdescriptor": "inmemory"},
        # Blobs must flow through the registry (and nginx): clients outside
        # the region cannot reach an internal bucket endpoint, and Ferry
        # measures served bytes at nginx.
        "redirect": {"disable": True},
        "maintenance": {
            "uploadpurging": {
                "enabled": True,
                "age": "168h",
                "interval": "24h",
                "dryrun": False,
            }
        },
    }


def _scheme_and_host(endpoint: str) -> tuple[str, str]:
    if "://" in endpoint:
        scheme, _, host = endpoint.partition("://")
        return scheme.lower(), host.rstrip("/")
    return "https", endpoint.rstrip("/")


def oss_s3_endpoint(store: StoreSpec) -> str:
    """OSS's S3-compatible endpoint for the store (its own when given)."""
    if store.endpoint:
        scheme, host = _scheme_and_host(store.endpoint)
        return f"{scheme}://{host}"
    region = store.region if store.region.startswith("oss-") else f"oss-{store.region}"
    suffix = "-internal" if store.internal else ""
    return f"https://{region}{suffix}.aliyuncs.com"


def _s3_driver(store: StoreSpec, major: int) -> dict:
    endpoint = oss_s3_endpoint(store) if store.kind == "oss" else store.endpoint
    scheme, host = _scheme_and_host(endpoint) if endpoint else ("https", "")
    region = store.region or "us-east-1"
    if store.kind == "oss":
        region = region.removeprefix("oss-")
    driver: dict = {"region": region}
    if host:
        driver["regionendpoint"] = f"{scheme}://{host}"
    driver.update(
        {
            "bucket": store.bucket,
            "rootdirectory": store.root_directory or "/",
            "accesskey": store.access_key,
            "secretkey": store.secret_key,
            "secure": scheme == "https",
            "v4auth": True,
        }
    )
    if major >= 3:
        # OSS only answers virtual-hosted style; S3 servers on an IP need path.
        driver["forcepathstyle"] = store.kind != "oss" and bool(host)
    return driver


def _oss_driver(store: StoreSpec) -> dict:
    driver: dict = {
        "accesskeyid": store.access_key,
        "accesskeysecret": store.secret_key,
        "region": store.region
        if store.region.startswith("oss-")
        else f"oss-{store.region}",
    }
    scheme = "https"
    if store.endpoint:
        scheme, driver["endpoint"] = _scheme_and_host(store.endpoint)
    driver.update(
        {
            "internal": store.internal,
            "bucket": store.bucket,
            "encrypt": False,
            "secure": scheme == "https",
            "rootdirectory": store.root_directory or "/",
        }
    )
    return driver


def _listen_host(address: str) -> str:
    return f"[{address}]" if ":" in address else address


def _http_section(spec: RegistrySpec) -> dict:
    address = spec.listen_address if not spec.is_mirror else "127.0.0.1"
    http: dict = {
        "addr": f"{_listen_host(address)}:{spec.port}",
        "secret": spec.http_secret,
        "headers": {"X-Content-Type-Options": ["nosniff"]},
        "debug": {
            "addr": f"127.0.0.1:{spec.debug_port}",
            "prometheus": {"enabled": True, "path": "/metrics"},
        },
    }
    if spec.exposed:
        directory = registry_config_dir(spec)
        http["tls"] = {
            "certificate": f"{directory}/tls.crt",
            "key": f"{directory}/tls.key",
        }
    return http


def _notifications_section(spec: RegistrySpec) -> dict:
    return {
        "events": {"includereferences": True},
        "endpoints": [
            {
                "name": "ferry",
                "url": spec.notify_url,
                "headers": {"Authorization": [f"Bearer {spec.notify_token}"]},
                "timeout": "5s",
                "threshold": 5,
                "backoff": "10s",
            }
        ],
    }


def _proxy_section(spec: RegistrySpec) -> dict:
    proxy = {"remoteurl": spec.remote_url}
    if spec.upstream_username:
        proxy["username"] = spec.upstream_username
        proxy["password"] = spec.upstream_password
    return proxy


# -- htpasswd -------------------------------------------------------------------
def render_htpasswd(users: tuple[UserSpec, ...] | list[UserSpec]) -> str:
    """user:$2b$... lines, sorted; a masked password stays masked."""
    lines = []
    for user in sorted(users, key=lambda u: u.username):
        if user.password == MASK:
            lines.append(f"{user.username}:{MASK}")
        else:
            lines.append(f"{user.username}:{bcrypt_hash(user.username, user.password)}")
    return "".join(line + "\n" for line in lines)


def bcrypt_hash(username: str, password: str) -> str:
    """$2b$ bcrypt with a salt derived from the entry, so renders are stable."""
    seed = hashlib.sha256(f"ferry-htpasswd\0{username}\0{password}".encode()).digest()
    chars = bytes(_BCRYPT_ALPHABET[b % 64] for b in seed[:21])
    chars += bytes([b".Oeu"[seed[21] % 4]])  # the last char carries only 2 bits
    salt = b"$2b$%02d$" % BCRYPT_ROUNDS + chars
    return bcrypt.hashpw(password.encode(), salt).decode()


# -- nginx.conf -----------------------------------------------------------------
def served_log_format() -> str:
    """The `log_format ferry_served escape=json '...';` directive."""
    return groundtruth.log_format_directive(
        groundtruth.SERVED_FORMAT_NAME, groundtruth.LOG_FORMAT_SERVED
    )


def render_nginx_conf(spec: RegistrySpec) -> str:
    """The mirror's nginx: TLS, htpasswd, /v2/ only, streaming, JSON log."""
    listen = f"{_listen_host(spec.listen_address)}:{spec.https_port}"
    auth = (
        f'            auth_basic "{spec.name}";\n'
        f"            auth_basic_user_file {NGINX_DIR}/htpasswd;\n"
        if spec.require_auth
        else ""
    )
    return _header(spec, "nginx.conf") + _NGINX_TEMPLATE.format(
        log_format=served_log_format(),
        log_name=groundtruth.SERVED_FORMAT_NAME,
        registry=f"127.0.0.1:{spec.port}",
        listen=listen,
        server_name=spec.public_hostname or "_",
        dir=NGINX_DIR,
        auth=auth,
    )


_NGINX_TEMPLATE = """\
worker_processes auto;
pid /tmp/ferry-nginx.pid;
error_log stderr warn;

events {{
    worker_connections 1024;
}}

http {{
    {log_format}
    access_log /dev/stdout {log_name};
    server_tokens off;
    sendfile on;
    tcp_nopush on;
    keepalive_timeout 65;
    client_body_temp_path /tmp/nginx-client-body;
    proxy_temp_path /tmp/nginx-proxy;
    fastcgi_temp_path /tmp/nginx-fastcgi;
    uwsgi_temp_path /tmp/nginx-uwsgi;
    scgi_temp_path /tmp/nginx-scgi;

    # The registry answers with this header; add it on nginx's own 401s too.
    map $upstream_http_docker_distribution_api_version $ferry_api_version {{
        "" "registry/2.0";
    }}

    upstream ferry_registry {{
        server {registry};
        keepalive 32;
    }}

    server {{
        listen {listen} ssl;
        server_name {server_name};

        ssl_certificate {dir}/tls.crt;
        ssl_certificate_key {dir}/tls.key;
        ssl_protocols TLSv1.2 TLSv1.3;
        ssl_session_cache shared:ferry_ssl:10m;

        # Layers are big: no body limit, stream both ways.
        client_max_body_size 0;
        chunked_transfer_encoding on;

        location /v2/ {{
{auth}            add_header Docker-Distribution-Api-Version $ferry_api_version always;

            proxy_pass http://ferry_registry;
            proxy_http_version 1.1;
            proxy_set_header Connection "";
            proxy_set_header Host $http_host;
            proxy_set_header X-Real-IP $remote_addr;
            proxy_set_header X-Forwarded-For $proxy_add_x_forwarded_for;
            proxy_set_header X-Forwarded-Proto $scheme;
            proxy_read_timeout 900;
            # Blobs go to the client as they arrive, not via temp files.
            proxy_buffering off;
            proxy_request_buffering off;
        }}

        location / {{
            return 404;
        }}
    }}
}}
"""


def render_site_files(registry, masked: bool = True) -> dict[str, str]:
    """This registry's files as deployed, then the site's docker-compose.yml.

    Secrets are replaced by MASK unless masked=False. Keys are where the
    export puts them: "<service>/<file name>" (e.g. "mirror-registry/config.yml",
    "mirror-nginx/nginx.conf", "mirror-gateway/nginx.conf"), and
    "docker-compose.yml" for the whole site (registries.compose).
    """
    from .compose import export_files, load_site  # compose builds on this module

    site = load_site(registry, masked=masked, strict=False)
    own = next(m for m in site.members if m.spec.id == registry.pk)
    directories = {own.service(container) for container in own.containers}
    files, compose = {}, ""
    for name, content, _mode in export_files(site):
        if name == "docker-compose.yml":
            compose = content
        elif name.split("/", 1)[0] in directories:
            files[name] = content
    files["docker-compose.yml"] = compose
    return files
