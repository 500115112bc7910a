"""OSS buckets through oss2."""

from __future__ import annotations

from collections.abc import Iterator

from . import common
from .common import (
    BUCKET_MISSING,
    CREDENTIALS,
    DENIED,
    UNREACHABLE,
    Failure,
    Gone,
    endpoint_url,
    short,
    timeout,
)

OSS_CODES = {
    "InvalidAccessKeyId": ("access_key_id", CREDENTIALS),
    "SignatureDoesNotMatch": ("secret_access_key", CREDENTIALS),
    "NoSuchBucket": ("bucket", BUCKET_MISSING),
    "AccessDenied": ("bucket", DENIED),
}


class OssBackend:
    def __init__(self, store):
        import oss2

        if not store.endpoint.strip():
            raise Failure("endpoint", "an endpoint is required for OSS")
        if not store.bucket.strip():
            raise Failure("bucket", "a bucket is required for OSS")
        self.oss2 = oss2
        auth = oss2.Auth(store.access_key_id or "", store.secret_access_key or "")
        try:
            self.bucket = oss2.Bucket(
                auth,
                endpoint_url(store.endpoint),
                store.bucket.strip(),
                connect_timeout=timeout(),
            )
        except oss2.exceptions.ClientError as exc:
            field = "bucket" if "bucket" in str(exc).lower() else "endpoint"
            raise Failure(field, f"invalid {field}", str(exc)) from exc

    def _classify(self, exc: Exception) -> Failure:
        exceptions = self.oss2.exceptions
        if isinstance(exc, exceptions.RequestError):
            cause = getattr(exc, "exception", None) or exc
            return Failure("endpoint", UNREACHABLE, short(cause), denied=False)
        if isinstance(exc, exceptions.ServerError):
            field, reason = OSS_CODES.get(exc.code, ("endpoint", None))
            if reason is None:
                reason = f"OSS answered {exc.status} {exc.code or ''}".strip()
            return Failure(field, reason, f"{exc.code}: {exc.message}")
        raise exc

    def _call(self, fn, *args, **kwargs):
        try:
            return fn(*args, **kwargs)
        except self.oss2.exceptions.NoSuchUpload as exc:
            raise Gone() from exc
        except self.oss2.exceptions.OssError as exc:
            raise self._classify(exc) from exc

    def iter_objects(self, prefix: str) -> Iterator[tuple[str, int]]:
        marker = ""
        while True:
            page = self._call(
                self.bucket.list_objects,
                prefix=prefix,
                marker=marker,
                max_keys=common.PAGE_SIZE,
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
                max_uploads=common.PAGE_SIZE,
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
                    max_parts=common.PAGE_SIZE,
                )
            except Gone:
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
