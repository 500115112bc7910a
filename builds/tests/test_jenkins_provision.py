"""Provisioning a Jenkins cluster on a real sandboxed dockerd.

The master and agent images are local stand-ins (busybox with an entrypoint
that records its arguments and sleeps), so the containers really run; the
Jenkins API that registers the agents is the stand-in server. The plan
itself is adapters.reconcile.plan, tested as pure logic in
registries/tests/test_plan.py.
"""

import pytest

from builds.executors.docker import cache_volume_name
from builds.jenkins import provision
from builds.models import BuildAgent, ClusterStatus
from builds.services import cluster_provision
from controlplane.testing.wait import wait_for

from .jenkins_fixtures import (  # noqa: F401 - fixtures
    fixture_jenkins,
    fixture_standin_images,
    make_jenkins_cluster,
)

SETTINGS_XML = "<settings><mirrors><mirror><id>corp</id></mirror></mirrors></settings>"


# -- on a real engine ----------------------------------------------------------
@pytest.fixture
def cluster(db, dockerd, jenkins, standin_images, settings):
    settings.FERRY_JENKINS_IMAGE = standin_images["jenkins"]
    cluster = make_jenkins_cluster(jenkins.url, dockerd.url, standin_images["agent"])
    java = cluster.agents.get(kind="java")
    java.settings_xml = SETTINGS_XML
    java.concurrency = 2
    java.save()
    BuildAgent.objects.create(
        cluster=cluster,
        kind="node",
        image=standin_images["agent"],
        cache_paths=["/root/.npm"],
    )
    yield cluster
    label = f"ferry.cluster={cluster.pk}"
    client = dockerd.client
    for container in client.containers.list(all=True, filters={"label": label}):
        container.remove(force=True)
    for volume in client.volumes.list(filters={"label": label}):
        volume.remove(force=True)


def args_of(container) -> list[str]:
    code, out = container.exec_run(["cat", "/tmp/ferry-args"])
    return out.decode().splitlines() if code == 0 else []


def mounts_of(container) -> dict[str, dict]:
    return {m["Destination"]: m for m in container.attrs["Mounts"]}


def assert_isolated(container, cluster, role: str) -> None:
    attrs = container.attrs
    labels = attrs["Config"]["Labels"]
    assert labels["ferry.managed"] == "true"
    assert labels["ferry.owner"] == f"buildcluster:{cluster.pk}"
    assert labels["ferry.role"] == role
    assert len(labels["ferry.config-hash"]) == 64
    host = attrs["HostConfig"]
    assert host["NetworkMode"] == "host"
    assert host["RestartPolicy"]["Name"] == "unless-stopped"
    assert not host.get("PortBindings") and not attrs["Config"].get("ExposedPorts")
    assert container.status == "running"


def test_it_provisions_master_and_agents_like_the_hand_written_compose(
    cluster, dockerd, jenkins
):
    done = cluster_provision(cluster.pk)

    assert done.status == ClusterStatus.READY, done.last_error
    client = dockerd.client
    port = jenkins.port
    master = client.containers.get(f"ferry-jenkins-{cluster.pk}")
    assert_isolated(master, cluster, "master")
    home = mounts_of(master)["/var/jenkins_home"]
    assert (home["Type"], home["Name"]) == (
        "volume",
        f"ferry-jenkins-{cluster.pk}-home",
    )
    assert wait_for(lambda: args_of(master)) == [
        "--httpListenAddress=127.0.0.1",
        f"--httpPort={port}",
    ]
    assert "JENKINS_SLAVE_AGENT_PORT=-1" in master.attrs["Config"]["Env"]

    java = client.containers.get(f"ferry-jenkins-{cluster.pk}-agent-java")
    assert_isolated(java, cluster, "agent-java")
    assert java.attrs["Config"]["User"] == "root"
    mounts = mounts_of(java)
    cache = mounts["/root/.m2"]
    assert (cache["Type"], cache["Name"], cache["RW"]) == (
        "volume",
        cache_volume_name(cluster.agents.get(kind="java"), 0),
        True,
    )
    assert mounts["/root/.m2/settings.xml"]["RW"] is False
    sock = mounts["/var/run/docker.sock"]
    assert (sock["Type"], sock["Source"]) == ("bind", dockerd.url[len("unix://") :])
    assert java.exec_run(["cat", "/root/.m2/settings.xml"]).output.decode() == (
        SETTINGS_XML
    )
    write = java.exec_run(["sh", "-c", "echo x >> /root/.m2/settings.xml"])
    assert write.exit_code != 0 and b"Read-only" in write.output
    assert java.exec_run(["test", "-S", "/var/run/docker.sock"]).exit_code == 0

    node = jenkins.nodes[f"ferry-{cluster.pk}-java"]
    assert (node["numExecutors"], node["labelString"]) == (2, "java")
    assert wait_for(lambda: args_of(java)) == [
        *("-url", f"http://127.0.0.1:{port}/", "-webSocket"),
        *(
            "-workDir",
            "/home/jenkins/agent",
            node["secret"],
            f"ferry-{cluster.pk}-java",
        ),
    ]
    assert node["secret"] not in str(java.attrs["Config"]["Labels"])

    npm = client.containers.get(f"ferry-jenkins-{cluster.pk}-agent-node")
    assert_isolated(npm, cluster, "agent-node")
    assert "/root/.m2/settings.xml" not in mounts_of(npm)
    assert mounts_of(npm)["/root/.npm"]["Type"] == "volume"


def test_reapply_is_a_no_op_and_drift_is_repaired(cluster, dockerd):
    assert cluster_provision(cluster.pk).status == ClusterStatus.READY
    client = dockerd.client
    master_name = f"ferry-jenkins-{cluster.pk}"
    java_name = f"ferry-jenkins-{cluster.pk}-agent-java"
    ids = {c.name: c.id for c in client.containers.list(all=True)}
    cache = client.volumes.get(cache_volume_name(cluster.agents.get(kind="java"), 0))
    cache_created = cache.attrs["CreatedAt"]

    assert provision.cluster_apply(client, cluster) == []
    assert {c.name: c.id for c in client.containers.list(all=True)} == ids

    client.containers.get(java_name).remove(force=True)
    client.containers.get(master_name).stop(timeout=0)
    actions = provision.cluster_apply(client, cluster)

    assert [(a.verb, a.name) for a in actions] == [
        ("start", master_name),
        ("create", java_name),
    ]
    assert client.containers.get(master_name).id == ids[master_name]
    assert client.containers.get(java_name).status == "running"
    assert client.volumes.get(cache.name).attrs["CreatedAt"] == cache_created


def test_a_new_settings_xml_replaces_the_agent_and_a_removed_agent_goes(
    cluster, dockerd
):
    assert cluster_provision(cluster.pk).status == ClusterStatus.READY
    client = dockerd.client
    java = cluster.agents.get(kind="java")
    java.settings_xml = "<settings><!-- v2 --></settings>"
    java.save()
    cluster.agents.get(kind="node").delete()

    actions = provision.cluster_apply(client, cluster)

    assert sorted((a.verb, a.reason) for a in actions) == [
        ("remove", "not desired"),
        ("replace", "config changed"),
    ]
    agent = client.containers.get(f"ferry-jenkins-{cluster.pk}-agent-java")
    assert agent.exec_run(["cat", java.settings_xml_path]).output.decode() == (
        "<settings><!-- v2 --></settings>"
    )
    names = [c.name for c in client.containers.list(all=True)]
    assert f"ferry-jenkins-{cluster.pk}-agent-node" not in names


def test_without_credentials_the_master_runs_and_the_reason_is_shown(
    cluster, dockerd, jenkins
):
    cluster.jenkins_token = ""
    cluster.save()

    done = cluster_provision(cluster.pk)

    assert done.status == ClusterStatus.FAILED
    assert "set the cluster's Jenkins user and API token" in done.last_error
    master = dockerd.client.containers.get(f"ferry-jenkins-{cluster.pk}")
    assert master.status == "running"
    assert jenkins.nodes == {}


def test_a_jenkins_that_never_answers_fails_provisioning_at_the_deadline(
    cluster, jenkins, settings
):
    settings.FERRY_JENKINS_READY_TIMEOUT = 1.0
    jenkins.down()

    done = cluster_provision(cluster.pk)

    assert done.status == ClusterStatus.FAILED
    assert done.last_error == (
        f"Cannot connect to Jenkins at {jenkins.url}: connection refused "
        "(waited 1 s for the master to start)"
    )


def test_nodes_follow_agent_concurrency_and_a_removed_agents_node_goes(
    cluster, jenkins
):
    assert cluster_provision(cluster.pk).status == ClusterStatus.READY
    java, node = f"ferry-{cluster.pk}-java", f"ferry-{cluster.pk}-node"
    assert jenkins.nodes[java]["numExecutors"] == 2
    assert node in jenkins.nodes

    agent = cluster.agents.get(kind="java")
    agent.concurrency = 3
    agent.save()
    cluster.agents.get(kind="node").delete()
    assert cluster_provision(cluster.pk).status == ClusterStatus.READY

    assert jenkins.nodes[java]["numExecutors"] == 3
    assert jenkins.nodes[java]["labelString"] == "java"
    assert node not in jenkins.nodes


def test_with_every_agent_deleted_their_nodes_still_go(cluster, dockerd, jenkins):
    assert cluster_provision(cluster.pk).status == ClusterStatus.READY
    assert len(jenkins.nodes) == 2

    cluster.agents.all().delete()
    assert cluster_provision(cluster.pk).status == ClusterStatus.READY

    assert jenkins.nodes == {}
    names = [c.name for c in dockerd.client.containers.list(all=True)]
    assert f"ferry-jenkins-{cluster.pk}" in names
    assert not [n for n in names if n.startswith(f"ferry-jenkins-{cluster.pk}-agent")]
