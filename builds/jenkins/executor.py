"""The "jenkins" executor (registered in builds.executors.DEFAULT_EXECUTORS)."""

from builds.executors import BuildResult, Executor
from builds.executors.docker import agents_cache_record, cluster_engine

from . import follow, provision


class JenkinsExecutor(Executor):
    name = "jenkins"

    def provision(self, cluster) -> None:
        """Master and agent containers on the cluster's host, agents registered;
        cache sizes measured when the engine answers in time."""
        with cluster_engine(cluster) as client:
            provision.cluster_apply(client, cluster)
        agents_cache_record(cluster, list(cluster.agents.all()))

    def start(self, build) -> BuildResult:
        return follow.JenkinsBuild(build).run()

    def cancel(self, build) -> None:
        follow.stop_build(build)
