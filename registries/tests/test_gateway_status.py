"""The gateway's state for the pages: error extraction and registry_stats."""

from datetime import UTC, datetime, timedelta

import pytest
from django.utils import timezone

from registries import groundtruth as gt
from registries import metrics
from registries.gateway_status import error_from_records, error_from_stderr
from registries.models import RegistrySample

from .test_metrics import registry  # noqa: F401 - fixture

T0 = datetime(2026, 3, 1, 12, 0, 0, tzinfo=UTC)
SIGNED = "http://127.0.0.1:9/bucket/blob?X-Amz-Signature=deadbeef&X-Amz-Credential=AK"


def docker_line(moment: datetime, text: str) -> str:
    return moment.strftime("%Y-%m-%dT%H:%M:%S.%f000Z ") + text


def ns(moment: datetime) -> int:
    return int(moment.timestamp()) * 10**9 + moment.microsecond * 1000


def test_the_last_error_line_of_the_window_without_query_strings():
    lines = [
        docker_line(T0, "2026/03/01 12:00:00 [error] 7#7: *1 too early"),
        docker_line(T0 + timedelta(seconds=1), "2026/03/01 12:00:01 [warn] 7#7: w"),
        docker_line(
            T0 + timedelta(seconds=2),
            "2026/03/01 12:00:02 [error] 7#7: *5 connect() failed (111: Connection "
            'refused) while connecting to upstream, client: 127.0.0.1, request: "GET '
            f'/v2/ns/app/blobs/sha256:ab HTTP/1.1", upstream: "{SIGNED}"',
        ),
        "not docker-timestamped [error] ignored",
    ]
    text, at = error_from_stderr(lines, ns(T0), ns(T0 + timedelta(seconds=5)))
    assert text.startswith("[error] connect() failed (111: Connection refused)")
    assert 'upstream: "http://127.0.0.1:9/bucket/blob?..."' in text
    assert "Signature" not in text and "Credential" not in text
    assert at == T0 + timedelta(seconds=2)
    assert error_from_stderr(lines[:2], ns(T0), ns(T0 + timedelta(seconds=5))) is None


def test_a_5xx_answer_is_an_error_and_a_401_is_not():
    def record(status: int, upstream: tuple[int, ...]):
        return gt.LogRecord(
            side="upstream", time=T0.timestamp(), method="GET",
            uri="/v2/ns/app/blobs/sha256:ab", status=status, bytes=0,
            upstream_statuses=upstream,
        )  # fmt: skip

    assert error_from_records([record(401, (401,)), record(200, (307, 200))]) is None
    text, at = error_from_records([record(502, (502,)), record(401, (401,))])
    assert text == "HTTP 502: GET /v2/ns/app/blobs/sha256:ab (upstream 502)"
    assert at == T0


@pytest.mark.django_db
def test_stats_show_mode_running_cache_and_the_last_error_of_the_window(registry):
    now = timezone.now()
    common = {"registry": registry, "gateway_cache_bytes": 2048}
    RegistrySample.objects.create(
        sampled_at=now - timedelta(days=2), gateway_running=True,
        gateway_error="[error] long ago", gateway_error_at=now - timedelta(days=2),
        **common,
    )  # fmt: skip
    stats = metrics.registry_stats(registry)["gateway"]
    assert stats["status"] == "caching" and stats["running"] is True
    assert stats["last_error"] == "" and stats["last_error_at"] is None
    assert stats["cache_bytes"] == 2048
    assert stats["cache_max_bytes"] == registry.gateway_cache_max_mb * 1024 * 1024

    RegistrySample.objects.create(
        sampled_at=now - timedelta(minutes=2), gateway_running=True,
        gateway_error="[error] refused", gateway_error_at=now - timedelta(minutes=3),
        **common,
    )  # fmt: skip
    RegistrySample.objects.create(
        registry=registry, sampled_at=now - timedelta(minutes=1),
        gateway_running=False,
    )  # fmt: skip
    registry.gateway_enabled = False
    stats = metrics.registry_stats(registry)["gateway"]
    assert stats["status"] == "down" and stats["running"] is False
    assert stats["last_error"] == "[error] refused"
    assert stats["last_error_at"] == now - timedelta(minutes=3)
    RegistrySample.objects.filter(gateway_running=False).update(gateway_running=True)
    assert metrics.registry_stats(registry)["gateway"]["status"] == "pass-through"
