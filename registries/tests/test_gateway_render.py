"""The gateway's rendered nginx.conf: its promises, and real `nginx -t`."""

import re
import subprocess
from types import SimpleNamespace

import pytest

from registries import gateway
from registries.groundtruth import LOG_FORMAT_UPSTREAM


def mirror(**kw):
    values = {
        "pk": 7, "name": "hk-mirror", "upstream_url": "http://127.0.0.1:5999",
        "gateway_enabled": True, "gateway_port": 6123, "gateway_cache_max_mb": 2048,
    }  # fmt: skip
    values.update(kw)
    return SimpleNamespace(**values)


def blob_block(conf):
    return conf.split("location ~ ", 1)[1].split("location @follow", 1)[0]


def test_blobs_are_cached_by_digest_with_a_lock_and_only_200s():
    conf = gateway.render_gateway_conf(mirror())
    blob = blob_block(conf)
    assert "proxy_cache ferry_blobs;" in blob
    assert "proxy_cache_key $ferry_digest;" in blob
    assert "proxy_cache_lock on;" in blob
    assert "proxy_cache_lock_timeout 30m;" in blob
    assert "proxy_cache_lock_age 30m;" in blob
    assert re.findall(r"proxy_cache_valid ([^;]+);", conf) == ["200 3650d"] * 2
    assert "Cache-Control" in blob  # upstream headers cannot widen caching
    path = re.search(r"proxy_cache_path ([^;]+);", conf).group(1)
    assert path.startswith(gateway.GATEWAY_CACHE_DIR)
    assert "max_size=2048m" in path and "use_temp_path=off" in path
    assert "inactive=" in path


def test_redirects_are_followed_inside_the_gateway_without_credentials():
    conf = gateway.render_gateway_conf(mirror())
    assert "error_page 301 302 303 307 308 = @follow;" in blob_block(conf)
    follow = conf.split("location @follow", 1)[1]
    assert "set $ferry_location $upstream_http_location;" in follow
    assert "proxy_pass $ferry_location;" in follow
    assert 'proxy_set_header Authorization "";' in follow
    assert "error_log stderr crit;" in follow  # no presigned URLs in logs
    assert "proxy_set_header Host" not in conf  # Host comes from each URL
    assert "proxy_cache_key $ferry_digest;" in follow  # final body, same key


def test_manifests_and_the_rest_pass_through_uncached():
    conf = gateway.render_gateway_conf(mirror())
    root = conf.split("location / {", 1)[1].split("}", 1)[0]
    assert root.strip() == "proxy_pass http://127.0.0.1:5999;"


def test_it_listens_on_loopback_and_logs_the_upstream_format_without_secrets():
    conf = gateway.render_gateway_conf(mirror())
    assert "listen 127.0.0.1:6123;" in conf
    assert LOG_FORMAT_UPSTREAM in conf
    assert "access_log /dev/stdout ferry_upstream;" in conf
    assert "http_authorization" not in conf.lower()
    assert "$request_uri" not in conf and "$args" not in conf


def test_switched_off_it_still_follows_redirects_and_logs_but_caches_nothing():
    conf = gateway.render_gateway_conf(mirror(gateway_enabled=False))
    assert "proxy_cache" not in conf
    assert "error_page 301 302 303 307 308 = @follow;" in conf
    assert "access_log /dev/stdout ferry_upstream;" in conf
    assert "Cache: off" in conf


def test_upstream_url_is_reduced_to_its_origin():
    conf = gateway.render_gateway_conf(
        mirror(upstream_url="https://user:pw@registry.example.com:8443/v2/")
    )
    assert "proxy_pass https://registry.example.com:8443;" in conf
    assert "user:pw" not in conf
    assert "proxy_ssl_server_name on;" in conf


@pytest.mark.parametrize("enabled", [True, False])
def test_nginx_accepts_the_config(tmp_path, enabled):
    conf = gateway.render_gateway_conf(mirror(gateway_enabled=enabled))
    conf = conf.replace(gateway.GATEWAY_CACHE_DIR, str(tmp_path / "cache"))
    conf = conf.replace("pid /tmp/ferry-gateway.pid;", f"pid {tmp_path}/pid;")
    (tmp_path / "nginx.conf").write_text(conf)
    proc = subprocess.run(
        ["nginx", "-t", "-p", str(tmp_path), "-c", str(tmp_path / "nginx.conf")],
        capture_output=True, text=True, check=False,
    )  # fmt: skip
    assert proc.returncode == 0, proc.stderr
