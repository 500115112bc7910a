"""Registry sites on the generic reconciler (adapters.reconcile).

What is registry-specific: the desired state of a site's containers (config
hash, the digest of the config files written into them, the image), reading
those files back to notice edits made inside a container, the start order
(ROLE_ORDER) and when a registry or nginx container counts as started.
"""

import time

from adapters import containers as engine
from adapters import reconcile as generic
from adapters.errors import ContainerError
from adapters.reconcile import Action, Desired, Journal, Observed

from .site import ROLE_ORDER, ContainerSpec, files_digest

__all__ = ["Action", "Desired", "Observed", "StartFailed"]


class StartFailed(ContainerError):
    """A container exited or never listened after start; `logs` says why."""

    def __init__(self, reason: str, role: str, logs: str = ""):
        super().__init__(reason)
        self.role = role
        self.logs = logs


def plan(desired: list[Desired], observed: list[Observed]) -> list[Action]:
    """What to do so that `observed` becomes `desired`, dependencies first."""
    return generic.plan(desired, observed, ROLE_ORDER)


def desired_state(spec: ContainerSpec, image_id: str) -> Desired:
    return Desired(spec.role, spec.name, spec.config_hash, spec.files_digest, image_id)


def observe(client, owner: str, specs: list[ContainerSpec]) -> list[Observed]:
    """The owner's containers; file digests read only where the hash matches."""
    by_role = {spec.role: spec for spec in specs}

    def read_digest(state) -> str | None:
        spec = by_role.get(state.labels.get("ferry.role", ""))
        if spec is None or spec.config_hash != state.labels.get("ferry.config-hash"):
            return None
        files = {}
        for path, _content, _mode in spec.files:
            text = engine.read_file(client, state.id, path)
            files[path] = "" if text is None else text
        return files_digest(files)

    return generic.observe(client, owner, read_digest)


def new_container(spec: ContainerSpec) -> engine.NewContainer:
    return engine.NewContainer(
        name=spec.name,
        image=spec.image,
        labels=dict(spec.labels),
        files=tuple(engine.ContainerFile(p, c, m) for p, c, m in spec.files),
        entrypoint=spec.entrypoint,
        mounts=tuple(
            engine.MountSpec(m.source, m.target, m.kind, m.read_only)
            for m in spec.mounts
        ),
        log_options=spec.log_options,
    )


def apply_actions(
    client,
    specs: list[ContainerSpec],
    actions: list[Action],
    timeout: float,
    before_removal=None,
    checkpoint=None,
) -> Journal:
    """generic.apply_actions, waiting up to `timeout` s for each start;
    `checkpoint()` runs before each action and while waiting."""

    def ready(client, container_id: str, role: str, since: str) -> None:
        wait_ready(client, container_id, role, timeout, since, checkpoint)

    runner = generic.Runner(container=new_container, ready=ready, checkpoint=checkpoint)
    return generic.apply_actions(client, specs, actions, runner, before_removal)


def is_ready(client, container_id: str, role: str, since: str = "") -> bool:
    """Listening yet? Raises StartFailed once the container has exited."""
    state = engine.inspect(client, container_id)
    crashed = state is not None and state.restart_count > 0  # restart policy
    if state is None or crashed or (not state.running and state.status != "created"):
        logs = engine.logs_tail(client, container_id)
        code = state.exit_code if state else None
        raise StartFailed(f"{role} container exited (code {code})", role, logs)
    if role == "registry":
        # distribution logs this once its main listener is bound. (StartedAt
        # cannot bound "this run": the engine records it after the first lines.)
        logs = engine.logs_tail(client, container_id, 200, since=since)
        return "listening on" in logs
    # nginx forks its workers only after binding every listen socket.
    return any(
        "worker process" in cmd for cmd in engine.processes(client, container_id)
    )


def wait_ready(
    client,
    container_id: str,
    role: str,
    timeout: float,
    since: str = "",
    checkpoint=None,
) -> None:
    deadline = time.monotonic() + timeout
    while not is_ready(client, container_id, role, since):
        if checkpoint is not None:
            checkpoint()
        if time.monotonic() > deadline:
            logs = engine.logs_tail(client, container_id)
            raise StartFailed(
                f"{role} container did not start listening within {timeout:g} s",
                role,
                logs,
            )
        time.sleep(0.1)
