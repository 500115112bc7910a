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
import re
import uuid
from collections.abc import Iterator
from dataclasses import dataclass
from itertools import chain

from django.conf import settings

from .errors import StorageDenied, StorageUnreachable

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


class _Failure(Exception):
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


class _Gone(Exception):
    """The multipart upload was completed or aborted while we looked at it."""


def _timeout() -> float:
    return float(getattr(settings, "FERRY_HTTP_TIMEOUT", 10.0))


def root_prefix(store) -> str:
    """The key prefix of the store's root directory ('' or 'a/b/')."""
    root = (store.root_directory or "").strip("/")
    return f"{root}/" if root else ""


def _endpoint_url(endpoint: str) -> str:
    endpoint = endpoint.strip()
    if endpoint and "://" not in endpoint:
        endpoint = "https://" + endpoint
    return endpoint


# -- OSS (oss2) ---------------------------------------------------------------
_OSS_CODES = {
    "InvalidAccessKeyId": ("access_key_id", CREDENTIALS),
    "SignatureDoesNotMatch": ("secret_access_key", CREDENTIALS),
    "NoSuchBucket": ("bucket", BUCKET_MISSING),
    "AccessDenied": ("bucket", DENIED),
}


class _OssBackend:
    def __init__(self, store):
        import oss2

        if not store.endpoint.strip():
            raise _Failure("endpoint", "an endpoint is required for OSS")
        if not store.bucket.strip():
            raise _Failure("bucket", "a bucket is required for OSS")
        self.oss2 = oss2
        auth = oss2.Auth(store.access_key_id or "", store.secret_access_key or "")
        try:
            self.bucket = oss2.Bucket(
                auth,
                _endpoint_url(store.endpoint),
                store.bucket.strip(),
                connect_timeout=_timeout(),
            )
        except oss2.exceptions.ClientError as exc:
            field = "bucket" if "bucket" in str(exc).lower() else "endpoint"
            raise _Failure(field, f"invalid {field}", str(exc)) from exc

    def _classify(self, exc: Exception) -> _Failure:
        exceptions = self.oss2.exceptions
        if isinstance(exc, exceptions.RequestError):
            cause = getattr(exc, "exception", None) or exc
            return _Failure("endpoint", UNREACHABLE, _short(cause), denied=False)
        if isinstance(exc, exceptions.ServerError):
            field, reason = _OSS_CODES.get(exc.code, ("endpoint", None))
            if reason is None:
                reason = f"OSS answered {exc.status} {exc.code or ''}".strip()
            return _Failure(field, reason, f"{exc.code}: {exc.message}")
        raise exc

    def _call(self, fn, *args, **kwargs):
        try:
            return fn(*args, **kwargs)
        except self.oss2.exceptions.NoSuchUpload as exc:
            raise _Gone() from exc
        except self.oss2.exceptions.OssError as exc:
            raise self._classify(exc) from exc

    def iter_objects(self, prefix: str) -> Iterator[tuple[str, int]]:
        marker = ""
        while True:
            page = self._call(
                self.bucket.list_objects,
                prefix=prefix,
                marker=marker,
                max_keys=PAGE_SIZE,
            )
            for info in page.object_list:
                yield info.key, info.size
            if not page.is_truncated:
                return
            marker = page.next_marker

    def iter_unfinished(self, prefix: str) -> Iterator[tuple[str, int]]:
        """(key, bytes of its parts) of each multipart upload not completed."""
        key_marker = upload_marker = ""
        while True:
            page = self._call(
                self.bucket.list_multipart_uploads,
                prefix=prefix,
                key_marker=key_marker,
                upload_id_marker=upload_marker,
                max_uploads=PAGE_SIZE,
            )
            for upload in page.upload_list:
                yield upload.key, self._parts_bytes(upload.key, upload.upload_id)
            key_marker = page.next_key_marker
            upload_marker = page.next_upload_id_marker
            if not page.is_truncated or not key_marker:
                return

    def _parts_bytes(self, key: str, upload_id: str) -> int:
        total, marker = 0, ""
        while True:
            try:
                page = self._call(
                    self.bucket.list_parts,
                    key,
                    upload_id,
                    marker=marker,
                    max_parts=PAGE_SIZE,
                )
            except _Gone:
                return 0
            total += sum(part.size for part in page.parts)
            marker = page.next_marker
            if not page.is_truncated or not marker:
                return total

    def put(self, key: str, data: bytes) -> None:
        self._call(self.bucket.put_object, key, data)

    def size(self, key: str) -> int | None:
        try:
            return self.bucket.head_object(key).content_length
        except self.oss2.exceptions.NotFound:
            return None
        except self.oss2.exceptions.OssError as exc:
            raise self._classify(exc) from exc

    def delete(self, key: str) -> None:
        self._call(self.bucket.delete_object, key)


# -- S3 (boto3) -----------------------------------------------------------------
_S3_CODES = {
    **_OSS_CODES,
    "InvalidClientTokenId": ("access_key_id", CREDENTIALS),
    "AuthorizationHeaderMalformed": ("s3_region", "wrong region for this endpoint"),
    "PermanentRedirect": ("s3_region", "wrong region for this bucket"),
    "403": ("bucket", DENIED),
    "404": ("bucket", BUCKET_MISSING),
}


class _S3Backend:
    def __init__(self, store):
        import boto3
        from botocore.config import Config

        if not store.bucket.strip():
            raise _Failure("bucket", "a bucket is required for S3")
        # One attempt and short timeouts: a check must answer quickly, and a
        # retry storm against a dead endpoint only delays the same answer.
        config = Config(
            connect_timeout=_timeout(),
            read_timeout=_timeout(),
            retries={"max_attempts": 1, "mode": "standard"},
            s3={"addressing_style": "path"},
            signature_version="s3v4",
        )
        try:
            self.client = boto3.session.Session().client(
                "s3",
                endpoint_url=_endpoint_url(store.endpoint) or None,
                region_name=store.s3_region or "us-east-1",
                aws_access_key_id=store.access_key_id or None,
                aws_secret_access_key=store.secret_access_key or None,
                config=config,
            )
        except ValueError as exc:
            raise _Failure("endpoint", "invalid endpoint", str(exc)) from exc
        self.bucket = store.bucket.strip()

    def _classify(self, exc: Exception) -> _Failure:
        from botocore import exceptions

        if isinstance(exc, exceptions.ClientError):
            error = exc.response.get("Error", {})
            code = str(error.get("Code", ""))
            field, reason = _S3_CODES.get(code, ("endpoint", None))
            status = exc.response.get("ResponseMetadata", {}).get("HTTPStatusCode")
            if reason is None:
                reason = f"S3 answered {status} {code}".strip()
            return _Failure(field, reason, f"{code}: {error.get('Message') or code}")
        if isinstance(exc, exceptions.NoCredentialsError):
            return _Failure("access_key_id", CREDENTIALS, "no credentials set")
        if isinstance(exc, exceptions.BotoCoreError):
            return _Failure("endpoint", UNREACHABLE, _short(exc), denied=False)
        raise exc

    def _call(self, fn, **kwargs):
        from botocore import exceptions

        try:
            return fn(**kwargs)
        except exceptions.ClientError as exc:
            if exc.response.get("Error", {}).get("Code") == "NoSuchUpload":
                raise _Gone() from exc
            raise self._classify(exc) from exc
        except exceptions.BotoCoreError as exc:
            raise self._classify(exc) from exc

    def iter_objects(self, prefix: str) -> Iterator[tuple[str, int]]:
        token = None
        while True:
            kwargs = {"Bucket": self.bucket, "Prefix": prefix, "MaxKeys": PAGE_SIZE}
            if token:
                kwargs["ContinuationToken"] = token
            page = self._call(self.client.list_objects_v2, **kwargs)
            for item in page.get("Contents", []):
                yield item["Key"], int(item["Size"])
            token = page.get("NextContinuationToken")
            if not page.get("IsTruncated") or not token:
                return

    def iter_unfinished(self, prefix: str) -> Iterator[tuple[str, int]]:
        """(key, bytes of its parts) of each multipart upload not completed."""
        markers: dict[str, str] = {}
        while True:
            page = self._call(
                self.client.list_multipart_uploads,
                Bucket=self.bucket,
                Prefix=prefix,
                MaxUploads=PAGE_SIZE,
                **markers,
            )
            for upload in page.get("Uploads", []):
                key, upload_id = upload["Key"], upload["UploadId"]
                yield key, self._parts_bytes(key, upload_id)
            if not page.get("IsTruncated") or not page.get("NextKeyMarker"):
                return
            markers = {"KeyMarker": page["NextKeyMarker"]}
            if page.get("NextUploadIdMarker"):
                markers["UploadIdMarker"] = page["NextUploadIdMarker"]

    def _parts_bytes(self, key: str, upload_id: str) -> int:
        total, marker = 0, 0
        while True:
            try:
                page = self._call(
                    self.client.list_parts,
                    Bucket=self.bucket,
                    Key=key,
                    UploadId=upload_id,
                    MaxParts=PAGE_SIZE,
                    PartNumberMarker=marker,
                )
            except _Gone:
                return 0
            total += sum(int(part["Size"]) for part in page.get("Parts", []))
            marker = int(page.get("NextPartNumberMarker") or 0)
            if not page.get("IsTruncated") or not marker:
                return total

    def put(self, key: str, data: bytes) -> None:
        self._call(self.client.put_object, Bucket=self.bucket, Key=key, Body=data)

    def size(self, key: str) -> int | None:
        from botocore.exceptions import ClientError

        try:
            head = self.client.head_object(Bucket=self.bucket, Key=key)
        except ClientError as exc:
            status = exc.response.get("ResponseMetadata", {}).get("HTTPStatusCode")
            if status == 404:
                return None
            raise self._classify(exc) from exc
        except Exception as exc:  # BotoCoreError: classified as unreachable
            raise self._classify(exc) from exc
        return int(head["ContentLength"])

    def delete(self, key: str) -> None:
        self._call(self.client.delete_object, Bucket=self.bucket, Key=key)


# -- filesystem -------------------------------------------------------------------
class _FilesystemBackend:
    """The path is on the Docker host; usage only when it is visible here too."""

    def __init__(self, store):
        self.root = store.root_directory or ""
        if not os.path.isabs(self.root):
            raise _Failure("root_directory", "the path must be absolute")

    def probe(self) -> None:
        # Nothing more can be checked from here: the directory is created by
        # the registry container on the (possibly remote) Docker host.
        return None

    def walk(self) -> Iterator[tuple[str, int]]:
        for directory, _dirs, files in os.walk(self.root):
            for name in files:
                path = os.path.join(directory, name)
                try:
                    size = os.lstat(path).st_size
                except FileNotFoundError:  # removed while walking: uploads
                    continue
                yield os.path.relpath(path, self.root).replace(os.sep, "/"), size

    def iter_unfinished(self, prefix: str) -> Iterator[tuple[str, int]]:
        return iter(())  # an upload's partial data is a plain file: walk() sees it

    def size(self, key: str) -> int | None:
        try:
            return os.path.getsize(os.path.join(self.root, key))
        except OSError:
            return None


_BACKENDS = {"oss": _OssBackend, "s3": _S3Backend}


def _short(exc: BaseException) -> str:
    """A short cause: "[Errno 111] Connection refused", not urllib3's preamble."""
    text = str(exc) or type(exc).__name__
    found = re.search(r"\[Errno -?\d+\][^'\")]*|timed out|Read timeout", text)
    if found:
        return found.group(0).strip()
    return re.sub(r"\?\S*", "", text.splitlines()[0])[:200]  # no URL query


def _backend(store):
    if store.kind == "filesystem":
        return _FilesystemBackend(store)
    try:
        return _BACKENDS[store.kind](store)
    except KeyError:
        raise _Failure("kind", f"unknown storage kind {store.kind!r}") from None


def _probe(backend, store) -> None:
    """1. list one page under the root (credentials, bucket, read access);
    2. write and delete a probe object (the registry must be able to write).
    """
    if isinstance(backend, _FilesystemBackend):
        return backend.probe()
    prefix = root_prefix(store)
    next(iter(backend.iter_objects(prefix)), None)
    key = f"{prefix}ferry-check/{uuid.uuid4().hex}"
    try:
        backend.put(key, b"ferry storage check\n")
    except _Failure as failure:
        if failure.category == DENIED:
            failure.category = f"{DENIED}: cannot write"
        raise
    backend.delete(key)


def check_store(store) -> StoreCheck:
    """Say whether the store is usable, and if not which field and why."""
    try:
        _probe(_backend(store), store)
    except _Failure as failure:
        return StoreCheck(ok=False, field=failure.field, reason=failure.reason)
    return StoreCheck(ok=True, field=None, reason="ok")


def _objects(backend, store, prefix: str) -> Iterator[tuple[str, int]] | None:
    if isinstance(backend, _FilesystemBackend):
        if not os.path.isdir(backend.root):
            return None  # lives on a remote Docker host only
        return ((root_prefix(store) + key, size) for key, size in backend.walk())
    return backend.iter_objects(prefix)


def _raise_for(failure: _Failure):
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
    except _Failure as failure:
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
    except _Failure as failure:
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
        local = isinstance(backend, _FilesystemBackend)
        return backend.size(
            blob_key(digest) if local else root_prefix(store) + blob_key(digest)
        )
    except _Failure as failure:
        _raise_for(failure)
