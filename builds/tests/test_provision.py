"""Provisioning a docker-executor cluster on a real engine, and settings.xml.

Cache volumes are labelled, survive re-provisioning (same CreatedAt), and a
private Maven settings.xml reaches builder containers read-only.
"""

import logging

import pytest
import requests
from docker.api.client import APIClient

from builds.executors.docker import cache_volume_name, files_volume_name
from builds.models import Build, BuildStatus, ClusterStatus
from builds.runs import build_run
from builds.services import build_create, cluster_provision

pytestmark = [pytest.mark.integration, pytest.mark.django_db]

SETTINGS_XML = "<settings><mirrors><mirror><id>corp</id></mirror></mirrors></settings>"


def test_provision_creates_labelled_cache_volumes_once(build_cluster, dockerd):
    cluster = cluster_provision(build_cluster.pk)

    assert cluster.status == ClusterStatus.READY, cluster.last_error
    java = cluster.agents.get(kind="java")
    volume = dockerd.client.volumes.get(cache_volume_name(java, 0))
    labels = volume.attrs["Labels"]
    assert labels["ferry.managed"] == "true"
    assert labels["ferry.owner"] == f"buildagent:{java.pk}"
    assert labels["ferry.cache-path"] == "/root/.m2"
    node = cluster.agents.get(kind="node")
    assert (
        dockerd.client.volumes.get(cache_volume_name(node, 0)).attrs["Labels"][
            "ferry.cache-path"
        ]
        == "/root/.npm"
    )
    java.refresh_from_db()
    assert java.cache_bytes == 0 and java.cache_measured_at is not None

    created = volume.attrs["CreatedAt"]
    assert cluster_provision(build_cluster.pk).status == ClusterStatus.READY
    again = dockerd.client.volumes.get(cache_volume_name(java, 0))
    assert again.attrs["CreatedAt"] == created


def test_provision_failure_is_recorded_with_the_reason(build_cluster):
    build_cluster.agents.filter(kind="node").update(image="ferry-test/missing:1")

    cluster = cluster_provision(build_cluster.pk)

    assert cluster.status == ClusterStatus.FAILED
    assert "ferry-test/missing:1" in cluster.last_error


def test_a_cache_measurement_that_times_out_leaves_the_size_unknown(
    build_cluster, dockerd, monkeypatch, caplog
):
    def df_times_out(self, *args, **kwargs):
        # What requests raises when a busy engine's `docker system df`
        # (it walks every volume) outlasts the client timeout.
        raise requests.exceptions.ReadTimeout("Read timed out. (read timeout=5)")

    monkeypatch.setattr(APIClient, "df", df_times_out)
    caplog.set_level(logging.WARNING, logger="builds.executors.docker")

    cluster = cluster_provision(build_cluster.pk)

    assert cluster.status == ClusterStatus.READY, cluster.last_error
    assert cluster.last_error == ""
    java = cluster.agents.get(kind="java")
    assert dockerd.client.volumes.get(cache_volume_name(java, 0))  # provisioned
    assert java.cache_bytes is None and java.cache_measured_at is None
    assert "cache sizes not measured" in caplog.text
    assert "no answer within" in caplog.text or "timed out" in caplog.text


def test_settings_xml_reaches_the_builder_read_only(project, dockerd):
    agent = project.cluster.agents.get(kind="java")
    agent.settings_xml = SETTINGS_XML
    agent.save()
    project.dependency_command = (
        "cat /root/.m2/settings.xml; echo; "
        "if echo x >> /root/.m2/settings.xml 2>/dev/null; "
        "then echo WRITABLE; exit 1; fi; "
        "echo settings are read-only; mkdir -p target; cp index.html target/"
    )
    project.save()

    build = build_create(None, project, via="api")
    build_run(build.pk)
    build = Build.objects.get(pk=build.pk)

    assert build.status == BuildStatus.SUCCEEDED, (build.failure_line, build.log)
    assert SETTINGS_XML in build.log
    lines = build.log.splitlines()
    assert "settings are read-only" in lines and "WRITABLE" not in lines
    files = dockerd.client.volumes.get(files_volume_name(agent))
    assert files.attrs["Labels"]["ferry.owner"] == f"buildagent:{agent.pk}"
