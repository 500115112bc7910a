"""plan(desired, observed): every drift case, with plain dataclasses."""

import itertools

import pytest

from registries.reconcile import Action, Desired, Observed, plan


def want(role: str, hash_: str = "h1", image: str = "img1", digest: str = "d1"):
    return Desired(role, f"ferry-reg-1-{role}", hash_, digest, image)


def have(
    role: str,
    hash_: str = "h1",
    running: bool = True,
    image: str = "img1",
    digest: str | None = "d1",
    name: str | None = None,
    id_: str | None = None,
):
    return Observed(
        id=id_ or f"id-{role}",
        name=name or f"ferry-reg-1-{role}",
        role=role,
        config_hash=hash_,
        running=running,
        image_id=image,
        files_digest=digest,
    )


MIRROR = [want("gateway"), want("registry"), want("nginx")]


def verbs(actions: list[Action]) -> list[tuple[str, str]]:
    return [(a.verb, a.role) for a in actions]


def test_nothing_to_do_when_everything_matches():
    observed = [have("gateway"), have("registry"), have("nginx")]
    assert plan(MIRROR, observed) == []


def test_it_creates_everything_on_an_empty_host_in_start_order():
    actions = plan(list(reversed(MIRROR)), [])
    assert verbs(actions) == [
        ("create", "gateway"),
        ("create", "registry"),
        ("create", "nginx"),
    ]
    assert {a.reason for a in actions} == {"missing"}
    assert actions[0].name == "ferry-reg-1-gateway"


def test_it_recreates_a_container_removed_by_hand():
    actions = plan(MIRROR, [have("gateway"), have("nginx")])
    assert verbs(actions) == [("create", "registry")]


def test_it_starts_a_stopped_container_without_replacing_it():
    actions = plan(
        MIRROR, [have("gateway"), have("registry", running=False), have("nginx")]
    )
    assert verbs(actions) == [("start", "registry")]
    assert actions[0].observed_id == "id-registry"
    assert actions[0].reason == "stopped"


def test_a_changed_config_hash_replaces_the_container():
    actions = plan(
        MIRROR, [have("gateway", hash_="old"), have("registry"), have("nginx")]
    )
    assert verbs(actions) == [("replace", "gateway")]
    assert actions[0].reason == "config changed"
    assert actions[0].observed_id == "id-gateway"


def test_a_changed_image_replaces_the_container():
    actions = plan(
        MIRROR, [have("gateway"), have("registry", image="img0"), have("nginx")]
    )
    assert [(a.verb, a.role, a.reason) for a in actions] == [
        ("replace", "registry", "image changed")
    ]


def test_a_config_file_edited_inside_the_container_replaces_it():
    actions = plan(
        MIRROR, [have("gateway"), have("registry"), have("nginx", digest="x")]
    )
    assert [(a.verb, a.reason) for a in actions] == [
        ("replace", "config edited in the container")
    ]


def test_unread_file_digest_is_not_drift():
    observed = [have("gateway", digest=None), have("registry"), have("nginx")]
    assert plan(MIRROR, observed) == []


def test_a_stopped_and_changed_container_is_replaced_not_started():
    actions = plan(
        MIRROR, [have("gateway"), have("registry", "old", False), have("nginx")]
    )
    assert verbs(actions) == [("replace", "registry")]


def test_unknown_image_ids_do_not_count_as_change():
    observed = [have("gateway", image=""), have("registry"), have("nginx")]
    assert plan(MIRROR, observed) == []
    desired = [want("gateway", image=""), want("registry"), want("nginx")]
    assert plan(desired, [have("gateway"), have("registry"), have("nginx")]) == []


def test_roles_no_longer_desired_are_removed_first():
    private = [want("registry")]
    actions = plan(private, [have("nginx"), have("gateway"), have("registry", "old")])
    assert verbs(actions) == [
        ("remove", "nginx"),
        ("remove", "gateway"),
        ("replace", "registry"),
    ]
    assert actions[0].reason == "not desired"


def test_a_duplicate_of_a_role_is_removed_and_the_running_one_kept():
    observed = [
        have("registry", running=False, id_="a"),
        have("registry", running=True, id_="b"),
    ]
    actions = plan([want("registry")], observed)
    assert [(a.verb, a.observed_id, a.reason) for a in actions] == [
        ("remove", "a", "duplicate")
    ]


def test_a_container_with_the_wrong_name_is_removed_and_recreated():
    observed = [have("registry", name="someone-renamed-it")]
    actions = plan([want("registry")], observed)
    assert [(a.verb, a.reason) for a in actions] == [
        ("remove", "unexpected name"),
        ("create", "missing"),
    ]


def test_labelled_containers_with_no_role_are_removed():
    actions = plan([want("registry")], [have("registry"), have("")])
    assert verbs(actions) == [("remove", "")]


def test_nothing_desired_removes_everything():
    observed = [have("gateway"), have("registry"), have("nginx")]
    assert [a.verb for a in plan([], observed)] == ["remove"] * 3


@pytest.mark.parametrize(
    "state",
    list(itertools.product(["missing", "ok", "stopped", "hash", "image"], repeat=3)),
)
def test_every_combination_converges_in_one_pass(state):
    """Whatever the three containers' states, applying the plan and planning
    again gives nothing to do."""
    observed = []
    for role, condition in zip(("gateway", "registry", "nginx"), state, strict=True):
        if condition == "missing":
            continue
        observed.append(
            have(
                role,
                hash_="old" if condition == "hash" else "h1",
                running=condition != "stopped",
                image="img0" if condition == "image" else "img1",
            )
        )
    actions = plan(MIRROR, observed)
    assert len(actions) == sum(1 for c in state if c != "ok")
    after = {o.role: o for o in observed}
    for action in actions:
        after[action.role] = have(action.role)
    assert plan(MIRROR, list(after.values())) == []


# -- apply_actions: containers are stopped and reported before removal ----------
class RecordingEngine:
    """adapters.containers' verbs, recorded (the order is what is tested)."""

    from adapters.containers import ContainerFile, MountSpec, NewContainer

    def __init__(self, fail_create: bool = False):
        self.calls: list[tuple] = []
        self.fail_create = fail_create

    def inspect(self, client, ref):
        from types import SimpleNamespace

        return SimpleNamespace(running=True)

    def stop(self, client, ref, timeout=10):
        self.calls.append(("stop", ref))

    def rename(self, client, ref, name):
        self.calls.append(("rename", ref, name))

    def remove(self, client, ref):
        self.calls.append(("remove", ref))

    def create(self, client, new):
        from types import SimpleNamespace

        from adapters.errors import ContainerError

        if self.fail_create:
            raise ContainerError("create refused")
        self.calls.append(("create", new.name))
        return SimpleNamespace(id=f"new-{new.name}")

    def start(self, client, ref):
        self.calls.append(("start", ref))


@pytest.fixture
def recording(monkeypatch):
    from adapters import reconcile as generic
    from registries import reconcile

    def make(**kwargs):
        fake = RecordingEngine(**kwargs)
        monkeypatch.setattr(generic, "engine", fake)
        monkeypatch.setattr(reconcile, "engine", fake)
        monkeypatch.setattr(reconcile, "wait_ready", lambda *a, **k: None)
        return fake

    return make


def _run(fake, actions):
    from registries.reconcile import apply_actions
    from registries.site import ContainerSpec

    specs = [ContainerSpec("nginx", "ferry-reg-1-nginx", "img", "registry:1")]

    def before_removal(retiring):
        fake.calls.append(("sampled", *[(r.role, r.id, r.name) for r in retiring]))

    apply_actions(object(), specs, actions, 5, before_removal=before_removal)


def test_removed_and_replaced_containers_are_stopped_and_sampled_first(recording):
    fake = recording()
    gone = Action("remove", "gateway", "ferry-reg-1-gateway", "not desired", "gw")
    swap = Action("replace", "nginx", "ferry-reg-1-nginx", "config changed", "ng")
    _run(fake, [gone, swap])
    aside = "ferry-reg-1-nginx-old-ng"
    assert fake.calls == [
        ("stop", "gw"),
        ("sampled", ("gateway", "gw", "ferry-reg-1-gateway")),
        ("remove", "gw"),
        ("stop", "ng"),
        ("rename", "ng", aside),
        ("remove", "ferry-reg-1-nginx"),  # a stray of that name
        ("create", "ferry-reg-1-nginx"),
        ("start", "new-ferry-reg-1-nginx"),
        ("sampled", ("nginx", "ng", aside)),
        ("remove", "ng"),
    ]


def test_a_failed_replace_puts_the_old_container_back_unsampled(recording):
    from adapters.errors import ContainerError

    fake = recording(fail_create=True)
    swap = Action("replace", "nginx", "ferry-reg-1-nginx", "config changed", "ng")
    with pytest.raises(ContainerError):
        _run(fake, [swap])
    assert not [call for call in fake.calls if call[0] == "sampled"]
    assert fake.calls[-2:] == [("rename", "ng", "ferry-reg-1-nginx"), ("start", "ng")]
