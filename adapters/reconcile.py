"""Make a host's labelled containers match a desired set: observe -> plan -> apply.

Used by registry sites (registries.reconcile) and Jenkins clusters
(builds.jenkins.provision). Containers are keyed by their `ferry.role`
label, one container per role.

`plan(desired, observed)` compares plain dataclasses and returns actions:
create what is missing, replace on an image or config change or a config file
edited inside the container, start what is stopped, remove what is not
desired (old roles, duplicates, strays). `apply_actions` runs them with an
undo journal: when a step fails, everything this apply created is removed
and replaced containers are put back, so nothing half-applied keeps running.
Containers about to be removed are stopped first and handed to the caller's
`before_removal` (registry metrics count their last log lines before they go).
"""

from collections.abc import Callable
from dataclasses import dataclass

from adapters import containers as engine


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


def plan(
    desired: list[Desired], observed: list[Observed], order: tuple[str, ...] = ()
) -> list[Action]:
    """What to do so that `observed` becomes `desired`; [] when they match.

    Removals come first, then the desired roles in `order` (roles not in it
    keep the order they were given in, after those that are).
    """
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

    def rank(want: Desired) -> int:
        return order.index(want.role) if want.role in order else len(order)

    for want in sorted(desired, key=rank):
        have = kept.get(want.role)
        if have is None:
            actions.append(Action("create", want.role, want.name, "missing"))
        elif reason := _drift(want, have):
            actions.append(Action("replace", want.role, want.name, reason, have.id))
        elif not have.running:
            actions.append(Action("start", want.role, want.name, "stopped", have.id))
    return actions


# -- observe -----------------------------------------------------------------------
def observe(client, owner: str, read_digest: Callable | None = None) -> list[Observed]:
    """The owner's containers. `read_digest(state)` returns the digest of the
    config files inside a container, or None where it need not be read."""
    observed = []
    for state in engine.list_owned(client, owner):
        observed.append(
            Observed(
                id=state.id,
                name=state.name,
                role=state.labels.get("ferry.role", ""),
                config_hash=state.labels.get("ferry.config-hash", ""),
                running=state.running,
                image_id=state.image_id,
                files_digest=read_digest(state) if read_digest else None,
            )
        )
    return observed


# -- apply -------------------------------------------------------------------------
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


@dataclass(frozen=True)
class Runner:
    """How to make a spec's container and when it counts as started.

    `container(spec)` gives the engine.NewContainer; `ready(client,
    container_id, role, since)`, if set, returns once the started container
    serves and raises when it never will (`since`: the docker timestamp from
    which its log belongs to this run). `checkpoint()`, if set, runs before
    each action and may raise to stop the apply there (a lease to renew).
    """

    container: Callable
    ready: Callable | None = None
    checkpoint: Callable | None = None


def apply_actions(
    client, specs: list, actions: list[Action], runner: Runner, before_removal=None
) -> Journal:
    """Run the actions in order; on failure roll back and re-raise.

    `specs` have `role` and `name`. `before_removal(list[Retiring])`, if given,
    is called with stopped containers just before they are removed (not on
    rollback: nothing old is removed then).
    """
    by_role = {spec.role: spec for spec in specs}
    journal = Journal(client, before_removal)
    try:
        for action in actions:
            if runner.checkpoint is not None:
                runner.checkpoint()
            _run(journal, action, by_role.get(action.role), runner)
    except BaseException:
        journal.rollback()
        raise
    journal.commit()
    return journal


def _run(journal: Journal, action: Action, spec, runner: Runner) -> None:
    client = journal.client
    if action.verb == "remove":
        journal.remove(Retiring(action.role, action.observed_id, action.name))
    elif action.verb == "start":
        before = engine.inspect(client, action.observed_id)
        engine.start(client, action.observed_id)
        if runner.ready is not None:
            # Only this run's log counts: from the end of the previous run on.
            since = before.finished_at if before else ""
            runner.ready(client, action.observed_id, action.role, since)
    elif action.verb == "create":
        _create_and_start(journal, spec, runner)
    elif action.verb == "replace":
        _replace(journal, action, spec, runner)
    else:
        raise ValueError(f"unknown action {action.verb}")


def _create_and_start(journal: Journal, spec, runner: Runner) -> None:
    client = journal.client
    engine.remove(client, spec.name)  # a stray of that name without our labels
    state = engine.create(client, runner.container(spec))
    journal.undo.append(lambda: engine.remove(client, state.id))
    engine.start(client, state.id)
    if runner.ready is not None:
        runner.ready(client, state.id, spec.role, "")


def _replace(journal: Journal, action: Action, spec, runner: Runner) -> None:
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
    _create_and_start(journal, spec, runner)
