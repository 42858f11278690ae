"""AWS credentials and clients. Nothing below this module knows which path made the session.

Paths, in order: `role-to-assume` with GitHub's OIDC variables → AssumeRoleWithWebIdentity
(unsigned; ambient AWS settings ignored); `role-to-assume` with ambient credentials →
sts:AssumeRole signed with them (role chaining); no role → the ambient credentials themselves.
A role with nothing to sign for it fails at once, saying what to add to the workflow
(credential_errors.py words every such failure).

The SDK is boto3: every client comes from a `boto3.session.Session`. Each wraps a botocore
session set up here, because what boto3 does not expose is set on that: the credential provider
that renews the role's credentials, the isolation from AWS profiles and config files, and STS's
regional endpoint.
"""

from __future__ import annotations

import os
import random
import time
from collections.abc import Callable, Mapping
from typing import TYPE_CHECKING, Literal

import boto3.session
import botocore.session
from botocore import UNSIGNED
from botocore.config import Config
from botocore.credentials import CredentialProvider, CredentialResolver, RefreshableCredentials
from botocore.exceptions import (
    BotoCoreError,
    ClientError,
    CredentialRetrievalError,
    HTTPClientError,
)
from botocore.exceptions import (
    ConnectionError as BotoConnectionError,
)
from botocore.parsers import ResponseParserFactory

from . import credential_errors as explain
from . import limiter, oidc, self_hosted, tls
from .errors import AwsError, CredentialsError
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


def session(settings: Settings, env: Mapping[str, str], runner: Runner) -> boto3.session.Session:
    """The boto3 session for the run, from whichever path the inputs and environment select,
    its account checked against `allowed-account-ids` before any Secrets Manager call."""
    role = settings.role_to_assume
    if role is None:
        ambient = _ambient(settings, env, runner)
        if ambient is None:
            raise explain.no_credentials(env)
        found = ambient
        _guard_account(settings, runner, lambda: _caller_account(found, settings))
        return _sdk(found, settings)
    # The assumed role's ARN, from the answer that gave its credentials: its account is the
    # account guard's, with no call of its own.
    assumed: list[str] = []
    if oidc.available(env):
        core = _isolated_core()
        how = "GitHub's OIDC token"

        def assume() -> CredentialsTypeDef:
            creds, arn = _assume_with_web_identity(settings, env, runner)
            assumed.append(arn)
            return creds

    else:
        ambient = _ambient(settings, env, runner)
        if ambient is None:
            raise explain.nothing_to_sign_with(role, env)
        core = botocore.session.Session()
        how = "the ambient AWS credentials (role chaining)"

        def assume() -> CredentialsTypeDef:
            creds, arn = _assume_with_ambient(settings, ambient)
            assumed.append(arn)
            return creds

    creds = _refreshable(assume, runner, f"{role} with {how}")
    runner.info(f"Assumed {role} with {how}.")
    core.register_component("credential_provider", CredentialResolver([_Assumed(creds)]))
    _guard_account(
        settings, runner, lambda: _account_of(assumed[0]) or _caller_account(core, settings)
    )
    return _sdk(core, settings)


# The account guard ----------------------------------------------------------------------------


def _guard_account(settings: Settings, runner: Runner, account: Callable[[], str]) -> None:
    """Stop the run when `allowed-account-ids` is set and the credentials belong to an account
    it does not list. `account` is asked only then."""
    allowed = settings.allowed_account_ids
    if not allowed:
        return
    got = account()
    if got not in allowed:
        raise CredentialsError(
            "allowed-account-ids",
            f"the AWS credentials belong to account {got}, which is not one of "
            f"{', '.join(allowed)}; nothing was read or written.",
            "check `role-to-assume` (or the credentials of the earlier steps); "
            f"add {got} to `allowed-account-ids` only if this repository may write there.",
        )
    runner.info(f"The credentials belong to account {got}, one of `allowed-account-ids`.")


def _account_of(arn: str) -> str | None:
    """The account of an ARN such as the AssumedRoleUser's arn:aws:sts::ACCOUNT:assumed-role/R/S
    (https://docs.aws.amazon.com/STS/latest/APIReference/API_AssumedRoleUser.html)."""
    parts = arn.split(":")
    return parts[4] if len(parts) > 5 and len(parts[4]) == 12 and parts[4].isdigit() else None


def _caller_account(core: botocore.session.Session, settings: Settings) -> str:
    """sts:GetCallerIdentity's Account, which needs no permission (any principal may call it:
    https://docs.aws.amazon.com/STS/latest/APIReference/API_GetCallerIdentity.html)."""
    client = _sts_client(core, settings, unsigned=False, attempts=STS_RETRY.attempts)
    try:
        return client.get_caller_identity()["Account"]
    except ClientError as exc:
        code, _, message = explain.error_of(exc, "")
        raise CredentialsError(
            "allowed-account-ids",
            f"STS would not say which account the credentials belong to "
            f"(GetCallerIdentity: {code}: {message}).",
            "check the AWS credentials of the earlier steps, or leave out `allowed-account-ids`.",
        ) from None
    except (BotoConnectionError, HTTPClientError) as exc:
        raise explain.sts_unreachable(client.meta.endpoint_url, exc) from None


def _sdk(core: botocore.session.Session, settings: Settings) -> boto3.session.Session:
    """The boto3 session over a botocore session set up here: made once per botocore session
    (boto3 registers its handlers on it each time it wraps one)."""
    return boto3.session.Session(botocore_session=core, region_name=settings.region)


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


# A renewal that failed is tried again on a later call, no sooner than RENEW_PAUSE seconds after
# it: at most a few STS calls in the advisory window however many threads sign requests. The
# first call inside the mandatory window tries once more whatever the pause: an advisory failure
# (a throttle, an STS hiccup) must not end a long run whose credentials could still be renewed.
RENEW_PAUSE = 30.0


def _refreshable(
    assume: Callable[[], CredentialsTypeDef],
    runner: Runner,
    what: str,
    *,
    clock: Callable[[], float] = time.time,
) -> RefreshableCredentials:
    """Credentials that botocore renews through `assume` as their end nears. The first call
    happens here and its errors reach the user as they are; a later failure becomes botocore's
    own error, so the secret being written fails with it and the others (and the report) stand.

    botocore asks for a renewal on every call inside the advisory window (keeping the old
    credentials when it fails) and insists inside the mandatory one (failing the call)."""
    ends = [0.0]  # when the credentials in use end (epoch seconds)

    def metadata() -> dict[str, str]:
        creds = assume()
        runner.add_masks([creds["SecretAccessKey"], creds["SessionToken"], creds["AccessKeyId"]])
        ends[0] = creds["Expiration"].timestamp()
        return {
            "access_key": creds["AccessKeyId"],
            "secret_key": creds["SecretAccessKey"],
            "token": creds["SessionToken"],
            "expiry_time": creds["Expiration"].isoformat(),
        }

    failed = _Failed()

    def refresh() -> dict[str, str]:
        now = clock()
        mandatory = ends[0] - now < REFRESH_MANDATORY_SECONDS
        if failed.problem and not failed.may_retry(now, mandatory=mandatory):
            raise CredentialRetrievalError(provider=_Assumed.METHOD, error_msg=failed.problem)
        try:
            fresh = metadata()
        except CredentialsError as exc:
            failed.record(now, exc.problem, mandatory=mandatory)
            meanwhile = "" if mandatory else "; the current ones serve until then"
            runner.warning(
                f"Could not renew the credentials of {what}: {exc.message} (a later call tries "
                f"again after {RENEW_PAUSE:g} s{meanwhile})"
            )
            raise CredentialRetrievalError(
                provider=_Assumed.METHOD, error_msg=exc.problem
            ) from None
        failed.problem = ""
        runner.info(f"Renewed the credentials of {what} (now valid until {fresh['expiry_time']}).")
        return fresh

    return RefreshableCredentials.create_from_metadata(
        metadata(),
        refresh,
        _Assumed.METHOD,
        advisory_timeout=REFRESH_ADVISORY_SECONDS,
        mandatory_timeout=REFRESH_MANDATORY_SECONDS,
    )


class _Failed:
    """The last renewal that failed, if any: when, why, and whether it was in the mandatory
    window. Only botocore's refresh lock's holder touches it."""

    def __init__(self) -> None:
        self.problem = ""
        self.at = 0.0
        self.mandatory = False

    def may_retry(self, now: float, *, mandatory: bool) -> bool:
        return now - self.at >= RENEW_PAUSE or (mandatory and not self.mandatory)

    def record(self, now: float, problem: str, *, mandatory: bool) -> None:
        self.problem, self.at, self.mandatory = problem, now, mandatory


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


def secretsmanager(sess: boto3.session.Session, settings: Settings) -> SecretsManagerClient:
    core = sess._session
    # Dates stay as AWS sends them (epoch seconds), for this client only: the one date read is
    # DeletedDate, for whether it is there, and botocore's default makes a datetime in the local
    # zone of each, some 4,000 in a no-op of 1,000 secrets (0.1 s of CPU). The client keeps the
    # factory it is made with (botocore's ResponseParserFactory.set_parser_defaults); STS
    # clients made later from this session, as a renewal makes them, get the default again.
    factory = core.get_component("response_parser_factory")
    raw = ResponseParserFactory()
    raw.set_parser_defaults(timestamp_parser=_as_sent)
    core.register_component("response_parser_factory", raw)
    try:
        client = sess.client(
            "secretsmanager",
            region_name=settings.region,
            config=client_config(settings),
            endpoint_url=settings.endpoints.get("secretsmanager"),
            verify=tls.botocore_verify(settings.ca_bundle, core.get_config_variable("ca_bundle")),
        )
    finally:
        core.register_component("response_parser_factory", factory)
    limiter.stop_retrying_quotas(client)  # final at once, whatever the retry mode
    tls.refuse_retries(client, settings.ca_bundle, AwsError)
    if settings.retry_mode == "paced":
        limiter.install(client, limiter.Pacer())
    return client


def _as_sent(value: object) -> object:
    return value


# The ambient chain --------------------------------------------------------------------------


def _ambient(
    settings: Settings, env: Mapping[str, str], runner: Runner
) -> botocore.session.Session | None:
    """Credentials from the step's environment, else botocore's chain; None when there are none."""
    key_id = env.get("AWS_ACCESS_KEY_ID") or None
    secret_key = env.get("AWS_SECRET_ACCESS_KEY") or None
    token = env.get("AWS_SESSION_TOKEN") or None
    if key_id and secret_key:
        runner.add_masks(s for s in (secret_key, token) if s)
        keyed = _isolated_core()
        keyed.set_credentials(key_id, secret_key, token)
        return keyed
    # What a self-hosted runner's host has and this container cannot reach is said as such
    # (self_hosted.py), not as "no credentials".
    missing = self_hosted.token_file_missing(env)
    if missing is not None:
        raise missing
    try:
        ambient = botocore.session.Session()
        ambient.set_config_variable("region", settings.region)
        found = ambient.get_credentials()
        if found is None:
            hop_limit = self_hosted.imds_hop_limit(env)
            if hop_limit is not None:
                raise hop_limit
            return None
        frozen = found.get_frozen_credentials()
    except BotoCoreError as exc:
        unreachable = self_hosted.endpoint_unreachable(env, type(exc).__name__)
        raise (unreachable or explain.ambient_failed(exc)) from None
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
    core: botocore.session.Session, settings: Settings, *, unsigned: bool, attempts: int
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
    # another region fail when that region is down. (A botocore setting: boto3 has no say.)
    core.set_config_variable("sts_regional_endpoints", "regional")
    client = _sdk(core, settings).client(
        "sts",
        region_name=settings.region,
        config=config,
        endpoint_url=settings.endpoints.get("sts"),
        verify=tls.botocore_verify(settings.ca_bundle, core.get_config_variable("ca_bundle")),
    )
    tls.refuse_retries(client, settings.ca_bundle, CredentialsError)
    return client


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
) -> tuple[CredentialsTypeDef, str]:
    """The role's credentials and the assumed role's ARN (AssumedRoleUser.Arn)."""
    role = settings.role_to_assume or ""
    client = _sts_client(_isolated_core(), settings, unsigned=True, attempts=1)
    timeout = min(TOKEN_TIMEOUT_CAP, settings.timeout_seconds)
    last = ""
    for attempt in range(retry.attempts):
        token = oidc.fetch_token(
            env, settings.audience, runner, timeout=timeout, ca_bundle=settings.ca_bundle
        )
        try:
            answer = client.assume_role_with_web_identity(
                RoleArn=role,
                RoleSessionName=settings.role_session_name,
                WebIdentityToken=token.value,
                DurationSeconds=settings.role_duration_seconds,
            )
            return answer["Credentials"], answer["AssumedRoleUser"]["Arn"]
        except ClientError as exc:
            code, status, message = explain.error_of(exc, token.value)
            if not explain.worth_a_fresh_token(code, status, message):
                raise explain.web_identity_refused(settings, token.claims, code, message) from None
            last = f"{code}: {message}" if message else code
        except (BotoConnectionError, HTTPClientError) as exc:
            last = f"no answer ({type(exc).__name__})"
        if attempt + 1 < retry.attempts:
            pause = retry.delay(attempt, rng)
            runner.info(
                f"AssumeRoleWithWebIdentity failed ({last}); again in {pause:.1f} s, new token."
            )
            sleep(pause)
    raise explain.web_identity_exhausted(role, client.meta.endpoint_url, retry.attempts, last)


# Role chaining ------------------------------------------------------------------------------


def _assume_with_ambient(
    settings: Settings, ambient: botocore.session.Session
) -> tuple[CredentialsTypeDef, str]:
    # Signed with the same credentials on every attempt, so botocore may retry it itself.
    client = _sts_client(ambient, settings, unsigned=False, attempts=STS_RETRY.attempts)
    try:
        answer = client.assume_role(
            RoleArn=settings.role_to_assume or "",
            RoleSessionName=settings.role_session_name,
            DurationSeconds=settings.role_duration_seconds,
        )
    except ClientError as exc:
        raise explain.chaining_refused(settings, exc, STS_RETRY.attempts) from None
    except (BotoConnectionError, HTTPClientError) as exc:
        raise explain.sts_unreachable(client.meta.endpoint_url, exc) from None
    return answer["Credentials"], answer["AssumedRoleUser"]["Arn"]
