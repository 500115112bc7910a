"""A stand-in token server for the registry token-auth "realm dance" (tests).

Real home-region registries (Docker Hub, Harbor, cloud registries) answer
401 with `WWW-Authenticate: Bearer realm=...`; the client fetches a JWT from
the realm with its user name and password, then retries with the token.
Registry 2.8 in proxy mode only sends upstream credentials to such a realm
(it has no Basic-auth support toward its upstream), so a realistic upstream
needs one. This server checks Basic credentials, and issues RS256 JWTs with
an `x5c` header that a real registry (`auth.token` with `rootcertbundle`)
verifies. It runs in a thread of the test process, on 127.0.0.1.
"""

import base64
import datetime as dt
import json
import threading
import time
import uuid
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer
from typing import Self
from urllib.parse import parse_qs, urlsplit

from cryptography import x509
from cryptography.hazmat.primitives import hashes, serialization
from cryptography.hazmat.primitives.asymmetric import padding, rsa
from cryptography.x509.oid import NameOID


def _b64(data: bytes) -> str:
    return base64.urlsafe_b64encode(data).rstrip(b"=").decode()


class TokenServer:
    """`with TokenServer(users) as ts:` -> ts.realm, ts.cert_pem, ts.issuer."""

    issuer = "ferry-test-token-issuer"
    service = "home-registry"

    def __init__(self, users: dict[str, str]):
        self.users = dict(users)
        self.key = rsa.generate_private_key(public_exponent=65537, key_size=2048)
        name = x509.Name([x509.NameAttribute(NameOID.COMMON_NAME, "ferry-token")])
        now = dt.datetime.now(dt.UTC)
        self.cert = (
            x509.CertificateBuilder()
            .subject_name(name)
            .issuer_name(name)
            .public_key(self.key.public_key())
            .serial_number(x509.random_serial_number())
            .not_valid_before(now - dt.timedelta(hours=1))
            .not_valid_after(now + dt.timedelta(days=2))
            .sign(self.key, hashes.SHA256())
        )
        self.cert_pem = self.cert.public_bytes(serialization.Encoding.PEM).decode()
        self.requests: list[tuple[str, int]] = []  # (user, status)
        self._server: ThreadingHTTPServer | None = None

    # -- tokens ----------------------------------------------------------
    def token(self, user: str, scopes: list[str]) -> str:
        der = self.cert.public_bytes(serialization.Encoding.DER)
        header = {"typ": "JWT", "alg": "RS256", "x5c": [base64.b64encode(der).decode()]}
        now = int(time.time())
        claims = {
            "iss": self.issuer, "sub": user, "aud": self.service,
            "exp": now + 600, "nbf": now - 30, "iat": now,
            "jti": uuid.uuid4().hex, "access": [_access(s) for s in scopes],
        }  # fmt: skip
        signing_input = (
            _b64(json.dumps(header).encode()) + "." + _b64(json.dumps(claims).encode())
        )
        signature = self.key.sign(
            signing_input.encode(), padding.PKCS1v15(), hashes.SHA256()
        )
        return signing_input + "." + _b64(signature)

    def check(self, authorization: str) -> str | None:
        if not authorization.startswith("Basic "):
            return None
        user, _, password = base64.b64decode(authorization[6:]).decode().partition(":")
        return user if self.users.get(user) == password else None

    # -- server ------------------------------------------------------------
    def __enter__(self) -> Self:
        owner = self

        class Handler(BaseHTTPRequestHandler):
            def do_GET(self):
                user = owner.check(self.headers.get("Authorization", ""))
                owner.requests.append((user or "", 200 if user else 401))
                if not user:
                    self.send_response(401)
                    self.send_header("Content-Length", "0")
                    self.end_headers()
                    return
                query = parse_qs(urlsplit(self.path).query)
                token = owner.token(user, query.get("scope", []))
                body = json.dumps(
                    {"token": token, "access_token": token, "expires_in": 600}
                ).encode()
                self.send_response(200)
                self.send_header("Content-Type", "application/json")
                self.send_header("Content-Length", str(len(body)))
                self.end_headers()
                self.wfile.write(body)

            def log_message(self, *args):
                pass

        self._server = ThreadingHTTPServer(("127.0.0.1", 0), Handler)
        threading.Thread(target=self._server.serve_forever, daemon=True).start()
        self.realm = f"http://127.0.0.1:{self._server.server_address[1]}/token"
        return self

    def __exit__(self, *exc_info) -> None:
        if self._server:
            self._server.shutdown()
            self._server.server_close()


def _access(scope: str) -> dict:
    """`repository:ns/name:pull,push` -> the JWT access entry."""
    kind, _, rest = scope.partition(":")
    name, _, actions = rest.rpartition(":")
    return {"type": kind, "name": name, "actions": [a for a in actions.split(",") if a]}
