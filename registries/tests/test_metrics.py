"""registry_sample's cursor and arithmetic, registry_stats and the series.

The docker log reads are replaced by the real captured lines of
registries/tests/data (what `docker logs --timestamps` gave for the mirror's
served nginx and gateway); the end-to-end proof against live containers is
test_gateway.py.
"""

from datetime import UTC, datetime, timedelta
from pathlib import Path

import pytest
from django.utils import timezone

from adapters import container_logs
from regions.models import DockerHost, Region
from registries import events, metrics, selectors
from registries import groundtruth as gt
from registries.models import ObjectStore, Registry, RegistrySample

DATA = Path(__file__).parent / "data"


@pytest.fixture
def registry(db, tmp_path):
    (tmp_path / "store").mkdir()
    (tmp_path / "store" / "blob").write_bytes(b"x" * 1234)
    region = Region.objects.create(slug="hk", name="Hong Kong")
    host = DockerHost.objects.create(region=region, name="h", docker_url="unix:///x")
    store = ObjectStore.objects.create(
        region=region, name="fs", kind="filesystem",
        root_directory=str(tmp_path / "store"),
    )  # fmt: skip
    return Registry.objects.create(
        region=region, host=host, name="m", kind="mirror", store=store,
        upstream_url="http://127.0.0.1:1", gateway_port=6000,
    )  # fmt: skip


@pytest.fixture
def captured_logs(monkeypatch):
    """Serve the captured lines as the two containers' logs."""
    lines = (DATA / "gateway_cold_warm_on.log").read_text().splitlines()
    by_role = {
        "nginx": [x for x in lines if '"side":"served"' in x],
        "gateway": [x for x in lines if '"side":"upstream"' in x],
    }
    reads = []

    def fake_lines(conn, name, since, until):
        reads.append((name, since, until))
        role = name.rsplit("-", 1)[1]
        return container_logs.LogChunk(lines=by_role[role], running=True)

    monkeypatch.setattr(container_logs, "container_log_lines", fake_lines)
    monkeypatch.setattr(container_logs, "volume_bytes", lambda conn, name: 4096)
    monkeypatch.setattr(
        container_logs, "container_error_lines", lambda conn, refs, s, u: []
    )
    return lines, reads


def stamp(line):
    return gt.split_docker_timestamp(line)[0]


def test_two_samples_split_the_log_exactly_once(registry, captured_logs, settings):
    settings.FERRY_REGISTRY_LOG_LAG = 0
    lines, reads = captured_logs
    whole = gt.summarize(gt.parse_lines(lines))
    middle = stamp(lines[len(lines) // 2])
    first = metrics.registry_sample(registry.pk, now=middle)
    second = metrics.registry_sample(registry.pk, now=stamp(lines[-1]) + timedelta(1))
    names = {f"ferry-reg-{registry.pk}-nginx", f"ferry-reg-{registry.pk}-gateway"}
    assert {r[0] for r in reads} == names
    for name in ("requests", "misses", "bytes_upstream", "bytes_served"):
        assert getattr(first, name) + getattr(second, name) == getattr(whole, name)
    assert first.misses > 0 and second.requests > 0
    # Over both windows hits = requests - misses, as for the whole log.
    assert metrics.registry_stats(registry, timedelta(days=3650))["hits"] == whole.hits
    assert second.gateway_cache_bytes == 4096
    assert first.storage_bytes == 1234 and first.object_count == 1
    # A sample whose window is already counted is refused.
    assert metrics.registry_sample(registry.pk, now=middle) is None


def test_stats_sum_the_window_and_define_the_rates(registry, captured_logs, settings):
    settings.FERRY_REGISTRY_LOG_LAG = 0
    lines, _ = captured_logs
    whole = gt.summarize(gt.parse_lines(lines))
    # The captured lines are from the past; count them as one recent sample.
    metrics.registry_sample(registry.pk, now=stamp(lines[-1]) + timedelta(1))
    RegistrySample.objects.update(sampled_at=timezone.now() - timedelta(minutes=5))
    stats = metrics.registry_stats(registry)
    assert stats["requests"] == 6 and stats["hits"] == 3 and stats["misses"] == 3
    assert stats["hit_rate"] == 0.5
    assert stats["bytes_upstream"] == whole.bytes_upstream
    assert stats["bytes_missed"] == whole.bytes_missed
    assert 1.0 <= stats["amplification"] < 1.01
    assert stats["bytes_saved"] == whole.bytes_served - whole.bytes_upstream
    assert stats["storage_bytes"] == 1234 and stats["objects"] == 1
    assert stats["gateway"]["status"] == "caching"
    assert stats["gateway"]["cache_bytes"] == 4096
    old = metrics.registry_stats(registry, window=timedelta(minutes=1))
    assert old["requests"] == 0 and old["hit_rate"] is None


def test_sample_stores_bytes_missed_and_upstream_requests_in_their_columns(
    registry, captured_logs, settings
):
    settings.FERRY_REGISTRY_LOG_LAG = 0
    lines, _ = captured_logs
    whole = gt.summarize(gt.parse_lines(lines))
    assert whole.bytes_missed > 0 and whole.upstream_requests != whole.bytes_missed
    metrics.registry_sample(registry.pk, now=stamp(lines[-1]) + timedelta(1))
    sample = RegistrySample.objects.get(registry=registry)
    assert sample.bytes_missed == whole.bytes_missed
    assert sample.upstream_requests == whole.upstream_requests
    RegistrySample.objects.update(sampled_at=timezone.now() - timedelta(minutes=5))
    stats = metrics.registry_stats(registry)
    assert stats["upstream_requests"] == whole.upstream_requests
    assert stats["bytes_missed"] == whole.bytes_missed


def test_an_apply_in_progress_samples_alone(registry, captured_logs, settings):
    settings.FERRY_REGISTRY_LOG_LAG = 0
    lines, reads = captured_logs
    later = stamp(lines[-1]) + timedelta(1)
    Registry.objects.filter(pk=registry.pk).update(
        apply_lock="apply-token", apply_lock_expires_at=timezone.now() + timedelta(1)
    )
    # The beat sampler is refused while the apply may swap containers...
    assert metrics.registry_sample(registry.pk, now=later) is None
    # ...the apply's own sample (flush: no lag, stopped containers read too)
    # is not, and reads the renamed containers as well.
    reads.clear()
    sample = metrics.registry_sample(
        registry.pk, now=later, flush=True, lease="apply-token",
        retiring=(("gateway", "aside-gateway"), ("registry", "not-read")),
    )  # fmt: skip
    assert sample is not None and sample.sampled_at == later
    assert [r[0] for r in reads][-1] == "aside-gateway"
    assert "not-read" not in [r[0] for r in reads]


def test_a_down_host_leaves_the_cursor_for_the_next_sample(registry, monkeypatch):
    from adapters.errors import HostUnreachable

    def down(*args):
        raise HostUnreachable("engine gone")

    monkeypatch.setattr(container_logs, "container_log_lines", down)
    assert metrics.registry_sample(registry.pk) is None
    assert not registry.samples.exists()


def test_hit_rate_series_buckets_samples(registry):
    now = datetime(2026, 1, 2, 12, 0, tzinfo=UTC)
    for minutes, requests, hits in ((30, 10, 5), (45, 10, 10), (23 * 60 + 30, 4, 0)):
        RegistrySample.objects.create(
            registry=registry, sampled_at=now - timedelta(minutes=minutes),
            requests=requests, hits=hits, misses=requests - hits,
            bytes_upstream=100, bytes_served=1000, storage_bytes=minutes,
        )  # fmt: skip
    series = selectors.hit_rate_series(registry, "24h", now=now)
    assert len(series) == 24
    assert series[-1]["requests"] == 20 and series[-1]["hit_rate"] == 0.75
    assert series[0]["requests"] == 4 and series[0]["hit_rate"] == 0.0
    assert series[5]["hit_rate"] is None
    week = selectors.hit_rate_series(registry, "7d", now=now)
    assert len(week) == 28 and sum(b["requests"] for b in week) == 24
    growth = selectors.storage_growth(registry, "24h", now=now)
    assert growth[-1]["storage_bytes"] == 30  # the latest gauge of the bucket
    assert growth[3]["storage_bytes"] is None
    RegistrySample.objects.update(sampled_at=timezone.now() - timedelta(hours=1))
    assert selectors.combined_hit_rate([registry]) == 15 / 24
    assert selectors.combined_hit_rate([]) is None


def test_the_region_card_shows_the_hit_rate_the_registry_page_shows(registry):
    # A miss's upstream fetch counted in one sample, the client's GET in the
    # next: per sample that reads as 3 hits, over the window it is 0 of 3.
    now = timezone.now()
    for minutes, requests, misses in ((2, 0, 3), (1, 3, 0)):
        RegistrySample.objects.create(
            registry=registry, sampled_at=now - timedelta(minutes=minutes),
            requests=requests, misses=misses, hits=max(requests - misses, 0),
        )  # fmt: skip
    assert metrics.registry_stats(registry)["hit_rate"] == 0.0
    assert events.region_hit_rate(registry.region) == 0.0


@pytest.mark.integration
@pytest.mark.django_db(transaction=True)
def test_beat_task_samples_every_applied_registry(celery_worker, tmp_path):
    from controlplane.testing.wait import wait_for
    from registries import tasks

    (tmp_path / "blob").write_bytes(b"y" * 777)
    region = Region.objects.create(slug="sg", name="Singapore")
    host = DockerHost.objects.create(region=region, name="h", docker_url="unix:///x")
    store = ObjectStore.objects.create(
        region=region, name="fs", kind="filesystem", root_directory=str(tmp_path)
    )
    common = {"region": region, "host": host, "store": store, "kind": "private"}
    applied = Registry.objects.create(
        name="a", last_applied_at=timezone.now(), **common
    )
    pending = Registry.objects.create(name="p", port=5001, **common)
    tasks.sample_all_registries_task.delay()
    sample = wait_for(
        lambda: applied.samples.first(), timeout=60, message="no sample from worker"
    )
    assert sample.storage_bytes == 777 and sample.object_count == 1
    assert not pending.samples.exists()
