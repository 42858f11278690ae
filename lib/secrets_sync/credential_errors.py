"""Why the run has no credentials, and what to change: STS's answers read and explained.

credentials.py finds the credentials; this module turns what went wrong on the way (an STS
refusal, a run with nothing to sign with, a broken ambient chain) into a CredentialsError that
names the fix: the token's claims beside the trust condition they would match, the YAML a job
lacks, the guard for pull requests from forks. It reads STS's answers, never makes a call.
"""

from __future__ import annotations

import json
from collections.abc import Mapping
from pathlib import Path
from typing import Any

from botocore.exceptions import BotoCoreError, ClientError, ProfileNotFound

from . import iam, oidc
from .errors import CredentialsError
from .settings import Settings

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


# Reading an answer --------------------------------------------------------------------------


def error_of(exc: ClientError, token: str) -> tuple[str, int, str]:
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


def worth_a_fresh_token(code: str, status: int, message: str) -> bool:
    """Answers that another attempt, with a new token, can turn into credentials: throttling,
    5xx, STS failing to reach the identity provider, STS failing to fetch GitHub's signing keys
    (a known transient refusal, worded as InvalidIdentityToken), and a token that expired on
    its way (ExpiredTokenException asks for a new one). Every other refusal is final."""
    if code in _TRANSIENT or status >= 500 or code == "ExpiredTokenException":
        return True
    return code == "InvalidIdentityToken" and _VERIFICATION_KEY in message.lower()


# Web identity -------------------------------------------------------------------------------


def web_identity_refused(
    settings: Settings, claims: oidc.Claims, code: str, message: str
) -> CredentialsError:
    role = settings.role_to_assume or ""
    said = f"{code}: {message}" if message else code
    seen = f"The token's claims: {claims.describe()}."
    condition = oidc.trust_condition(claims, settings.audience)
    partition, account = _partition_and_account(role)
    if code in _DENIED:
        form, first_cause = _subject_diagnosis(settings, claims, account)
        return CredentialsError(
            "role-to-assume",
            f"STS refused to let GitHub's OIDC token assume {role} ({said}). {form} {seen}",
            f"{first_cause} Otherwise the trust policy of the role must allow "
            f"sts:AssumeRoleWithWebIdentity for the federated principal "
            f"arn:{partition}:iam::{account}:oidc-provider/{claims.provider} with a condition "
            f"these claims match (the branch or environment, the audience), e.g. {condition}",
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


def _subject_diagnosis(settings: Settings, claims: oidc.Claims, account: str) -> tuple[str, str]:
    """What form the token's `sub` is in, and the first cause of a refusal: a trust policy
    written for GitHub's other `sub` form (repositories switch to the immutable one when created,
    renamed or transferred since mid-2026, or opted in), with the `iam-policy` command that
    prints one admitting both, the IDs taken from the token's own claims."""
    if not claims.sub:
        return "The token carries no readable `sub`.", "check the trust policy's `sub` condition."
    sub = iam.read_subject(claims.sub)
    if sub.form == "customised":
        return (
            f"Its sub {claims.sub!r} is in neither of GitHub's default forms (a customised "
            "subject claim).",
            "the first suspect is a trust policy written for a default form of `sub`: pin the "
            "customised one shown here instead.",
        )
    other = (
        "legacy form repo:OWNER/REPO:..."
        if sub.form == "immutable"
        else "immutable form repo:OWNER@OWNER_ID/REPO@REPO_ID:..."
    )
    described = (
        "GitHub's immutable form, with the owner's and repository's IDs"
        if sub.form == "immutable"
        else "GitHub's legacy form, names only, without IDs"
    )
    ids = sub.ids
    if iam.is_id(claims.repository_owner_id) and iam.is_id(claims.repository_id):
        ids = iam.RepositoryIds(claims.repository_owner_id or "", claims.repository_id or "")
    # GitHub Enterprise Server's issuer: its tokens keep the legacy form, there is no other.
    server = sub.form == "legacy" and claims.provider.endswith("/_services/token")
    suspect = (
        f"a trust policy written for the other form (the {other}), which this sub cannot match"
    )
    if server:
        ids = None
        suspect = (
            f"a trust policy written for another provider or form than this GitHub Enterprise "
            f"Server's (the provider {claims.provider}, the legacy form alone)"
        )
    repository = claims.repository or sub.repository or "OWNER/REPO"
    command = iam.command(
        repository,
        account,
        ids=ids,
        branch=sub.branch,
        environment=sub.environment,
        audience=settings.audience,
        region=settings.region,
        issuer=claims.iss or oidc.DEFAULT_ISSUER,
    )
    admitted = "both forms of this repository's sub" if ids is not None else "this sub"
    role_name = (settings.role_to_assume or "").rsplit("/", 1)[-1] or "ROLE"
    pinned = (
        ""
        if sub.branch is not None or sub.environment is not None
        else " (this job's sub names neither a branch nor an environment, which the command "
        "pins: run the sync on a branch or in an environment)"
    )
    return (
        f"Its sub {claims.sub!r} is in {described}.",
        f"the first suspect is {suspect}: print one that admits {admitted} with "
        f"`{command} > trust.json`{pinned} and set it with `aws iam "
        f"update-assume-role-policy --role-name {role_name} --policy-document "
        "file://trust.json`.",
    )


def web_identity_exhausted(role: str, endpoint: str, attempts: int, last: str) -> CredentialsError:
    return CredentialsError(
        "role-to-assume",
        f"AssumeRoleWithWebIdentity for {role} at {endpoint} failed {attempts} times, each with "
        f"a fresh token (last: {last}).",
        "this is on AWS's or GitHub's side; rerun the job in a few minutes.",
    )


# Role chaining ------------------------------------------------------------------------------


def chaining_refused(settings: Settings, exc: ClientError, attempts: int) -> CredentialsError:
    """sts:AssumeRole signed with the ambient credentials was refused (after `attempts`)."""
    role = settings.role_to_assume or ""
    code, status, message = error_of(exc, "")
    said = f"{code}: {message}" if message else code
    if code in _DENIED:
        return CredentialsError(
            "role-to-assume",
            f"the ambient AWS credentials may not assume {role} ({said}).",
            "allow their principal `sts:AssumeRole` in the role's trust policy, or assume "
            f"the role with GitHub's OIDC token instead: add `{PERMISSIONS_YAML}` to the job.",
        )
    if code in ("InvalidClientTokenId", "SignatureDoesNotMatch", "ExpiredToken"):
        return CredentialsError(
            "role-to-assume",
            f"STS does not accept the ambient AWS credentials ({code}), so {role} cannot "
            "be assumed with them.",
            "fix or refresh the credentials an earlier step set, or drop them and add "
            f"`{PERMISSIONS_YAML}` to the job to use GitHub's OIDC token.",
        )
    if status >= 500 or code in _THROTTLING:
        return CredentialsError(
            "role-to-assume",
            f"sts:AssumeRole for {role} failed {attempts} times (last: {said}).",
            "this is on AWS's side; rerun the job in a few minutes.",
        )
    return _sts_refused(settings, said, code, message)


def sts_unreachable(endpoint: str, exc: BaseException) -> CredentialsError:
    return CredentialsError(
        "role-to-assume",
        f"STS at {endpoint} did not answer sts:AssumeRole ({type(exc).__name__}).",
        "check the runner's network access to STS, or rerun the job.",
    )


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


def _partition_and_account(role_arn: str) -> tuple[str, str]:
    parts = role_arn.split(":")  # settings checked the form: arn:PARTITION:iam::ACCOUNT:role/...
    return (parts[1], parts[4]) if len(parts) > 4 else ("aws", "ACCOUNT")


# Nothing to sign with -----------------------------------------------------------------------


def ambient_failed(exc: BotoCoreError) -> CredentialsError:
    """The AWS credential chain of the step's environment broke (rather than found nothing)."""
    if isinstance(exc, ProfileNotFound):
        return CredentialsError(
            "AWS_PROFILE",
            f"names the profile {exc.kwargs.get('profile')!r}, which no AWS config file holds.",
            "unset AWS_PROFILE, or configure that profile in an earlier step.",
        )
    return CredentialsError(
        "credentials",
        f"the AWS credential chain failed ({type(exc).__name__}).",
        "check the AWS settings of the earlier steps, or use `role-to-assume:` with "
        f"`{PERMISSIONS_YAML}`.",
    )


def no_credentials(env: Mapping[str, str]) -> CredentialsError:
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


def nothing_to_sign_with(role: str, env: Mapping[str, str]) -> CredentialsError:
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
