"""Errors raised by every adapter, so services never catch a library's own.

Each carries a human-readable `reason` that services store as a row's
`last_error` and pages show as is. "Not found" for lookups is `None`, not an
exception; `ImageNotFound` is for operations that need the image to exist.
"""


class AdapterError(Exception):
    """Base of every adapter error; `reason` is meant for people."""

    def __init__(self, reason: str):
        super().__init__(reason)
        self.reason = reason

    def __str__(self) -> str:
        return self.reason


class HostUnreachable(AdapterError):
    """A Docker engine (or another host service) could not be reached."""


class HostConfigError(AdapterError):
    """The connection settings themselves are unusable (bad URL, bad TLS files)."""


class ImageNotFound(AdapterError):
    """An image (or tag) that an operation needs does not exist."""


class ContainerError(AdapterError):
    """A container could not be created, started or stopped as asked."""


class StorageDenied(AdapterError):
    """Object storage refused the credentials or the bucket/path."""


class StorageUnreachable(AdapterError):
    """Object storage endpoint could not be reached."""


class RegistryError(AdapterError):
    """A registry HTTP API call failed (status and reason in the message)."""


class RegistryAuthError(RegistryError):
    """A registry refused our credentials (401/403)."""


class JenkinsError(AdapterError):
    """A Jenkins API call failed."""


class AdapterTimeout(AdapterError):
    """An operation did not finish within its timeout."""
