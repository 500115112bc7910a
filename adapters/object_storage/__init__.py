"""Object storage behind a registry: credential/bucket checks and usage.

One small backend per ObjectStore kind (oss via oss2, s3 via boto3, filesystem)
exposes `probe()` and `iter_objects(prefix)` (the buckets also
`iter_unfinished(prefix)`: their multipart uploads not yet completed); the
domain verbs below turn the libraries' errors into a StoreCheck naming the
failing field, or into our own StorageDenied / StorageUnreachable.

Filesystem stores live on the Docker host, which may be remote: Ferry can only
validate that the path is absolute, and measure usage when the path is also
visible locally (quickstart on one machine); otherwise usage is None.
"""

from __future__ import annotations

import os
import uuid
from collections.abc import Iterator
from itertools import chain

from ..errors import StorageDenied, StorageUnreachable
from .common import (
    DENIED,
    REPOSITORIES,
    UPLOADS_MARKER,
    Failure,
    StoreCheck,
    StoreUsage,
    root_prefix,
)
from .filesystem import FilesystemBackend
from .oss import OssBackend
from .s3 import S3Backend

__all__ = [
    "StoreCheck", "StoreUsage", "abandoned_upload_bytes", "blob_key", "can_inspect",
    "check_store", "root_prefix", "store_usage", "stored_blob_size",
]  # fmt: skip
BACKENDS = {"oss": OssBackend, "s3": S3Backend}


def _backend(store):
    if store.kind == "filesystem":
        return FilesystemBackend(store)
    try:
        return BACKENDS[store.kind](store)
    except KeyError:
        raise Failure("kind", f"unknown storage kind {store.kind!r}") from None


def _probe(backend, store) -> None:
    """1. list one page under the root (credentials, bucket, read access);
    2. write and delete a probe object (the registry must be able to write).
    """
    if isinstance(backend, FilesystemBackend):
        return backend.probe()
    prefix = root_prefix(store)
    next(iter(backend.iter_objects(prefix)), None)
    key = f"{prefix}ferry-check/{uuid.uuid4().hex}"
    try:
        backend.put(key, b"ferry storage check\n")
    except Failure as failure:
        if failure.category == DENIED:
            failure.category = f"{DENIED}: cannot write"
        raise
    backend.delete(key)


def check_store(store) -> StoreCheck:
    """Say whether the store is usable, and if not which field and why."""
    try:
        _probe(_backend(store), store)
    except Failure as failure:
        return StoreCheck(ok=False, field=failure.field, reason=failure.reason)
    return StoreCheck(ok=True, field=None, reason="ok")


def _objects(backend, store, prefix: str) -> Iterator[tuple[str, int]] | None:
    if isinstance(backend, FilesystemBackend):
        if not os.path.isdir(backend.root):
            return None  # lives on a remote Docker host only
        return ((root_prefix(store) + key, size) for key, size in backend.walk())
    return backend.iter_objects(prefix)


def _raise_for(failure: Failure):
    error = StorageDenied if failure.denied else StorageUnreachable
    raise error(failure.reason) from failure


def store_usage(store) -> StoreUsage | None:
    """Bytes and object count under the root directory (None: not measurable)."""
    try:
        objects = _objects(_backend(store), store, root_prefix(store))
        if objects is None:
            return None
        total = count = 0
        for _key, size in objects:
            total += size
            count += 1
    except Failure as failure:
        _raise_for(failure)
    return StoreUsage(bytes=total, objects=count)


def abandoned_upload_bytes(store) -> int | None:
    """Bytes held by unfinished blob uploads (`<repo>/_uploads/`) of every repo.

    On S3 and OSS the registry writes an upload's data (`_uploads/<id>/data`)
    as a multipart upload, invisible to object listings until it is completed
    but billed all the same: its parts count too. Only keys under `_uploads/`
    count, like the objects: other multipart uploads are not blob uploads.
    """
    prefix = root_prefix(store) + REPOSITORIES
    try:
        backend = _backend(store)
        objects = _objects(backend, store, prefix)
        if objects is None:
            return None
        unfinished = backend.iter_unfinished(prefix)
        return sum(
            size for key, size in chain(objects, unfinished) if _is_upload(key, prefix)
        )
    except Failure as failure:
        _raise_for(failure)


def _is_upload(key: str, prefix: str) -> bool:
    return key.startswith(prefix) and UPLOADS_MARKER in key[len(prefix) - 1 :]


def blob_key(digest: str) -> str:
    """Key of a blob's data under the root, as the registry's drivers lay it out."""
    algorithm, _, hex_digest = digest.partition(":")
    return f"docker/registry/v2/blobs/{algorithm}/{hex_digest[:2]}/{hex_digest}/data"


def can_inspect(store) -> bool:
    """Whether Ferry can see the store's objects (not a remote host's disk)."""
    if store.kind == "filesystem":
        return os.path.isabs(store.root_directory or "") and os.path.isdir(
            store.root_directory
        )
    return True


def stored_blob_size(store, digest: str) -> int | None:
    """Size of a blob held in the store, None when it is not (yet) there."""
    try:
        backend = _backend(store)
        local = isinstance(backend, FilesystemBackend)
        return backend.size(
            blob_key(digest) if local else root_prefix(store) + blob_key(digest)
        )
    except Failure as failure:
        _raise_for(failure)
