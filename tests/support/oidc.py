"""A local stand-in for GitHub's OIDC token service: a real HTTP server on a loopback port; and
TrustingSts, STS's judgement of such a token against a role's trust policy, for the proxy.

The service answers what the runner's service answers (`{"value": "<JWT>"}` for a GET with the
right bearer and an `audience` query) and records every request. It can be told to answer 5xx, to
hang, or to answer 200 without a token ("empty"), for the next requests or for all. The JWT is
signed HS256 with a key of its own (moto's STS accepts any well-formed token) and carries the
claims GitHub puts in one, its `sub` in GitHub's legacy form or in the immutable one."""

from __future__ import annotations

import base64
import hashlib
import hmac
import json
import re
import secrets
import threading
import time
import urllib.parse
from dataclasses import dataclass
from http.server import BaseHTTPRequestHandler
from typing import Any, Literal

from tests.support.loopback import LoopbackServer, QuietHandler
from tests.support.proxy import Call, Model

Mode = Literal["ok", "5xx", "hang", "empty"]
ISSUER = "https://token.actions.githubusercontent.com"
OWNER_ID = "1234567"
REPOSITORY_ID = "7654321"


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
    owner_id: str = OWNER_ID,
    repository_id: str = REPOSITORY_ID,
    immutable: bool = False,
) -> dict[str, Any]:
    """The claims of a token GitHub issues for a workflow run, as documented. `immutable`: the
    `sub` carries the owner's and repository's IDs after their names (GitHub's default for
    repositories created, renamed or transferred since mid-2026, and for those opted in;
    aws-actions/configure-aws-credentials#1889, a CloudTrail record in
    marinnk/PenAndPalette#56: `repo:marinnk@99700676/PenAndPalette@1341790095:ref:...`)."""
    now = int(time.time())
    owner, name = repository.split("/")
    workflow = ".github/workflows/sync.yml"
    named = f"{owner}@{owner_id}/{name}@{repository_id}" if immutable else repository
    sub = f"repo:{named}:environment:{environment}" if environment else f"repo:{named}:ref:{ref}"
    claims: dict[str, Any] = {
        "jti": secrets.token_hex(16),
        "sub": sub,
        "aud": audience,
        "ref": ref,
        "sha": secrets.token_hex(20),
        "repository": repository,
        "repository_owner": owner,
        "repository_owner_id": owner_id,
        "repository_id": repository_id,
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


class OidcServer(LoopbackServer):
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
        owner_id: str = OWNER_ID,
        repository_id: str = REPOSITORY_ID,
        immutable: bool = False,
        hang_seconds: float = 30.0,
    ) -> None:
        self.repository = repository
        self.ref = ref
        self.environment = environment
        self.issuer = issuer
        self.owner_id = owner_id
        self.repository_id = repository_id
        self.immutable = immutable
        self.hang_seconds = hang_seconds
        self.request_token = secrets.token_urlsafe(32)
        self.mode: Mode = "ok"
        self.requests: list[TokenRequest] = []
        self.issued: list[str] = []  # every token handed out, in order
        self._key = secrets.token_bytes(32)
        self._queue: list[Mode] = []
        self._lock = threading.Lock()
        service = self

        class Handler(QuietHandler):
            def do_GET(self) -> None:
                service._handle(self)

            def do_POST(self) -> None:
                self.send_error(405)

        super().__init__(Handler)
        plan, job = secrets.token_hex(8), secrets.token_hex(8)
        self.url = (
            f"{self.url}/00000000-0000-0000-0000-000000000000/_apis/distributedtask"
            f"/hubs/Actions/plans/{plan}/jobs/{job}/idtoken?api-version=2.0"
        )

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
            self.release.wait(self.hang_seconds)
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
            owner_id=self.owner_id,
            repository_id=self.repository_id,
            immutable=self.immutable,
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


# STS's judgement of a web-identity token ---------------------------------------------------------

NOT_AUTHORIZED = "Not authorized to perform sts:AssumeRoleWithWebIdentity"
# The condition keys IAM documents for an OIDC provider ("Available keys for AWS web identity
# federation", IAM User Guide: PROVIDER:aud, PROVIDER:oaud, PROVIDER:sub). A policy keyed on
# another claim is a policy this model cannot judge: it says so rather than guess.
_OIDC_KEYS = ("aud", "oaud", "sub")


def read_payload(jwt: str) -> dict[str, Any]:
    """The claims of a JWT, unverified (STS verifies the signature against the provider's keys;
    the local service's tokens are signed with a key of its own, which this model trusts)."""
    parts = jwt.split(".")
    if len(parts) != 3:
        return {}
    try:
        payload = json.loads(base64.urlsafe_b64decode(parts[1] + "=" * (-len(parts[1]) % 4)))
    except ValueError:
        return {}
    return payload if isinstance(payload, dict) else {}


def _listed(value: Any) -> list[Any]:
    return value if isinstance(value, list) else [value]


def _like(pattern: str, text: str, *, case: bool = True) -> bool:
    """IAM's StringLike: `*` any run of characters, `?` one; case-sensitive (IAM User Guide,
    "String condition operators")."""
    regex = "".join(".*" if c == "*" else "." if c == "?" else re.escape(c) for c in pattern)
    return re.fullmatch(regex, text, 0 if case else re.IGNORECASE) is not None


def provider_of(issuer: str) -> str:
    """IAM's name for an issuer's OIDC provider: the URL without its scheme, path kept. The
    provider's ARN ends in it and its condition keys start with it (IAM User Guide, "Create an
    OpenID Connect (OIDC) identity provider in IAM": a path is part of the provider URL; EKS's
    IRSA trust policies key `oidc.eks.REGION.amazonaws.com/id/ID:sub`)."""
    return issuer.removeprefix("https://").rstrip("/")


def trust_admits(policy: dict[str, Any], claims: dict[str, Any], role_arn: str) -> bool:
    """Whether a role's trust policy lets a token with these claims AssumeRoleWithWebIdentity.

    IAM's evaluation, for the part of the policy language trust policies of OIDC roles use
    (IAM User Guide, "Policy evaluation logic", "Condition", "Creating a role for OIDC"): an
    explicit Deny wins, else some Allow must match. A statement matches when its Action covers
    sts:AssumeRoleWithWebIdentity, its Federated principal is the provider of the token's `iss`
    in the role's account, and every condition holds: every operator, every key of it (key names
    case-insensitive), any one of a key's values. A key the request lacks fails the operator
    (no IfExists form is modelled: trust policies of ours use none)."""
    arn = role_arn.split(":")
    partition, account = (arn[1], arn[4]) if len(arn) > 4 else ("aws", "")
    provider = provider_of(str(claims.get("iss", "")))
    federated = f"arn:{partition}:iam::{account}:oidc-provider/{provider}"
    context = {
        f"{provider}:{name}".lower(): str(claims[name])
        for name in _OIDC_KEYS
        if isinstance(claims.get(name), str)
    }

    def matches(statement: dict[str, Any]) -> bool:
        actions = _listed(statement.get("Action", []))
        if not any(_like(a, "sts:AssumeRoleWithWebIdentity", case=False) for a in actions):
            return False
        principal = statement.get("Principal", {})
        if not isinstance(principal, dict) or federated not in _listed(
            principal.get("Federated", [])
        ):
            return False
        for operator, keys in statement.get("Condition", {}).items():
            for key, wanted in keys.items():
                claim = key.rpartition(":")[2]
                if claim.lower() not in _OIDC_KEYS:
                    raise AssertionError(f"IAM documents no OIDC condition key {key!r}")
                actual = context.get(key.lower())
                if actual is None:
                    return False
                if operator == "StringEquals":
                    held = actual in _listed(wanted)
                elif operator == "StringLike":
                    held = any(_like(w, actual) for w in _listed(wanted))
                else:
                    raise AssertionError(f"the fake STS does not know {operator}; teach it")
                if not held:
                    return False
        return True

    statements = _listed(policy.get("Statement", []))
    if any(s.get("Effect") == "Deny" and matches(s) for s in statements):
        return False
    return any(s.get("Effect") == "Allow" and matches(s) for s in statements)


class TrustingSts:
    """A proxy model (tests/support/proxy.py: Model) that makes AssumeRoleWithWebIdentity hold
    the token to a trust policy and the account's OIDC providers, as STS does, before moto
    (which takes any token) answers; every other call goes to `inner` (the realaws model).

    STS's answers (API_AssumeRoleWithWebIdentity, Errors): a token whose issuer is no provider of
    the account, or whose audience is none of that provider's client IDs, is
    InvalidIdentityToken (400); a token the trust policy does not admit is AccessDenied (403),
    "Not authorized to perform sts:AssumeRoleWithWebIdentity" (the words users report:
    aws-actions/configure-aws-credentials#1888)."""

    def __init__(
        self,
        policy: dict[str, Any],
        *,
        providers: dict[str, tuple[str, ...]] | None = None,
        inner: Model | None = None,
    ) -> None:
        self.policy = policy
        # issuer URL -> the provider's client IDs (audiences)
        self.providers = providers or {ISSUER: ("sts.amazonaws.com",)}
        self.inner = inner
        self.judged: list[tuple[str, bool]] = []  # (sub, admitted), in order

    def refuse(self, call: Call) -> tuple[int, str, str] | None:
        if call.service == "sts" and call.operation == "AssumeRoleWithWebIdentity":
            claims = read_payload(str(call.body.get("WebIdentityToken", "")))
            issuer = str(claims.get("iss", ""))
            known = {provider_of(url): aud for url, aud in self.providers.items()}
            if provider_of(issuer) not in known:
                return (
                    400,
                    "InvalidIdentityToken",
                    (f"No OpenIDConnect provider found in your account for {issuer}"),
                )
            if claims.get("aud") not in known[provider_of(issuer)]:
                return 400, "InvalidIdentityToken", "Incorrect token audience"
            admitted = trust_admits(self.policy, claims, str(call.body.get("RoleArn", "")))
            self.judged.append((str(claims.get("sub")), admitted))
            if not admitted:
                return 403, "AccessDenied", NOT_AUTHORIZED
        return self.inner.refuse(call) if self.inner is not None else None

    def answered(self, call: Call, payload: bytes) -> bytes:
        return self.inner.answered(call, payload) if self.inner is not None else payload
