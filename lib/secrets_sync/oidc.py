"""GitHub's OIDC token: fetched from the runner's token service, masked the moment it exists, and
read (never verified: STS does that) for the claims that error messages show."""

from __future__ import annotations

import base64
import binascii
import http.client
import json
import random
import time
import urllib.error
import urllib.parse
import urllib.request
from collections.abc import Callable, Mapping
from dataclasses import dataclass, field
from pathlib import Path

from . import tls
from .errors import CredentialsError
from .runner import Runner

REQUEST_URL = "ACTIONS_ID_TOKEN_REQUEST_URL"
REQUEST_TOKEN = "ACTIONS_ID_TOKEN_REQUEST_TOKEN"  # noqa: S105 - a variable's name
DEFAULT_ISSUER = "https://token.actions.githubusercontent.com"
USER_AGENT = "secrets-sync"
_MAX_BODY = 1 << 20
_PLACE = "GitHub OIDC token"
_JITTER = random.Random()  # noqa: S311 - spreads retries; nothing secret depends on it


@dataclass(frozen=True)
class Retry:
    """A small, bounded retry budget with jittered exponential backoff."""

    attempts: int = 3
    base: float = 0.5
    cap: float = 4.0

    def delay(self, attempt: int, rng: random.Random | None = None) -> float:
        """The pause after failed attempt number `attempt` (0-based): half fixed, half random,
        so that the jobs of one matrix do not all come back at the same instant."""
        ceiling = min(self.cap, self.base * 2.0**attempt)
        return ceiling / 2 + (rng or _JITTER).uniform(0, ceiling / 2)


TOKEN_RETRY = Retry()


@dataclass(frozen=True)
class Claims:
    """The token's non-secret claims, for messages. Any of them may be missing."""

    sub: str | None = None
    aud: str | None = None
    repository: str | None = None
    ref: str | None = None
    job_workflow_ref: str | None = None
    environment: str | None = None
    iss: str | None = None
    repository_owner_id: str | None = None
    repository_id: str | None = None

    SHOWN = ("sub", "aud", "repository", "ref", "job_workflow_ref")

    def describe(self) -> str:
        shown = [(name, getattr(self, name)) for name in self.SHOWN]
        if all(value is None for _, value in shown):
            return "its claims could not be read"
        return ", ".join(f"{name}={value!r}" for name, value in shown if value is not None)

    @property
    def provider(self) -> str:
        """The IAM OIDC provider's name as trust-policy condition keys spell it (no scheme)."""
        return provider_name(self.iss or DEFAULT_ISSUER)


def provider_name(issuer: str) -> str:
    """IAM's name for the OIDC provider of an issuer URL: the URL without its scheme, path kept
    (`HOST/_services/token` for GitHub Enterprise Server). Its ARN ends in it, and the trust
    policy's condition keys are it, a colon and the claim (`HOST/PATH:sub`)."""
    return issuer.removeprefix("https://").rstrip("/")


@dataclass(frozen=True)
class Token:
    value: str = field(repr=False)
    claims: Claims


def available(env: Mapping[str, str]) -> bool:
    """True when the runner handed this job a way to request a token (`id-token: write`)."""
    return bool(env.get(REQUEST_URL, "").strip() and env.get(REQUEST_TOKEN, "").strip())


def token_url(request_url: str, audience: str) -> str:
    """The runner's URL already carries a query (`?api-version=...`); the audience joins it."""
    joiner = "&" if urllib.parse.urlsplit(request_url).query else "?"
    if request_url.endswith(("?", "&")):
        joiner = ""
    return f"{request_url}{joiner}audience={urllib.parse.quote(audience, safe='')}"


def _b64url(text: str) -> bytes:
    return base64.urlsafe_b64decode(text + "=" * (-len(text) % 4))


def decode_claims(jwt: str) -> Claims:
    """Read the payload of a JWT without verifying it. Anything unreadable gives empty Claims:
    the claims only decorate messages, they never decide anything."""
    parts = jwt.split(".")
    if len(parts) != 3:
        return Claims()
    try:
        payload = json.loads(_b64url(parts[1]))
    except (binascii.Error, ValueError):
        return Claims()
    if not isinstance(payload, dict):
        return Claims()

    def text(name: str) -> str | None:
        value = payload.get(name)
        if isinstance(value, str):
            return value
        if isinstance(value, list) and value and all(isinstance(v, str) for v in value):
            return ",".join(value)
        return None

    def ident(name: str) -> str | None:  # GitHub sends IDs as strings; a number is read too
        value = payload.get(name)
        if isinstance(value, int) and not isinstance(value, bool):
            return str(value)
        return value if isinstance(value, str) else None

    return Claims(
        sub=text("sub"),
        aud=text("aud"),
        repository=text("repository"),
        ref=text("ref"),
        job_workflow_ref=text("job_workflow_ref"),
        environment=text("environment"),
        iss=text("iss"),
        repository_owner_id=ident("repository_owner_id"),
        repository_id=ident("repository_id"),
    )


def trust_condition(claims: Claims, audience: str) -> str:
    """A trust-policy `Condition` that matches this token: the audience the action asked for and
    the exact `sub` GitHub put in it (or, without a `sub`, any workflow of the repository)."""
    key = claims.provider
    if claims.sub:
        condition = {
            "StringEquals": {f"{key}:aud": audience, f"{key}:sub": claims.sub},
        }
    else:
        repository = claims.repository or "OWNER/REPO"
        condition = {
            "StringEquals": {f"{key}:aud": audience},
            "StringLike": {f"{key}:sub": f"repo:{repository}:*"},
        }
    return json.dumps({"Condition": condition}, separators=(", ", ": "))


class _Transient(Exception):
    """A failure worth another attempt; its text names no secret."""


def fetch_token(
    env: Mapping[str, str],
    audience: str,
    runner: Runner,
    *,
    timeout: float = 10.0,
    retry: Retry = TOKEN_RETRY,
    sleep: Callable[[float], None] = time.sleep,
    rng: random.Random | None = None,
    ca_bundle: Path | None = None,
) -> Token:
    """GET the token for `audience`. Connection errors, timeouts and 5xx are retried within
    `retry`; any other answer (and a certificate not trusted) is final. Raises
    CredentialsError, naming the fix. Proxies: urllib's, from HTTPS_PROXY/NO_PROXY (any case)."""
    request_url = env.get(REQUEST_URL, "").strip()
    bearer = env.get(REQUEST_TOKEN, "").strip()
    runner.add_mask(bearer)
    parts = urllib.parse.urlsplit(request_url)
    if parts.scheme not in ("http", "https") or not parts.hostname:
        raise CredentialsError(
            REQUEST_URL,
            "is not an http(s) URL.",
            "leave it to the runner: it sets this variable for jobs granted "
            "`permissions: { id-token: write }`.",
        )
    host = parts.hostname
    request = urllib.request.Request(  # noqa: S310 - the scheme is checked above
        token_url(request_url, audience),
        headers={
            "Authorization": f"Bearer {bearer}",
            "Accept": "application/json",
            "User-Agent": USER_AGENT,
        },
    )
    ctx = tls.context(ca_bundle)
    # build_opener keeps the default handlers, the environment's proxies among them.
    opener = urllib.request.build_opener(
        *([urllib.request.HTTPSHandler(context=ctx)] if ctx else [])
    )
    last = ""
    for attempt in range(retry.attempts):
        try:
            return _attempt(opener, request, timeout, runner, host, audience, ca_bundle)
        except _Transient as exc:
            last = str(exc)
        if attempt + 1 < retry.attempts:
            sleep(retry.delay(attempt, rng))
    raise CredentialsError(
        _PLACE,
        f"GitHub's token service at {host} failed {retry.attempts} times ({last}).",
        "rerun the job; if it keeps failing, check https://www.githubstatus.com and, on a "
        f"self-hosted runner, that it can reach {host} over HTTPS.",
    )


def _attempt(
    opener: urllib.request.OpenerDirector,
    request: urllib.request.Request,
    timeout: float,
    runner: Runner,
    host: str,
    audience: str,
    ca_bundle: Path | None,
) -> Token:
    try:
        with opener.open(request, timeout=timeout) as answer:
            body = answer.read(_MAX_BODY)
    except urllib.error.HTTPError as exc:
        status = exc.code
        exc.close()
        if status >= 500:
            raise _Transient(f"last answer: HTTP {status}") from None
        if status in (401, 403):
            raise CredentialsError(
                _PLACE,
                f"GitHub's token service at {host} refused the request (HTTP {status}).",
                "run the action in the job that is granted `permissions: { contents: read, "
                f"id-token: write }}`, and leave {REQUEST_URL} and {REQUEST_TOKEN} as the "
                "runner sets them.",
            ) from None
        raise CredentialsError(
            _PLACE,
            f"GitHub's token service at {host} answered HTTP {status} for audience {audience!r}.",
            "check the `audience` input; leave it out to use sts.amazonaws.com.",
        ) from None
    except TimeoutError:
        raise _Transient(f"last: no answer within {timeout:g} s") from None
    except (OSError, http.client.HTTPException) as exc:
        failure = tls.certificate_failure(exc)
        if failure is not None:
            # Final: every attempt would meet the same certificate.
            raise CredentialsError("ca-bundle", *tls.untrusted(host, failure, ca_bundle)) from None
        if isinstance(exc, urllib.error.URLError):
            reason = exc.reason
            if isinstance(reason, TimeoutError):
                raise _Transient(f"last: no answer within {timeout:g} s") from None
            raise _Transient(f"last: {type(reason).__name__}") from None
        raise _Transient(f"last: {type(exc).__name__}") from None

    try:
        data = json.loads(body)
    except ValueError:
        data = None
    value = data.get("value") if isinstance(data, dict) else None
    if not isinstance(value, str) or not value.strip():
        raise CredentialsError(
            _PLACE,
            f"GitHub's token service at {host} answered without a token (no `value` in its JSON).",
            "rerun the job; if it keeps happening, report it with the runner version.",
        )
    value = value.strip()
    # Masked before anything else can print it, including a failed decode below.
    runner.add_mask(value)
    return Token(value, decode_claims(value))
