"""Cache volume sizes before and after a build's dependency step, off the
critical path.

Measuring a volume (`docker system df`, which walks every volume on the
engine) can take a while on a busy host, and a build needs two measurements.
`CacheMeter` takes them in a background thread with its own engine client:
"before" while the builder container is created and the source copied in
(the builder starts only once it is done, so nothing is written yet), and
"after" while the workspace is exported and the image is built (the docker
executor), or before the trigger and after the Jenkins build ends (the
jenkins executor, whose agents mount the same volumes). Only the measuring
runs in the thread; `record` (database writes) runs in the build's thread.
"""

from concurrent.futures import Future, ThreadPoolExecutor

from django.utils.translation import gettext as _

from adapters.docker_engine import engine_client
from adapters.errors import AdapterError
from regions.services import host_connection

from .docker import agent_cache_size, cache_volumes

Sizes = dict[str, int | None]


class CacheMeter:
    def __init__(self, cluster, agent):
        # Read the host here: the thread must not touch the database.
        self.connection = host_connection(cluster.host)
        self.agent = agent
        self.errors: list[str] = []
        self._pool = ThreadPoolExecutor(1, thread_name_prefix="ferry-cache-meter")
        self._before: Future | None = None
        self._after: Future | None = None

    @property
    def started(self) -> bool:
        return self._before is not None

    def measure_before(self) -> None:
        self._before = self._pool.submit(self._measure)

    def wait_before(self) -> None:
        """Block until "before" is known (call it before the builder starts)."""
        if self._before is not None:
            self._before.result()

    def measure_after(self) -> None:
        self._after = self._pool.submit(self._measure)

    def result(self) -> tuple[Sizes, Sizes]:
        """(before, after) sizes by volume name; {} for one not measured."""
        sizes = tuple(f.result() if f else {} for f in (self._before, self._after))
        self._pool.shutdown(wait=True)
        return sizes

    def record(self, progress) -> None:
        """Record the build's cache (sizes per volume, totals, warm) and the
        agent's cache size; reasons for sizes not measured go to the log."""
        from builds.services import agent_cache_record

        before, after = self.result()
        paths = dict(cache_volumes(self.agent))
        volumes = {
            name: {"path": path, "before": before.get(name), "after": after.get(name)}
            for name, path in paths.items()
        }
        for reason in dict.fromkeys(self.errors):  # once each, in order
            progress.log(_("Cache size not measured: %s") % reason + "\n")
        size_before, size_after = _total(before), _total(after)
        progress.record(
            cache={
                "volumes": volumes,
                "before": size_before,
                "after": size_after,
                "warm": bool(size_before),
            }
        )
        agent_cache_record(self.agent.pk, size_after)

    def close(self) -> None:
        self._pool.shutdown(wait=True, cancel_futures=True)

    def _measure(self) -> Sizes:
        # A measurement that fails leaves the sizes unknown; it never fails
        # the build (the reason goes to the build log).
        try:
            with engine_client(self.connection) as client:
                return agent_cache_size(client, self.agent)
        except AdapterError as exc:
            self.errors.append(exc.reason)
        except Exception as exc:  # noqa: BLE001 - e.g. the engine went away mid-call
            self.errors.append(f"{type(exc).__name__}: {exc}")
        return {}


def _total(sizes: Sizes) -> int | None:
    known = [size for size in sizes.values() if size is not None]
    return sum(known) if known else None
