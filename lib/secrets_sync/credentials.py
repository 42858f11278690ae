"""AWS credentials and clients. Nothing below this module knows which path made the session.

Paths, in order: `role-to-assume` with GitHub's OIDC variables → AssumeRoleWithWebIdentity
(unsigned; ambient AWS settings ignored); `role-to-assume` with ambient credentials →
sts:AssumeRole signed with them (role chaining); no role → the ambient credentials themselves.
A role with nothing to sign for it fails at once, saying what to add to the workflow.
"""

from __future__ import annotations

import json
import os
import random
import time
from collections.abc import Callable, Mapping
from pathlib import Path
from typing import TYPE_CHECKING, Any, Literal, cast

import botocore.session
from botocore import UNSIGNED
from botocore.config import Config
from botocore.credentials import CredentialProvider, CredentialResolver, RefreshableCredentials
from botocore.exceptions import (
    BotoCoreError,
    ClientError,
    CredentialRetrievalError,
    HTTPClientError,
    ProfileNotFound,
)
from botocore.exceptions import (
    ConnectionError as BotoConnectionError,
)

from . import limiter, oidc
from .errors import CredentialsError
from .runner import Runner
from .settings import Settings

if TYPE_CHECKING:
    from mypy_boto3_secretsmanager import SecretsManagerClient
    from mypy_boto3_sts import STSClient
    from mypy_boto3_sts.type_defs import CredentialsTypeDef

# Secrets Manager's retries and pacing are limiter.py's (botocore's adaptive mode collapses on
# sporadic throttles): botocore makes one attempt, so the two never multiply. Its other modes
# stay selectable only for bench/throttle.py, which measures against them; attempts are set
# explicitly because botocore's defaults have changed between releases.
MAX_ATTEMPTS = limiter.MAX_ATTEMPTS
USER_AGENT = "secrets-sync"

# AssumeRoleWithWebIdentity is retried here, not by botocore, because each attempt needs a fresh
# token (they live five minutes) and only these answers are worth another one.
STS_RETRY = oidc.Retry(attempts=4, base=0.5, cap=4.0)
TOKEN_TIMEOUT_CAP = 10.0
_THROTTLING = frozenset(
    {
        "Throttling",
        "ThrottlingException",
        "ThrottledException",
        "RequestThrottledException",
        "TooManyRequestsException",
        "RequestLimitExceeded",
        "PriorRequestNotComplete",
    }
)
_TRANSIENT = _THROTTLING | {"IDPCommunicationError"}
# STS's words when it could not fetch the provider's JWKS: transient with GitHub's OIDC issuer.
_VERIFICATION_KEY = "couldn't retrieve verification key from your identity provider"
_DENIED = frozenset({"AccessDenied", "AccessDeniedException"})
# Events whose runs from a fork get no OIDC token and no secrets. pull_request_target is not one:
# it runs in the base repository and can be granted `id-token: write`.
_FORK_EVENTS = frozenset({"pull_request", "pull_request_review", "pull_request_review_comment"})
PERMISSIONS_YAML = "permissions: { contents: read, id-token: write }"
FORK_GUARD = "if: github.event.pull_request.head.repo.full_name == github.repository"


def session(settings: Settings, env: Mapping[str, str], runner: Runner) -> botocore.session.Session:
    """A botocore session for the run, from whichever path the inputs and environment select.
    (botocore, not boto3: boto3 adds nothing a run uses, and importing it and s3transfer cost
    every run some 30 ms before its first request: bench/startup.py measures it.)"""
    role = settings.role_to_assume
    if role is None:
        ambient = _ambient(settings, env, runner)
        if ambient is None:
            raise _no_credentials(env)
        return ambient
    if oidc.available(env):
        core = _isolated_core()
        how = "GitHub's OIDC token"

        def assume() -> CredentialsTypeDef:
            return _assume_with_web_identity(settings, env, runner)

    else:
        ambient = _ambient(settings, env, runner)
        if ambient is None:
            raise _nothing_to_sign_with(role, env)
        core = botocore.session.Session()
        how = "the ambient AWS credentials (role chaining)"

        def assume() -> CredentialsTypeDef:
            return _assume_with_ambient(settings, ambient)

    creds = _refreshable(assume, runner, f"{role} with {how}")
    runner.info(f"Assumed {role} with {how}.")
    core.register_component("credential_provider", CredentialResolver([_Assumed(creds)]))
    core.set_config_variable("region", settings.region)
    return core


# The role's credentials last `role-duration-seconds`. A run that outlives them (thousands of
# secrets, heavy throttling) assumes the role again before they end: with a fresh OIDC token
# on the web-identity path, since the first one lived five minutes. botocore's defaults (try
# 15 minutes before the end, insist at 10) would refresh 900-second credentials on every call.
REFRESH_ADVISORY_SECONDS = 300
REFRESH_MANDATORY_SECONDS = 120


class _Assumed(CredentialProvider):
    METHOD = "secrets-sync-assume-role"

    def __init__(self, credentials: RefreshableCredentials) -> None:
        self._credentials = credentials

    def load(self) -> RefreshableCredentials:
        return self._credentials


def _refreshable(
    assume: Callable[[], CredentialsTypeDef], runner: Runner, what: str
) -> RefreshableCredentials:
    """Credentials that botocore renews through `assume` as their end nears. The first call
    happens here and its errors reach the user as they are; a later failure becomes botocore's
    own error, so the secret being written fails with it and the others (and the report) stand."""

    def metadata() -> dict[str, str]:
        creds = assume()
        runner.add_masks([creds["SecretAccessKey"], creds["SessionToken"], creds["AccessKeyId"]])
        return {
            "access_key": creds["AccessKeyId"],
            "secret_key": creds["SecretAccessKey"],
            "token": creds["SessionToken"],
            "expiry_time": creds["Expiration"].isoformat(),
        }

    refused: list[str] = []  # a renewal that failed (after its own retries) is not tried again

    def refresh() -> dict[str, str]:
        if not refused:
            try:
                fresh = metadata()
            except CredentialsError as exc:
                runner.warning(f"Could not renew the credentials of {what}: {exc.message}")
                refused.append(exc.problem)
            else:
                runner.info(
                    f"Renewed the credentials of {what} (now valid until {fresh['expiry_time']})."
                )
                return fresh
        raise CredentialRetrievalError(provider=_Assumed.METHOD, error_msg=refused[0])

    return RefreshableCredentials.create_from_metadata(
        metadata(),
        refresh,
        _Assumed.METHOD,
        advisory_timeout=REFRESH_ADVISORY_SECONDS,
        mandatory_timeout=REFRESH_MANDATORY_SECONDS,
    )


def client_config(settings: Settings) -> Config:
    paced = settings.retry_mode == "paced"
    mode: Literal["standard", "adaptive"] = (
        "adaptive" if settings.retry_mode == "adaptive" else "standard"
    )
    return Config(
        region_name=settings.region,
        retries={"mode": mode, "total_max_attempts": 1 if paced else MAX_ATTEMPTS},
        max_pool_connections=max(10, settings.max_concurrency * 2),
        connect_timeout=min(5.0, settings.timeout_seconds),
        read_timeout=settings.timeout_seconds,
        user_agent_extra=USER_AGENT,
        # Only the AWS_ENDPOINT_URL* variables (resolved in settings and passed explicitly) may
        # point us elsewhere: an `endpoint_url` left in ~/.aws/config by an earlier step of the
        # job (HOME is shared) must not redirect where the values are sent.
        ignore_configured_endpoint_urls=True,  # type: ignore[call-arg]  # botocore 1.31+; stubs lag
    )


def secretsmanager(sess: botocore.session.Session, settings: Settings) -> SecretsManagerClient:
    client = sess.create_client(
        "secretsmanager",
        region_name=settings.region,
        config=client_config(settings),
        endpoint_url=settings.endpoints.get("secretsmanager"),
    )
    if settings.retry_mode == "paced":
        limiter.install(client, limiter.Pacer())
    return cast("SecretsManagerClient", client)


def _with_keys(
    sess: botocore.session.Session, settings: Settings, key_id: str, secret: str, token: str | None
) -> botocore.session.Session:
    sess.set_credentials(key_id, secret, token)
    sess.set_config_variable("region", settings.region)
    return sess


# The ambient chain --------------------------------------------------------------------------


def _ambient(
    settings: Settings, env: Mapping[str, str], runner: Runner
) -> botocore.session.Session | None:
    """Credentials from the step's environment, else botocore's chain; None when there are none."""
    key_id = env.get("AWS_ACCESS_KEY_ID") or None
    secret_key = env.get("AWS_SECRET_ACCESS_KEY") or None
    token = env.get("AWS_SESSION_TOKEN") or None
    try:
        if key_id and secret_key:
            runner.add_masks(s for s in (secret_key, token) if s)
            return _with_keys(_isolated_core(), settings, key_id, secret_key, token)
        ambient = botocore.session.Session()
        ambient.set_config_variable("region", settings.region)
        found = ambient.get_credentials()
        if found is None:
            return None
        frozen = found.get_frozen_credentials()
    except ProfileNotFound as exc:
        raise CredentialsError(
            "AWS_PROFILE",
            f"names the profile {exc.kwargs.get('profile')!r}, which no AWS config file holds.",
            "unset AWS_PROFILE, or configure that profile in an earlier step.",
        ) from None
    except BotoCoreError as exc:
        raise CredentialsError(
            "credentials",
            f"the AWS credential chain failed ({type(exc).__name__}).",
            "check the AWS settings of the earlier steps, or use `role-to-assume:` with "
            f"`{PERMISSIONS_YAML}`.",
        ) from None
    runner.add_masks(s for s in (frozen.secret_key, frozen.token) if s)
    return ambient


def _isolated_core() -> botocore.session.Session:
    """A botocore session that reads no AWS profile and no AWS config or credentials file: when
    the keys are given explicitly (web identity, or keys in the step's env), a stray AWS_PROFILE
    must neither be used nor break the run, and a ~/.aws/config planted in the job's shared
    HOME (endpoint_url, ca_bundle, credential_process) must have no say."""
    return botocore.session.Session(
        session_vars={
            "profile": (None, None, None, None),
            "config_file": (None, None, os.devnull, None),
            "credentials_file": (None, None, os.devnull, None),
        }
    )


def _sts_client(
    sess: botocore.session.Session, settings: Settings, *, unsigned: bool, attempts: int
) -> STSClient:
    config = Config(
        region_name=settings.region,
        retries={"mode": "standard", "total_max_attempts": attempts},
        connect_timeout=min(5.0, settings.timeout_seconds),
        read_timeout=settings.timeout_seconds,
        user_agent_extra=USER_AGENT,
        # As for Secrets Manager: only the AWS_ENDPOINT_URL* variables may point STS elsewhere.
        ignore_configured_endpoint_urls=True,  # type: ignore[call-arg]  # botocore 1.31+; stubs lag
    )
    if unsigned:
        config = config.merge(Config(signature_version=UNSIGNED))
    # The regional endpoint, never the global one, whatever AWS_STS_REGIONAL_ENDPOINTS says:
    # the global endpoint is a single region's, and a token or credentials sent there from
    # another region fail when that region is down.
    sess.set_config_variable("sts_regional_endpoints", "regional")
    client = sess.create_client(
        "sts",
        region_name=settings.region,
        config=config,
        endpoint_url=settings.endpoints.get("sts"),
    )
    return cast("STSClient", client)


def sts_endpoint(settings: Settings) -> str:
    """The STS endpoint the run calls: the configured endpoint URL, else the regional endpoint
    botocore's resolver gives for the region, in whichever partition holds it (aws, aws-cn,
    aws-us-gov, the ISO partitions...): a URL built by hand is wrong outside the first two."""
    client = _sts_client(_isolated_core(), settings, unsigned=True, attempts=1)
    return client.meta.endpoint_url


# Web identity -------------------------------------------------------------------------------


def _assume_with_web_identity(
    settings: Settings,
    env: Mapping[str, str],
    runner: Runner,
    *,
    retry: oidc.Retry = STS_RETRY,
    sleep: Callable[[float], None] = time.sleep,
    rng: random.Random | None = None,
) -> CredentialsTypeDef:
    role = settings.role_to_assume or ""
    base = _isolated_core()
    client = _sts_client(base, settings, unsigned=True, attempts=1)
    timeout = min(TOKEN_TIMEOUT_CAP, settings.timeout_seconds)
    last = ""
    for attempt in range(retry.attempts):
        token = oidc.fetch_token(env, settings.audience, runner, timeout=timeout)
        try:
            answer = client.assume_role_with_web_identity(
                RoleArn=role,
                RoleSessionName=settings.role_session_name,
                WebIdentityToken=token.value,
                DurationSeconds=settings.role_duration_seconds,
            )
            return answer["Credentials"]
        except ClientError as exc:
            code, status, message = _error_of(exc, token.value)
            if not _worth_a_fresh_token(code, status, message):
                raise _web_identity_refused(settings, token.claims, code, message) from None
            last = f"{code}: {message}" if message else code
        except (BotoConnectionError, HTTPClientError) as exc:
            last = f"no answer ({type(exc).__name__})"
        if attempt + 1 < retry.attempts:
            pause = retry.delay(attempt, rng)
            runner.info(
                f"AssumeRoleWithWebIdentity failed ({last}); again in {pause:.1f} s, new token."
            )
            sleep(pause)
    raise CredentialsError(
        "role-to-assume",
        f"AssumeRoleWithWebIdentity for {role} at {client.meta.endpoint_url} failed "
        f"{retry.attempts} times, each with a fresh token (last: {last}).",
        "this is on AWS's or GitHub's side; rerun the job in a few minutes.",
    )


def _worth_a_fresh_token(code: str, status: int, message: str) -> bool:
    """Answers that another attempt, with a new token, can turn into credentials: throttling,
    5xx, STS failing to reach the identity provider, STS failing to fetch GitHub's signing keys
    (a known transient refusal, worded as InvalidIdentityToken), and a token that expired on
    its way (ExpiredTokenException asks for a new one). Every other refusal is final."""
    if code in _TRANSIENT or status >= 500 or code == "ExpiredTokenException":
        return True
    return code == "InvalidIdentityToken" and _VERIFICATION_KEY in message.lower()


def _web_identity_refused(
    settings: Settings, claims: oidc.Claims, code: str, message: str
) -> CredentialsError:
    role = settings.role_to_assume or ""
    said = f"{code}: {message}" if message else code
    seen = f"The token's claims: {claims.describe()}."
    condition = oidc.trust_condition(claims, settings.audience)
    partition, account = _partition_and_account(role)
    if code in _DENIED:
        return CredentialsError(
            "role-to-assume",
            f"STS refused to let GitHub's OIDC token assume {role} ({said}). {seen}",
            f"the trust policy of the role must allow sts:AssumeRoleWithWebIdentity for the "
            f"federated principal arn:{partition}:iam::{account}:oidc-provider/{claims.provider} "
            f"with a condition these claims match, e.g. {condition}",
        )
    if code == "InvalidIdentityToken":
        return CredentialsError(
            "role-to-assume",
            f"STS rejected GitHub's OIDC token for {role} ({said}). {seen}",
            f"account {account} needs the IAM OIDC identity provider "
            f"https://{claims.provider} with the audience {settings.audience!r} (the "
            f"`audience` input), and the role a trust condition such as {condition}",
        )
    return _sts_refused(settings, said, code, message)


# Role chaining ------------------------------------------------------------------------------


def _assume_with_ambient(
    settings: Settings, ambient: botocore.session.Session
) -> CredentialsTypeDef:
    role = settings.role_to_assume or ""
    # Signed with the same credentials on every attempt, so botocore may retry it itself.
    client = _sts_client(ambient, settings, unsigned=False, attempts=STS_RETRY.attempts)
    try:
        answer = client.assume_role(
            RoleArn=role,
            RoleSessionName=settings.role_session_name,
            DurationSeconds=settings.role_duration_seconds,
        )
    except ClientError as exc:
        code, status, message = _error_of(exc, "")
        said = f"{code}: {message}" if message else code
        if code in _DENIED:
            raise CredentialsError(
                "role-to-assume",
                f"the ambient AWS credentials may not assume {role} ({said}).",
                "allow their principal `sts:AssumeRole` in the role's trust policy, or assume "
                f"the role with GitHub's OIDC token instead: add `{PERMISSIONS_YAML}` to the job.",
            ) from None
        if code in ("InvalidClientTokenId", "SignatureDoesNotMatch", "ExpiredToken"):
            raise CredentialsError(
                "role-to-assume",
                f"STS does not accept the ambient AWS credentials ({code}), so {role} cannot "
                "be assumed with them.",
                "fix or refresh the credentials an earlier step set, or drop them and add "
                f"`{PERMISSIONS_YAML}` to the job to use GitHub's OIDC token.",
            ) from None
        if status >= 500 or code in _THROTTLING:
            raise CredentialsError(
                "role-to-assume",
                f"sts:AssumeRole for {role} failed {STS_RETRY.attempts} times (last: {said}).",
                "this is on AWS's side; rerun the job in a few minutes.",
            ) from None
        raise _sts_refused(settings, said, code, message) from None
    except (BotoConnectionError, HTTPClientError) as exc:
        raise CredentialsError(
            "role-to-assume",
            f"STS at {client.meta.endpoint_url} did not answer sts:AssumeRole "
            f"({type(exc).__name__}).",
            "check the runner's network access to STS, or rerun the job.",
        ) from None
    return answer["Credentials"]


# Messages ----------------------------------------------------------------------------------


def _sts_refused(settings: Settings, said: str, code: str, message: str) -> CredentialsError:
    role = settings.role_to_assume or ""
    lowered = message.lower()
    if "duration" in lowered or "session limit" in lowered:
        fix = (
            f"lower `role-duration-seconds` (now {settings.role_duration_seconds}); role "
            "chaining allows at most 3600, and no role more than its maximum session duration."
        )
    elif code == "RegionDisabledException":
        fix = f"activate STS in {settings.region} (IAM, Account settings), or use another region."
    else:
        fix = "check `role-to-assume`, `role-session-name` and the role's trust policy."
    return CredentialsError("role-to-assume", f"STS refused to assume {role} ({said}).", fix)


def _error_of(exc: ClientError, token: str) -> tuple[str, int, str]:
    """The code, HTTP status and a one-line, bounded message of an AWS error. STS never echoes
    the token, but a message is scrubbed of it anyway before it can reach a log."""
    error: Mapping[str, Any] = exc.response.get("Error", {})
    meta: Mapping[str, Any] = exc.response.get("ResponseMetadata", {})
    code = str(error.get("Code") or "Unknown")
    status = int(meta.get("HTTPStatusCode") or 0)
    message = " ".join(str(error.get("Message") or "").split())
    if token:
        message = message.replace(token, "***")
    if len(message) > 300:
        message = message[:297] + "..."
    return code, status, message


def _partition_and_account(role_arn: str) -> tuple[str, str]:
    parts = role_arn.split(":")  # settings checked the form: arn:PARTITION:iam::ACCOUNT:role/...
    return (parts[1], parts[4]) if len(parts) > 4 else ("aws", "ACCOUNT")


def _no_credentials(env: Mapping[str, str]) -> CredentialsError:
    if oidc.available(env):
        fix = (
            "this job may request a GitHub OIDC token: set `role-to-assume:` to the ARN of the "
            "role to assume with it."
        )
    else:
        fix = (
            f"set `role-to-assume:` and add `{PERMISSIONS_YAML}` to the job, or configure AWS "
            "credentials in an earlier step."
        )
    return CredentialsError("credentials", "no AWS credentials were found.", fix)


def fork_pull_request(env: Mapping[str, str]) -> bool | None:
    """True for a run of a pull request from a fork, False when it is not one, None when it is a
    pull-request run whose head cannot be told (no readable event payload)."""
    if env.get("GITHUB_EVENT_NAME", "") not in _FORK_EVENTS:
        return False
    path = env.get("GITHUB_EVENT_PATH", "")
    if not path:
        return None
    try:
        payload = json.loads(Path(path).read_text(encoding="utf-8"))
    except (OSError, ValueError):
        return None
    pull = payload.get("pull_request") if isinstance(payload, dict) else None
    head = pull.get("head") if isinstance(pull, dict) else None
    repo = head.get("repo") if isinstance(head, dict) else None
    if not isinstance(repo, dict):
        # GitHub sends `repo: null` when the fork has since been deleted: a fork all the same.
        return True if isinstance(head, dict) and "repo" in head else None
    if repo.get("fork") is True:
        return True
    full_name = repo.get("full_name")
    base = env.get("GITHUB_REPOSITORY", "")
    return bool(isinstance(full_name, str) and base and full_name.lower() != base.lower())


def _nothing_to_sign_with(role: str, env: Mapping[str, str]) -> CredentialsError:
    fork = fork_pull_request(env)
    if fork:
        return CredentialsError(
            "role-to-assume",
            f"this run is for a pull request from a fork, and GitHub gives such runs no OIDC "
            f"token (nor secrets), so {role} cannot be assumed.",
            "sync on `push` or `workflow_dispatch`, or skip this step for forks with "
            f"`{FORK_GUARD}`.",
        )
    if fork is None:
        return CredentialsError(
            "role-to-assume",
            f"this pull-request run has no GitHub OIDC token to assume {role} with, and no AWS "
            "credentials; pull requests from forks never get a token.",
            f"add `{PERMISSIONS_YAML}` to the job; if the pull request comes from a fork, skip "
            f"this step for forks with `{FORK_GUARD}`.",
        )
    return CredentialsError(
        "role-to-assume",
        f"there is no GitHub OIDC token to assume {role} with ({oidc.REQUEST_URL} is not set), "
        "and no AWS credentials to chain from.",
        f"let the job request a token: add `{PERMISSIONS_YAML}` to the job (a job that sets "
        "`permissions:` gets only what it lists).",
    )
