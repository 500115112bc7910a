"""Build verbs on a Docker engine: builder containers, `docker build`, push.

Long calls stream: a reader thread turns the engine's stream into items on
a queue, and the calling thread hands them to `on_output` and polls
`should_stop()` between items. So callbacks (which write to the database)
run in the caller's thread, and a stop request is honoured even while the
engine is silent (a `RUN sleep` step, a quiet dependency download): the
builder container, or the classic builder's "Running in" container, is
killed and the stream ends by itself.
"""

import codecs
import queue
import re
import tarfile
import threading
from collections import deque
from collections.abc import Callable, Iterable, Iterator
from contextlib import contextmanager
from dataclasses import dataclass, field
from pathlib import Path

import docker
from docker.errors import APIError, NotFound

from .errors import ContainerError, ImageNotFound, RegistryError

Output = Callable[[str], None]
StopCheck = Callable[[], bool]
POLL_SECONDS = 0.25
RUNNING_IN = re.compile(r"Running in ([0-9a-f]{12,64})")
STEP = re.compile(r"^Step \d+/\d+ : ")


def _pump(
    items: Callable[[], Iterable], on_item, should_stop: StopCheck, on_stop
) -> bool:
    """Feed items (read in a thread) to on_item; call on_stop while stopping.

    Returns whether a stop was requested. An exception in the reader is
    raised here, in the caller's thread.
    """
    inbox: queue.Queue = queue.Queue()

    def reader() -> None:
        try:
            for item in items():
                inbox.put(("item", item))
        except Exception as exc:  # noqa: BLE001 - handed to the caller
            inbox.put(("error", exc))
        finally:
            inbox.put(("end", None))

    thread = threading.Thread(target=reader, daemon=True, name="ferry-build-stream")
    thread.start()
    stopping = False
    while True:
        try:
            kind, value = inbox.get(timeout=POLL_SECONDS)
        except queue.Empty:
            kind, value = "idle", None
        if kind == "item":
            on_item(value)
        elif kind == "error":
            thread.join(5)
            raise value
        elif kind == "end":
            break
        stopping = stopping or should_stop()
        if stopping:
            on_stop()
    thread.join(5)
    return stopping


# -- builder container --------------------------------------------------------
@dataclass
class BuilderSpec:
    name: str
    image: str
    command: str  # run with /bin/sh -c
    labels: dict
    mounts: list  # docker.types.Mount
    workdir: str = "/workspace"
    env: dict = field(default_factory=dict)


class ContainerGone(ContainerError):
    """The builder container vanished under us (removed, being removed)."""


@dataclass
class StepResult:
    exit_code: int | None
    stopped: bool = False
    last_line: str = ""  # the line that best explains a failure


def builder_run(
    client: docker.DockerClient,
    spec: BuilderSpec,
    source_tar: Path,
    on_output: Output,
    should_stop: StopCheck,
    before_start: Callable[[], object] | None = None,
) -> StepResult:
    """Create the builder, copy the source in, run the command, stream output.

    `before_start()` is called once the container is ready, just before it
    starts (e.g. to wait for a measurement of the volumes it will write).
    The container is left behind (stopped) so the caller can export the
    workspace; `container_remove` it afterwards.
    """
    api = client.api
    try:
        api.create_container(
            spec.image,
            command=[spec.command],
            entrypoint=["/bin/sh", "-c"],
            name=spec.name,
            labels=spec.labels,
            working_dir=spec.workdir,
            environment=spec.env,
            host_config=api.create_host_config(mounts=spec.mounts, network_mode="host"),
        )
    except docker.errors.ImageNotFound as exc:
        raise ImageNotFound(f"Builder image {spec.image} is not on the host") from exc
    except APIError as exc:
        raise ContainerError(f"Cannot create the builder: {exc.explanation}") from exc
    lines = _LineTracker(on_output)
    with _builder_gone(spec.name):
        with open(source_tar, "rb") as handle:
            api.put_archive(spec.name, "/", handle)
        if before_start is not None:
            before_start()
        api.start(spec.name)
        stopped = _pump(
            lambda: api.logs(spec.name, stream=True, follow=True),
            lines.feed,
            should_stop,
            lambda: _kill(api, spec.name),
        )
        lines.close()
        exit_code = api.wait(spec.name, timeout=60).get("StatusCode")
    return StepResult(exit_code=exit_code, stopped=stopped, last_line=lines.last)


@contextmanager
def _builder_gone(name: str) -> Iterator[None]:
    """The engine's "no such container" / "being removed" as ContainerGone."""
    try:
        yield
    except NotFound as exc:
        raise ContainerGone(f"The builder container {name} is gone") from exc
    except APIError as exc:
        if exc.status_code != 409:
            raise ContainerError(
                f"The engine refused the builder {name}: {exc.explanation}"
            ) from exc
        raise ContainerGone(
            f"The builder container {name} is being removed: {exc.explanation}"
        ) from exc


def builder_export(
    client: docker.DockerClient, name: str, path: str, dest: Path
) -> Path:
    """Copy the container's `path` directory out, into the local directory `dest`.

    Members are extracted with tarfile's "tar" filter: no absolute paths, no
    escaping `dest`, no device files.
    """
    raw = dest.with_suffix(".export.tar")
    with _builder_gone(name):
        stream, _stat = client.api.get_archive(name, path)
        with open(raw, "wb") as handle:
            handle.writelines(stream)
    prefix = Path(path).name + "/"
    dest.mkdir(parents=True, exist_ok=True)
    with tarfile.open(raw) as archive:
        members = []
        for member in archive:
            if not member.name.startswith(prefix):
                continue  # the directory entry itself
            member.name = member.name[len(prefix) :]
            if member.islnk() and member.linkname.startswith(prefix):
                member.linkname = member.linkname[len(prefix) :]
            members.append(member)
        archive.extractall(dest, members=members, filter="tar")
    raw.unlink()
    return dest


def container_remove(client: docker.DockerClient, name: str) -> None:
    """Remove a container by name; "already gone" is fine."""
    try:
        client.api.remove_container(name, force=True)
    except NotFound:
        pass
    except APIError as exc:
        # A cancel on another worker may be removing it at the same moment.
        if exc.status_code == 409 and "already in progress" in str(exc):
            return
        raise ContainerError(f"Cannot remove {name}: {exc.explanation}") from exc


def containers_stop(client: docker.DockerClient, labels: dict) -> int:
    """Kill and remove every container carrying all `labels`; how many."""
    wanted = [f"{key}={value}" for key, value in labels.items()]
    found = client.api.containers(all=True, filters={"label": wanted})
    for item in found:
        container_remove(client, item["Id"])
    return len(found)


def _kill(api, container_id: str) -> None:
    try:
        api.kill(container_id)
    except (NotFound, APIError):
        pass  # already stopped or gone


ERROR_LINE = re.compile(
    r"(?i)\b(error|failed|failure|could not|cannot|not found|fatal|denied)\b"
)


def failure_line(lines: list[str]) -> str:
    """The line that best says why a command failed.

    The first error-looking line of the output's tail (tools such as Maven
    print the cause first and advice after it), else the last line. stdout
    and stderr are merged by the engine in arrival order, so "last" alone
    is not reliable.
    """
    for line in lines:
        if ERROR_LINE.search(line):
            return line
    return lines[-1] if lines else ""


class _LineTracker:
    """Decodes output chunks, forwards them, keeps the last non-empty lines."""

    def __init__(self, on_output: Output, keep: int = 30):
        self.on_output = on_output
        self.decoder = codecs.getincrementaldecoder("utf-8")(errors="replace")
        self.partial = ""
        self.tail: deque[str] = deque(maxlen=keep)

    @property
    def last(self) -> str:
        return failure_line(list(self.tail))

    def feed(self, chunk: bytes | str) -> None:
        text = chunk if isinstance(chunk, str) else self.decoder.decode(chunk)
        self.on_output(text)
        lines = (self.partial + text).split("\n")
        self.partial = lines.pop()
        self.tail.extend(line.strip() for line in lines if line.strip())

    def close(self) -> None:
        if self.partial.strip():
            self.tail.append(self.partial.strip())
            self.partial = ""


# -- docker build ---------------------------------------------------------------
@dataclass
class ImageBuildResult:
    image_id: str = ""
    error: str = ""  # the engine's error message when the build failed
    step: str = ""  # the Dockerfile step that was running ("Step 2/4 : RUN ...")
    exit_code: int | None = None
    stopped: bool = False

    @property
    def failure_line(self) -> str:
        if not self.error:
            return ""
        return f"{self.step} — {self.error}" if self.step else self.error


def image_build(
    client: docker.DockerClient,
    context: Path,
    dockerfile: str,
    tags: list[str],
    labels: dict | None,
    on_output: Output,
    should_stop: StopCheck,
) -> ImageBuildResult:
    """`docker build` of a context directory (classic builder), streaming its log.

    The SDK packs the directory honouring its .dockerignore, as the docker
    CLI does (the engine itself does not apply it). Mind that the classic
    builder turns `labels` into one more LABEL step (a container commit,
    ~0.15 s here): pass None unless the label is worth that.
    """
    result = ImageBuildResult()
    running: list[str] = []

    def items():
        yield from client.api.build(
            path=str(context),
            dockerfile=dockerfile,
            tag=tags[0],
            labels=labels or None,
            rm=True,
            forcerm=True,
            pull=False,
            network_mode="host",
            decode=True,
        )

    def on_item(item: dict) -> None:
        _build_item(item, result, running, on_output)

    def on_stop() -> None:
        for container_id in running[-1:]:
            _kill(client.api, container_id)

    try:
        result.stopped = _pump(items, on_item, should_stop, on_stop)
    except APIError as exc:
        result.error = str(exc.explanation or exc)
    if result.image_id and not result.error:
        for tag in tags[1:]:
            repository, _, version = tag.rpartition(":")
            client.api.tag(result.image_id, repository, version)
    return result


def _build_item(item: dict, result: ImageBuildResult, running: list, on_output) -> None:
    if "stream" in item:
        text = item["stream"]
        on_output(text)
        if STEP.match(text.strip()):
            result.step = text.strip()
        found = RUNNING_IN.search(text)
        if found:
            running.append(found.group(1))
    if "aux" in item and isinstance(item["aux"], dict) and item["aux"].get("ID"):
        result.image_id = item["aux"]["ID"]
    if "error" in item:
        detail = item.get("errorDetail") or {}
        result.error = (detail.get("message") or item["error"]).strip()
        result.exit_code = detail.get("code")
        on_output(f"ERROR: {result.error}\n")


# -- push ------------------------------------------------------------------------
QUIET_PUSH = {"Preparing", "Waiting", "Pushing"}


def image_push(
    client: docker.DockerClient, repository: str, tag: str, on_output
) -> str:
    """Push repository:tag; the manifest digest the registry answered."""
    digest = ""
    try:
        stream = client.api.push(repository, tag=tag, stream=True, decode=True)
        for item in stream:
            if "error" in item:
                detail = item.get("errorDetail") or {}
                raise RegistryError(
                    f"Push of {repository}:{tag} failed: "
                    f"{detail.get('message') or item['error']}"
                )
            aux = item.get("aux")
            if isinstance(aux, dict) and aux.get("Digest"):
                digest = aux["Digest"]
            status = item.get("status", "")
            if status and status not in QUIET_PUSH:
                prefix = f"{item['id']}: " if item.get("id") else ""
                on_output(f"{prefix}{status}\n")
    except APIError as exc:
        raise RegistryError(
            f"Push of {repository}:{tag} failed: {exc.explanation}"
        ) from exc
    if not digest:
        raise RegistryError(f"Push of {repository}:{tag} returned no digest")
    return digest
