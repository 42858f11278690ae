"""A local stand-in for GitHub's OIDC token service: a real HTTP server on a loopback port.

It answers what the runner's service answers (`{"value": "<JWT>"}` for a GET with the right
bearer and an `audience` query) and records every request. It can be told to answer 5xx, to
hang, or to answer 200 without a token ("empty"), for the next requests or for all. The JWT is
signed HS256 with a key of its own (moto's STS accepts any well-formed token) and carries the
claims GitHub puts in one."""

from __future__ import annotations

import base64
import hashlib
import hmac
import json
import secrets
import threading
import time
import urllib.parse
from dataclasses import dataclass
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer
from typing import Any, Literal

Mode = Literal["ok", "5xx", "hang", "empty"]
ISSUER = "https://token.actions.githubusercontent.com"


@dataclass(frozen=True)
class TokenRequest:
    audience: str | None  # None: the query had no audience
    authorized: bool  # the bearer was the request token
    status: int  # what the service answered (0: it hung and never answered)


def _b64(data: bytes) -> str:
    return base64.urlsafe_b64encode(data).rstrip(b"=").decode()


def make_jwt(claims: dict[str, Any], key: bytes) -> str:
    header = _b64(json.dumps({"alg": "HS256", "typ": "JWT", "kid": "local"}).encode())
    payload = _b64(json.dumps(claims, separators=(",", ":")).encode())
    signature = hmac.new(key, f"{header}.{payload}".encode(), hashlib.sha256).digest()
    return f"{header}.{payload}.{_b64(signature)}"


def github_claims(
    audience: str,
    *,
    repository: str = "lornu-ai/app",
    ref: str = "refs/heads/main",
    event_name: str = "push",
    environment: str | None = None,
    issuer: str = ISSUER,
) -> dict[str, Any]:
    """The claims of a token GitHub issues for a workflow run, as documented."""
    now = int(time.time())
    owner = repository.split("/")[0]
    workflow = ".github/workflows/sync.yml"
    sub = (
        f"repo:{repository}:environment:{environment}"
        if environment
        else f"repo:{repository}:ref:{ref}"
    )
    claims: dict[str, Any] = {
        "jti": secrets.token_hex(16),
        "sub": sub,
        "aud": audience,
        "ref": ref,
        "sha": secrets.token_hex(20),
        "repository": repository,
        "repository_owner": owner,
        "repository_owner_id": "1234567",
        "repository_id": "7654321",
        "repository_visibility": "private",
        "run_id": "9876543210",
        "run_number": "42",
        "run_attempt": "1",
        "runner_environment": "github-hosted",
        "actor": "octocat",
        "actor_id": "583231",
        "workflow": "sync",
        "head_ref": "",
        "base_ref": "",
        "event_name": event_name,
        "ref_type": "branch",
        "workflow_ref": f"{repository}/{workflow}@{ref}",
        "workflow_sha": secrets.token_hex(20),
        "job_workflow_ref": f"{repository}/{workflow}@{ref}",
        "job_workflow_sha": secrets.token_hex(20),
        "iss": issuer,
        "nbf": now - 5,
        "iat": now,
        "exp": now + 300,
    }
    if environment:
        claims["environment"] = environment
    return claims


class OidcServer:
    """Context manager. `.url` is the ACTIONS_ID_TOKEN_REQUEST_URL value (with its query),
    `.request_token` the bearer it expects, `.env()` both variables; `.mode` is how it answers
    from now on, and `.queue(...)` sets how the next requests answer before `.mode` applies."""

    def __init__(
        self,
        *,
        repository: str = "lornu-ai/app",
        ref: str = "refs/heads/main",
        environment: str | None = None,
        issuer: str = ISSUER,
        hang_seconds: float = 30.0,
    ) -> None:
        self.repository = repository
        self.ref = ref
        self.environment = environment
        self.issuer = issuer
        self.hang_seconds = hang_seconds
        self.request_token = secrets.token_urlsafe(32)
        self.mode: Mode = "ok"
        self.requests: list[TokenRequest] = []
        self.issued: list[str] = []  # every token handed out, in order
        self._key = secrets.token_bytes(32)
        self._queue: list[Mode] = []
        self._lock = threading.Lock()
        self._release = threading.Event()
        service = self

        class Handler(BaseHTTPRequestHandler):
            protocol_version = "HTTP/1.1"

            def log_message(self, *args: Any) -> None:
                pass

            def do_GET(self) -> None:
                service._handle(self)

            def do_POST(self) -> None:
                self.send_error(405)

        self.server = ThreadingHTTPServer(("127.0.0.1", 0), Handler)
        self.server.daemon_threads = True
        port = self.server.server_address[1]
        plan, job = secrets.token_hex(8), secrets.token_hex(8)
        self.url = (
            f"http://127.0.0.1:{port}/00000000-0000-0000-0000-000000000000/_apis/distributedtask"
            f"/hubs/Actions/plans/{plan}/jobs/{job}/idtoken?api-version=2.0"
        )
        # A short poll interval: shutdown() waits up to one, and every test stops a server.
        self._thread = threading.Thread(
            target=self.server.serve_forever, kwargs={"poll_interval": 0.05}, daemon=True
        )

    def __enter__(self) -> OidcServer:
        self._thread.start()
        return self

    def __exit__(self, *exc: object) -> None:
        self._release.set()  # let hanging handlers go
        self.server.shutdown()
        self.server.server_close()

    def env(self) -> dict[str, str]:
        return {
            "ACTIONS_ID_TOKEN_REQUEST_URL": self.url,
            "ACTIONS_ID_TOKEN_REQUEST_TOKEN": self.request_token,
        }

    def queue(self, *modes: Mode) -> None:
        with self._lock:
            self._queue.extend(modes)

    @property
    def audiences(self) -> list[str | None]:
        return [r.audience for r in self.requests]

    def _next_mode(self) -> Mode:
        with self._lock:
            return self._queue.pop(0) if self._queue else self.mode

    def _handle(self, handler: BaseHTTPRequestHandler) -> None:
        parts = urllib.parse.urlsplit(handler.path)
        query = urllib.parse.parse_qs(parts.query)
        audience = query["audience"][-1] if "audience" in query else None
        authorized = hmac.compare_digest(
            handler.headers.get("Authorization", ""), f"Bearer {self.request_token}"
        )
        if not authorized:
            self._answer(handler, 401, {"message": "Unauthorized"}, audience, authorized=False)
            return
        if "api-version" not in query:
            self._answer(handler, 400, {"message": "api-version missing"}, audience, True)
            return
        mode = self._next_mode()
        if mode == "hang":
            with self._lock:
                self.requests.append(TokenRequest(audience, True, 0))
            self._release.wait(self.hang_seconds)
            handler.close_connection = True
            return
        if mode == "5xx":
            self._answer(handler, 503, {"message": "Service Unavailable"}, audience, True)
            return
        if mode == "empty":  # a 200 without a token: a broken service or proxy in between
            self._answer(handler, 200, {"count": 0}, audience, True)
            return
        # GitHub's default audience, when none is asked for, is the owner's URL.
        owner = self.repository.split("/")[0]
        claims = github_claims(
            audience or f"https://github.com/{owner}",
            repository=self.repository,
            ref=self.ref,
            environment=self.environment,
            issuer=self.issuer,
        )
        token = make_jwt(claims, self._key)
        with self._lock:
            self.issued.append(token)
        self._answer(handler, 200, {"count": 1, "value": token}, audience, True)

    def _answer(
        self,
        handler: BaseHTTPRequestHandler,
        status: int,
        body: dict[str, Any],
        audience: str | None,
        authorized: bool,
    ) -> None:
        with self._lock:
            self.requests.append(TokenRequest(audience, authorized, status))
        payload = json.dumps(body).encode()
        handler.send_response(status)
        handler.send_header("Content-Type", "application/json; charset=utf-8")
        handler.send_header("Content-Length", str(len(payload)))
        handler.end_headers()
        handler.wfile.write(payload)
