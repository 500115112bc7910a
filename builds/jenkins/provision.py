"""A Jenkins cluster's containers, kept as desired by adapters.reconcile.

Like the hand-written compose of such a cluster, on the cluster's host:

* master `ferry-jenkins-<cluster>`: FERRY_JENKINS_IMAGE, jenkins_home in the
  named volume `ferry-jenkins-<cluster>-home`, HTTP bound to 127.0.0.1 on the
  port of the cluster's jenkins_url, the TCP agent port switched off (agents
  connect over WebSocket through the HTTP port);
* one agent per BuildAgent `ferry-jenkins-<cluster>-agent-<kind>`: the
  agent's image (an inbound-agent image: its entrypoint takes the remoting
  arguments), the host's docker.sock (Docker outside of Docker), the cache
  paths as the docker executor's named volumes `ferry-cache-<cluster>-<kind>-<n>`
  and settings.xml read-only from the agent's files volume. Agents register
  with the master as permanent inbound nodes (label = kind, executors =
  concurrency), which needs the cluster's Jenkins user and API token.

Host networking, no published ports, restart unless-stopped, labels
`ferry.managed`, `ferry.owner=buildcluster:<id>`, `ferry.role`,
`ferry.config-hash` (a hash of everything that defines the container; the
agent's secret and settings.xml enter it only hashed).
"""

import hashlib
import json
import time
from dataclasses import dataclass, field
from urllib.parse import urlsplit

from django.conf import settings

from adapters import containers as engine
from adapters.docker_volumes import volume_ensure
from adapters.errors import JenkinsError
from adapters.jenkins import JenkinsAuthFailed, JenkinsClient, JenkinsUnreachable
from adapters.reconcile import Action, Desired, Runner, apply_actions, observe, plan
from builds.executors.docker import agent_prepare

from .connection import cluster_jenkins

HOME = "/var/jenkins_home"
AGENT_WORKDIR = "/home/jenkins/agent"
DOCKER_SOCK = "/var/run/docker.sock"


@dataclass(frozen=True)
class ContainerPlan:
    """Everything that defines one container of the cluster (the desired state)."""

    role: str  # master | agent-<kind>
    name: str
    image: str
    command: tuple[str, ...] = ()
    environment: tuple[tuple[str, str], ...] = ()
    mounts: tuple[tuple[str, str, str, bool], ...] = ()  # type, source, target, ro
    user: str = ""
    labels: tuple[tuple[str, str], ...] = field(default=(), compare=False)
    secrets: tuple[str, ...] = field(default=(), compare=False, repr=False)

    @property
    def config_hash(self) -> str:
        return dict(self.labels)["ferry.config-hash"]


# -- names and specs ----------------------------------------------------------
def owner(cluster) -> str:
    return f"buildcluster:{cluster.pk}"


def master_name(cluster) -> str:
    return f"ferry-jenkins-{cluster.pk}"


def home_volume(cluster) -> str:
    return f"ferry-jenkins-{cluster.pk}-home"


def agent_container_name(agent) -> str:
    return f"ferry-jenkins-{agent.cluster_id}-agent-{agent.kind}"


def node_prefix(cluster_id: int) -> str:
    """What the names of a cluster's nodes in Jenkins start with."""
    return f"ferry-{cluster_id}-"


def node_name(agent) -> str:
    """The agent's node in Jenkins (jobs run on it by its label, the kind)."""
    return node_prefix(agent.cluster_id) + agent.kind


def master_address(cluster) -> tuple[int, str]:
    """(port, path prefix) of the master, from the cluster's jenkins_url."""
    if not cluster.jenkins_url:
        raise JenkinsError(
            "Set the cluster's Jenkins URL (e.g. http://127.0.0.1:8080/): "
            "the master listens on its port"
        )
    parts = urlsplit(cluster.jenkins_url)
    port = parts.port or (443 if parts.scheme == "https" else 8080)
    return port, parts.path.rstrip("/")


def _finish(cluster, draft: ContainerPlan) -> ContainerPlan:
    identity = {
        "image": draft.image,
        "command": list(draft.command),
        "environment": [list(item) for item in draft.environment],
        "mounts": [list(item) for item in draft.mounts],
        "user": draft.user,
        "secrets": [hashlib.sha256(s.encode()).hexdigest() for s in draft.secrets],
    }
    digest = hashlib.sha256(json.dumps(identity, sort_keys=True).encode()).hexdigest()
    labels = (
        ("ferry.managed", "true"),
        ("ferry.owner", owner(cluster)),
        ("ferry.cluster", str(cluster.pk)),
        ("ferry.role", draft.role),
        ("ferry.config-hash", digest),
    )
    return ContainerPlan(**{**vars(draft), "labels": labels})


def master_plan(cluster) -> ContainerPlan:
    port, prefix = master_address(cluster)
    command = ["--httpListenAddress=127.0.0.1", f"--httpPort={port}"]
    if prefix:
        command.append(f"--prefix={prefix}")
    return _finish(
        cluster,
        ContainerPlan(
            role="master",
            name=master_name(cluster),
            image=settings.FERRY_JENKINS_IMAGE,
            command=tuple(command),
            environment=(
                # No TCP agent listener (it would bind every interface).
                ("JENKINS_SLAVE_AGENT_PORT", "-1"),
                ("JAVA_OPTS", "-Djenkins.model.Jenkins.slaveAgentPortEnforce=true"),
            ),
            mounts=(("volume", home_volume(cluster), HOME, False),),
        ),
    )


def docker_socket(cluster) -> str:
    """The engine's socket on its own host (what agents mount)."""
    url = cluster.host.docker_url
    return url[len("unix://") :] if url.startswith("unix://") else DOCKER_SOCK


def agent_plan(cluster, agent, mounts: list, secret: str) -> ContainerPlan:
    """The agent's container; `mounts` from the docker executor's agent_prepare."""
    port, prefix = master_address(cluster)
    master_url = f"http://127.0.0.1:{port}{prefix}/"
    rows = [
        (m["Type"], m["Source"], m["Target"], bool(m.get("ReadOnly"))) for m in mounts
    ]
    rows.append(("bind", docker_socket(cluster), DOCKER_SOCK, False))
    settings_digest = hashlib.sha256((agent.settings_xml or "").encode()).hexdigest()
    return _finish(
        cluster,
        ContainerPlan(
            role=f"agent-{agent.kind}",
            name=agent_container_name(agent),
            image=agent.image,
            command=(
                *("-url", master_url, "-webSocket", "-workDir", AGENT_WORKDIR),
                *(secret, node_name(agent)),
            ),
            environment=(("DOCKER_HOST", f"unix://{DOCKER_SOCK}"),),
            mounts=tuple(sorted(rows, key=lambda row: row[2])),
            user="root",  # the host's docker.sock is root's
            # settings.xml is bind-mounted by inode: a new one needs a new container.
            secrets=(secret, settings_digest),
        ),
    )


# -- observe -> plan -> apply ----------------------------------------------------
def new_container(spec: ContainerPlan) -> engine.NewContainer:
    """The engine's container for a plan (binds must exist: no legacy binds)."""
    return engine.NewContainer(
        name=spec.name,
        image=spec.image,
        labels=dict(spec.labels),
        command=spec.command,
        environment=spec.environment,
        user=spec.user,
        mounts=tuple(
            engine.MountSpec(source, target, kind, ro, create_missing=False)
            for kind, source, target, ro in spec.mounts
        ),
    )


def reconcile(
    client, cluster, specs: list[ContainerPlan], master: bool
) -> list[Action]:
    """observe -> plan -> apply for the master or the agents; the actions.

    Nothing half-applied stays: a failed step undoes this pass's creates and
    puts replaced containers back (adapters.reconcile's journal).
    """
    desired = [
        Desired(
            spec.role,
            spec.name,
            spec.config_hash,
            "",
            engine.image_id(client, spec.image),
        )
        for spec in specs
    ]
    observed = [
        have
        for have in observe(client, owner(cluster))
        if (have.role == "master") == master
    ]
    actions = plan(desired, observed)
    apply_actions(client, specs, actions, Runner(container=new_container))
    return actions


# -- the whole cluster --------------------------------------------------------
def wait_for_master(jenkins: JenkinsClient, timeout: float) -> str:
    """Jenkins' version once it answers; auth errors are not waited out."""
    deadline = time.monotonic() + timeout
    while True:
        try:
            return jenkins.version()
        except JenkinsUnreachable as exc:
            if time.monotonic() >= deadline:
                raise JenkinsUnreachable(
                    f"{exc.reason} (waited {timeout:g} s for the master to start)"
                ) from exc
            time.sleep(1.0)


def register_agents(cluster, agents: list) -> dict[int, str]:
    """Nodes in Jenkins for the agents; agent pk -> its secret."""
    if not (cluster.jenkins_username and cluster.jenkins_token):
        raise JenkinsAuthFailed(
            "The Jenkins master is running; set the cluster's Jenkins user and "
            "API token so that Ferry can register the agents"
        )
    jenkins = cluster_jenkins(cluster)
    wait_for_master(jenkins, settings.FERRY_JENKINS_READY_TIMEOUT)
    secrets = {}
    for agent in agents:
        jenkins.ensure_node(
            node_name(agent), agent.concurrency, agent.kind, AGENT_WORKDIR
        )
        secrets[agent.pk] = jenkins.agent_secret(node_name(agent))
    # Nodes of agents deleted (or renamed) in Ferry would keep taking jobs.
    wanted = {node_name(agent) for agent in agents}
    for name in jenkins.nodes():
        if name.startswith(node_prefix(cluster.pk)) and name not in wanted:
            jenkins.delete_node(name)
    return secrets


def cluster_apply(client, cluster) -> list[Action]:
    """Master first, then the agents (they need the master's node secrets).

    1. master: its home volume (kept forever), observe -> plan -> apply;
    2. register a node per agent through the Jenkins API (executors and label
       kept in step with the agent), read the secrets, delete the nodes of
       agents that are gone;
    3. agents: prepare volumes and settings.xml, observe -> plan -> apply;
       agents of deleted BuildAgents are removed.
    """
    master = master_plan(cluster)
    labels = {"ferry.managed": "true", "ferry.owner": owner(cluster)}
    volume_ensure(
        client, home_volume(cluster), {**labels, "ferry.cluster": str(cluster.pk)}
    )
    done = reconcile(client, cluster, [master], master=True)
    agents = list(cluster.agents.all())
    has_login = bool(cluster.jenkins_username and cluster.jenkins_token)
    secrets = register_agents(cluster, agents) if agents or has_login else {}
    specs = []
    for agent in agents:
        mounts = agent_prepare(client, agent)
        specs.append(agent_plan(cluster, agent, mounts, secrets[agent.pk]))
    return done + reconcile(client, cluster, specs, master=False)
