"""Unit tests for the access-log formats and the interval arithmetic."""

import json
from pathlib import Path

from registries import groundtruth as gt

D1 = "sha256:" + "a" * 64
D2 = "sha256:" + "b" * 64


def line(side, uri, **kw):
    data = {
        "side": side,
        "time": "1700000000.123",
        "method": "GET",
        "uri": uri,
        "status": "200",
        "bytes": "0",
        "request_time": "0.010",
        "cache": "",
        "upstream_status": "",
        "upstream_length": "",
        "upstream_received": "",
        "upstream_time": "",
    }
    data.update({k: str(v) for k, v in kw.items()})
    return json.dumps(data)


def test_formats_are_json_templates_without_credentials():
    for body in (gt.LOG_FORMAT_SERVED, gt.LOG_FORMAT_UPSTREAM):
        assert "'" not in body
        assert "http_authorization" not in body.lower()
        assert "$request_uri" not in body and "$args" not in body
        sample = body.replace("$", "")
        assert isinstance(json.loads(sample), dict)
    assert '"side":"served"' in gt.LOG_FORMAT_SERVED
    assert '"side":"upstream"' in gt.LOG_FORMAT_UPSTREAM
    directive = gt.log_format_directive(gt.SERVED_FORMAT_NAME, gt.LOG_FORMAT_SERVED)
    assert directive.startswith("log_format ferry_served escape=json '{")


def test_docker_timestamp_prefix_is_split_and_parsed():
    stamp, rest = gt.split_docker_timestamp("2024-05-01T10:00:00.123456789Z hello")
    assert rest == "hello"
    assert stamp.isoformat() == "2024-05-01T10:00:00.123456+00:00"


def test_blob_digest_and_repository_come_from_the_uri():
    rec = gt.parse_line(line("served", f"/v2/team/app/blobs/{D1}", bytes=5))
    assert rec.digest == D1 and rec.repository == "team/app" and rec.is_blob_get
    man = gt.parse_line(line("served", "/v2/team/app/manifests/v1"))
    assert man.digest == "" and man.repository == "team/app"
    assert gt.parse_line("nginx: [warn] something") is None
    assert gt.parse_line('{"not": "ours"}') is None


def test_redirected_fetch_sums_both_hops():
    rec = gt.parse_line(
        line(
            "upstream",
            f"/v2/a/blobs/{D1}",
            upstream_status="307 : 200",
            upstream_length="0 : 1000",
            upstream_received="250 : 1300",
        )
    )
    assert rec.upstream_statuses == (307, 200)
    assert rec.upstream_bytes == 1000 and rec.upstream_received == 1550
    assert rec.fetched_blob_upstream


def test_cold_pull_without_gateway_counts_one_miss_per_blob_and_2x():
    lines = [
        line("served", f"/v2/a/blobs/{D1}", bytes=1000),
        line(
            "upstream",
            f"/v2/a/blobs/{D1}",
            upstream_status="200",
            upstream_length="1000",
            bytes=1000,
        ),
        line(
            "upstream",
            f"/v2/a/blobs/{D1}",
            upstream_status="200",
            upstream_length="1000",
            bytes=1000,
        ),
        line(
            "upstream",
            "/v2/a/manifests/v1",
            upstream_status="200",
            upstream_length="500",
            bytes=500,
        ),
    ]
    out = gt.summarize(gt.parse_lines(lines))
    assert (out.requests, out.misses, out.hits) == (1, 1, 0)
    assert out.bytes_upstream == 2500 and out.bytes_missed == 1000
    assert out.upstream_requests == 3
    assert out.amplification == 2.5
    assert out.upstream_by_repository == {"a": 2500}


def test_warm_pull_is_all_hits_with_cached_gateway_lines_not_upstream():
    lines = [
        line("served", f"/v2/a/blobs/{D1}", bytes=1000),
        line("served", f"/v2/a/blobs/{D2}", bytes=2000),
        line("upstream", f"/v2/a/blobs/{D2}", cache="HIT", bytes=2000),
        line("served", f"/v2/a/blobs/{D2}", status=401),
    ]
    out = gt.summarize(gt.parse_lines(lines))
    assert (out.requests, out.hits, out.misses) == (2, 2, 0)
    assert out.bytes_upstream == 0 and out.upstream_requests == 0
    assert out.hit_rate == 1.0 and out.amplification is None


def test_failed_upstream_answers_are_not_misses():
    lines = [
        line(
            "upstream",
            f"/v2/a/blobs/{D1}",
            status=401,
            upstream_status="401",
            upstream_length="150",
        )
    ]
    out = gt.summarize(gt.parse_lines(lines))
    assert out.misses == 0 and out.upstream_requests == 1
    assert out.bytes_upstream == 150


def test_docker_timestamps_are_exact_nanoseconds():
    ns, rest = gt.docker_timestamp_ns("2024-05-01T10:00:00.000000123Z x")
    assert rest == "x" and ns == 1714557600 * 10**9 + 123
    assert gt.docker_timestamp_ns("2024-05-01T10:00:01Z y")[0] == 1714557601 * 10**9
    assert gt.docker_timestamp_ns("no stamp") == (None, "no stamp")


# -- real captured logs ---------------------------------------------------------
# registries/tests/data: the served nginx and the gateway of a mirror, as
# `docker logs --timestamps` printed them, during a cold then a warm pull of a
# 3-blob image (two 1 MiB random layers + config) from a token-auth upstream
# on S3 that redirects blob GETs; gateway_truth.json holds what the upstream
# registry's access log and the object store's proxy log said.
DATA = Path(__file__).parent / "data"


def captured(name):
    return (DATA / name).read_text().splitlines()


def truth():
    return json.loads((DATA / "gateway_truth.json").read_text())


def test_captured_logs_have_no_credentials_and_parse_fully():
    for name in ("gateway_cold_warm_on.log", "gateway_cold_warm_off.log"):
        lines = captured(name)
        text = "\n".join(lines).lower()
        for secret in ("authorization", "bearer", "x-amz-signature", "password"):
            assert secret not in text
        assert len(gt.parse_lines(lines)) == len(lines)


def test_captured_cold_then_warm_pull_with_gateway():
    facts = truth()
    image = sum(facts["image_blobs"].values())
    out = gt.summarize(gt.parse_lines(captured("gateway_cold_warm_on.log")))
    # Two pulls of three blobs: the first three are misses, the rest hits.
    assert (out.requests, out.misses, out.hits) == (6, 3, 3)
    assert out.missed_digests == set(facts["image_blobs"])
    assert out.bytes_missed == image
    # Every blob body crossed once: exactly what the object store served.
    up = facts["on"]
    assert up["object_store_bytes"] == image
    assert up["object_store_bytes"] <= out.bytes_upstream
    # The registry's own small answers (401s, manifests) are counted too;
    # only the bodies of intercepted 307s (never read by nginx) are not.
    assert out.bytes_upstream <= up["object_store_bytes"] + up["registry_bytes"]
    assert 1.0 <= out.amplification < 1.01
    assert out.bytes_served >= 2 * image


def test_captured_cold_then_warm_pull_without_gateway_shows_2x():
    facts = truth()
    image = sum(facts["image_blobs"].values())
    out = gt.summarize(gt.parse_lines(captured("gateway_cold_warm_off.log")))
    assert (out.requests, out.misses, out.hits) == (6, 3, 3)
    up = facts["off"]
    assert up["object_store_bytes"] == 2 * image  # registry 2.8 fetches twice
    assert up["object_store_bytes"] <= out.bytes_upstream
    assert out.bytes_upstream <= up["object_store_bytes"] + up["registry_bytes"]
    assert 2.0 <= out.amplification < 2.01
