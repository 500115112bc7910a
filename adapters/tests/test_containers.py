"""adapters.containers against a real (sandboxed) dockerd: what a created
container really gets (command, environment, user, mounts)."""

import tempfile
from pathlib import Path

import pytest

from adapters import containers as engine
from adapters.errors import ContainerError

pytestmark = pytest.mark.integration


def test_command_environment_and_user_reach_the_process(
    dockerd, test_images, container_cleanup
):
    new = engine.NewContainer(
        name=container_cleanup.name("env"),
        image=test_images.busybox,  # entrypoint: /bin/sh
        labels={"ferry.test": "1"},
        command=("-c", 'echo "$GREETING from $(id -u)"'),
        environment=(("GREETING", "hello"),),
        user="65534",
    )
    code, logs = engine.run_to_exit(dockerd.client, new, timeout=30)
    assert (code, logs.strip()) == (0, "hello from 65534")


def test_a_bind_that_must_exist_is_refused_when_missing(
    dockerd, test_images, container_cleanup
):
    missing = Path(tempfile.mkdtemp(prefix="ferry-bind-")) / "absent.sock"
    new = engine.NewContainer(
        name=container_cleanup.name("bind"),
        image=test_images.busybox,
        labels={"ferry.test": "1"},
        mounts=(
            engine.MountSpec(str(missing), "/x.sock", "bind", create_missing=False),
        ),
    )
    with pytest.raises(ContainerError, match="create"):
        engine.create(dockerd.client, new)
    assert not missing.exists()
    # The default (a host directory, e.g. a filesystem store) is created.
    created = missing.parent / "store"
    mount = engine.MountSpec(str(created), "/store", "bind")
    code, _logs = engine.run_to_exit(dockerd.client, engine.NewContainer(
        name=container_cleanup.name("dir"), image=test_images.busybox,
        labels={"ferry.test": "1"}, command=("-c", "test -d /store"),
        mounts=(mount,),
    ), timeout=30)  # fmt: skip
    assert code == 0 and created.is_dir()
