"""S3 (and S3-compatible) buckets through boto3."""

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
from .oss import OSS_CODES

S3_CODES = {
    **OSS_CODES,
    "InvalidClientTokenId": ("access_key_id", CREDENTIALS),
    "AuthorizationHeaderMalformed": ("s3_region", "wrong region for this endpoint"),
    "PermanentRedirect": ("s3_region", "wrong region for this bucket"),
    "403": ("bucket", DENIED),
    "404": ("bucket", BUCKET_MISSING),
}


class S3Backend:
    def __init__(self, store):
        import boto3
        from botocore.config import Config

        if not store.bucket.strip():
            raise Failure("bucket", "a bucket is required for S3")
        # One attempt and short timeouts: a check must answer quickly, and a
        # retry storm against a dead endpoint only delays the same answer.
        config = Config(
            connect_timeout=timeout(),
            read_timeout=timeout(),
            retries={"max_attempts": 1, "mode": "standard"},
            s3={"addressing_style": "path"},
            signature_version="s3v4",
        )
        try:
            self.client = boto3.session.Session().client(
                "s3",
                endpoint_url=endpoint_url(store.endpoint) or None,
                region_name=store.s3_region or "us-east-1",
                aws_access_key_id=store.access_key_id or None,
                aws_secret_access_key=store.secret_access_key or None,
                config=config,
            )
        except ValueError as exc:
            raise Failure("endpoint", "invalid endpoint", str(exc)) from exc
        self.bucket = store.bucket.strip()

    def _classify(self, exc: Exception) -> Failure:
        from botocore import exceptions

        if isinstance(exc, exceptions.ClientError):
            error = exc.response.get("Error", {})
            code = str(error.get("Code", ""))
            field, reason = S3_CODES.get(code, ("endpoint", None))
            status = exc.response.get("ResponseMetadata", {}).get("HTTPStatusCode")
            if reason is None:
                reason = f"S3 answered {status} {code}".strip()
            return Failure(field, reason, f"{code}: {error.get('Message') or code}")
        if isinstance(exc, exceptions.NoCredentialsError):
            return Failure("access_key_id", CREDENTIALS, "no credentials set")
        if isinstance(exc, exceptions.BotoCoreError):
            return Failure("endpoint", UNREACHABLE, short(exc), denied=False)
        raise exc

    def _call(self, fn, **kwargs):
        from botocore import exceptions

        try:
            return fn(**kwargs)
        except exceptions.ClientError as exc:
            if exc.response.get("Error", {}).get("Code") == "NoSuchUpload":
                raise Gone() from exc
            raise self._classify(exc) from exc
        except exceptions.BotoCoreError as exc:
            raise self._classify(exc) from exc

    def iter_objects(self, prefix: str) -> Iterator[tuple[str, int]]:
        token = None
        while True:
            kwargs = {
                "Bucket": self.bucket,
                "Prefix": prefix,
                "MaxKeys": common.PAGE_SIZE,
            }
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
                MaxUploads=common.PAGE_SIZE,
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
                    MaxParts=common.PAGE_SIZE,
                    PartNumberMarker=marker,
                )
            except Gone:
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
