"""In-memory executor, the twin of Django's locmem mail backend.

For unit tests of the build lifecycle (queue, finish, cancel, reaper): it
touches no host, records what it was asked in class-level lists and ends
each build with the result configured for its project (success by default).

    settings.FERRY_BUILD_EXECUTORS = {
        "docker": "builds.executors.locmem.LocmemExecutor",
    }
    LocmemExecutor.results["my-project"] = BuildResult.failed("boom", 2, "build")
"""

from typing import ClassVar

from builds.progress import BuildProgress

from . import BuildResult, Executor


class LocmemExecutor(Executor):
    name = "locmem"
    provisioned: ClassVar[list] = []
    started: ClassVar[list] = []
    cancelled: ClassVar[list] = []
    results: ClassVar[dict] = {}

    @classmethod
    def reset(cls) -> None:
        cls.provisioned, cls.started, cls.cancelled, cls.results = [], [], [], {}

    def provision(self, cluster) -> None:
        self.provisioned.append(cluster.pk)

    def start(self, build) -> BuildResult:
        self.started.append(build.pk)
        progress = BuildProgress(build)
        for phase in ("source", "dependencies", "build", "push"):
            with progress.phase(phase):
                progress.log(f"{phase}: done\n")
        progress.record(
            commit="0" * 40, image=f"locmem/{build.project.name}:{build.number}"
        )
        if progress.cancelled():
            return BuildResult.cancelled()
        return self.results.get(build.project.name, BuildResult.succeeded())

    def cancel(self, build) -> None:
        self.cancelled.append(build.pk)
