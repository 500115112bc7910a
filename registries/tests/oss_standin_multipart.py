"""The OSS stand-in's multipart uploads (see oss_standin.py), for tests only.

InitiateMultipartUpload, UploadPart, ListMultipartUploads (prefix, key-marker,
upload-id-marker, max-uploads, encoding-type; no delimiter), ListParts
(part-number-marker, max-parts), CompleteMultipartUpload, AbortMultipartUpload,
answered with OSS's documented XML. An upload's parts hold real bytes but are
no object (listings do not show them) until the upload is completed.
"""

from __future__ import annotations

import hashlib
import time
import uuid
from urllib.parse import quote
from xml.etree import ElementTree
from xml.sax.saxutils import escape

from .oss_standin import (
    Bucket,
    OssError,
    OssStandin,
    StoredObject,
    Upload,
    _check_md5,
    _iso,
    _Request,
)


def multipart(standin: OssStandin, req: _Request, access_key_id: str, body: bytes):
    """The multipart operations on a key, told apart by method and query."""
    if "uploadId" not in req.query:  # ?uploads: only POST (initiate) is one
        if req.method != "POST":
            raise OssError("MethodNotAllowed")
        return _initiate(standin, standin.bucket_for(req, access_key_id, "w"), req)
    if req.method == "GET":
        bucket = standin.bucket_for(req, access_key_id, "r")
        return _list_parts(bucket, _upload(bucket, req), req.query)
    bucket = standin.bucket_for(req, access_key_id, "w")
    upload = _upload(bucket, req)
    if req.method == "PUT" and "partNumber" in req.query:
        return _upload_part(standin, upload, req, body)
    if req.method == "POST":
        return _complete(standin, bucket, upload, body)
    if req.method == "DELETE":
        with standin.lock:
            bucket.uploads.pop(upload.upload_id, None)
        return 204, {}, b""
    raise OssError("MethodNotAllowed")


def _upload(bucket: Bucket, req: _Request) -> Upload:
    upload_id = req.query["uploadId"]
    upload = bucket.uploads.get(upload_id)
    if upload is None or upload.key != req.key:
        raise OssError("NoSuchUpload", UploadId=upload_id)
    return upload


def _xml(root: str, body: str):
    xml = f'<?xml version="1.0" encoding="UTF-8"?>\n<{root}>{body}</{root}>'
    return 200, {"Content-Type": "application/xml"}, xml.encode()


def _number(value: str | None, default: int, low: int, high: int) -> int:
    try:
        number = int(value) if value else default
    except ValueError:
        raise OssError("InvalidArgument") from None
    if not low <= number <= high:
        raise OssError("InvalidArgument")
    return number


def _truth(flag: bool) -> str:
    return "true" if flag else "false"


def _initiate(standin: OssStandin, bucket: Bucket, req: _Request):
    content_type = req.headers.get("Content-Type") or "application/octet-stream"
    upload = Upload(req.key, uuid.uuid4().hex.upper(), content_type)
    with standin.lock:
        bucket.uploads[upload.upload_id] = upload
    return _xml(
        "InitiateMultipartUploadResult",
        f"<Bucket>{escape(bucket.name)}</Bucket><Key>{escape(upload.key)}</Key>"
        f"<UploadId>{upload.upload_id}</UploadId>",
    )


def _upload_part(standin: OssStandin, upload: Upload, req: _Request, body: bytes):
    number = _number(req.query["partNumber"], 0, 1, 10000)
    _check_md5(req, body)
    part = StoredObject(body, "application/octet-stream", time.time())
    with standin.lock:
        upload.parts[number] = part
    return 200, {"ETag": f'"{part.etag}"', "x-oss-hash-crc64ecma": str(part.crc)}, b""


def _list_parts(bucket: Bucket, upload: Upload, query: dict[str, str]):
    marker = _number(query.get("part-number-marker"), 0, 0, 10000)
    max_parts = _number(query.get("max-parts"), 1000, 1, 1000)
    numbers = sorted(n for n in list(upload.parts) if n > marker)
    page, truncated = numbers[:max_parts], len(numbers) > max_parts
    parts = [
        f"<Bucket>{escape(bucket.name)}</Bucket><Key>{escape(upload.key)}</Key>"
        f"<UploadId>{upload.upload_id}</UploadId>"
        f"<PartNumberMarker>{marker}</PartNumberMarker>"
        f"<NextPartNumberMarker>{page[-1] if page else marker}</NextPartNumberMarker>"
        f"<MaxParts>{max_parts}</MaxParts><IsTruncated>{_truth(truncated)}</IsTruncated>"
    ]
    for number in page:
        part = upload.parts[number]
        parts.append(
            f"<Part><PartNumber>{number}</PartNumber>"
            f"<LastModified>{_iso(part.modified)}</LastModified>"
            f'<ETag>"{part.etag}"</ETag><HashCrc64ecma>{part.crc}</HashCrc64ecma>'
            f"<Size>{len(part.data)}</Size></Part>"
        )
    return _xml("ListPartsResult", "".join(parts))


def _after(upload: Upload, key_marker: str, id_marker: str) -> bool:
    """After the markers: a later key, or the marker's key with a later id."""
    if upload.key == key_marker:
        return bool(id_marker) and upload.upload_id > id_marker
    return upload.key > key_marker


def list_uploads(bucket: Bucket, query: dict[str, str]):
    """Uploads in (key, upload id) order, after key-marker / upload-id-marker."""
    if query.get("delimiter"):
        raise OssError("InvalidArgument")  # Ferry needs none: not served here
    prefix, key_marker = query.get("prefix", ""), query.get("key-marker", "")
    id_marker = query.get("upload-id-marker", "") if key_marker else ""
    max_uploads = _number(query.get("max-uploads"), 1000, 1, 1000)
    uploads = sorted(
        (
            u
            for u in list(bucket.uploads.values())
            if u.key.startswith(prefix) and _after(u, key_marker, id_marker)
        ),
        key=lambda u: (u.key, u.upload_id),
    )
    page, truncated = uploads[:max_uploads], len(uploads) > max_uploads
    last = page[-1] if page else Upload("", "", "")
    encode = query.get("encoding-type") == "url"
    enc = (lambda s: quote(s, safe="")) if encode else escape
    parts = [
        f"<Bucket>{escape(bucket.name)}</Bucket>"
        f"<KeyMarker>{enc(key_marker)}</KeyMarker>"
        f"<UploadIdMarker>{escape(id_marker)}</UploadIdMarker>"
        f"<NextKeyMarker>{enc(last.key)}</NextKeyMarker>"
        f"<NextUploadIdMarker>{last.upload_id}</NextUploadIdMarker>"
        f"<Delimiter></Delimiter><Prefix>{enc(prefix)}</Prefix>"
        f"<MaxUploads>{max_uploads}</MaxUploads>"
        f"<IsTruncated>{_truth(truncated)}</IsTruncated>"
        + ("<EncodingType>url</EncodingType>" if encode else "")
    ]
    parts += [
        f"<Upload><Key>{enc(u.key)}</Key><UploadId>{u.upload_id}</UploadId>"
        f"<StorageClass>Standard</StorageClass>"
        f"<Initiated>{_iso(u.initiated)}</Initiated></Upload>"
        for u in page
    ]
    return _xml("ListMultipartUploadsResult", "".join(parts))


def _chosen_parts(upload: Upload, body: bytes) -> list[StoredObject]:
    """The parts the request lists: ascending numbers, each ETag matching."""
    try:
        chosen = [
            (int(p.findtext("PartNumber", "")), p.findtext("ETag", "").strip('"'))
            for p in ElementTree.fromstring(body).findall("Part")
        ]
    except (ElementTree.ParseError, ValueError):
        raise OssError("InvalidArgument") from None
    numbers = [number for number, _etag in chosen]
    if not numbers or numbers != sorted(set(numbers)):
        raise OssError("InvalidPartOrder")
    parts = []
    for number, etag in chosen:
        part = upload.parts.get(number)
        if part is None or part.etag != etag.upper():
            raise OssError("InvalidPart")
        parts.append(part)
    return parts


def _complete(standin: OssStandin, bucket: Bucket, upload: Upload, body: bytes):
    """Join the chosen parts into the object (unlike OSS, any part may be
    smaller than 100 KB) and end the upload."""
    parts = _chosen_parts(upload, body)
    data = b"".join(part.data for part in parts)
    obj = StoredObject(data, upload.content_type, time.time())
    digests = b"".join(bytes.fromhex(part.etag) for part in parts)
    obj.etag = f"{hashlib.md5(digests).hexdigest().upper()}-{len(parts)}"
    obj.object_type = "Multipart"
    with standin.lock:
        bucket.objects[upload.key] = obj
        bucket.uploads.pop(upload.upload_id, None)
    name, key = escape(bucket.name), escape(upload.key)
    status, headers, payload = _xml(
        "CompleteMultipartUploadResult",
        f"<Location>http://127.0.0.1/{name}/{key}</Location><Bucket>{name}</Bucket>"
        f'<Key>{key}</Key><ETag>"{obj.etag}"</ETag>',
    )
    headers.update({"ETag": f'"{obj.etag}"', "x-oss-hash-crc64ecma": str(obj.crc)})
    return status, headers, payload
