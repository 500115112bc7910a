"""Make a host's containers match a registry: observe -> plan (pure) -> apply.

`plan(desired, observed)` compares plain dataclasses and returns actions:
create what is missing, replace on a config/image change or a config file
edited inside the container, start what is stopped, remove what is not
desired (old roles, duplicates, strays). `apply_actions` runs them with an
undo journal: when a step fails, everything this apply created is removed
and replaced containers are put back, so nothing half-applied keeps running.
Containers about to be removed are stopped first and handed to the caller's
`before_removal` (metrics count their last log lines before they are gone).
"""

import time
from dataclasses import dataclass

from adapters import containers as engine
from adapters.errors import ContainerError

from .site import ROLE_ORDER, ContainerSpec, files_digest


@dataclass(frozen=True)
class Desired:
    role: str
    name: str
    config_hash: str
    files_digest: str
    image_id: str


@dataclass(frozen=True)
class Observed:
    id: str
    name: str
    role: str
    config_hash: str
    running: bool
    image_id: str = ""
    files_digest: str | None = None  # None: not read (hash differs anyway)


@dataclass(frozen=True)
class Action:
    verb: str  # create | replace | start | remove
    role: str
    name: str
    reason: str
    observed_id: str = ""

    def __str__(self) -> str:
        return f"{self.verb} {self.name} ({self.reason})"


@dataclass(frozen=True)
class Retiring:
    """A stopped container about to be removed (its log goes with it)."""

    role: str
    id: str
    name: str


class StartFailed(ContainerError):
    """A container exited or never listened after start; `logs` says why."""

    def __init__(self, reason: str, role: str, logs: str = ""):
        super().__init__(reason)
        self.role = role
        self.logs = logs


# -- plan (pure) -------------------------------------------------------------------
def _drift(want: Desired, have: Observed) -> str | None:
    if have.image_id and want.image_id and have.image_id != want.image_id:
        return "image changed"
    if have.config_hash != want.config_hash:
        return "config changed"
    if have.files_digest is not None and have.files_digest != want.files_digest:
        return "config edited in the container"
    return None


def _keep(wanted: dict[str, Desired], observed: list[Observed]) -> dict[str, Observed]:
    """Per desired role, the observed container to keep (right name, running first)."""
    kept: dict[str, Observed] = {}
    for have in sorted(observed, key=lambda o: (not o.running, o.id)):
        want = wanted.get(have.role)
        if want is not None and have.name == want.name and have.role not in kept:
            kept[have.role] = have
    return kept


def plan(desired: list[Desired], observed: list[Observed]) -> list[Action]:
    """What to do so that `observed` becomes `desired`; [] when they match."""
    wanted = {d.role: d for d in desired}
    kept = _keep(wanted, observed)
    actions = []
    for have in observed:
        if kept.get(have.role) is have:
            continue
        reason = "duplicate" if have.role in wanted else "not desired"
        if have.role in wanted and have.name != wanted[have.role].name:
            reason = "unexpected name"
        actions.append(Action("remove", have.role, have.name, reason, have.id))
    for want in sorted(desired, key=lambda d: _role_rank(d.role)):
        have = kept.get(want.role)
        if have is None:
            actions.append(Action("create", want.role, want.name, "missing"))
        elif reason := _drift(want, have):
            actions.append(Action("replace", want.role, want.name, reason, have.id))
        elif not have.running:
            actions.append(Action("start", want.role, want.name, "stopped", have.id))
    return actions


def _role_rank(role: str) -> int:
    return ROLE_ORDER.index(role) if role in ROLE_ORDER else len(ROLE_ORDER)


# -- observe -----------------------------------------------------------------------
def desired_state(spec: ContainerSpec, image_id: str) -> Desired:
    return Desired(spec.role, spec.name, spec.config_hash, spec.files_digest, image_id)


def observe(client, owner: str, specs: list[ContainerSpec]) -> list[Observed]:
    """The owner's containers; file digests read only where the hash matches."""
    by_role = {spec.role: spec for spec in specs}
    observed = []
    for state in engine.list_owned(client, owner):
        role = state.labels.get("ferry.role", "")
        config_hash = state.labels.get("ferry.config-hash", "")
        digest = None
        spec = by_role.get(role)
        if spec is not None and spec.config_hash == config_hash:
            digest = _read_digest(client, state.id, spec)
        observed.append(
            Observed(
                id=state.id,
                name=state.name,
                role=role,
                config_hash=config_hash,
                running=state.running,
                image_id=state.image_id,
                files_digest=digest,
            )
        )
    return observed


def _read_digest(client, container_id: str, spec: ContainerSpec) -> str:
    files = {}
    for path, _content, _mode in spec.files:
        text = engine.read_file(client, container_id, path)
        files[path] = "" if text is None else text
    return files_digest(files)


# -- apply -------------------------------------------------------------------------
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


class Journal:
    """Undo steps of one apply, run newest first when the apply fails."""

    def __init__(self, client, before_removal=None):
        self.client = client
        self.undo: list = []
        self.finalize: list = []  # old containers to remove once all succeeded
        self.retiring: list[Retiring] = []  # ...and what they are
        self.before_removal = before_removal

    def rollback(self) -> list[str]:
        problems = []
        for step in reversed(self.undo):
            try:
                step()
            except Exception as exc:  # noqa: BLE001 - keep undoing the rest
                problems.append(str(exc))
        self.undo.clear()
        return problems

    def commit(self) -> None:
        if self.retiring and self.before_removal is not None:
            self.before_removal(list(self.retiring))
        for step in self.finalize:
            step()
        self.undo.clear()

    def remove(self, retiring: Retiring) -> None:
        """Remove now (a remove action); stopped and reported first."""
        if self.before_removal is not None:
            engine.stop(self.client, retiring.id)
            self.before_removal([retiring])
        engine.remove(self.client, retiring.id)


def apply_actions(
    client,
    specs: list[ContainerSpec],
    actions: list[Action],
    timeout: float,
    before_removal=None,
) -> Journal:
    """Run the actions in order; on failure roll back and re-raise.

    `before_removal(list[Retiring])`, if given, is called with stopped
    containers just before they are removed (not on rollback: nothing old
    is removed then).
    """
    by_role = {spec.role: spec for spec in specs}
    journal = Journal(client, before_removal)
    try:
        for action in actions:
            _run(journal, action, by_role.get(action.role), timeout)
    except BaseException:
        journal.rollback()
        raise
    journal.commit()
    return journal


def _run(journal: Journal, action: Action, spec: ContainerSpec | None, timeout: float):
    client = journal.client
    if action.verb == "remove":
        journal.remove(Retiring(action.role, action.observed_id, action.name))
    elif action.verb == "start":
        before = engine.inspect(client, action.observed_id)
        engine.start(client, action.observed_id)
        # Only this run's log counts: from the end of the previous run on.
        since = before.finished_at if before else ""
        wait_ready(client, action.observed_id, action.role, timeout, since)
    elif action.verb == "create":
        _create_and_start(journal, spec, timeout)
    elif action.verb == "replace":
        _replace(journal, action, spec, timeout)
    else:
        raise ValueError(f"unknown action {action.verb}")


def _create_and_start(journal: Journal, spec: ContainerSpec, timeout: float) -> None:
    client = journal.client
    engine.remove(client, spec.name)  # a stray of that name without our labels
    state = engine.create(client, new_container(spec))
    journal.undo.append(lambda: engine.remove(client, state.id))
    engine.start(client, state.id)
    wait_ready(client, state.id, spec.role, timeout)


def _replace(journal: Journal, action: Action, spec: ContainerSpec, timeout: float):
    """Stop the old one and move it aside; it comes back if the new one fails."""
    client = journal.client
    old = engine.inspect(client, action.observed_id)
    was_running = bool(old and old.running)
    aside = f"{spec.name}-old-{action.observed_id[:12]}"
    engine.stop(client, action.observed_id)
    engine.rename(client, action.observed_id, aside)

    def restore():
        engine.rename(client, action.observed_id, spec.name)
        if was_running:
            engine.start(client, action.observed_id)

    journal.undo.append(restore)
    journal.finalize.append(lambda: engine.remove(client, action.observed_id))
    journal.retiring.append(Retiring(action.role, action.observed_id, aside))
    _create_and_start(journal, spec, timeout)


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
    client, container_id: str, role: str, timeout: float, since: str = ""
) -> None:
    deadline = time.monotonic() + timeout
    while not is_ready(client, container_id, role, since):
        if time.monotonic() > deadline:
            logs = engine.logs_tail(client, container_id)
            raise StartFailed(
                f"{role} container did not start listening within {timeout:g} s",
                role,
                logs,
            )
        time.sleep(0.1)
