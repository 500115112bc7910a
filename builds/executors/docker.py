"""The native Docker executor: builds run on the cluster's own Docker engine.

Provisioning creates each agent's cache volumes (never recreating one: it
holds the warm cache) and its read-only files volume (settings.xml). A
build is run by `builds.executors.docker_run.DockerBuild`; cancel kills and
removes the build's labelled containers.

Names and labels on the host (deterministic, so reconcile and cleanup find
them): cache volumes `ferry-cache-<cluster id>-<kind>-<n>`, files volume
`ferry-files-<cluster id>-<kind>`, builder container `ferry-build-<uuid>`,
all labelled `ferry.managed=true` and `ferry.owner=<kind>:<id>`.
"""

import logging
from contextlib import contextmanager

import docker
from django.conf import settings

from adapters.docker_build import containers_stop
from adapters.docker_engine import engine_client
from adapters.docker_volumes import (
    image_ensure,
    volume_ensure,
    volume_remove,
    volume_sizes,
    volume_write_files,
)
from adapters.errors import AdapterError
from regions.services import host_connection

from . import BuildResult, Executor

log = logging.getLogger(__name__)
SETTINGS_FILE = "settings.xml"
# Seconds a cache measurement may take (`docker system df` walks every volume).
CACHE_MEASURE_TIMEOUT = 60


def cache_volume_name(agent, index: int) -> str:
    return f"ferry-cache-{agent.cluster_id}-{agent.kind}-{index}"


def files_volume_name(agent) -> str:
    return f"ferry-files-{agent.cluster_id}-{agent.kind}"


def agent_labels(agent) -> dict:
    return {
        "ferry.managed": "true",
        "ferry.owner": f"buildagent:{agent.pk}",
        "ferry.cluster": str(agent.cluster_id),
        "ferry.agent": agent.kind,
    }


def cache_volumes(agent) -> list[tuple[str, str]]:
    """(volume name, container path) for each of the agent's cache paths."""
    return [
        (cache_volume_name(agent, index), path.rstrip("/"))
        for index, path in enumerate(agent.cache_paths or [])
    ]


@contextmanager
def cluster_engine(cluster, long_calls: bool = False):
    """A client for the cluster's engine; long_calls for streaming builds.

    A quick connection (FERRY_DOCKER_TIMEOUT) is made first so that an
    unreachable host fails fast rather than after the long timeout.
    """
    conn = host_connection(cluster.host)
    if not long_calls:
        with engine_client(conn) as client:
            yield client
        return
    with engine_client(conn):
        pass
    with engine_client(conn, timeout=settings.FERRY_BUILD_TIMEOUT) as client:
        yield client


def agent_prepare(client: docker.DockerClient, agent) -> list[docker.types.Mount]:
    """Ensure the agent's volumes and files; the mounts of a builder container."""
    mounts = []
    labels = agent_labels(agent)
    for name, path in cache_volumes(agent):
        volume_ensure(client, name, {**labels, "ferry.cache-path": path})
        mounts.append(docker.types.Mount(path, name, type="volume"))
    files = files_volume_name(agent)
    if agent.settings_xml:
        info = volume_ensure(client, files, {**labels, "ferry.files": "true"})
        volume_write_files(
            client, files, agent.image, {SETTINGS_FILE: agent.settings_xml.encode()}
        )
        source = f"{info.mountpoint}/{SETTINGS_FILE}"
        mounts.append(
            docker.types.Mount(
                agent.settings_xml_path, source, type="bind", read_only=True
            )
        )
    else:
        volume_remove(client, files)
    return mounts


def agent_cache_size(client: docker.DockerClient, agent) -> dict[str, int | None]:
    names = [name for name, _path in cache_volumes(agent)]
    return volume_sizes(client, names) if names else {}


def agents_cache_record(cluster, agents) -> None:
    """Measure and record each agent's cache size after a provision.

    A measurement that fails (a busy engine's `docker system df` outlasting
    the timeout) leaves the sizes as they were, with the reason logged: the
    provision itself succeeded (as a build's CacheMeter never fails a build).
    """
    from builds.services import agent_cache_record

    connection = host_connection(cluster.host)
    try:
        with engine_client(connection, timeout=CACHE_MEASURE_TIMEOUT) as client:
            measured = {agent.pk: agent_cache_size(client, agent) for agent in agents}
    except AdapterError as exc:
        log.warning("cluster %s: cache sizes not measured: %s", cluster.pk, exc.reason)
        return
    for agent_id, sizes in measured.items():
        known = [size for size in sizes.values() if size is not None]
        agent_cache_record(agent_id, sum(known) if known else None)


class DockerExecutor(Executor):
    name = "docker"

    def provision(self, cluster) -> None:
        """Agent images present, cache volumes and files in place; sizes
        measured when the engine answers in time."""
        agents = list(cluster.agents.all())
        with cluster_engine(cluster) as client:
            for agent in agents:
                image_ensure(client, agent.image)
                agent_prepare(client, agent)
        agents_cache_record(cluster, agents)

    def start(self, build) -> BuildResult:
        from .docker_run import DockerBuild

        return DockerBuild(build).run()

    def cancel(self, build) -> None:
        with cluster_engine(build.project.cluster) as client:
            containers_stop(client, {"ferry.build": str(build.pk)})
