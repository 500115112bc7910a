"""Rendering of a site's files: pure functions over RegistrySpec, plus nginx -t."""

import datetime
import subprocess
from dataclasses import replace
from types import SimpleNamespace

import bcrypt
import pytest
import yaml

from registries import compose, render, tls
from registries.site import gateway_container, nginx_container, registry_container
from registries.spec import (
    MASK,
    RegistrySpec,
    StoreSpec,
    UserSpec,
    evidence_major,
    image_major,
    tag_major,
)
from registries.validators import (
    image_reference_error,
    registry_major_error,
    upstream_url_error,
)

S3 = StoreSpec(
    kind="s3", endpoint="http://127.0.0.1:9000", bucket="reg", region="us-east-1",
    root_directory="/registry", access_key="AK", secret_key="SK-secret",
)  # fmt: skip
OSS = StoreSpec(
    kind="oss", endpoint="", internal=True, bucket="reg", region="cn-hongkong",
    root_directory="/registry", access_key="LTAI", secret_key="oss-secret",
)  # fmt: skip
MIRROR = RegistrySpec(
    id=7, name="hk/mirror", kind="mirror", image="registry:2", nginx_image="nginx:1",
    store=S3, port=5000, debug_port=5001, https_port=8443, gateway_port=5100,
    upstream_url="https://home.example.com", upstream_username="puller",
    upstream_password="up-secret", remote_url="http://127.0.0.1:5100",
    http_secret="http-secret", notify_url="http://ferry:8000/registries/notify/7/",
    notify_token="notify-secret", users=(UserSpec("ops", "ops-password"),),
    tls_certificate="CERT", tls_private_key="KEY-secret",
)  # fmt: skip
PRIVATE = replace(MIRROR, kind="private", users=(), remote_url="", https_port=None)


def config(spec: RegistrySpec) -> dict:
    return yaml.safe_load(render.render_registry_config(spec))


def test_mirror_config_has_proxy_secret_loopback_debug_and_notifications():
    cfg = config(MIRROR)
    assert cfg["proxy"] == {
        "remoteurl": "http://127.0.0.1:5100",
        "username": "puller",
        "password": "up-secret",
    }
    assert cfg["http"]["addr"] == "127.0.0.1:5000"
    assert cfg["http"]["secret"] == "http-secret"
    assert cfg["http"]["debug"] == {
        "addr": "127.0.0.1:5001",
        "prometheus": {"enabled": True, "path": "/metrics"},
    }
    endpoint = cfg["notifications"]["endpoints"][0]
    assert endpoint["url"] == "http://ferry:8000/registries/notify/7/"
    assert endpoint["headers"] == {"Authorization": ["Bearer notify-secret"]}
    assert cfg["log"]["accesslog"] == {"disabled": False}
    assert cfg["storage"]["redirect"] == {"disable": True}


def test_s3_storage_is_secure_by_the_endpoint_scheme():
    s3 = config(MIRROR)["storage"]["s3"]
    assert s3 == {
        "region": "us-east-1", "regionendpoint": "http://127.0.0.1:9000",
        "bucket": "reg", "rootdirectory": "/registry", "accesskey": "AK",
        "secretkey": "SK-secret", "secure": False, "v4auth": True,
    }  # fmt: skip
    https = replace(MIRROR, store=replace(S3, endpoint="https://s3.example.com"))
    assert config(https)["storage"]["s3"]["secure"] is True


def test_oss_uses_the_oss_driver_on_registry_2():
    oss = config(replace(MIRROR, store=OSS))["storage"]
    assert "s3" not in oss
    assert oss["oss"] == {
        "accesskeyid": "LTAI", "accesskeysecret": "oss-secret",
        "region": "oss-cn-hongkong", "internal": True, "bucket": "reg",
        "encrypt": False, "secure": True, "rootdirectory": "/registry",
    }  # fmt: skip


def test_oss_uses_s3_against_the_oss_endpoint_on_registry_3():
    spec = replace(MIRROR, store=OSS, image="registry:3.0.0")
    storage = config(spec)["storage"]
    assert "oss" not in storage
    assert storage["s3"]["regionendpoint"] == (
        "https://oss-cn-hongkong-internal.aliyuncs.com"
    )
    assert storage["s3"]["region"] == "cn-hongkong"
    assert storage["s3"]["forcepathstyle"] is False  # OSS: virtual-hosted only
    assert storage["s3"]["accesskey"] == "LTAI"
    assert render.registry_config_dir(spec) == "/etc/distribution"
    assert registry_container(spec).files[0][0] == "/etc/distribution/config.yml"


@pytest.mark.parametrize(
    ("image", "major"),
    [
        ("registry:2", 2),
        ("registry:3", 3),
        ("registry:3.0.0-rc.1", 3),
        ("registry:v3.0.0", 3),
        ("registry:2-alpine", 2),
        ("my.reg:5000/registry:2.8.3", 2),
        ("registry:3@sha256:" + "a" * 64, 3),
        ("my.reg:5000/library/registry", None),
        ("registry:latest", None),
        ("registry@sha256:" + "a" * 64, None),
        ("ferry-test/registry:3a9f0c2b1d4e", None),  # a hash, not a version
        ("ferry-test/registry:2.8-de81d023b36a", 2),
    ],
)
def test_the_registry_major_comes_from_the_image_tag_when_it_says(image, major):
    assert tag_major(image) == major
    assert image_major(image) == (major or 2)


@pytest.mark.parametrize(
    "image", ["registry:latest", "registry", "registry@sha256:" + "a" * 64]
)
def test_a_reference_that_does_not_say_its_major_is_refused(image):
    reason = registry_major_error(image)
    assert image in reason and "registry:3" in reason


def test_a_major_ferry_cannot_render_is_refused():
    assert "not supported" in registry_major_error("registry:4.0")
    assert registry_major_error("registry:3.0.0") is None


@pytest.mark.parametrize(
    ("labels", "command", "found"),
    [
        # The library images: /entrypoint.sh <config path>.
        ({}, ["/entrypoint.sh", "/etc/distribution/config.yml"], 3),
        ({}, ["/entrypoint.sh", "/etc/docker/registry/config.yml"], 2),
        ({}, ["registry", "serve", "/etc/distribution/config.yml"], 3),
        ({"org.opencontainers.image.version": "3.0.0"}, ["/bin/registry"], 3),
        ({"org.opencontainers.image.version": "v2.8.3"}, [], 2),
        # The command is surer than a label a base image may have set.
        (
            {"org.opencontainers.image.version": "3.20"},
            ["/entrypoint.sh", "/etc/docker/registry/config.yml"],
            2,
        ),
        ({"org.opencontainers.image.version": "24.04"}, ["/bin/sh"], None),
        ({}, ["/bin/sh"], None),
    ],
)
def test_what_an_image_says_about_its_major(labels, command, found):
    result = evidence_major(labels, command)
    assert (result[0] if result else None) == found


def test_filesystem_storage_is_the_mounted_host_directory():
    spec = replace(PRIVATE, store=StoreSpec(kind="filesystem", root_directory="/srv/r"))
    assert config(spec)["storage"]["filesystem"] == {
        "rootdirectory": "/var/lib/registry"
    }
    mount = registry_container(spec).mounts[0]
    assert (mount.source, mount.target, mount.kind) == (
        "/srv/r",
        "/var/lib/registry",
        "bind",
    )


def test_a_private_registry_has_no_proxy_and_listens_where_asked():
    cfg = config(replace(PRIVATE, listen_address="127.0.0.1"))
    assert "proxy" not in cfg and "auth" not in cfg and "tls" not in cfg["http"]


def test_a_private_registry_beyond_loopback_gets_htpasswd_and_tls():
    spec = replace(PRIVATE, listen_address="0.0.0.0", users=MIRROR.users)
    cfg = config(spec)
    assert cfg["http"]["addr"] == "0.0.0.0:5000"
    assert cfg["auth"]["htpasswd"]["path"] == "/etc/docker/registry/htpasswd"
    assert cfg["http"]["tls"]["key"] == "/etc/docker/registry/tls.key"
    paths = [path for path, _c, _m in registry_container(spec).files]
    assert "/etc/docker/registry/htpasswd" in paths


def test_htpasswd_is_bcrypt_2b_checkable_and_stable():
    users = (UserSpec("b", "pw-b"), UserSpec("a", "pw-a"))
    text = render.render_htpasswd(users)
    assert text == render.render_htpasswd(users)  # same salt: same bytes
    lines = text.splitlines()
    assert [line.split(":")[0] for line in lines] == ["a", "b"]
    hashed = lines[0].split(":", 1)[1]
    assert hashed.startswith("$2b$05$")
    assert bcrypt.checkpw(b"pw-a", hashed.encode())
    assert not bcrypt.checkpw(b"wrong", hashed.encode())
    assert render.render_htpasswd((UserSpec("a", "other"),)) != render.render_htpasswd(
        (UserSpec("a", "pw-a"),)
    )


def test_nginx_conf_serves_only_v2_with_auth_tls_and_streaming():
    conf = render.render_nginx_conf(MIRROR)
    for directive in (
        "listen 127.0.0.1:8443 ssl;",
        "client_max_body_size 0;",
        "chunked_transfer_encoding on;",
        "auth_basic_user_file /etc/nginx/ferry/htpasswd;",
        "proxy_set_header Host $http_host;",
        "proxy_set_header X-Real-IP $remote_addr;",
        "proxy_set_header X-Forwarded-For $proxy_add_x_forwarded_for;",
        "proxy_set_header X-Forwarded-Proto $scheme;",
        "proxy_read_timeout 900;",
        "proxy_buffering off;",
        "server 127.0.0.1:5000;",
        "access_log /dev/stdout ferry_served;",
        'log_format ferry_served escape=json \'{"side":"served"',
    ):
        assert directive in conf, directive
    assert "location / {\n            return 404;" in conf
    open_conf = render.render_nginx_conf(replace(MIRROR, require_auth=False))
    assert "auth_basic" not in open_conf


def test_nginx_conf_passes_nginx_t(tmp_path, test_ca):
    cert, key = test_ca.issue(("127.0.0.1",))
    (tmp_path / "tls.crt").write_bytes(cert)
    (tmp_path / "tls.key").write_bytes(key)
    (tmp_path / "htpasswd").write_text(render.render_htpasswd(MIRROR.users))
    conf = render.render_nginx_conf(MIRROR).replace(render.NGINX_DIR, str(tmp_path))
    conf = conf.replace("/tmp/ferry-nginx.pid", str(tmp_path / "nginx.pid"))
    (tmp_path / "nginx.conf").write_text(conf)
    result = subprocess.run(
        ["nginx", "-t", "-p", str(tmp_path), "-c", str(tmp_path / "nginx.conf")],
        capture_output=True, text=True, check=False,
    )  # fmt: skip
    assert result.returncode == 0, result.stderr


def test_the_config_hash_is_stable_and_follows_the_files():
    first, again = nginx_container(MIRROR), nginx_container(MIRROR)
    assert first.config_hash == again.config_hash
    changed = nginx_container(replace(MIRROR, https_port=9443))
    assert changed.config_hash != first.config_hash
    labels = dict(first.labels)
    assert labels["ferry.owner"] == "registry:7" and labels["ferry.role"] == "nginx"
    assert labels["ferry.managed"] == "true" and labels["ferry.ports"] == "8443"
    assert first.name == "ferry-reg-7-nginx"


def test_masked_files_show_no_secret():
    masked = replace(
        MIRROR, upstream_password=MASK, http_secret=MASK, notify_token=MASK,
        users=(UserSpec("ops", MASK),), tls_private_key=MASK,
        store=replace(S3, secret_key=MASK), masked=True,
    )  # fmt: skip
    text = render.render_registry_config(masked) + render.render_htpasswd(masked.users)
    for secret in ("up-secret", "http-secret", "notify-secret", "SK-secret", "$2b$"):
        assert secret not in text
    assert "ops:********" in text


GATEWAY_ROW = SimpleNamespace(
    pk=7, name="mirror", upstream_url="https://home.example.com",
    gateway_enabled=True, gateway_port=5100, gateway_cache_max_mb=1024,
)  # fmt: skip
SITE_PRIVATE = replace(PRIVATE, id=8, name="hk/private", port=5002, debug_port=5003)


def compose_site(mirror=MIRROR, private=SITE_PRIVATE) -> compose.ComposeSite:
    """The site a mirror and a private registry on one store and host make."""
    members = (
        compose.SiteMember(
            mirror,
            (
                gateway_container(mirror, GATEWAY_ROW),
                registry_container(mirror),
                nginx_container(mirror),
            ),
            "mirror",
        ),
        compose.SiteMember(private, (registry_container(private),), "private"),
    )
    return compose.ComposeSite("hk/s3", "hk/h1", members)


def test_compose_export_runs_every_container_of_the_site():
    site = compose_site()
    doc = yaml.safe_load(compose.render_compose(site))
    assert list(doc["services"]) == [
        "mirror-gateway", "mirror-registry", "mirror-nginx", "private-registry",
    ]  # fmt: skip
    names = [s["container_name"] for s in doc["services"].values()]
    assert names == [
        "ferry-reg-7-gateway", "ferry-reg-7-registry", "ferry-reg-7-nginx",
        "ferry-reg-8-registry",
    ]  # fmt: skip
    nginx = doc["services"]["mirror-nginx"]
    assert nginx["network_mode"] == "host" and nginx["restart"] == "unless-stopped"
    assert nginx["entrypoint"][:3] == ["nginx", "-c", "/etc/nginx/ferry/nginx.conf"]
    assert "./mirror-nginx/htpasswd:/etc/nginx/ferry/htpasswd:ro" in nginx["volumes"]
    assert (
        nginx["labels"]["ferry.config-hash"]
        == site.members[0].containers[2].config_hash
    )
    assert nginx["depends_on"] == ["mirror-registry"]
    assert doc["services"]["mirror-registry"]["depends_on"] == ["mirror-gateway"]
    private = doc["services"]["private-registry"]
    assert private["image"] == "registry:2" and "depends_on" not in private
    assert private["labels"]["ferry.owner"] == "registry:8"
    assert (
        "./private-registry/config.yml:/etc/docker/registry/config.yml:ro"
        in private["volumes"]
    )
    header = compose.render_compose(site).splitlines()[0]
    assert "hk/mirror (mirror)" in header and "hk/private (private)" in header


def test_compose_declares_each_named_volume_once_and_shares_a_filesystem_store():
    disk = StoreSpec(kind="filesystem", root_directory="/srv/registry")
    site = compose_site(replace(MIRROR, store=disk), replace(SITE_PRIVATE, store=disk))
    doc = yaml.safe_load(compose.render_compose(site))
    assert doc["volumes"] == {"ferry-reg-7-gwcache": {"name": "ferry-reg-7-gwcache"}}
    assert any(
        v.startswith("ferry-reg-7-gwcache:")
        for v in doc["services"]["mirror-gateway"]["volumes"]
    )
    for service in ("mirror-registry", "private-registry"):
        assert "/srv/registry:/var/lib/registry" in doc["services"][service]["volumes"]


def test_exported_files_are_where_the_compose_file_mounts_them():
    site = compose_site()
    files = compose.export_files(site)
    paths = [path for path, _content, _mode in files]
    assert len(paths) == len(set(paths))  # no two containers' files collide
    doc = yaml.safe_load(dict((p, c) for p, c, _m in files)["docker-compose.yml"])
    mounted = {
        volume.split(":")[0].removeprefix("./")
        for service in doc["services"].values()
        for volume in service["volumes"]
        if volume.startswith("./")
    }
    assert mounted == set(paths) - {"docker-compose.yml"}
    assert {
        "mirror-gateway/nginx.conf", "mirror-nginx/nginx.conf",
        "mirror-registry/config.yml", "private-registry/config.yml",
    } <= mounted  # fmt: skip
    modes = {path: mode for path, _content, mode in files}
    assert modes["mirror-nginx/tls.key"] == 0o600
    assert modes["mirror-nginx/htpasswd"] == 0o644  # nginx workers read it


def test_service_names_are_the_registry_names_made_unique_within_the_site():
    rows = [
        SimpleNamespace(pk=7, name="Mirror HK"),
        SimpleNamespace(pk=8, name="private"),
        SimpleNamespace(pk=9, name="private"),  # same name, another region
        SimpleNamespace(pk=10, name="镜像"),  # slugify keeps nothing
    ]
    assert compose.service_bases(rows) == {
        7: "mirror-hk", 8: "private-8", 9: "private-9", 10: "registry-10",
    }  # fmt: skip


def test_every_container_has_bounded_json_file_logs_in_its_hash_and_compose():
    from registries.reconcile import new_container

    small = replace(MIRROR, log_max_size="10m", log_max_files=2)
    for build in (registry_container, nginx_container):
        spec, changed = build(MIRROR), build(small)
        assert spec.log_options == (("max-size", "50m"), ("max-file", "3"))
        assert changed.log_options == (("max-size", "10m"), ("max-file", "2"))
        assert spec.config_hash != changed.config_hash  # a change replaces it
        assert new_container(changed).log_options == changed.log_options
    doc = yaml.safe_load(compose.render_compose(compose_site(small)))
    assert doc["services"]["mirror-nginx"]["logging"] == {
        "driver": "json-file", "options": {"max-size": "10m", "max-file": "2"},
    }  # fmt: skip


@pytest.mark.django_db
def test_render_site_files_masks_secrets_of_a_saved_registry(test_ca):
    from regions.models import DockerHost, Region
    from registries.models import ObjectStore, Registry, RegistryUser

    region = Region.objects.create(slug="hk", name="HK")
    host = DockerHost.objects.create(region=region, name="h", docker_url="unix:///x")
    store = ObjectStore.objects.create(
        region=region, name="s", kind="s3", bucket="b", secret_access_key="store-key",
        http_secret="site-secret",
    )  # fmt: skip
    cert, key = test_ca.issue(("127.0.0.1",))
    registry = Registry.objects.create(
        region=region, host=host, store=store, name="m", kind="mirror",
        upstream_url="https://up.example.com", upstream_password="up-pass",
        https_port=8443, debug_port=5001, gateway_port=5100, notify_token="tok-x",
        tls_certificate=cert.decode(), tls_private_key=key.decode(),
    )  # fmt: skip
    RegistryUser.objects.create(registry=registry, username="ops", password="ops-pw")
    masked = render.render_site_files(registry)
    expected = {"m-registry/config.yml", "m-nginx/nginx.conf", "m-nginx/htpasswd",
                "m-nginx/tls.crt", "m-nginx/tls.key", "m-gateway/nginx.conf",
                "docker-compose.yml"}  # fmt: skip
    assert expected <= set(masked)
    joined = "\n".join(masked.values())
    for secret in ("store-key", "site-secret", "up-pass", "tok-x", "PRIVATE KEY"):
        assert secret not in joined
    assert masked["m-nginx/tls.key"] == MASK
    clear = render.render_site_files(registry, masked=False)
    assert "site-secret" in clear["m-registry/config.yml"]
    assert f"/registries/notify/{registry.pk}/" in clear["m-registry/config.yml"]
    assert clear["m-nginx/htpasswd"].startswith("ops:$2b$")
    # The masked and the deployed files differ only where secrets are.
    assert masked["m-nginx/nginx.conf"] == clear["m-nginx/nginx.conf"]


@pytest.mark.django_db
def test_the_site_is_every_registry_on_the_same_store_and_host():
    from regions.models import DockerHost, Region
    from registries.models import ObjectStore, Registry

    region = Region.objects.create(slug="hk", name="HK")
    host, other_host = (
        DockerHost.objects.create(region=region, name=n, docker_url="unix:///x")
        for n in ("h1", "h2")
    )
    store, other_store = (
        ObjectStore.objects.create(region=region, name=n, kind="s3", bucket="b")
        for n in ("s1", "s2")
    )
    made = {}
    for name, kind, on_host, on_store, port in (
        ("private", "private", host, store, 5010),
        ("mirror", "mirror", host, store, 5000),
        ("elsewhere", "private", other_host, store, 5020),
        ("other-bucket", "private", host, other_store, 5030),
    ):
        made[name] = Registry.objects.create(
            region=region, host=on_host, store=on_store, name=name, kind=kind,
            upstream_url="https://up.example.com", port=port, debug_port=port + 1,
            https_port=8443 if kind == "mirror" else None, gateway_port=None,
        )  # fmt: skip
    for exported in ("private", "mirror"):
        site = compose.load_site(made[exported], strict=False)
        assert [m.spec.name for m in site.members] == ["hk/mirror", "hk/private"]
    files = render.render_site_files(made["private"])
    assert (
        "private-registry/config.yml" in files
        and "mirror-nginx/nginx.conf" not in files
    )
    services = yaml.safe_load(files["docker-compose.yml"])["services"]
    assert list(services) == ["mirror-registry", "mirror-nginx", "private-registry"]


def test_tls_pair_checks_and_self_signed(test_ca):
    cert, key = test_ca.issue(("127.0.0.1", "hub.example.com"))
    info = tls.check_pair(cert.decode(), key.decode())
    assert set(info.names) == {"127.0.0.1", "hub.example.com"}
    _c, other = test_ca.issue(("127.0.0.1",))
    with pytest.raises(tls.TLSError) as caught:
        tls.check_pair(cert.decode(), other.decode())
    assert caught.value.field == "tls_private_key"
    with pytest.raises(tls.TLSError) as caught:
        tls.check_pair("nope", key.decode())
    assert caught.value.field == "tls_certificate"
    now = datetime.datetime.now(datetime.UTC)
    scert, skey, expires = tls.self_signed(["hub.example.com", "127.0.0.1"], now)
    assert tls.check_pair(scert, skey).expires_at == expires
    assert tls.days_left(scert, now) in (364, 365)


@pytest.mark.parametrize(
    ("url", "ok"),
    [
        ("https://registry.example.com", True),
        ("http://127.0.0.1:5000", True),
        ("https://r.example.com/v2/", True),
        ("ftp://r.example.com", False),
        ("registry.example.com", False),
        ("https://", False),
        ("https://u:p@r.example.com", False),
        ("https://r.example.com:99999", False),
        ("https://r.example.com:abc", False),
        ("https://r.example.com/?q=1", False),
    ],
)
def test_upstream_urls(url, ok):
    assert (upstream_url_error(url) is None) is ok


@pytest.mark.parametrize(
    ("ref", "ok"),
    [
        ("ns/name:tag", True),
        ("name", True),
        ("my.reg:5000/a/b/c:v1.2", True),
        ("ns/name@sha256:" + "0" * 64, True),
        ("NS/name:tag", False),
        ("ns/name:", False),
        ("ns//name", False),
        ("", False),
        ("ns/name:tag with space", False),
    ],
)
def test_image_references(ref, ok):
    assert (image_reference_error(ref) is None) is ok
