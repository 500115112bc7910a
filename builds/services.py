"""Writes for build clusters, agents, projects and builds (the only writers).

Spec rows go through `controlplane.services.object_save` (audited); a new
cluster gets the default agents (java, node) and is provisioned by a task.
Builds are created queued and published after commit with their uuid as the
Celery task id; cancel is a compare-and-set from any active status.
"""

import uuid

from django.core.exceptions import ValidationError
from django.db import transaction
from django.db.models import Max
from django.utils import timezone
from django.utils.translation import gettext as _

from adapters.errors import AdapterError
from controlplane import audit
from controlplane.services import object_delete, object_save

from .executors import executor_for
from .models import (
    BUILD_ACTIVE_STATES,
    DEFAULT_AGENTS,
    DEFAULT_JENKINS_AGENTS,
    GIT_REF_RE,
    Build,
    BuildAgent,
    BuildCluster,
    BuildStatus,
    ClusterStatus,
    Project,
)
from .progress import db_text

REF_RE = GIT_REF_RE  # branch, tag or commit; see builds.models


# -- clusters and agents -----------------------------------------------------
@transaction.atomic
def cluster_save(
    actor, cluster: BuildCluster, data: dict, via: str = "ui"
) -> BuildCluster:
    """Create or update a cluster; a new one gets the default agents."""
    from .tasks import cluster_provision_task

    creating = cluster._state.adding
    data = dict(data)
    _validate_cluster_links(cluster, data)
    cluster = object_save(actor, cluster, data, via)
    if creating:
        agents_create_defaults(actor, cluster, via)
    cluster_provision_task.delay_on_commit(cluster.pk)
    return cluster


def _validate_cluster_links(cluster: BuildCluster, data: dict) -> None:
    """The host and the private registry must be in the cluster's region, and
    the registry on the cluster's host: the cluster's engine pushes to the
    registry's listen address, which is loopback by design.
    """
    region = data.get("region") or (cluster.region if cluster.region_id else None)
    host = data.get("host") or (cluster.host if cluster.host_id else None)
    registry = data.get("registry", cluster.registry if cluster.registry_id else None)
    errors = {}
    if region and host and host.region_id != region.pk:
        errors["host"] = _("The host is in another region.")
    if registry is not None:
        if registry.kind != registry.Kind.PRIVATE:
            errors["registry"] = _("Builds push to a private registry, not a mirror.")
        elif region and registry.region_id != region.pk:
            errors["registry"] = _("The registry is in another region.")
        elif host and registry.host_id != host.pk:
            errors["registry"] = _(
                "The registry runs on another Docker host (%(host)s). Builds "
                "push to it over the cluster host's loopback: choose a private "
                "registry on %(cluster_host)s."
            ) % {"host": registry.host, "cluster_host": host}
    if errors:
        raise ValidationError(errors)


def agents_create_defaults(actor, cluster: BuildCluster, via: str = "ui") -> list:
    """Add the java and node agents (default images and caches) if missing.

    On a Jenkins cluster they start from the inbound agent image: a plain
    maven or node image cannot connect to the master.
    """
    created = []
    jenkins = cluster.executor == BuildCluster.Executor.JENKINS
    for kind, spec in (DEFAULT_JENKINS_AGENTS if jenkins else DEFAULT_AGENTS).items():
        if cluster.agents.filter(kind=kind).exists():
            continue
        agent = BuildAgent(cluster=cluster, kind=kind)
        data = {"image": spec["image"], "cache_paths": list(spec["cache_paths"])}
        created.append(object_save(actor, agent, data, via))
    return created


@transaction.atomic
def agent_save(actor, agent: BuildAgent, data: dict, via: str = "ui") -> BuildAgent:
    """Create or update an agent and re-provision its cluster.

    An agent stays in its cluster, and keeps its kind while projects build on
    it: their builds (and Jenkins job labels) find the agent by both.
    """
    from .tasks import cluster_provision_task

    if not agent._state.adding:
        _validate_agent_change(agent, data)
    agent = object_save(actor, agent, data, via)
    cluster_provision_task.delay_on_commit(agent.cluster_id)
    return agent


def _validate_agent_change(agent: BuildAgent, data: dict) -> None:
    cluster = data.get("cluster")
    if cluster is not None and cluster.pk != agent.cluster_id:
        raise ValidationError(
            {
                "cluster": _(
                    "An agent cannot move to another cluster; add one to that "
                    "cluster instead."
                )
            }
        )
    if data.get("kind", agent.kind) == agent.kind:
        return
    users = agent.cluster.projects.filter(agent_kind=agent.kind)
    names = ", ".join(users.values_list("name", flat=True)[:5])
    if names:
        raise ValidationError(
            {
                "kind": _("Projects build on this agent: %(names)s. Move them first.")
                % {"names": names}
            }
        )


@transaction.atomic
def agent_delete(actor, agent: BuildAgent, via: str = "ui") -> None:
    """Remove an agent no project builds on; re-provision its cluster."""
    from .tasks import cluster_provision_task

    users = agent.cluster.projects.filter(agent_kind=agent.kind)
    names = ", ".join(users.values_list("name", flat=True)[:5])
    if names:
        raise ValidationError(
            _("Projects build on this agent: %(names)s. Move them first.")
            % {"names": names}
        )
    if agent.builds.filter(status__in=BUILD_ACTIVE_STATES).exists():
        raise ValidationError(_("Builds are running or waiting on this agent."))
    cluster_id = agent.cluster_id
    object_delete(actor, agent, via)
    cluster_provision_task.delay_on_commit(cluster_id)


def cluster_provision(cluster_id: int) -> BuildCluster | None:
    """Run the executor's provision and record ready / failed with the reason."""
    cluster = BuildCluster.objects.filter(pk=cluster_id).first()
    if cluster is None:
        return None
    BuildCluster.objects.filter(pk=cluster.pk).update(status=ClusterStatus.PROVISIONING)
    status, error = ClusterStatus.READY, ""
    try:
        executor_for(cluster).provision(cluster)
    except AdapterError as exc:
        status, error = ClusterStatus.FAILED, exc.reason
    except LookupError as exc:
        status, error = ClusterStatus.FAILED, str(exc)
    except Exception as exc:
        _record_provision(cluster, ClusterStatus.FAILED, f"{type(exc).__name__}: {exc}")
        raise
    _record_provision(cluster, status, error)
    cluster.refresh_from_db()
    return cluster


def _record_provision(cluster: BuildCluster, status: str, error: str) -> None:
    BuildCluster.objects.filter(pk=cluster.pk).update(
        status=status,
        last_error=db_text(error[:2000]),
        last_provisioned_at=timezone.now(),
    )


def agent_cache_record(agent_id: int, size_bytes: int | None) -> None:
    """Remember the agent's cache volume size as last measured."""
    if size_bytes is None:
        return
    BuildAgent.objects.filter(pk=agent_id).update(
        cache_bytes=size_bytes, cache_measured_at=timezone.now()
    )


def cluster_request_provision(actor, cluster: BuildCluster, via: str = "ui") -> None:
    """The "Provision" button: audited, then provisioned by a task."""
    from .tasks import cluster_provision_task

    with transaction.atomic():
        audit.record(actor, "provision", cluster, {}, via)
        cluster_provision_task.delay_on_commit(cluster.pk)


def project_save(actor, project: Project, data: dict, via: str = "ui") -> Project:
    return object_save(actor, project, data, via)


# -- builds ------------------------------------------------------------------
def validate_ref(ref: str) -> str:
    ref = (ref or "").strip()
    if not REF_RE.match(ref):
        raise ValidationError(
            {"ref": _("Give a branch, tag or commit (letters, digits, . _ / - @ +).")}
        )
    return ref


def build_create(actor, project: Project, ref: str = "", via: str = "ui") -> Build:
    """Queue a build of `ref` (default: the project's default ref) and publish it."""
    from .tasks import build_run_task

    ref = validate_ref(ref or project.default_ref)
    agent = project.cluster.agents.filter(kind=project.agent_kind).first()
    if agent is None:
        raise ValidationError(
            {
                "agent_kind": _("The cluster has no %(kind)s agent.")
                % {"kind": project.agent_kind}
            }
        )
    with transaction.atomic():
        Project.objects.select_for_update(no_key=True).filter(pk=project.pk).first()
        last = project.builds.aggregate(n=Max("number"))["n"] or 0
        build = Build.objects.create(
            id=uuid.uuid4(),
            project=project,
            agent=agent,
            number=last + 1,
            ref=ref,
            status=BuildStatus.QUEUED,
            requested_by=actor if getattr(actor, "is_authenticated", False) else None,
        )
        audit.record(actor, "build", build, {"ref": [None, ref]}, via)
        build_run_task.apply_async_on_commit(
            args=[str(build.pk)], task_id=str(build.pk)
        )
    return build


def build_cancel(actor, build: Build, via: str = "ui") -> Build:
    """Cancel a queued or running build (compare-and-set); stop it by a task."""
    from .queue import agent_kick
    from .tasks import build_cancel_task

    with transaction.atomic():
        old = Build.objects.filter(pk=build.pk).values_list("status", flat=True).first()
        won = Build.objects.filter(pk=build.pk, status__in=BUILD_ACTIVE_STATES).update(
            status=BuildStatus.CANCELLED, finished_at=timezone.now()
        )
        if not won:
            raise ValidationError(
                {"status": _("The build already ended (%(status)s).") % {"status": old}}
            )
        build.refresh_from_db()
        audit.record(actor, "cancel", build, {"status": [old, build.status]}, via)
        if old == BuildStatus.RUNNING:
            build_cancel_task.delay_on_commit(str(build.pk))
        if build.agent_id:
            agent_id = build.agent_id
            transaction.on_commit(lambda: agent_kick(agent_id))
    return build
