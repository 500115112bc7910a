"""Root conftest: the real-service test harness (controlplane/testing)."""

pytest_plugins = ["controlplane.testing.fixtures"]
