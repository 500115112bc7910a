"""A stand-in for Aliyun OSS, for tests only (no OSS server can run here).

It speaks the part of the OSS REST protocol Ferry and oss2 use, path-style
(`http://127.0.0.1:PORT/<bucket>/<key>`): GetBucketInfo, ListObjects (v1 and
v2: prefix, delimiter, marker / continuation-token, max-keys, encoding-type),
PutObject, GetObject (with Range), HeadObject, DeleteObject, and multipart
uploads: InitiateMultipartUpload, UploadPart, ListMultipartUploads (prefix,
key-marker, upload-id-marker, max-uploads, encoding-type; no delimiter),
ListParts (part-number-marker, max-parts), CompleteMultipartUpload and
AbortMultipartUpload (in oss_standin_multipart.py). Every request must
carry a valid OSS signature v1 (`Authorization: OSS <ak>:<base64 HMAC-SHA1>`,
which is what oss2 2.19's `oss2.Auth` sends); answers use OSS's documented
XML and error codes (InvalidAccessKeyId, SignatureDoesNotMatch, NoSuchBucket,
NoSuchKey, NoSuchUpload, AccessDenied, InvalidDigest, InvalidPart,
RequestTimeTooSkewed). Bytes are really stored (in memory), so usage numbers
are real.
"""

from __future__ import annotations

import base64
import hashlib
import hmac
import threading
import time
import uuid
from dataclasses import dataclass, field
from email.utils import formatdate, parsedate_to_datetime
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer
from typing import Self
from urllib.parse import parse_qsl, quote, unquote, urlsplit
from xml.sax.saxutils import escape

# Query parameters that are part of the signed resource (OSS signature v1).
SUBRESOURCES = frozenset(
    [
        "acl",
        "uploads",
        "location",
        "cors",
        "logging",
        "website",
        "referer",
        "lifecycle",
        "delete",
        "append",
        "tagging",
        "objectMeta",
        "uploadId",
        "partNumber",
        "security-token",
        "position",
        "img",
        "style",
        "styleName",
        "replication",
        "replicationProgress",
        "replicationLocation",
        "cname",
        "bucketInfo",
        "comp",
        "qos",
        "live",
        "status",
        "vod",
        "startTime",
        "endTime",
        "symlink",
        "x-oss-process",
        "response-content-type",
        "response-content-language",
        "response-expires",
        "response-cache-control",
        "response-content-disposition",
        "response-content-encoding",
        "stat",
        "continuation-token",
        "objectInfo",
        "versioning",
        "versionId",
        "versions",
        "policy",
        "encryption",
        "worm",
    ]
)
MAX_SKEW = 15 * 60
ERROR_MESSAGES = {
    "AccessDenied": (403, "You have no right to access this resource."),
    "InvalidAccessKeyId": (403, "The OSS Access Key Id you provided does not exist."),
    "SignatureDoesNotMatch": (
        403,
        (
            "The request signature we calculated does not match the signature "
            "you provided. Check your key and signing method."
        ),
    ),
    "RequestTimeTooSkewed": (
        403,
        "The difference between the request time and the current time is too large.",
    ),
    "NoSuchBucket": (404, "The specified bucket does not exist."),
    "NoSuchKey": (404, "The specified key does not exist."),
    "NoSuchUpload": (
        404,
        (
            "The specified upload does not exist. The upload ID may be invalid, "
            "or the upload may have been aborted or completed."
        ),
    ),
    "InvalidPart": (
        400,
        "One or more of the specified parts could not be found or the specified "
        "entity tag might not have matched the part's entity tag.",
    ),
    "InvalidPartOrder": (
        400,
        "The list of parts was not in ascending order. Parts list must be "
        "specified in order by part number.",
    ),
    "InvalidDigest": (400, "The Content-MD5 you specified is not valid."),
    "InvalidArgument": (400, "Invalid argument."),
    "MethodNotAllowed": (405, "The specified method is not allowed."),
}


def _crc64_table() -> list[int]:
    poly = 0xC96C5795D7870F42  # CRC-64/XZ (ECMA-182, reflected), as OSS uses
    table = []
    for n in range(256):
        crc = n
        for _ in range(8):
            crc = (crc >> 1) ^ poly if crc & 1 else crc >> 1
        table.append(crc)
    return table


_CRC_TABLE = _crc64_table()


def crc64(data: bytes) -> int:
    crc = 0xFFFFFFFFFFFFFFFF
    for byte in data:
        crc = _CRC_TABLE[(crc ^ byte) & 0xFF] ^ (crc >> 8)
    return crc ^ 0xFFFFFFFFFFFFFFFF


@dataclass
class StoredObject:
    data: bytes
    content_type: str
    modified: float
    etag: str = ""
    crc: int = 0
    object_type: str = "Normal"  # "Multipart" once assembled from parts

    def __post_init__(self):
        self.etag = hashlib.md5(self.data).hexdigest().upper()
        self.crc = crc64(self.data)


@dataclass
class Upload:
    """A multipart upload not yet completed: its parts are stored, not listed."""

    key: str
    upload_id: str
    content_type: str
    initiated: float = field(default_factory=time.time)
    parts: dict[int, StoredObject] = field(default_factory=dict)


@dataclass
class Bucket:
    name: str
    created: float = field(default_factory=time.time)
    objects: dict[str, StoredObject] = field(default_factory=dict)
    uploads: dict[str, Upload] = field(default_factory=dict)  # by upload id


@dataclass
class AccessKey:
    secret: str
    # bucket name -> "r", "w" or "rw"; "*" matches every bucket.
    grants: dict[str, str] = field(default_factory=lambda: {"*": "rw"})

    def allows(self, bucket: str, mode: str) -> bool:
        granted = self.grants.get(bucket, self.grants.get("*", ""))
        return mode in granted


class OssError(Exception):
    def __init__(self, code: str, **extra: str):
        super().__init__(code)
        self.code = code
        self.status, self.message = ERROR_MESSAGES[code]
        self.extra = extra


def _iso(ts: float) -> str:
    return time.strftime("%Y-%m-%dT%H:%M:%S.000Z", time.gmtime(ts))


class OssStandin:
    """The server: buckets and keys in memory, one thread per connection."""

    def __init__(self):
        self.buckets: dict[str, Bucket] = {}
        self.keys: dict[str, AccessKey] = {}
        self.lock = threading.Lock()
        self.requests: list[tuple[str, str, int]] = []  # method, path, status
        self._server: ThreadingHTTPServer | None = None
        self._thread: threading.Thread | None = None

    # -- setup used by tests -------------------------------------------------
    def add_key(self, access_key_id: str, secret: str, grants=None) -> None:
        self.keys[access_key_id] = AccessKey(secret, grants or {"*": "rw"})

    def create_bucket(self, name: str) -> None:
        self.buckets.setdefault(name, Bucket(name))

    @property
    def endpoint(self) -> str:
        host, port = self._server.server_address[:2]
        return f"http://{host}:{port}"

    def start(self) -> OssStandin:
        handler = type("Handler", (_Handler,), {"standin": self})
        self._server = ThreadingHTTPServer(("127.0.0.1", 0), handler)
        self._server.daemon_threads = True
        self._thread = threading.Thread(target=self._server.serve_forever, daemon=True)
        self._thread.start()
        return self

    def stop(self) -> None:
        if self._server is not None:
            self._server.shutdown()
            self._server.server_close()
            self._thread.join(timeout=10)
            self._server = None

    def __enter__(self) -> Self:
        return self.start()

    def __exit__(self, *exc_info) -> None:
        self.stop()

    # -- request handling ------------------------------------------------------
    def authenticate(self, req: _Request) -> str:
        """Check the v1 signature; return the access key id."""
        header = req.headers.get("Authorization", "")
        if not header.startswith("OSS ") or ":" not in header:
            raise OssError("AccessDenied")
        access_key_id, _, signature = header[4:].rpartition(":")
        key = self.keys.get(access_key_id)
        if key is None:
            raise OssError("InvalidAccessKeyId", OSSAccessKeyId=access_key_id)
        date = req.headers.get("x-oss-date") or req.headers.get("Date", "")
        try:
            skew = abs(parsedate_to_datetime(date).timestamp() - time.time())
        except (TypeError, ValueError):
            raise OssError("AccessDenied") from None
        if skew > MAX_SKEW:
            raise OssError("RequestTimeTooSkewed")
        string_to_sign = req.string_to_sign(date)
        expected = base64.b64encode(
            hmac.new(
                key.secret.encode(), string_to_sign.encode(), hashlib.sha1
            ).digest()
        ).decode()
        if not hmac.compare_digest(expected, signature):
            raise OssError("SignatureDoesNotMatch", StringToSign=string_to_sign)
        return access_key_id

    def bucket_for(self, req: _Request, access_key_id: str, mode: str) -> Bucket:
        bucket = self.buckets.get(req.bucket)
        if bucket is None:
            raise OssError("NoSuchBucket", BucketName=req.bucket)
        if not self.keys[access_key_id].allows(req.bucket, mode):
            raise OssError("AccessDenied")
        return bucket


class _Request:
    """The parts of an HTTP request that OSS routing and signing look at."""

    def __init__(self, method: str, raw_path: str, headers):
        self.method = method
        self.headers = headers
        parts = urlsplit(raw_path)
        self.query = dict(parse_qsl(parts.query, keep_blank_values=True))
        path = unquote(parts.path)
        bucket, _, key = path.lstrip("/").partition("/")
        self.bucket, self.key = bucket, key

    def string_to_sign(self, date: str) -> str:
        oss_headers = sorted(
            (name.lower(), value.strip())
            for name, value in self.headers.items()
            if name.lower().startswith("x-oss-")
        )
        canonical_headers = "".join(f"{k}:{v}\n" for k, v in oss_headers)
        resource = f"/{self.bucket}/{self.key}" if self.bucket else "/"
        sub = sorted((k, v) for k, v in self.query.items() if k in SUBRESOURCES)
        if sub:
            resource += "?" + "&".join(f"{k}={v}" if v else k for k, v in sub)
        return "\n".join(
            [
                self.method,
                self.headers.get("Content-MD5", ""),
                self.headers.get("Content-Type", ""),
                date,
                canonical_headers + resource,
            ]
        )


class _Handler(BaseHTTPRequestHandler):
    standin: OssStandin
    protocol_version = "HTTP/1.1"

    def log_message(self, format, *args):  # keep test output quiet
        return

    def do_GET(self):
        self._handle()

    def do_HEAD(self):
        self._handle()

    def do_PUT(self):
        self._handle()

    def do_DELETE(self):
        self._handle()

    def do_POST(self):
        self._handle()

    def _handle(self) -> None:
        length = int(self.headers.get("Content-Length") or 0)
        body = self.rfile.read(length) if length else b""
        req = _Request(self.command, self.path, self.headers)
        try:
            access_key_id = self.standin.authenticate(req)
            if not req.bucket:
                raise OssError("MethodNotAllowed")
            status, headers, payload = _route(self.standin, req, access_key_id, body)
        except OssError as error:
            status, headers, payload = self._error(error, req)
        self.standin.requests.append((self.command, self.path, status))
        self._send(status, headers, payload)

    def _error(self, error: OssError, req: _Request):
        request_id = uuid.uuid4().hex.upper()[:24]
        extra = "".join(f"<{k}>{escape(v)}</{k}>" for k, v in error.extra.items())
        xml = (
            '<?xml version="1.0" encoding="UTF-8"?>\n<Error>'
            f"<Code>{error.code}</Code><Message>{escape(error.message)}</Message>"
            f"<RequestId>{request_id}</RequestId><HostId>127.0.0.1</HostId>"
            f"{extra}</Error>"
        ).encode()
        headers = {"Content-Type": "application/xml", "x-oss-request-id": request_id}
        if req.method == "HEAD":  # OSS puts HEAD errors in a header
            headers["x-oss-err"] = base64.b64encode(xml).decode()
        return error.status, headers, xml

    def _send(self, status: int, headers: dict, payload: bytes) -> None:
        self.send_response(status)
        headers.setdefault("x-oss-request-id", uuid.uuid4().hex.upper()[:24])
        headers.setdefault("Date", formatdate(usegmt=True))
        headers.setdefault("Server", "AliyunOSS")
        length = headers.pop("Content-Length", len(payload))
        for name, value in headers.items():
            self.send_header(name, str(value))
        self.send_header("Content-Length", str(length))
        self.end_headers()
        if self.command != "HEAD":
            self.wfile.write(payload)


# -- operations -----------------------------------------------------------------
def _route(standin: OssStandin, req: _Request, access_key_id: str, body: bytes):
    if not req.key:
        if req.method == "GET" and "bucketInfo" in req.query:
            return _bucket_info(standin.bucket_for(req, access_key_id, "r"))
        if req.method == "GET" and "uploads" in req.query:
            from .oss_standin_multipart import list_uploads

            return list_uploads(standin.bucket_for(req, access_key_id, "r"), req.query)
        if req.method == "GET":
            bucket = standin.bucket_for(req, access_key_id, "r")
            return _list_objects(bucket, req.query)
        raise OssError("MethodNotAllowed")
    if "uploads" in req.query or "uploadId" in req.query:
        from .oss_standin_multipart import multipart  # it imports this module

        return multipart(standin, req, access_key_id, body)
    if req.method == "PUT":
        return _put_object(
            standin, standin.bucket_for(req, access_key_id, "w"), req, body
        )
    if req.method == "DELETE":
        bucket = standin.bucket_for(req, access_key_id, "w")
        with standin.lock:
            bucket.objects.pop(req.key, None)
        return 204, {}, b""
    if req.method in ("GET", "HEAD"):
        return _get_object(standin.bucket_for(req, access_key_id, "r"), req)
    raise OssError("MethodNotAllowed")


def _bucket_info(bucket: Bucket):
    xml = (
        '<?xml version="1.0" encoding="UTF-8"?>\n<BucketInfo><Bucket>'
        f"<CreationDate>{_iso(bucket.created)}</CreationDate>"
        "<ExtranetEndpoint>127.0.0.1</ExtranetEndpoint>"
        "<IntranetEndpoint>127.0.0.1</IntranetEndpoint>"
        "<Location>oss-standin</Location><StorageClass>Standard</StorageClass>"
        f"<Name>{escape(bucket.name)}</Name>"
        "<Owner><DisplayName>standin</DisplayName><ID>standin</ID></Owner>"
        "<AccessControlList><Grant>private</Grant></AccessControlList>"
        "</Bucket></BucketInfo>"
    )
    return 200, {"Content-Type": "application/xml"}, xml.encode()


def _check_md5(req: _Request, body: bytes) -> None:
    md5 = req.headers.get("Content-MD5")
    if md5 and md5 != base64.b64encode(hashlib.md5(body).digest()).decode():
        raise OssError("InvalidDigest")


def _put_object(standin: OssStandin, bucket: Bucket, req: _Request, body: bytes):
    _check_md5(req, body)
    content_type = req.headers.get("Content-Type") or "application/octet-stream"
    obj = StoredObject(body, content_type, time.time())
    with standin.lock:
        bucket.objects[req.key] = obj
    return 200, {"ETag": f'"{obj.etag}"', "x-oss-hash-crc64ecma": str(obj.crc)}, b""


def _get_object(bucket: Bucket, req: _Request):
    obj = bucket.objects.get(req.key)
    if obj is None:
        raise OssError("NoSuchKey", Key=req.key)
    headers = {
        "Content-Type": obj.content_type,
        "ETag": f'"{obj.etag}"',
        "Last-Modified": formatdate(obj.modified, usegmt=True),
        "x-oss-object-type": obj.object_type,
        "x-oss-storage-class": "Standard",
        "Accept-Ranges": "bytes",
    }
    data, status = obj.data, 200
    start_end = _range(req.headers.get("Range"), len(data))
    if start_end:
        start, end = start_end
        headers["Content-Range"] = f"bytes {start}-{end}/{len(data)}"
        data, status = data[start : end + 1], 206
    else:
        headers["x-oss-hash-crc64ecma"] = str(obj.crc)
    headers["Content-Length"] = len(data)
    return status, headers, data


def _range(header: str | None, size: int) -> tuple[int, int] | None:
    """bytes=a-b / bytes=a- / bytes=-n; an invalid range means the whole object."""
    if not header or not header.startswith("bytes=") or size == 0:
        return None
    first, _, last = header[6:].partition("-")
    try:
        if not first:
            start, end = max(size - int(last), 0), size - 1
        else:
            start = int(first)
            end = min(int(last), size - 1) if last else size - 1
    except ValueError:
        return None
    return (start, end) if start <= end < size else None


def _list_objects(bucket: Bucket, query: dict[str, str]):
    """ListObjects v1, or v2 with list-type=2, sorted by key like OSS."""
    v2 = query.get("list-type") == "2"
    prefix, delimiter = query.get("prefix", ""), query.get("delimiter", "")
    try:
        max_keys = min(int(query.get("max-keys") or 100), 1000)
    except ValueError:
        raise OssError("InvalidArgument") from None
    if v2:
        token = query.get("continuation-token", "")
        after = base64.urlsafe_b64decode(token).decode() if token else ""
        after = max(after, query.get("start-after", ""))
    else:
        after = query.get("marker", "")
    keys, prefixes, truncated, last = _page(bucket, prefix, delimiter, after, max_keys)
    encode = query.get("encoding-type") == "url"
    enc = (lambda s: quote(s, safe="")) if encode else escape
    parts = [f"<Name>{escape(bucket.name)}</Name><Prefix>{enc(prefix)}</Prefix>"]
    if v2:
        parts.append(f"<MaxKeys>{max_keys}</MaxKeys><KeyCount>{len(keys)}</KeyCount>")
        if query.get("continuation-token"):
            parts.append(
                f"<ContinuationToken>{query['continuation-token']}</ContinuationToken>"
            )
    else:
        parts.append(f"<Marker>{enc(after)}</Marker><MaxKeys>{max_keys}</MaxKeys>")
    parts.append(f"<Delimiter>{enc(delimiter)}</Delimiter>")
    if encode:
        parts.append("<EncodingType>url</EncodingType>")
    parts.append(f"<IsTruncated>{'true' if truncated else 'false'}</IsTruncated>")
    if truncated and v2:
        token = base64.urlsafe_b64encode(last.encode()).decode()
        parts.append(f"<NextContinuationToken>{token}</NextContinuationToken>")
    elif truncated:
        parts.append(f"<NextMarker>{enc(last)}</NextMarker>")
    owner = not v2 or query.get("fetch-owner") == "true"
    parts += [_contents(key, bucket.objects[key], enc, owner) for key in keys]
    parts += [
        f"<CommonPrefixes><Prefix>{enc(p)}</Prefix></CommonPrefixes>" for p in prefixes
    ]
    xml = (
        '<?xml version="1.0" encoding="UTF-8"?>\n<ListBucketResult>'
        + "".join(parts)
        + "</ListBucketResult>"
    )
    return 200, {"Content-Type": "application/xml"}, xml.encode()


def _page(bucket: Bucket, prefix: str, delimiter: str, after: str, max_keys: int):
    keys: list[str] = []
    prefixes: list[str] = []
    last = ""
    for key in sorted(k for k in list(bucket.objects) if k.startswith(prefix)):
        if key <= after:
            continue
        common = None
        if delimiter:
            cut = key.find(delimiter, len(prefix))
            common = key[: cut + len(delimiter)] if cut >= 0 else None
        if common is not None and (common in prefixes or common <= after):
            continue
        if len(keys) + len(prefixes) == max_keys:
            return keys, prefixes, True, last
        if common is not None:
            prefixes.append(common)
            last = common
        else:
            keys.append(key)
            last = key
    return keys, prefixes, False, last


def _contents(key: str, obj: StoredObject, enc, owner: bool) -> str:
    owner_xml = (
        "<Owner><ID>standin</ID><DisplayName>standin</DisplayName></Owner>"
        if owner
        else ""
    )
    return (
        f"<Contents><Key>{enc(key)}</Key>"
        f"<LastModified>{_iso(obj.modified)}</LastModified>"
        f'<ETag>"{obj.etag}"</ETag><Type>{obj.object_type}</Type>'
        f"<Size>{len(obj.data)}</Size>"
        f"<StorageClass>Standard</StorageClass>{owner_xml}</Contents>"
    )
