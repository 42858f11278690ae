"""Credentials end to end: the entrypoint as the runner runs it, a local GitHub OIDC token service,
and moto's STS behind the recording proxy. Every path, every error a user can see, the retry rules,
and that no token or credential appears anywhere a user or a later step could read it."""

from __future__ import annotations

import datetime
import io
import json
import re
import time
from dataclasses import dataclass
from typing import Any

import boto3.session
import pytest

from tests.support.action import REPOSITORY, assert_no_leak, assert_run_clean
from tests.support.proxy import AwsProxy, Call, Faults

ROLE = "arn:aws:iam::123456789012:role/github-secrets-sync"
MAPPING = "app/key: APP_KEY"
CANARY = {"APP_KEY": "app-key-canary-3f9a1c7e"}
SUB = f"repo:{REPOSITORY}:ref:refs/heads/main"
# Ambient credentials that must be ignored on the web-identity path (and never printed).
AMBIENT = {
    "AWS_ACCESS_KEY_ID": "AKIAAMBIENTCANARY000",
    "AWS_SECRET_ACCESS_KEY": "ambient-secret-canary-5d1e9b2a",
    "AWS_SESSION_TOKEN": "ambient-session-canary-8c4f0a6d",
    "AWS_PROFILE": "no-such-profile",
}
_CREDENTIAL = re.compile(r"Credential=([^/]+)/")


@dataclass(frozen=True)
class Signing:
    service: str  # "sts" or "secretsmanager"
    key_id: str | None  # None: an unsigned request
    session_token: str | None


class StsProxy(AwsProxy):
    """The recording proxy, also noting how each request was signed, and answering injected STS
    faults with the codes STS itself uses (AccessDenied, InvalidIdentityToken, ...)."""

    def __init__(self, upstream: str) -> None:
        super().__init__(upstream, Faults())
        self.signings: list[Signing] = []
        self.sts_codes: dict[int, tuple[str, str]] = {}

    def _handle(self, handler: Any) -> None:
        target = handler.headers.get("X-Amz-Target", "")
        match = _CREDENTIAL.search(handler.headers.get("Authorization", ""))
        signing = Signing(
            "secretsmanager" if target.startswith("secretsmanager") else "sts",
            match.group(1) if match else None,
            handler.headers.get("X-Amz-Security-Token"),
        )
        with self._lock:
            self.signings.append(signing)
        super()._handle(handler)

    def _answer_fault(self, handler: Any, status: int, service: str) -> None:
        if service != "sts" or status not in self.sts_codes:
            AwsProxy._answer_fault(handler, status, service)
            return
        code, message = self.sts_codes[status]
        payload = (
            f"<ErrorResponse><Error><Type>Sender</Type><Code>{code}</Code>"
            f"<Message>{message}</Message></Error><RequestId>r-1</RequestId></ErrorResponse>"
        ).encode()
        handler.send_response(status)
        handler.send_header("Content-Type", "text/xml")
        handler.send_header("Content-Length", str(len(payload)))
        handler.end_headers()
        handler.wfile.write(payload)

    def keys(self, service: str) -> set[str | None]:
        return {s.key_id for s in self.signings if s.service == service}

    def sts_calls(self) -> list[Call]:
        return [c for c in self.calls if c.service == "sts"]

    def fail(self, operation: str, status: int, code: str, message: str, times: int = 10**6):
        """Answer the first `times` calls of an STS operation with this error."""
        self.sts_codes[status] = (code, message)
        seen = {"n": 0}

        def rule(call: Call) -> int | None:
            if call.operation != operation:
                return None
            seen["n"] += 1
            return status if seen["n"] <= times else None

        self.faults.rule = rule


@pytest.fixture
def proxy(moto):
    """Overrides conftest's proxy for this module: `action` runs against this one."""
    with StsProxy(moto) as p:
        yield p


def masked(run) -> list[str]:
    prefix = "::add-mask::"
    return [line[len(prefix) :] for line in run.log_lines if line.startswith(prefix)]


def assert_secret_free(run, proxy, oidc=None, extra=()) -> None:
    """Source values are masked before anything else is printed (assert_run_clean). Tokens and
    credentials are born later, so for them: each is masked, and no form of it, nor of anything
    else the run masked, appears anywhere but in its mask line."""
    assert_run_clean(run, CANARY.values())
    minted = {s.session_token for s in proxy.signings if s.session_token} - {
        AMBIENT["AWS_SESSION_TOKEN"]
    }
    minted |= {s.key_id for s in proxy.signings if s.key_id and s.key_id.startswith("ASIA")}
    tokens = set(oidc.issued) if oidc else set()
    for value in minted | tokens:
        assert value in masked(run), "a token or credential was not masked"
    secrets = minted | tokens | {v for v in masked(run) if len(v) >= 10} | set(extra)
    if oidc:
        secrets.add(oidc.request_token)
    unmasked = "\n".join(line for line in run.log_lines if not line.startswith("::add-mask::"))
    texts = {
        "stdout": unmasked,
        "stderr": run.stderr,
        "GITHUB_OUTPUT": run.output_text,
        "step summary": run.summary,
    }
    for path in run.workspace.rglob("*"):
        if path.is_file():
            texts[str(path)] = path.read_text(errors="replace")
    assert_no_leak(texts, secrets)


def error_of(run) -> str:
    assert run.returncode == 1, run.stdout + run.stderr
    assert len(run.errors) == 1, run.stdout
    message = run.errors[0]
    # Said once in the log and once in the step summary, on one line.
    assert "%0A" not in message
    assert "secrets-sync failed" in run.summary
    return message


def sync(action, *, role=ROLE, env=None, inputs=None, **kwargs):
    given = {"secrets": MAPPING, **({"role-to-assume": role} if role else {}), **(inputs or {})}
    return action(given, env={**CANARY, **(env or {})}, **kwargs)


# The paths ------------------------------------------------------------------------------------


def test_web_identity_assumes_the_role_and_ignores_ambient_credentials(action, proxy, oidc, sm):
    run = sync(action, env={**oidc.env(), **AMBIENT})
    assert run.returncode == 0, run.stdout + run.stderr
    assert run.json("created") == ["app/key"]
    stored = json.loads(sm.get_secret_value(SecretId="app/key")["SecretString"])
    assert stored == {"APP_KEY": CANARY["APP_KEY"]}

    assert oidc.audiences == ["sts.amazonaws.com"]
    assert all(r.authorized for r in oidc.requests)
    [call] = proxy.sts_calls()
    assert call.operation == "AssumeRoleWithWebIdentity"
    assert call.body["RoleArn"] == ROLE
    assert call.body["RoleSessionName"] == "secrets-sync"
    assert call.body["DurationSeconds"] == "900"
    assert call.body["WebIdentityToken"] == oidc.issued[0]
    # The STS call is unsigned; Secrets Manager is signed with the role's temporary keys only.
    assert proxy.keys("sts") == {None}
    [key] = proxy.keys("secretsmanager")
    assert key.startswith("ASIA")
    assert AMBIENT["AWS_ACCESS_KEY_ID"] not in {s.key_id for s in proxy.signings}
    lines = run.log_lines
    assumed = lines.index(f"Assumed {ROLE} with GitHub's OIDC token.")
    # Masked at birth: the token and the session token are masked before that line is written.
    assert lines.index(f"::add-mask::{oidc.issued[0]}") < assumed
    [session_token] = {s.session_token for s in proxy.signings if s.session_token}
    assert lines.index(f"::add-mask::{session_token}") < assumed
    assert_secret_free(run, proxy, oidc, extra=AMBIENT.values())


def test_web_identity_passes_session_name_duration_and_audience(action, proxy, oidc):
    inputs = {
        "role-session-name": "deploy@lornu-42",
        "role-duration-seconds": "3600",
        "audience": "https://example.com/aud x",
    }
    run = sync(action, env=oidc.env(), inputs=inputs)
    assert run.returncode == 0, run.stdout + run.stderr
    assert oidc.audiences == ["https://example.com/aud x"]
    [call] = proxy.sts_calls()
    assert call.body["RoleSessionName"] == "deploy@lornu-42"
    assert call.body["DurationSeconds"] == "3600"
    assert_secret_free(run, proxy, oidc)


def test_role_chaining_signs_assume_role_with_ambient_credentials(action, proxy, oidc):
    run = sync(action)  # no OIDC variables; the base env has AWS keys "testing"
    assert run.returncode == 0, run.stdout + run.stderr
    assert proxy.ops("sts") == ["AssumeRole"]
    [call] = proxy.sts_calls()
    assert (call.body["RoleArn"], call.body["RoleSessionName"]) == (ROLE, "secrets-sync")
    assert proxy.keys("sts") == {"testing"}
    [key] = proxy.keys("secretsmanager")
    assert key.startswith("ASIA")
    assert oidc.requests == []
    assert f"Assumed {ROLE} with the ambient AWS credentials (role chaining)." in run.log_lines
    assert_secret_free(run, proxy)


def test_no_role_uses_the_ambient_credentials(action, proxy, oidc):
    # The OIDC variables are there, but without a role there is nothing to use them for.
    run = sync(action, role=None, env=oidc.env())
    assert run.returncode == 0, run.stdout + run.stderr
    assert proxy.ops("sts") == []
    assert proxy.keys("secretsmanager") == {"testing"}
    assert oidc.requests == []
    assert_secret_free(run, proxy)


# No credentials at all -----------------------------------------------------------------------

NO_KEYS = ["AWS_ACCESS_KEY_ID", "AWS_SECRET_ACCESS_KEY"]


def test_no_role_and_no_credentials(action, proxy):
    run = sync(action, role=None, drop=NO_KEYS)
    message = error_of(run)
    assert "credentials: no AWS credentials were found." in message
    assert "permissions: { contents: read, id-token: write }" in message
    assert proxy.calls == []


def test_no_role_and_no_credentials_but_a_token_names_the_role_input(action, proxy, oidc):
    run = sync(action, role=None, env=oidc.env(), drop=NO_KEYS)
    message = error_of(run)
    assert "set `role-to-assume:` to the ARN of the role to assume with it" in message
    assert proxy.calls == []
    assert oidc.requests == []


def test_a_missing_aws_profile_is_named(action, proxy):
    run = sync(action, role=None, env={"AWS_PROFILE": "no-such-profile"}, drop=NO_KEYS)
    message = error_of(run)
    assert "AWS_PROFILE: names the profile 'no-such-profile', which no AWS config file" in message
    assert proxy.calls == []


def test_role_without_token_or_credentials_names_id_token_write(action, proxy):
    started = time.monotonic()
    run = sync(action, drop=NO_KEYS)
    elapsed = time.monotonic() - started
    message = error_of(run)
    assert f"there is no GitHub OIDC token to assume {ROLE} with" in message
    assert "add `permissions: { contents: read, id-token: write }` to the job" in message
    assert "permissions: { contents: read, id-token: write }" in run.summary
    assert proxy.calls == []
    assert elapsed < 10


def event_env(tmp_path, event, payload):
    path = tmp_path / f"event-{event}.json"
    path.write_text(json.dumps(payload))
    return {"GITHUB_EVENT_NAME": event, "GITHUB_EVENT_PATH": str(path)}


def pr(full_name, fork):
    return {"pull_request": {"number": 7, "head": {"repo": {"full_name": full_name, "fork": fork}}}}


# Which pull-request runs count as from a fork is unit-tested in test_oidc.py; here, the messages.


def test_pull_request_from_a_fork_gets_its_own_message(action, proxy, tmp_path):
    env = event_env(tmp_path, "pull_request", pr("contributor/app", True))
    run = sync(action, env=env, drop=NO_KEYS)
    message = error_of(run)
    assert "this run is for a pull request from a fork" in message
    assert "GitHub gives such runs no OIDC token" in message
    assert "if: github.event.pull_request.head.repo.full_name == github.repository" in message
    assert "add `permissions:" not in message
    assert proxy.calls == []


def test_pull_request_target_without_a_token_gets_the_permissions_message(action, proxy, tmp_path):
    # pull_request_target runs in the base repository and may be granted a token, fork or not.
    env = event_env(tmp_path, "pull_request_target", pr("contributor/app", True))
    run = sync(action, env=env, drop=NO_KEYS)
    message = error_of(run)
    assert "add `permissions: { contents: read, id-token: write }` to the job" in message
    assert "from a fork" not in message


def test_pull_request_of_unknown_origin_names_both_fixes(action, proxy):
    run = sync(action, env={"GITHUB_EVENT_NAME": "pull_request"}, drop=NO_KEYS)
    message = error_of(run)
    assert "pull requests from forks never get a token" in message
    assert "add `permissions: { contents: read, id-token: write }` to the job" in message
    assert "if: github.event.pull_request.head.repo.full_name == github.repository" in message


# Refusals are final, and say what to change ---------------------------------------------------


def test_access_denied_is_not_retried_and_shows_claims_beside_a_trust_condition(
    action, proxy, oidc
):
    proxy.fail(
        "AssumeRoleWithWebIdentity",
        403,
        "AccessDenied",
        "Not authorized to perform sts:AssumeRoleWithWebIdentity",
    )
    started = time.monotonic()
    run = sync(action, env=oidc.env())
    elapsed = time.monotonic() - started
    message = error_of(run)
    assert elapsed < 10  # a permanent error fails within seconds
    assert proxy.ops("sts") == ["AssumeRoleWithWebIdentity"]
    assert len(oidc.requests) == 1
    assert proxy.ops() == []  # no Secrets Manager call
    assert (
        f"STS refused to let GitHub's OIDC token assume {ROLE} "
        "(AccessDenied: Not authorized to perform sts:AssumeRoleWithWebIdentity)"
    ) in message
    assert f"sub='{SUB}', aud='sts.amazonaws.com', repository='{REPOSITORY}'" in message
    assert "ref='refs/heads/main'" in message
    assert f"job_workflow_ref='{REPOSITORY}/.github/workflows/sync.yml@refs/heads/main'" in message
    assert "arn:aws:iam::123456789012:oidc-provider/token.actions.githubusercontent.com" in message
    assert (
        '{"Condition": {"StringEquals": {"token.actions.githubusercontent.com:aud": '
        f'"sts.amazonaws.com", "token.actions.githubusercontent.com:sub": "{SUB}"}}}}}}'
    ) in message
    assert_secret_free(run, proxy, oidc)


def test_invalid_identity_token_is_not_retried_and_names_the_provider(action, proxy, oidc):
    proxy.fail(
        "AssumeRoleWithWebIdentity",
        400,
        "InvalidIdentityToken",
        "No OpenIDConnect provider found in your account for "
        "https://token.actions.githubusercontent.com",
    )
    run = sync(action, env=oidc.env(), inputs={"audience": "sts.example"})
    message = error_of(run)
    assert proxy.ops("sts") == ["AssumeRoleWithWebIdentity"]
    assert len(oidc.requests) == 1
    assert f"STS rejected GitHub's OIDC token for {ROLE} (InvalidIdentityToken: No " in message
    assert (
        "account 123456789012 needs the IAM OIDC identity provider "
        "https://token.actions.githubusercontent.com with the audience 'sts.example'"
    ) in message
    assert f"sub='{SUB}', aud='sts.example'" in message
    assert '"token.actions.githubusercontent.com:aud": "sts.example"' in message
    assert_secret_free(run, proxy, oidc)


def test_a_duration_the_role_does_not_allow_is_not_retried(action, proxy, oidc):
    proxy.fail(
        "AssumeRoleWithWebIdentity",
        400,
        "ValidationError",
        "The requested DurationSeconds exceeds the MaxSessionDuration set for this role.",
    )
    run = sync(action, env=oidc.env(), inputs={"role-duration-seconds": "43200"})
    message = error_of(run)
    assert len(proxy.sts_calls()) == 1
    assert "lower `role-duration-seconds` (now 43200)" in message
    assert_secret_free(run, proxy, oidc)


# What is retried -----------------------------------------------------------------------------


# STS's words when it fails to fetch GitHub's signing keys (JWKS): worded as a refusal of the
# token, but transient, and a known failure of GitHub OIDC that a new attempt gets past.
NO_VERIFICATION_KEY = (
    "Couldn't retrieve verification key from your identity provider,  please reference "
    "AssumeRoleWithWebIdentity documentation for requirements"
)
# A token that expired between GitHub and STS (a slow or throttled runner): STS asks for another.
TOKEN_EXPIRED = (
    "Token expired: current date/time 1700000400 must be before the expiration date/time 1700000300"
)


@pytest.mark.parametrize(
    ("status", "code", "message"),
    [
        (400, "Throttling", "try again"),
        (503, "ServiceUnavailable", "try again"),
        (400, "IDPCommunicationError", "try again"),
        (400, "InvalidIdentityToken", NO_VERIFICATION_KEY),
        (400, "ExpiredTokenException", TOKEN_EXPIRED),
    ],
)
def test_transient_sts_errors_are_retried_each_with_a_fresh_token(
    action, proxy, oidc, status, code, message
):
    proxy.fail("AssumeRoleWithWebIdentity", status, code, message, times=1)
    run = sync(action, env=oidc.env())
    assert run.returncode == 0, run.stdout + run.stderr
    calls = proxy.sts_calls()
    assert [c.status for c in calls] == [status, 200]
    tokens = [c.body["WebIdentityToken"] for c in calls]
    assert tokens == oidc.issued
    assert len(set(tokens)) == 2
    assert len(oidc.requests) == 2
    assert run.json("created") == ["app/key"]
    # One line says what happened and that it is being tried again; no error annotation.
    [retried] = [line for line in run.log_lines if "again in" in line]
    assert retried.startswith(f"AssumeRoleWithWebIdentity failed ({code}: ")
    assert run.errors == []
    assert_secret_free(run, proxy, oidc)


@pytest.mark.parametrize(
    ("status", "code", "message"),
    [
        (503, "ServiceUnavailable", "down"),
        (400, "InvalidIdentityToken", NO_VERIFICATION_KEY),
        (400, "ExpiredTokenException", TOKEN_EXPIRED),
    ],
)
def test_sts_retries_are_bounded(action, proxy, oidc, status, code, message):
    proxy.fail("AssumeRoleWithWebIdentity", status, code, message)
    run = sync(action, env=oidc.env())
    error = error_of(run)
    assert len(proxy.sts_calls()) == 4
    assert len(oidc.issued) == 4
    assert f"failed 4 times, each with a fresh token (last: {code}: {message[:20]}" in error
    assert "rerun the job in a few minutes" in error
    # Not the fix-it text of a permanent refusal: the setup is not what is wrong.
    assert "needs the IAM OIDC identity provider" not in error
    assert proxy.ops() == []
    assert_secret_free(run, proxy, oidc)


def test_token_service_5xx_then_ok(action, proxy, oidc):
    oidc.queue("5xx")
    run = sync(action, env=oidc.env())
    assert run.returncode == 0, run.stdout + run.stderr
    assert [r.status for r in oidc.requests] == [503, 200]
    assert len(proxy.sts_calls()) == 1
    assert_secret_free(run, proxy, oidc)


def test_token_service_always_5xx(action, proxy, oidc):
    oidc.mode = "5xx"
    run = sync(action, env=oidc.env())
    message = error_of(run)
    assert [r.status for r in oidc.requests] == [503, 503, 503]
    assert "GitHub OIDC token: GitHub's token service at 127.0.0.1 failed 3 times" in message
    assert "(last answer: HTTP 503)" in message
    assert proxy.calls == []
    assert_secret_free(run, proxy, oidc)


def test_token_service_hang_times_out(action, proxy, oidc):
    oidc.mode = "hang"
    run = sync(action, env={**oidc.env(), "SECRETS_SYNC_TIMEOUT": "0.5"})
    message = error_of(run)
    assert len(oidc.requests) == 3
    assert "failed 3 times (last: no answer within 0.5 s)" in message
    assert proxy.calls == []
    assert_secret_free(run, proxy, oidc)


def test_token_service_refusal_is_not_retried(action, proxy, oidc):
    run = sync(action, env={**oidc.env(), "ACTIONS_ID_TOKEN_REQUEST_TOKEN": "stale-bearer-0123"})
    message = error_of(run)
    assert [(r.authorized, r.status) for r in oidc.requests] == [(False, 401)]
    assert "refused the request (HTTP 401)" in message
    assert proxy.calls == []
    assert_secret_free(run, proxy, oidc, extra=["stale-bearer-0123"])


def test_token_service_answer_without_a_token(action, proxy, oidc):
    oidc.mode = "empty"
    run = sync(action, env=oidc.env())
    message = error_of(run)
    assert "answered without a token (no `value` in its JSON)" in message
    assert len(oidc.requests) == 1
    assert proxy.calls == []


# Long runs: credentials renewed before they end -------------------------------------------

_EXPIRATION = re.compile(rb"<Expiration>[^<]*</Expiration>")
_ACCESS_KEY = re.compile(rb"<AccessKeyId>([^<]*)</AccessKeyId>")


def expiring_soon(operation: str, first_keys: list[str]):
    """A rewrite for the proxy: the first answer of `operation` says its credentials end one
    minute from now, as if the run were 14 minutes into 15-minute credentials. moto's STS
    honours DurationSeconds, but the action (as AWS) accepts no less than 900 s, and a test
    cannot wait out botocore's refresh windows; so the end is brought near instead. One minute
    is inside the mandatory window (REFRESH_MANDATORY_SECONDS): no request may be signed with
    the old keys, so every Secrets Manager call must use the renewed ones."""
    soon = time.strftime("%Y-%m-%dT%H:%M:%SZ", time.gmtime(time.time() + 60)).encode()

    def rewrite(call: Call, body: bytes) -> bytes:
        if call.operation != operation or first_keys:
            return body
        key = _ACCESS_KEY.search(body)
        assert key is not None, body
        first_keys.append(key.group(1).decode())
        return _EXPIRATION.sub(b"<Expiration>" + soon + b"</Expiration>", body)

    return rewrite


def test_credentials_near_their_end_are_renewed_with_a_fresh_token(action, proxy, oidc, sm):
    first: list[str] = []
    proxy.faults.rewrite = expiring_soon("AssumeRoleWithWebIdentity", first)
    run = sync(action, env=oidc.env())
    assert run.returncode == 0, run.stdout + run.stderr
    assert run.json("created") == ["app/key"]
    # Two tokens, two AssumeRoleWithWebIdentity calls, each with its own token.
    calls = proxy.sts_calls()
    assert [c.operation for c in calls] == ["AssumeRoleWithWebIdentity"] * 2
    assert [c.body["WebIdentityToken"] for c in calls] == oidc.issued
    assert len(set(oidc.issued)) == 2
    # Secrets Manager saw only the renewed keys: none of its calls was signed with the first.
    [renewed] = proxy.keys("secretsmanager")
    assert renewed.startswith("ASIA")
    assert renewed != first[0]
    [line] = [x for x in run.log_lines if x.startswith("Renewed the credentials of")]
    assert line.startswith(f"Renewed the credentials of {ROLE} with GitHub's OIDC token")
    assert_secret_free(run, proxy, oidc)


def test_role_chaining_credentials_are_renewed_too(action, proxy, oidc):
    first: list[str] = []
    proxy.faults.rewrite = expiring_soon("AssumeRole", first)
    run = sync(action)
    assert run.returncode == 0, run.stdout + run.stderr
    assert proxy.ops("sts") == ["AssumeRole", "AssumeRole"]
    assert proxy.keys("sts") == {"testing"}  # both signed with the ambient credentials
    [renewed] = proxy.keys("secretsmanager")
    assert renewed != first[0]
    assert oidc.requests == []
    assert_secret_free(run, proxy)


def test_a_renewal_that_fails_fails_the_secrets_and_still_reports(action, proxy, oidc, sm):
    first: list[str] = []
    proxy.faults.rewrite = expiring_soon("AssumeRoleWithWebIdentity", first)
    seen = {"n": 0}

    def deny_the_second(call: Call) -> int | None:
        if call.operation != "AssumeRoleWithWebIdentity":
            return None
        seen["n"] += 1
        return 403 if seen["n"] > 1 else None

    proxy.sts_codes[403] = ("AccessDenied", "Not authorized to perform this action")
    proxy.faults.rule = deny_the_second
    run = sync(action, env=oidc.env())
    assert run.returncode == 1, run.stdout + run.stderr
    # Said once, with the refusal's own fix; not tried again by every thread or secret after.
    [warning] = [x for x in run.log_lines if x.startswith("::warning")]
    assert f"Could not renew the credentials of {ROLE} with GitHub's OIDC token: " in warning
    assert "AccessDenied: Not authorized to perform this action" in warning
    assert [c.status for c in proxy.sts_calls()] == [200, 403]
    assert "CredentialRetrievalError" in error_of(run)
    assert_secret_free(run, proxy, oidc)


def test_a_renewal_that_fails_early_is_tried_again_and_the_run_goes_on(action, proxy, oidc):
    """Issue 19 (8): a renewal refused once in botocore's advisory window, while the current
    credentials still serve, is tried again later (here: on the first call in the mandatory
    window); before the fix it was never tried again and every later write failed."""
    first: list[str] = []

    def advisory_end(call: Call, body: bytes) -> bytes:
        # 130 s left: inside the advisory window (300 s), 10 s before the mandatory one (120 s).
        if call.operation != "AssumeRoleWithWebIdentity" or first:
            return body
        first.append(_ACCESS_KEY.search(body).group(1).decode())  # type: ignore[union-attr]
        end = time.strftime("%Y-%m-%dT%H:%M:%SZ", time.gmtime(time.time() + 130)).encode()
        return _EXPIRATION.sub(b"<Expiration>" + end + b"</Expiration>", body)

    seen = {"n": 0}

    def deny_the_second(call: Call) -> int | None:
        if call.operation != "AssumeRoleWithWebIdentity":
            return None
        seen["n"] += 1
        return 403 if seen["n"] == 2 else None

    proxy.faults.rewrite = advisory_end
    proxy.sts_codes[403] = ("AccessDenied", "Not authorized to perform this action")
    proxy.faults.rule = deny_the_second
    # ListSecrets (signed with the first keys, the renewal having failed) answers 12 s late,
    # so the next call finds the credentials in the mandatory window.
    proxy.faults.hang_for = lambda call: 12.0 if call.operation == "ListSecrets" else None
    run = sync(action, env={**oidc.env(), "SECRETS_SYNC_TIMEOUT": "30"})
    assert run.returncode == 0, run.stdout + run.stderr
    assert run.json("created") == ["app/key"]
    assert [c.status for c in proxy.sts_calls()] == [200, 403, 200]
    [warning] = [x for x in run.log_lines if x.startswith("::warning")]
    assert "Could not renew the credentials of" in warning
    assert "the current ones serve until then" in warning
    signed = [s.key_id for s in proxy.signings if s.service == "secretsmanager"]
    assert signed[0] == first[0]  # the reads: the old keys, still good
    assert signed[-1] != first[0]  # the write: the renewed ones
    assert_secret_free(run, proxy, oidc)


def test_renewal_pause_and_the_mandatory_window(monkeypatch):
    """In-process, with a clock: a failed renewal is retried after RENEW_PAUSE, or at once on
    the first call in the mandatory window; in between, no STS call is made."""
    import datetime

    from secrets_sync import credentials
    from secrets_sync.errors import CredentialsError
    from secrets_sync.runner import Runner

    now = [time.time()]
    answers: list[str] = []
    left = {"seconds": 200.0}

    def assume() -> Any:
        answers.append("asked")
        if len(answers) in (2, 3):
            raise CredentialsError("role-to-assume", "STS refused (Throttling).")
        end = datetime.datetime.now(datetime.UTC) + datetime.timedelta(seconds=left["seconds"])
        return {
            "AccessKeyId": f"ASIA{len(answers):016d}",
            "SecretAccessKey": "s" * 40,
            "SessionToken": "t" * 40,
            "Expiration": end,
        }

    log = io.StringIO()
    creds = credentials._refreshable(
        assume, Runner(log, in_actions=False), "the role", clock=lambda: now[0]
    )
    assert len(answers) == 1
    creds.get_frozen_credentials()  # advisory window: asks, fails, keeps the old keys
    assert len(answers) == 2
    now[0] += 5
    assert creds.get_frozen_credentials().access_key == "ASIA0000000000000001"
    assert len(answers) == 2  # within the pause: not asked
    now[0] += credentials.RENEW_PAUSE
    creds.get_frozen_credentials()  # asked again, fails again
    assert len(answers) == 3
    now[0] += credentials.RENEW_PAUSE
    left["seconds"] = 3600.0
    assert creds.get_frozen_credentials().access_key == "ASIA0000000000000004"
    assert "Renewed the credentials of the role" in log.getvalue()


# The account guard (issue 21, point 7) --------------------------------------------------------


def test_account_guard_stops_before_any_secrets_manager_call(action, proxy, oidc):
    run = sync(action, env=oidc.env(), inputs={"allowed-account-ids": "111111111111, 222222222222"})
    message = error_of(run)
    assert message.startswith("::error title=secrets-sync::allowed-account-ids: ")
    assert "the AWS credentials belong to account 123456789012, which is not one of " in message
    assert "111111111111, 222222222222" in message
    # The account came from the assume-role answer: no GetCallerIdentity, no Secrets Manager.
    assert proxy.ops("sts") == ["AssumeRoleWithWebIdentity"]
    assert proxy.ops() == []
    assert_secret_free(run, proxy, oidc)


def test_account_guard_lets_an_allowed_account_through_with_no_extra_call(action, proxy, oidc):
    allowed = "111111111111\n123456789012\n"
    run = sync(action, env=oidc.env(), inputs={"allowed-account-ids": allowed})
    assert run.returncode == 0, run.stdout + run.stderr
    assert run.json("created") == ["app/key"]
    assert proxy.ops("sts") == ["AssumeRoleWithWebIdentity"]
    assert "The credentials belong to account 123456789012" in run.stdout


def test_account_guard_with_role_chaining_reads_the_assume_role_answer(action, proxy):
    run = sync(action, inputs={"allowed-account-ids": "111111111111"})
    assert "belong to account 123456789012" in error_of(run)
    assert proxy.ops("sts") == ["AssumeRole"]
    assert proxy.ops() == []


def test_account_guard_asks_get_caller_identity_for_ambient_credentials(action, proxy):
    run = sync(action, role=None, inputs={"allowed-account-ids": "111111111111"})
    assert "belong to account 123456789012" in error_of(run)
    assert proxy.ops("sts") == ["GetCallerIdentity"]
    assert proxy.keys("sts") == {"testing"}
    assert proxy.ops() == []
    allowed = sync(action, role=None, inputs={"allowed-account-ids": "123456789012"})
    assert allowed.returncode == 0, allowed.stdout + allowed.stderr
    # Without the input, nobody asks (test_no_role_uses_the_ambient_credentials: no STS call).


# Role chaining errors ------------------------------------------------------------------------


def test_chaining_access_denied_is_not_retried(action, proxy):
    proxy.fail(
        "AssumeRole",
        403,
        "AccessDenied",
        "User: arn:aws:iam::123456789012:user/ci is not authorized to perform: sts:AssumeRole",
    )
    started = time.monotonic()
    run = sync(action)
    elapsed = time.monotonic() - started
    message = error_of(run)
    assert elapsed < 10
    assert proxy.ops("sts") == ["AssumeRole"]
    assert f"the ambient AWS credentials may not assume {ROLE}" in message
    assert "user/ci is not authorized" in message
    assert "add `permissions: { contents: read, id-token: write }` to the job" in message
    assert_secret_free(run, proxy)


def test_chaining_with_rejected_credentials(action, proxy):
    proxy.fail("AssumeRole", 403, "InvalidClientTokenId", "The security token is invalid.")
    run = sync(action)
    message = error_of(run)
    assert (
        f"STS does not accept the ambient AWS credentials (InvalidClientTokenId), so {ROLE} "
        "cannot be assumed with them."
    ) in message
    assert proxy.ops("sts") == ["AssumeRole"]


def test_chaining_is_retried_on_throttling(action, proxy):
    proxy.fail("AssumeRole", 400, "Throttling", "Rate exceeded", times=1)
    run = sync(action)
    assert run.returncode == 0, run.stdout + run.stderr
    assert [c.status for c in proxy.sts_calls()] == [400, 200]
    assert_secret_free(run, proxy)


# Inputs are checked before any network call ---------------------------------------------------


@pytest.mark.parametrize(
    ("inputs", "expected"),
    [
        ({"role-to-assume": "arn:aws:iam::1234:role/x"}, "input `role-to-assume`"),
        ({"role-to-assume": "arn:aws:iam::123456789012:user/x"}, "is not an IAM role ARN"),
        ({"role-session-name": "x"}, "input `role-session-name`"),
        ({"role-duration-seconds": "899"}, "899 is out of range"),
        ({"role-duration-seconds": "43201"}, "43201 is out of range"),
        ({"aws-region": "mars-north"}, "is not an AWS region name"),
        ({"aws-region": ""}, "no region is set"),
        ({"allowed-account-ids": "12345678901"}, "'12345678901' is not an AWS account ID"),
        ({"allowed-account-ids": "123456789012;210987654321"}, "input `allowed-account-ids`"),
    ],
)
def test_bad_credential_inputs_fail_before_any_call(action, proxy, oidc, inputs, expected):
    run = sync(action, env=oidc.env(), inputs=inputs)
    message = error_of(run)
    assert expected in message
    assert oidc.requests == []
    assert proxy.calls == []


def test_a_planted_aws_config_cannot_redirect_or_configure_the_clients(tmp_path, monkeypatch):
    """An earlier step of the job may leave ~/.aws/config in the shared HOME. Its endpoint_url
    must not decide where values are sent; with explicit keys, no config file is read at all.
    (In-process: the client is built but never called, so nothing leaves this machine.)"""
    from secrets_sync import credentials
    from secrets_sync.runner import Runner
    from secrets_sync.settings import load_settings

    aws = tmp_path / ".aws"
    aws.mkdir()
    (aws / "config").write_text(
        "[default]\nendpoint_url = http://127.0.0.1:9/steal\nregion = eu-west-3\n"
        "ca_bundle = /nonexistent/evil.pem\n"
    )
    monkeypatch.setenv("HOME", str(tmp_path))
    for name in (
        "AWS_CONFIG_FILE",
        "AWS_SHARED_CREDENTIALS_FILE",
        "AWS_PROFILE",
        "AWS_ENDPOINT_URL",
        "AWS_ENDPOINT_URL_SECRETS_MANAGER",
        "AWS_CA_BUNDLE",
    ):
        monkeypatch.delenv(name, raising=False)
    env = {
        "INPUT_SECRETS": "a: A",
        "INPUT_AWS-REGION": "us-east-1",
        "GITHUB_REPOSITORY": REPOSITORY,
        "GITHUB_WORKSPACE": str(tmp_path),
        "AWS_ACCESS_KEY_ID": "AKIAEXAMPLEKEY",
        "AWS_SECRET_ACCESS_KEY": "planted-test-secret",
    }
    settings = load_settings(env)
    sess = credentials.session(settings, env, Runner(io.StringIO(), in_actions=False))
    client = credentials.secretsmanager(sess, settings)
    assert isinstance(sess, boto3.session.Session)  # the SDK the action names
    assert client.meta.endpoint_url == "https://secretsmanager.us-east-1.amazonaws.com"
    assert client.meta.region_name == "us-east-1"
    # No profile at all: the planted file's [default] (and its ca_bundle) was never read.
    assert sess.available_profiles == []
    assert sess._session.get_scoped_config().get("ca_bundle") is None


def test_only_the_secrets_manager_client_keeps_dates_as_sent(moto, sm, monkeypatch):
    # Secrets Manager's dates are not parsed (the one read is DeletedDate, for whether it is
    # there); an STS client made later from the same session, as a renewal makes one, still
    # gets datetimes, which botocore's refreshable credentials compare with the clock.
    from secrets_sync import credentials
    from secrets_sync.runner import Runner
    from secrets_sync.settings import load_settings

    monkeypatch.setenv("AWS_ENDPOINT_URL", moto)
    sm.create_secret(Name="dates/a", SecretString="dates-canary-value")
    env = {
        "INPUT_SECRETS": "a: A",
        "INPUT_AWS-REGION": "us-east-1",
        "GITHUB_REPOSITORY": REPOSITORY,
        "GITHUB_WORKSPACE": "/tmp",
        "AWS_ACCESS_KEY_ID": "AKIAEXAMPLEKEY",
        "AWS_SECRET_ACCESS_KEY": "test-secret-key",
        "AWS_ENDPOINT_URL": moto,
    }
    settings = load_settings(env)
    sess = credentials.session(settings, env, Runner(io.StringIO(), in_actions=False))
    client = credentials.secretsmanager(sess, settings)
    created = client.describe_secret(SecretId="dates/a")["CreatedDate"]
    assert isinstance(created, int | float)
    assert not isinstance(created, datetime.datetime)
    sts = sess.client("sts", endpoint_url=moto, region_name="us-east-1")
    expiration = sts.get_session_token()["Credentials"]["Expiration"]
    assert isinstance(expiration, datetime.datetime)
