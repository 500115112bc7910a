"""One build on the Docker executor, phase by phase.

1. source: `git` fetches the ref where Ferry's worker runs; the commit sha is
   recorded; the tree (without .git) becomes a tar.
2. dependencies: the project's dependency command runs in a builder
   container of the agent's image with the agent's cache volumes (and the
   read-only settings.xml) mounted and the source copied in; the workspace
   afterwards is the build context. Cache volume sizes are measured before
   and after (in the background: see cache_meter); the cache was warm when
   it was not empty before.
3. build: `docker build` of that context (project-relative Dockerfile),
   tagged `<registry>/<repo>:<commit12>` and `:<build number>`. No image
   label: the classic builder would add a step for it; the build is found
   from the image by its tags and its recorded digest.
4. push: both tags go to the cluster's private registry; the digest the
   registry answered is recorded.
"""

import shutil
import tempfile
from pathlib import Path

from django.utils.translation import gettext as _

from adapters.docker_build import (
    BuilderSpec,
    builder_export,
    builder_run,
    container_remove,
    image_build,
    image_push,
)
from adapters.errors import AdapterError
from adapters.git_source import source_fetch, source_tar
from builds.progress import BuildProgress

from . import BuildResult
from .cache_meter import CacheMeter
from .docker import agent_prepare, cluster_engine


class PhaseFailed(Exception):
    def __init__(self, result: BuildResult):
        super().__init__(result.failure_line)
        self.result = result


class Cancelled(Exception):
    pass


def push_registry(cluster) -> str:
    """host:port of the cluster's private registry, as its engine reaches it."""
    registry = cluster.registry
    if registry is None:
        raise PhaseFailed(
            BuildResult.failed(
                _(
                    "The cluster has no private registry to push to; "
                    "set one on the cluster."
                ),
                phase="source",
            )
        )
    host = registry.listen_address
    if host in ("", "0.0.0.0", "::"):
        host = "127.0.0.1"
    return f"{host}:{registry.port}"


class DockerBuild:
    def __init__(self, build):
        self.build = build
        self.project = build.project
        self.cluster = self.project.cluster
        self.agent = build.agent
        self.progress = BuildProgress(build)
        self.workdir = Path(tempfile.mkdtemp(prefix="ferry-build-"))
        self.container = f"ferry-build-{build.pk}"
        self.meter = CacheMeter(self.cluster, self.agent)

    def run(self) -> BuildResult:
        try:
            registry = push_registry(self.cluster)
            with cluster_engine(self.cluster, long_calls=True) as client:
                try:
                    return self._phases(client, registry)
                finally:
                    container_remove(client, self.container)
        except PhaseFailed as failed:
            # A cancel on another worker kills and removes the builder: the
            # step then fails (killed, container gone) because of the cancel.
            if self.progress.cancelled(fresh=True):
                return self._cancelled()
            self.progress.log(f"\nFAILED: {failed.result.failure_line}\n")
            return failed.result
        except Cancelled:
            return self._cancelled()
        finally:
            self.meter.close()
            self.progress.flush()
            shutil.rmtree(self.workdir, ignore_errors=True)

    def _cancelled(self) -> BuildResult:
        self.progress.log("\n" + _("Cancelled.") + "\n")
        return BuildResult.cancelled()

    def _phases(self, client, registry: str) -> BuildResult:
        tree = self._source()
        try:
            context = self._dependencies(client, tree)
            repository = f"{registry}/{self.project.image_repository}"
            tags = [
                f"{repository}:{self.build.commit[:12]}",
                f"{repository}:{self.build.number}",
            ]
            self._image(client, context, tags)
        finally:
            # "after" was measured while the image built; record it now, also
            # when a step failed or was cancelled.
            if self.meter.started:
                self.meter.record(self.progress)
        self._push(client, repository, tags)
        return BuildResult.succeeded()

    # -- phases ----------------------------------------------------------------
    def _phase(self, name: str):
        self._check_cancel()
        self.progress.log(f"==> {name}\n")
        return self.progress.phase(name)

    def _check_cancel(self) -> None:
        if self.progress.cancelled():
            raise Cancelled

    def _source(self) -> Path:
        tree = self.workdir / "src"
        with self._phase("source"), self._failing("source"):
            commit = source_fetch(
                self.project.git_url, self.build.ref, tree, self.progress.log
            )
            self.progress.record(commit=commit)
            self.progress.log(f"commit {commit}\n")
            # The history is not part of the build (as with a CI checkout).
            shutil.rmtree(tree / ".git", ignore_errors=True)
            return tree

    def _dependencies(self, client, tree: Path) -> Path:
        """Run the dependency command; the directory to build the image from."""
        command = self.project.dependency_command.strip()
        with self._phase("dependencies"), self._failing("dependencies"):
            mounts = agent_prepare(client, self.agent)
            self.meter.measure_before()
            if not command:
                self.meter.measure_after()
                return tree
            self.progress.log(f"$ {command}\n")
            source = source_tar(tree, self.workdir / "source.tar", "workspace")
            step = builder_run(
                client, self._spec(command, mounts), source, self.progress.log,
                self.progress.poll, before_start=self.meter.wait_before,
            )  # fmt: skip
            self.meter.measure_after()
            if step.stopped:
                raise Cancelled
            if step.exit_code != 0:
                line = step.last_line or _("The dependency command failed.")
                raise PhaseFailed(
                    BuildResult.failed(line, step.exit_code, "dependencies")
                )
            return builder_export(
                client, self.container, "/workspace", self.workdir / "context"
            )

    def _image(self, client, context: Path, tags: list[str]) -> None:
        with self._phase("build"), self._failing("build"):
            self.progress.log(
                f"$ docker build -f {self.project.dockerfile} -t {tags[0]}\n"
            )
            result = image_build(
                client, context, self.project.dockerfile, tags, None,
                self.progress.log, self.progress.poll,
            )  # fmt: skip
            if result.stopped:
                raise Cancelled
            if result.error or not result.image_id:
                line = result.failure_line or _("docker build produced no image.")
                raise PhaseFailed(BuildResult.failed(line, result.exit_code, "build"))

    def _push(self, client, repository: str, tags: list[str]) -> None:
        with self._phase("push"), self._failing("push"):
            digest = ""
            for tag in tags:
                self.progress.log(f"$ docker push {tag}\n")
                pushed = image_push(
                    client, repository, tag.rsplit(":", 1)[1], self.progress.log
                )
                digest = digest or pushed
            self.progress.record(image=tags[0], image_digest=digest)
            self.progress.log(f"digest {digest}\n")

    # -- helpers -----------------------------------------------------------------
    def _spec(self, command: str, mounts: list) -> BuilderSpec:
        build = self.build
        return BuilderSpec(
            name=self.container,
            image=self.agent.image,
            command=command,
            mounts=mounts,
            labels={
                "ferry.managed": "true",
                "ferry.owner": f"build:{build.pk}",
                "ferry.build": str(build.pk),
                "ferry.cluster": str(self.cluster.pk),
                "ferry.agent": self.agent.kind,
            },
            env={
                "FERRY_PROJECT": self.project.name,
                "FERRY_BUILD_NUMBER": str(build.number),
                "FERRY_REF": build.ref,
                "FERRY_COMMIT": build.commit,
            },
        )

    def _failing(self, phase: str):
        return _AdapterFailure(phase)


class _AdapterFailure:
    """Turns an adapter error inside a phase into that phase's failure."""

    def __init__(self, phase: str):
        self.phase = phase

    def __enter__(self):
        return self

    def __exit__(self, exc_type, exc, tb):
        if exc is not None and isinstance(exc, AdapterError):
            raise PhaseFailed(BuildResult.failed(exc.reason, phase=self.phase)) from exc
        return False
