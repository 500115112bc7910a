"""The "jenkins" executor (registered in builds.executors.DEFAULT_EXECUTORS)."""

from builds.executors import BuildResult, Executor
from builds.executors.docker import agent_cache_size, cluster_engine

from . import follow, provision


class JenkinsExecutor(Executor):
    name = "jenkins"

    def provision(self, cluster) -> None:
        """Master and agent containers on the cluster's host, agents registered."""
        from builds.services import agent_cache_record

        with cluster_engine(cluster) as client:
            provision.cluster_apply(client, cluster)
            for agent in cluster.agents.all():
                sizes = agent_cache_size(client, agent).values()
                known = [size for size in sizes if size is not None]
                agent_cache_record(agent.pk, sum(known) if known else None)

    def start(self, build) -> BuildResult:
        return follow.JenkinsBuild(build).run()

    def cancel(self, build) -> None:
        follow.stop_build(build)
