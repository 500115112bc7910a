"""The Jenkins API client of a build cluster (its URL, user and API token)."""

from adapters.errors import JenkinsError
from adapters.jenkins import JenkinsClient, JenkinsConnection


def cluster_jenkins(cluster) -> JenkinsClient:
    """A lazily connecting client for the cluster's Jenkins."""
    if not cluster.jenkins_url:
        raise JenkinsError("The cluster has no Jenkins URL; set it on the cluster")
    return JenkinsClient(
        JenkinsConnection(
            url=cluster.jenkins_url,
            username=cluster.jenkins_username or "",
            token=cluster.jenkins_token or "",
        )
    )
