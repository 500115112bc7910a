"""A small client for the registry HTTP API v2 (distribution spec) over requests.

Enough to pull an image the way a Docker engine does: ping /v2/, GET the
manifest (Docker v2 and OCI manifests, manifest lists and indexes), and GET
every blob (streamed, counted, digest-checked, discarded). Authentication
follows the registry's challenge: Basic, or the Bearer token dance
(WWW-Authenticate realm/service/scope). TLS is verified, optionally against
a CA given as PEM text or a bundle path.
"""

from __future__ import annotations

import hashlib
import json
import re
import ssl
from dataclasses import dataclass
from typing import Self

import requests
from django.conf import settings
from requests.adapters import HTTPAdapter

from .errors import ImageNotFound, RegistryAuthError, RegistryError

MANIFEST_V2 = "application/vnd.docker.distribution.manifest.v2+json"
MANIFEST_LIST = "application/vnd.docker.distribution.manifest.list.v2+json"
OCI_MANIFEST = "application/vnd.oci.image.manifest.v1+json"
OCI_INDEX = "application/vnd.oci.image.index.v1+json"
INDEX_TYPES = (MANIFEST_LIST, OCI_INDEX)
IMAGE_TYPES = (MANIFEST_V2, OCI_MANIFEST)
ACCEPT = ", ".join(IMAGE_TYPES + INDEX_TYPES)
CHUNK = 1024 * 1024
_CHALLENGE_PARAM = re.compile(r'(\w+)="([^"]*)"')


@dataclass(frozen=True)
class Descriptor:
    media_type: str
    digest: str
    size: int
    platform: str = ""  # "linux/amd64" for index entries, else ""


@dataclass(frozen=True)
class Manifest:
    digest: str
    media_type: str
    blobs: tuple[Descriptor, ...] = ()  # config + layers of an image manifest
    children: tuple[Descriptor, ...] = ()  # entries of a list / index

    @property
    def is_index(self) -> bool:
        return self.media_type in INDEX_TYPES


class _PemTrustAdapter(HTTPAdapter):
    """Verify TLS against CA certificates given as PEM text (no temp files).

    Partial chains are allowed so that a self-signed or uploaded leaf
    certificate can itself be the trust anchor.
    """

    def __init__(self, ca_pem: str, **kwargs):
        self._context = ssl.create_default_context(cadata=ca_pem)
        self._context.verify_flags |= ssl.VERIFY_X509_PARTIAL_CHAIN
        super().__init__(**kwargs)

    def init_poolmanager(self, *args, **kwargs):
        kwargs["ssl_context"] = self._context
        return super().init_poolmanager(*args, **kwargs)

    def cert_verify(self, conn, url, verify, cert):
        if verify is True:  # requests would add certifi; trust only our CA
            conn.cert_reqs = "CERT_REQUIRED"
        else:
            super().cert_verify(conn, url, verify, cert)


def parse_challenge(header: str) -> tuple[str, dict[str, str]]:
    """'Bearer realm="x",service="y"' -> ("bearer", {"realm": "x", ...})."""
    scheme, _, rest = header.strip().partition(" ")
    return scheme.lower(), dict(_CHALLENGE_PARAM.findall(rest))


class RegistryClient:
    """One registry endpoint, with credentials and a token cache per scope."""

    def __init__(
        self,
        base_url: str,
        username: str = "",
        password: str = "",
        ca_pem: str = "",
        ca_bundle: str = "",
        timeout: float | None = None,
    ):
        self.base_url = base_url.rstrip("/")
        self.auth = (username, password) if username else None
        self.timeout = timeout or settings.FERRY_HTTP_TIMEOUT
        self.session = requests.Session()
        self.session.headers["User-Agent"] = "ferry-registry-client/1"
        if ca_pem:
            self.session.mount("https://", _PemTrustAdapter(ca_pem))
        self.session.verify = ca_bundle or True
        self._tokens: dict[str, str] = {}  # scope -> bearer token
        self._basic = False

    def close(self) -> None:
        self.session.close()

    def __enter__(self) -> Self:
        return self

    def __exit__(self, *exc_info) -> None:
        self.close()

    # -- authentication ------------------------------------------------------------
    def _headers(self, scope: str) -> dict[str, str]:
        if scope in self._tokens:
            return {"Authorization": f"Bearer {self._tokens[scope]}"}
        return {}

    def _request(self, method: str, path: str, scope: str = "", **kwargs):
        """Send, answering one auth challenge (Basic or Bearer) if asked."""
        url = self.base_url + path
        extra_headers = kwargs.pop("headers", {})
        for attempt in (1, 2):
            try:
                response = self.session.request(
                    method,
                    url,
                    headers={**extra_headers, **self._headers(scope)},
                    auth=self.auth if self._basic else None,
                    timeout=self.timeout,
                    **kwargs,
                )
            except requests.exceptions.SSLError as exc:
                raise RegistryError(
                    f"TLS verification failed for {url}: {exc}"
                ) from exc
            except requests.RequestException as exc:
                raise RegistryError(f"{self.base_url} unreachable: {exc}") from exc
            if response.status_code != 401 or attempt == 2:
                break
            self._answer_challenge(response, scope)
        if response.status_code in (401, 403):
            response.close()
            raise RegistryAuthError(
                f"{self.base_url} refused our credentials ({response.status_code})"
            )
        return response

    def _answer_challenge(self, response, scope: str) -> None:
        scheme, params = parse_challenge(response.headers.get("WWW-Authenticate", ""))
        response.close()
        if scheme == "basic" and self.auth:
            self._basic = True
        elif scheme == "bearer" and params.get("realm"):
            self._tokens[scope] = self._fetch_token(params, scope)
        else:
            raise RegistryAuthError(f"{self.base_url} needs credentials (401)")

    def _fetch_token(self, params: dict[str, str], scope: str) -> str:
        query = {"service": params.get("service", "")}
        if params.get("scope") or scope:
            query["scope"] = params.get("scope") or scope
        try:
            response = self.session.get(
                params["realm"], params=query, auth=self.auth, timeout=self.timeout
            )
        except requests.RequestException as exc:
            raise RegistryError(f"token service unreachable: {exc}") from exc
        if response.status_code in (401, 403):
            raise RegistryAuthError("token service refused our credentials")
        if response.status_code != 200:
            raise RegistryError(f"token service answered {response.status_code}")
        try:
            body = response.json()
        except ValueError as exc:
            raise RegistryError(
                "token service answered something else than JSON"
            ) from exc
        token = body.get("token") or body.get("access_token")
        if not token:
            raise RegistryError("token service answered without a token")
        return token

    # -- verbs -------------------------------------------------------------------------
    def ping(self) -> None:
        """GET /v2/ (authenticated); raises RegistryError / RegistryAuthError."""
        response = self._request("GET", "/v2/")
        response.close()
        if response.status_code != 200:
            raise RegistryError(f"GET /v2/ answered {response.status_code}")

    def manifest(self, repository: str, reference: str) -> Manifest | None:
        """The manifest (or index) by tag or digest; None when it does not exist."""
        response = self._request(
            "GET",
            f"/v2/{repository}/manifests/{reference}",
            scope=_pull_scope(repository),
            headers={"Accept": ACCEPT},
        )
        if response.status_code == 404:
            return None
        if response.status_code != 200:
            raise RegistryError(
                f"manifest {repository}:{reference} answered {response.status_code}"
            )
        body = response.content
        digest = response.headers.get("Docker-Content-Digest") or _sha256(body)
        content_type = response.headers.get("Content-Type", "").split(";")[0].strip()
        return parse_manifest(body, content_type, digest)

    def fetch_blob(self, repository: str, digest: str) -> int:
        """GET a blob, follow redirects, check its digest; return its size."""
        response = self._request(
            "GET",
            f"/v2/{repository}/blobs/{digest}",
            scope=_pull_scope(repository),
            stream=True,
        )
        with response:
            if response.status_code == 404:
                raise ImageNotFound(f"blob {digest} of {repository} not found")
            if response.status_code != 200:
                raise RegistryError(f"blob {digest} answered {response.status_code}")
            algorithm, _, expected = digest.partition(":")
            hasher = (
                hashlib.new(algorithm) if algorithm in ("sha256", "sha512") else None
            )
            size = 0
            try:
                for chunk in response.iter_content(CHUNK):
                    size += len(chunk)
                    if hasher:
                        hasher.update(chunk)
            except requests.RequestException as exc:
                raise RegistryError(f"blob {digest} broke off: {exc}") from exc
        if hasher and hasher.hexdigest() != expected:
            raise RegistryError(f"blob {digest} arrived with another digest")
        return size


def _pull_scope(repository: str) -> str:
    return f"repository:{repository}:pull"


def _sha256(body: bytes) -> str:
    return "sha256:" + hashlib.sha256(body).hexdigest()


def parse_manifest(body: bytes, content_type: str, digest: str) -> Manifest:
    """Turn a manifest body into our dataclass; unknown types are an error."""
    try:
        data = json.loads(body)
    except ValueError as exc:
        raise RegistryError("the manifest is not JSON") from exc
    media_type = data.get("mediaType") or content_type
    if media_type in INDEX_TYPES or "manifests" in data:
        children = tuple(
            Descriptor(
                m.get("mediaType", ""),
                m["digest"],
                int(m.get("size", 0)),
                _platform(m.get("platform") or {}),
            )
            for m in data.get("manifests", [])
        )
        return Manifest(digest, media_type or OCI_INDEX, children=children)
    if media_type in IMAGE_TYPES or "layers" in data:
        entries = [data["config"], *data.get("layers", [])] if "config" in data else []
        blobs = tuple(
            Descriptor(e.get("mediaType", ""), e["digest"], int(e.get("size", 0)))
            for e in entries
        )
        return Manifest(digest, media_type or OCI_MANIFEST, blobs=blobs)
    raise RegistryError(f"unsupported manifest type {media_type or 'unknown'}")


def _platform(platform: dict) -> str:
    text = f"{platform.get('os', '')}/{platform.get('architecture', '')}"
    if platform.get("variant"):
        text += f"/{platform['variant']}"
    return text if text != "/" else ""
