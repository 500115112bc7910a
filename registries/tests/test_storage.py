"""Storage checks and usage against real servers: the OSS stand-in (oss2), moto
with IAM enforcement (boto3) and a real directory (filesystem)."""

import json
import os
import shutil
import tempfile
import urllib.request
from pathlib import Path

import boto3
import oss2
import pytest

from adapters import object_storage
from adapters.errors import StorageDenied, StorageUnreachable
from adapters.object_storage import abandoned_upload_bytes, check_store, store_usage
from controlplane.testing.ports import free_port
from controlplane.testing.processes import log_tail, spawn, stop_process
from controlplane.testing.wait import wait_for
from registries.models import ObjectStore

from .oss_standin import OssStandin

BLOBS = "registry/docker/registry/v2/blobs/sha256/"
REPO = "registry/docker/registry/v2/repositories/team/app/"
UPLOADS = REPO + "_uploads/"
# The same layout outside the store's root directory ("/registry").
OUTSIDE = "elsewhere/docker/registry/v2/repositories/team/app/_uploads/"


def _store(**fields) -> ObjectStore:
    defaults = {"root_directory": "/registry", "bucket": "ferry-bucket"}
    return ObjectStore(**{**defaults, **fields})


def _refusal(store: ObjectStore, field: str) -> str:
    """The reason check_store gives for refusing `store`, blaming `field`."""
    check = check_store(store)
    assert (check.ok, check.field) == (False, field)
    return check.reason


# -- OSS through the stand-in ------------------------------------------------------
@pytest.fixture
def oss():
    with OssStandin() as standin:
        standin.add_key("ferry-ak", "ferry-secret")
        standin.add_key("reader-ak", "reader-secret", grants={"*": "r"})
        standin.create_bucket("ferry-bucket")
        yield standin


def _oss_store(standin, **fields) -> ObjectStore:
    creds = {"access_key_id": "ferry-ak", "secret_access_key": "ferry-secret"}
    return _store(kind="oss", endpoint=standin.endpoint, **{**creds, **fields})


def test_oss_check_passes_with_valid_credentials(oss):
    assert check_store(_oss_store(oss)).ok
    # The probe really wrote and removed its object through the signed API.
    methods = [method for method, _path, status in oss.requests if status < 300]
    assert {"GET", "PUT", "DELETE"} <= set(methods)
    assert oss.buckets["ferry-bucket"].objects == {}


def test_oss_wrong_secret_is_credentials_rejected(oss):
    store = _oss_store(oss, secret_access_key="not-the-secret")
    reason = _refusal(store, "secret_access_key")
    assert reason.startswith("credentials rejected")
    assert "SignatureDoesNotMatch" in reason


def test_oss_unknown_access_key_is_credentials_rejected(oss):
    reason = _refusal(_oss_store(oss, access_key_id="nobody"), "access_key_id")
    assert reason.startswith("credentials rejected")


def test_oss_missing_bucket_is_named(oss):
    reason = _refusal(_oss_store(oss, bucket="no-such-bucket"), "bucket")
    assert reason.startswith("bucket missing")


def test_oss_read_only_key_is_access_denied_for_writes(oss):
    store = _oss_store(
        oss, access_key_id="reader-ak", secret_access_key="reader-secret"
    )
    assert _refusal(store, "bucket").startswith("access denied: cannot write")


def test_oss_endpoint_down_is_unreachable():
    store = _store(
        kind="oss",
        endpoint=f"http://127.0.0.1:{free_port()}",
        access_key_id="ak",
        secret_access_key="sk",
    )
    assert _refusal(store, "endpoint").startswith("endpoint unreachable")
    with pytest.raises(StorageUnreachable):
        store_usage(store)


def test_oss_usage_counts_bytes_written_with_oss2(oss):
    bucket = oss2.Bucket(
        oss2.Auth("ferry-ak", "ferry-secret"), oss.endpoint, "ferry-bucket"
    )
    # More than one listing page (1000 keys) to prove the marker paging.
    for i in range(1203):
        bucket.put_object(f"{BLOBS}{i:05d}/data", os.urandom(i % 50 + 1))
    bucket.put_object(f"{UPLOADS}u1/data", b"x" * 4096)
    bucket.put_object(f"{UPLOADS}u1/startedat", b"2024-01-01T00:00:00Z")
    bucket.put_object("elsewhere/not-counted", b"y" * 999)
    expected = sum(i % 50 + 1 for i in range(1203)) + 4096 + 20

    usage = store_usage(_oss_store(oss))

    assert (usage.bytes, usage.objects) == (expected, 1205)
    assert abandoned_upload_bytes(_oss_store(oss)) == 4096 + 20


def _oss_upload(bucket, key: str, sizes: list[int]) -> tuple[str, list]:
    """A multipart upload of `key` with parts of `sizes` bytes, left open."""
    upload_id = bucket.init_multipart_upload(key).upload_id
    parts = [
        oss2.models.PartInfo(n, bucket.upload_part(key, upload_id, n, b"p" * s).etag)
        for n, s in enumerate(sizes, start=1)
    ]
    return upload_id, parts


def test_oss_abandoned_uploads_count_unfinished_multipart_parts(oss, monkeypatch):
    # Pages of 2 prove the upload and part markers without thousands of calls.
    monkeypatch.setattr(object_storage.common, "PAGE_SIZE", 2)
    bucket = oss2.Bucket(
        oss2.Auth("ferry-ak", "ferry-secret"), oss.endpoint, "ferry-bucket"
    )
    _oss_upload(bucket, f"{UPLOADS}u1/data", [3000, 2000, 1000])
    _oss_upload(bucket, f"{UPLOADS}u1/data", [500])  # same key: upload-id-marker
    _oss_upload(bucket, f"{UPLOADS}u2/data", [])
    bucket.put_object(f"{UPLOADS}u1/startedat", b"2024-01-01T00:00:00Z")
    _oss_upload(bucket, f"{OUTSIDE}u3/data", [9000])  # not under the root
    _oss_upload(bucket, f"{REPO}_layers/x", [8000])  # not a blob upload
    done, parts = _oss_upload(bucket, f"{UPLOADS}u4/data", [400])
    bucket.complete_multipart_upload(f"{UPLOADS}u4/data", done, parts)
    aborted, _parts = _oss_upload(bucket, f"{UPLOADS}u5/data", [7000])
    bucket.abort_multipart_upload(f"{UPLOADS}u5/data", aborted)

    # Open parts, plus the objects: the completed upload counts once, as one.
    assert abandoned_upload_bytes(_oss_store(oss)) == 6000 + 500 + 20 + 400


def test_oss_usage_with_wrong_secret_raises_storage_denied(oss):
    with pytest.raises(StorageDenied, match="credentials rejected"):
        store_usage(_oss_store(oss, secret_access_key="wrong"))


# -- S3 through moto with IAM enforced ---------------------------------------------
@pytest.fixture(scope="module")
def s3_iam():
    """moto_server that checks signatures and IAM policies after 3 setup calls."""
    directory = Path(tempfile.mkdtemp(prefix="ferry-h4b-moto-"))
    port = free_port()
    endpoint = f"http://127.0.0.1:{port}"
    binary = Path(".venv/bin/moto_server").resolve()
    env = {**os.environ, "INITIAL_NO_AUTH_ACTION_COUNT": "3"}
    proc = spawn(
        [str(binary), "-H", "127.0.0.1", "-p", str(port)], directory / "log", env=env
    )
    try:
        wait_for(
            lambda: _moto_up(endpoint, proc),
            timeout=30,
            message=lambda: log_tail(directory / "log"),
        )
        yield _iam_users(endpoint)
    finally:
        stop_process(proc)
        shutil.rmtree(directory, ignore_errors=True)


def _moto_up(endpoint: str, proc) -> bool:
    assert proc.poll() is None, "moto_server exited"
    # /moto-api/ does not count as one of the unauthenticated actions.
    with urllib.request.urlopen(endpoint + "/moto-api/", timeout=2) as response:
        return response.status == 200


def _iam_users(endpoint: str) -> dict:
    """Admin (3 unauthenticated calls), then a read-only user and the bucket."""
    iam = boto3.client(
        "iam",
        endpoint_url=endpoint,
        region_name="us-east-1",
        aws_access_key_id="setup",
        aws_secret_access_key="setup",
    )
    iam.create_user(UserName="admin")
    admin = iam.create_access_key(UserName="admin")["AccessKey"]
    _allow(iam, "admin", ["s3:*", "iam:*"])
    iam = boto3.client(
        "iam",
        endpoint_url=endpoint,
        region_name="us-east-1",
        aws_access_key_id=admin["AccessKeyId"],
        aws_secret_access_key=admin["SecretAccessKey"],
    )
    iam.create_user(UserName="reader")
    reader = iam.create_access_key(UserName="reader")["AccessKey"]
    _allow(iam, "reader", ["s3:ListBucket", "s3:GetObject"])
    users = {
        "endpoint": endpoint,
        "admin": (admin["AccessKeyId"], admin["SecretAccessKey"]),
        "reader": (reader["AccessKeyId"], reader["SecretAccessKey"]),
    }
    _s3_client(users).create_bucket(Bucket="ferry-bucket")
    return users


def _allow(iam, user: str, actions: list[str]) -> None:
    policy = {
        "Version": "2012-10-17",
        "Statement": [{"Effect": "Allow", "Action": actions, "Resource": "*"}],
    }
    iam.put_user_policy(
        UserName=user, PolicyName="p", PolicyDocument=json.dumps(policy)
    )


def _s3_client(users):
    key, secret = users["admin"]
    return boto3.client(
        "s3",
        endpoint_url=users["endpoint"],
        region_name="us-east-1",
        aws_access_key_id=key,
        aws_secret_access_key=secret,
    )


def _s3_store(users, user="admin", **fields) -> ObjectStore:
    key, secret = users[user]
    creds = {"access_key_id": key, "secret_access_key": secret}
    return _store(kind="s3", endpoint=users["endpoint"], **{**creds, **fields})


def test_s3_check_passes_with_valid_credentials(s3_iam):
    check = check_store(_s3_store(s3_iam))
    assert (check.ok, check.field) == (True, None)
    leftovers = _s3_client(s3_iam).list_objects_v2(Bucket="ferry-bucket")
    assert leftovers.get("KeyCount", 0) == 0  # the probe object was removed


def test_s3_wrong_secret_is_credentials_rejected(s3_iam):
    reason = _refusal(_s3_store(s3_iam, secret_access_key="wrong"), "secret_access_key")
    assert reason.startswith("credentials rejected")


def test_s3_missing_bucket_is_named(s3_iam):
    reason = _refusal(_s3_store(s3_iam, bucket="no-such-bucket"), "bucket")
    assert reason.startswith("bucket missing")


def test_s3_read_only_user_is_access_denied_for_writes(s3_iam):
    reason = _refusal(_s3_store(s3_iam, user="reader"), "bucket")
    assert reason.startswith("access denied: cannot write")


def test_s3_endpoint_down_is_unreachable():
    store = _store(
        kind="s3",
        endpoint=f"http://127.0.0.1:{free_port()}",
        access_key_id="a",
        secret_access_key="b",
    )
    assert _refusal(store, "endpoint").startswith("endpoint unreachable")


def test_s3_usage_counts_bytes_written_with_boto3(s3_iam):
    client = _s3_client(s3_iam)
    client.create_bucket(Bucket="usage-bucket")
    for i in range(1050):
        client.put_object(Bucket="usage-bucket", Key=f"{BLOBS}{i:05d}", Body=b"z" * i)
    client.put_object(Bucket="usage-bucket", Key=f"{UPLOADS}u/data", Body=b"u" * 777)
    client.put_object(Bucket="usage-bucket", Key="other/x", Body=b"no" * 50)
    store = _s3_store(s3_iam, bucket="usage-bucket")

    usage = store_usage(store)

    assert (usage.bytes, usage.objects) == (sum(range(1050)) + 777, 1051)
    assert abandoned_upload_bytes(store) == 777


def _s3_upload(client, bucket: str, key: str, sizes: list[int]) -> tuple[str, list]:
    """A multipart upload of `key` with parts of `sizes` bytes, left open."""
    upload_id = client.create_multipart_upload(Bucket=bucket, Key=key)["UploadId"]
    parts = []
    for number, size in enumerate(sizes, start=1):
        etag = client.upload_part(
            Bucket=bucket, Key=key, UploadId=upload_id, PartNumber=number,
            Body=b"p" * size,
        )["ETag"]  # fmt: skip
        parts.append({"PartNumber": number, "ETag": etag})
    return upload_id, parts


def test_s3_abandoned_uploads_count_unfinished_multipart_parts(s3_iam, monkeypatch):
    monkeypatch.setattr(object_storage.common, "PAGE_SIZE", 2)  # proves the part marker
    client, bucket = _s3_client(s3_iam), "multipart-bucket"
    client.create_bucket(Bucket=bucket)
    _s3_upload(client, bucket, f"{UPLOADS}u1/data", [3000, 2000, 1000])
    _s3_upload(client, bucket, f"{UPLOADS}u1/data", [500])
    client.put_object(Bucket=bucket, Key=f"{UPLOADS}u1/startedat", Body=b"t" * 20)
    _s3_upload(client, bucket, f"{OUTSIDE}u3/data", [9000])  # not under the root
    _s3_upload(client, bucket, f"{REPO}_layers/x", [8000])  # not a blob upload
    done, parts = _s3_upload(client, bucket, f"{UPLOADS}u4/data", [400])
    client.complete_multipart_upload(
        Bucket=bucket, Key=f"{UPLOADS}u4/data", UploadId=done,
        MultipartUpload={"Parts": parts},
    )  # fmt: skip
    aborted, _parts = _s3_upload(client, bucket, f"{UPLOADS}u5/data", [7000])
    client.abort_multipart_upload(
        Bucket=bucket, Key=f"{UPLOADS}u5/data", UploadId=aborted
    )

    store = _s3_store(s3_iam, bucket=bucket)
    # Open parts, plus the objects: the completed upload counts once, as one.
    assert abandoned_upload_bytes(store) == 6000 + 500 + 20 + 400
    # A key that may not list multipart uploads gets no figure rather than one
    # missing the data (the registry itself needs that permission anyway).
    reader = _s3_store(s3_iam, user="reader", bucket=bucket)
    with pytest.raises(StorageDenied, match="access denied"):
        abandoned_upload_bytes(reader)


# -- filesystem ------------------------------------------------------------------
def test_filesystem_needs_an_absolute_path():
    _refusal(_store(kind="filesystem", root_directory="var/registry"), "root_directory")
    assert check_store(_store(kind="filesystem", root_directory="/srv/registry")).ok


def test_filesystem_usage_counts_files_when_the_path_is_local(tmp_path):
    uploads = tmp_path / "docker/registry/v2/repositories/team/app/_uploads/u1"
    blobs = tmp_path / "docker/registry/v2/blobs/sha256/ab/abcd"
    uploads.mkdir(parents=True)
    blobs.mkdir(parents=True)
    (uploads / "data").write_bytes(b"a" * 300)
    (blobs / "data").write_bytes(b"b" * 5000)
    store = _store(kind="filesystem", root_directory=str(tmp_path))

    assert store_usage(store).bytes == 5300
    assert store_usage(store).objects == 2
    assert abandoned_upload_bytes(store) == 300


def test_filesystem_usage_on_a_remote_host_is_unknown(tmp_path):
    store = _store(kind="filesystem", root_directory=str(tmp_path / "elsewhere"))
    assert store_usage(store) is None
    assert abandoned_upload_bytes(store) is None
