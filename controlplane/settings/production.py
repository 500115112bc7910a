"""Production: the safe base, unchanged. Kept as a name for deployments."""

from .base import *  # noqa: F403
