"""Every status enum says, for each state, whether work on it is still going."""

import pytest

from builds import models as builds
from deployments import models as deployments
from registries import models as registries

STATUS_SETS = [
    (builds.BuildStatus, builds.BUILD_ACTIVE_STATES, builds.BUILD_TERMINAL_STATES),
    (
        builds.ClusterStatus,
        builds.CLUSTER_ACTIVE_STATES,
        builds.CLUSTER_TERMINAL_STATES,
    ),
    (
        registries.RegistryStatus,
        registries.REGISTRY_ACTIVE_STATES,
        registries.REGISTRY_TERMINAL_STATES,
    ),
    (
        deployments.RolloutStatus,
        deployments.ROLLOUT_ACTIVE_STATES,
        deployments.ROLLOUT_TERMINAL_STATES,
    ),
]


@pytest.mark.parametrize(
    ("status", "active", "terminal"),
    STATUS_SETS,
    ids=[status.__name__ for status, _, _ in STATUS_SETS],
)
def test_active_and_terminal_sets_split_every_state(status, active, terminal):
    assert active and terminal
    assert not active & terminal
    assert active | terminal == set(status)
