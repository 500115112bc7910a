"""What the object-store backends share: errors, reason texts, small helpers."""

from __future__ import annotations

import re
from dataclasses import dataclass

from django.conf import settings

PAGE_SIZE = 1000
UPLOADS_MARKER = "/_uploads/"
REPOSITORIES = "docker/registry/v2/repositories/"

# Our reason texts; pages and API errors show them as is.
UNREACHABLE = "endpoint unreachable"
CREDENTIALS = "credentials rejected"
BUCKET_MISSING = "bucket missing"
DENIED = "access denied"


@dataclass(frozen=True)
class StoreCheck:
    ok: bool
    field: str | None = None
    reason: str = ""


@dataclass(frozen=True)
class StoreUsage:
    bytes: int
    objects: int


class Failure(Exception):
    """A classified backend failure: which field, and a people-readable reason."""

    def __init__(
        self, field: str | None, category: str, detail: str = "", denied: bool = True
    ):
        super().__init__(category)
        self.field = field
        self.category = category  # one of the reason texts above, or free text
        self.detail = detail
        self.denied = denied  # False: unreachable (transient), True: refused

    @property
    def reason(self) -> str:
        return f"{self.category} ({self.detail})" if self.detail else self.category


class Gone(Exception):
    """The multipart upload was completed or aborted while we looked at it."""


def timeout() -> float:
    return float(getattr(settings, "FERRY_HTTP_TIMEOUT", 10.0))


def root_prefix(store) -> str:
    """The key prefix of the store's root directory ('' or 'a/b/')."""
    root = (store.root_directory or "").strip("/")
    return f"{root}/" if root else ""


def endpoint_url(endpoint: str) -> str:
    endpoint = endpoint.strip()
    if endpoint and "://" not in endpoint:
        endpoint = "https://" + endpoint
    return endpoint


def short(exc: BaseException) -> str:
    """A short cause: "[Errno 111] Connection refused", not urllib3's preamble."""
    text = str(exc) or type(exc).__name__
    found = re.search(r"\[Errno -?\d+\][^'\")]*|timed out|Read timeout", text)
    if found:
        return found.group(0).strip()
    return re.sub(r"\?\S*", "", text.splitlines()[0])[:200]  # no URL query
