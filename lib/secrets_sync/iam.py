"""`secrets-sync iam-policy`: the IAM policies a sync needs, as JSON to paste.

The permissions policy grants exactly the Secrets Manager actions a sync calls, on the ARNs under
the name prefix; what it may change or delete is narrowed further by the tags every sync writes
(mapping.MANAGED_BY and mapping.REPOSITORY_TAG). Action names and condition keys follow the
Secrets Manager service authorization reference: BatchGetSecretValue and ListSecrets take no
resource ARN; CreateSecret with tags also needs TagResource, and with replicas
ReplicateSecretToRegions; BatchGetSecretValue also needs GetSecretValue on every secret it reads;
RemoveRegionsFromReplication removes a pruned secret's replicas (AWS deletes no primary that has
any) and a failed replica before it is replicated again. Values are written with PutSecretValue
(its ClientRequestToken, versions.py, marks the version as ours), descriptions with UpdateSecret;
ListSecretVersionIds finds the version a drift is judged against (drift.py);
UpdateSecretVersionStage moves AWSCURRENT back in a rollback.
GetRandomPassword, which makes a `generate` secret's value, takes no resource ARN either.
The trust policy lets only one repository's workflows (one branch, or one environment) assume
the role with GitHub's OIDC token, whichever of GitHub's two `sub` forms the token carries: the
immutable one with the owner's and repository's IDs, and the legacy one with names only."""

from __future__ import annotations

import argparse
import json
import os
import re
import shlex
import sys
import urllib.parse
from collections.abc import Mapping, Sequence
from dataclasses import dataclass
from typing import Any, Literal, TextIO

from .errors import InputError
from .mapping import MANAGED_BY, REPOSITORY_TAG
from .oidc import DEFAULT_ISSUER, provider_name

OIDC_HOST = provider_name(DEFAULT_ISSUER)
DEFAULT_AUDIENCE = "sts.amazonaws.com"
DEFAULT_BRANCH = "main"

_PREFIX = re.compile(r"^[A-Za-z0-9/_+=.@-]{0,511}$")  # as settings checks `name-prefix`
_REPOSITORY = re.compile(r"^[A-Za-z0-9_.-]+/[A-Za-z0-9_.-]+$")
_ACCOUNT = re.compile(r"^\d{12}$")
_REGION = re.compile(r"^[a-z]{2}(-[a-z]+)+-\d{1,2}$")
_KMS_KEY_ARN = re.compile(
    r"^arn:aws[a-z-]*:kms:[a-z]{2}(-[a-z]+)+-\d{1,2}:\d{12}:key/[A-Za-z0-9-]+$"
)
# A branch or environment name as it appears in the OIDC `sub` claim. IAM wildcards are refused:
# StringEquals takes them literally, so the policy would admit nothing (or not what was meant).
_BRANCH = re.compile(r"^[^\s*?:~^\\\x00-\x1f\x7f]{1,255}$")  # git's ref name rules, in short
_ENVIRONMENT = re.compile(r"^[^\s*?\x00-\x1f\x7f]([^*?\x00-\x1f\x7f]{0,253}[^\s*?\x00-\x1f\x7f])?$")
# GitHub's numeric account and repository IDs (the REST API's `.owner.id` and `.id`).
_ID = re.compile(r"^[1-9][0-9]{0,19}$")
# A default `sub` claim. Owner and repository names never hold `@` or `:`, so the immutable
# form (`OWNER@ID/REPO@ID`) cannot be mistaken for a legacy one, nor the reverse.
_IMMUTABLE_SUB = re.compile(r"^repo:([^/@:]+)@([0-9]+)/([^/@:]+)@([0-9]+):(.+)$")
_LEGACY_SUB = re.compile(r"^repo:([^/@:]+)/([^/@:]+):(.+)$")
LOOKUP_IDS = "gh api repos/{repository} --jq '.owner.id, .id'"
SubjectForm = Literal["immutable", "legacy", "customised"]


@dataclass(frozen=True)
class RepositoryIds:
    """The IDs GitHub's immutable `sub` carries: they survive renames and transfers, and a new
    repository or account that takes a recycled name gets new ones."""

    owner_id: str
    repository_id: str


def is_id(value: str | None) -> bool:
    return value is not None and _ID.fullmatch(value) is not None


class _Usage(InputError):
    """Bad command-line usage found after argparse: exit 2, as SPEC gives for usage."""

    exit_code = 2


def partition(region: str | None) -> str:
    if region is None:
        return "aws"
    if region.startswith("cn-"):
        return "aws-cn"
    if region.startswith("us-gov-"):
        return "aws-us-gov"
    return "aws"


def secret_arn(name_prefix: str, *, region: str | None, account_id: str | None) -> str:
    """Every secret under the prefix. The trailing * also covers the random six-character
    suffix that Secrets Manager adds to each ARN."""
    return (
        f"arn:{partition(region)}:secretsmanager:{region or '*'}:{account_id or '*'}"
        f":secret:{name_prefix}*"
    )


def permissions_policy(
    name_prefix: str,
    *,
    repository: str | None = None,
    account_id: str | None = None,
    region: str | None = None,
    kms_key_arns: Sequence[str] = (),
) -> dict[str, Any]:
    arn = secret_arn(name_prefix, region=region, account_id=account_id)
    managed_by = {f"aws:ResourceTag/{MANAGED_BY[0]}": MANAGED_BY[1]}
    request_tags = {f"aws:RequestTag/{MANAGED_BY[0]}": MANAGED_BY[1]}
    if repository:
        managed_by[f"aws:ResourceTag/{REPOSITORY_TAG}"] = repository
        request_tags[f"aws:RequestTag/{REPOSITORY_TAG}"] = repository
    own_or_unclaimed: dict[str, Any] = (
        # Absent tag: a secret nobody manages yet (adopt-existing). Present: it must be ours,
        # so a secret of another repository under the same prefix is neither read nor changed.
        {"StringEqualsIfExists": {f"aws:ResourceTag/{REPOSITORY_TAG}": repository}}
        if repository
        else {}
    )
    statements: list[dict[str, Any]] = [
        {
            "Sid": "ListAndBatchRead",
            "Effect": "Allow",
            "Action": ["secretsmanager:BatchGetSecretValue", "secretsmanager:ListSecrets"],
            "Resource": "*",  # neither action takes a resource ARN
        },
        {
            # The value of a `generate` secret, asked for just before its create. It takes no
            # resource ARN, and it reads and changes nothing: it only returns random text.
            "Sid": "GenerateValues",
            "Effect": "Allow",
            "Action": "secretsmanager:GetRandomPassword",
            "Resource": "*",
        },
        {
            "Sid": "DescribeUnderPrefix",
            "Effect": "Allow",
            "Action": "secretsmanager:DescribeSecret",
            "Resource": arn,
        },
        {
            "Sid": "CreateOnlyTagged",
            "Effect": "Allow",
            "Action": "secretsmanager:CreateSecret",
            "Resource": arn,
            "Condition": {"StringEquals": request_tags},
        },
        {
            "Sid": "ReadAndWriteOwnOrUnclaimed",
            "Effect": "Allow",
            "Action": [
                "secretsmanager:GetSecretValue",
                "secretsmanager:ListSecretVersionIds",
                "secretsmanager:PutSecretValue",
                "secretsmanager:RemoveRegionsFromReplication",
                "secretsmanager:ReplicateSecretToRegions",
                "secretsmanager:RestoreSecret",
                "secretsmanager:TagResource",
                "secretsmanager:UpdateSecret",
            ],
            "Resource": arn,
            **({"Condition": own_or_unclaimed} if own_or_unclaimed else {}),
        },
        {
            # A rollback's AWSCURRENT: only ever on a secret tagged ours.
            "Sid": "MoveStagingLabelsOfOwn",
            "Effect": "Allow",
            "Action": "secretsmanager:UpdateSecretVersionStage",
            "Resource": arn,
            "Condition": {"StringEquals": managed_by},
        },
        {
            # Tags this action set that left the mapping (tagrecord.py): only ever on a secret
            # already tagged ours, never on one being adopted.
            "Sid": "UntagOwn",
            "Effect": "Allow",
            "Action": "secretsmanager:UntagResource",
            "Resource": arn,
            "Condition": {"StringEquals": managed_by},
        },
        {
            "Sid": "DeleteOwnWithRecoveryWindow",
            "Effect": "Allow",
            "Action": "secretsmanager:DeleteSecret",
            "Resource": arn,
            "Condition": {
                "StringEquals": managed_by,
                "BoolIfExists": {"secretsmanager:ForceDeleteWithoutRecovery": "false"},
            },
        },
    ]
    if kms_key_arns:
        domain = "amazonaws.com.cn" if partition(region) == "aws-cn" else "amazonaws.com"
        statements.append(
            {
                "Sid": "UseSecretsKeysThroughSecretsManager",
                "Effect": "Allow",
                # Decrypt and GenerateDataKey: reading and writing values. Encrypt: a changed
                # `kms-key-id` re-encrypts the AWSCURRENT, AWSPENDING and AWSPREVIOUS versions
                # with the new key (API_UpdateSecret: without kms:Encrypt on it, they are not),
                # after decrypting them with the old one (kms:Decrypt on it).
                "Action": ["kms:Decrypt", "kms:Encrypt", "kms:GenerateDataKey"],
                "Resource": sorted(set(kms_key_arns)),
                "Condition": {"StringLike": {"kms:ViaService": f"secretsmanager.*.{domain}"}},
            }
        )
    return {"Version": "2012-10-17", "Statement": statements}


def subject(
    repository: str,
    *,
    branch: str | None = None,
    environment: str | None = None,
    ids: RepositoryIds | None = None,
) -> str:
    """The `sub` claim of GitHub's OIDC token for a job on that branch or in that environment,
    in GitHub's default format: with `ids`, the immutable form
    `repo:OWNER@OWNER_ID/REPO@REPO_ID:...`; without, the legacy `repo:OWNER/REPO:...`. The names
    keep GitHub's spelling: IAM's StringEquals is case-sensitive."""
    name = repository
    if ids is not None:
        owner, repo = repository.split("/", 1)
        name = f"{owner}@{ids.owner_id}/{repo}@{ids.repository_id}"
    if environment is not None:
        return f"repo:{name}:environment:{environment}"
    return f"repo:{name}:ref:refs/heads/{branch or DEFAULT_BRANCH}"


@dataclass(frozen=True)
class Subject:
    """A `sub` claim read back: which form, and what it pins."""

    form: SubjectForm
    repository: str | None = None  # OWNER/REPO, as GitHub spells them
    ids: RepositoryIds | None = None  # only in the immutable form
    branch: str | None = None
    environment: str | None = None


def read_subject(sub: str) -> Subject:
    """Which of GitHub's default `sub` forms a token carries (customised: neither), and the
    repository, IDs, and branch or environment it names."""
    immutable = _IMMUTABLE_SUB.fullmatch(sub)
    legacy = None if immutable else _LEGACY_SUB.fullmatch(sub)
    if immutable:
        owner, owner_id, repo, repository_id, tail = immutable.groups()
        form: SubjectForm = "immutable"
        ids: RepositoryIds | None = RepositoryIds(owner_id, repository_id)
    elif legacy:
        (owner, repo, tail), form, ids = legacy.groups(), "legacy", None
    else:
        return Subject("customised")
    branch = tail.removeprefix("ref:refs/heads/") if tail.startswith("ref:refs/heads/") else None
    environment = tail.removeprefix("environment:") if tail.startswith("environment:") else None
    return Subject(form, f"{owner}/{repo}", ids, branch, environment)


def trust_policy(
    repository: str,
    account_id: str,
    *,
    ids: RepositoryIds | None,
    branch: str | None = None,
    environment: str | None = None,
    audience: str = DEFAULT_AUDIENCE,
    region: str | None = None,
    issuer: str = DEFAULT_ISSUER,
) -> dict[str, Any]:
    """Admits the repository's tokens for that branch or environment: with `ids` in both `sub`
    forms (a token carries one, by the repository's age and opt-in), without them in the legacy
    form alone. The provider ARN and the condition keys are IAM's name for the issuer: its URL
    without the scheme, path included."""
    name = provider_name(issuer)
    provider = f"arn:{partition(region)}:iam::{account_id}:oidc-provider/{name}"
    subs = [
        subject(repository, branch=branch, environment=environment, ids=form)
        for form in ((ids, None) if ids is not None else (None,))
    ]
    return {
        "Version": "2012-10-17",
        "Statement": [
            {
                "Sid": "GitHubActionsOidc",
                "Effect": "Allow",
                "Principal": {"Federated": provider},
                "Action": "sts:AssumeRoleWithWebIdentity",
                "Condition": {
                    "StringEquals": {
                        f"{name}:aud": audience,
                        f"{name}:sub": subs if len(subs) > 1 else subs[0],
                    }
                },
            }
        ],
    }


def command(
    repository: str,
    account_id: str,
    *,
    ids: RepositoryIds | None,
    branch: str | None = None,
    environment: str | None = None,
    audience: str = DEFAULT_AUDIENCE,
    region: str | None = None,
    issuer: str = DEFAULT_ISSUER,
) -> str:
    """The `iam-policy` command line that prints that trust policy, bare, for messages."""
    words = ["secrets-sync", "iam-policy", "--only", "trust", "--repository", repository]
    if ids is None:
        words.append("--legacy-subject")
    else:
        words += ["--owner-id", ids.owner_id, "--repository-id", ids.repository_id]
    words += ["--account-id", account_id]
    if environment is not None:
        words += ["--environment", environment]
    elif branch is not None:
        words += ["--branch", branch]
    if provider_name(issuer) != OIDC_HOST:
        words += ["--issuer", issuer]
    if audience != DEFAULT_AUDIENCE:
        words += ["--audience", audience]
    if partition(region) != "aws":
        words += ["--region", region or ""]
    return " ".join(shlex.quote(word) for word in words)


def build_parser() -> argparse.ArgumentParser:
    parser = argparse.ArgumentParser(
        prog="secrets-sync iam-policy",
        description="Print the IAM permissions policy a sync needs for a name prefix, and the "
        "trust policy that lets one repository's workflows assume the role with GitHub's OIDC "
        'token, as one JSON object: {"permissions_policy": ..., "trust_policy": ...}.',
    )
    parser.add_argument(
        "--name-prefix",
        metavar="PREFIX",
        help="The action's `name-prefix`: the policy covers only secrets whose names start "
        "with it. Required, except with --only trust.",
    )
    parser.add_argument(
        "--repository",
        metavar="OWNER/REPO",
        help="The repository whose workflow runs the sync: deletes and writes are limited to "
        "secrets tagged with it, and the trust policy admits only it. Without it the trust "
        "policy is left out.",
    )
    parser.add_argument(
        "--account-id",
        metavar="ID",
        help="12-digit AWS account ID (default: * in secret ARNs). The trust policy needs it.",
    )
    parser.add_argument("--region", metavar="REGION", help="AWS region (default: * in ARNs).")
    ref = parser.add_mutually_exclusive_group()
    ref.add_argument(
        "--branch",
        metavar="BRANCH",
        help=f"Branch whose workflows may assume the role (default: {DEFAULT_BRANCH}).",
    )
    ref.add_argument(
        "--environment",
        metavar="NAME",
        help="GitHub environment whose jobs may assume the role, instead of a branch.",
    )
    parser.add_argument(
        "--owner-id",
        metavar="ID",
        help="The numeric ID of the repository's owner, for GitHub's immutable `sub` "
        "(default inside Actions: GITHUB_REPOSITORY_OWNER_ID). Look it up with "
        f"`{LOOKUP_IDS.format(repository='OWNER/REPO')}`.",
    )
    parser.add_argument(
        "--repository-id",
        metavar="ID",
        help="The numeric ID of the repository, for GitHub's immutable `sub` (default inside "
        "Actions: GITHUB_REPOSITORY_ID).",
    )
    parser.add_argument(
        "--legacy-subject",
        action="store_true",
        help="Admit only the legacy `sub` form `repo:OWNER/REPO:...`, without IDs: for GitHub "
        "Enterprise Server, or a repository that predates GitHub's immutable subjects and has "
        "not opted in.",
    )
    parser.add_argument(
        "--issuer",
        default=DEFAULT_ISSUER,
        metavar="URL",
        help=f"The OIDC issuer of the tokens (default: {DEFAULT_ISSUER}); e.g. "
        "https://HOST/_services/token for GitHub Enterprise Server, or the enterprise's custom "
        "issuer.",
    )
    parser.add_argument(
        "--audience",
        default=DEFAULT_AUDIENCE,
        metavar="AUD",
        help=f"The action's `audience` input (default: {DEFAULT_AUDIENCE}).",
    )
    parser.add_argument(
        "--kms-key-arn",
        action="append",
        default=[],
        metavar="ARN",
        help="A customer-managed KMS key the secrets use (`kms-key-id`); repeat for several.",
    )
    parser.add_argument(
        "--only",
        choices=("permissions", "trust"),
        help="Print only that policy document, bare, e.g. for `aws iam create-role "
        "--assume-role-policy-document file://...`.",
    )
    return parser


def _validate(args: argparse.Namespace) -> None:
    if args.name_prefix is not None and not _PREFIX.fullmatch(args.name_prefix):
        raise InputError(
            "--name-prefix",
            f"{args.name_prefix!r} is not a valid secret name prefix.",
            "use at most 511 characters of A-Z a-z 0-9 / _ + = . @ -, as in the action's "
            "`name-prefix`.",
        )
    if args.repository is not None and not _REPOSITORY.fullmatch(args.repository):
        raise InputError(
            "--repository",
            f"{args.repository!r} is not OWNER/REPO.",
            "give the repository as GitHub shows it, e.g. `lornu-ai/app`.",
        )
    if args.account_id is not None and not _ACCOUNT.fullmatch(args.account_id):
        raise InputError(
            "--account-id", f"{args.account_id!r} is not an AWS account ID.", "use 12 digits."
        )
    if args.region is not None and not _REGION.fullmatch(args.region):
        raise InputError(
            "--region", f"{args.region!r} is not an AWS region name.", "use e.g. `us-east-1`."
        )
    for name in ("branch", "environment", "owner_id", "repository_id"):
        value = getattr(args, name)
        if value is None:
            continue
        flag = "--" + name.replace("_", "-")
        if args.repository is None:
            raise InputError(
                flag, "pins the trust policy, which needs a repository.", "add --repository."
            )
        if name.endswith("_id"):
            if not _ID.fullmatch(value):
                raise InputError(
                    flag,
                    f"{value!r} is not a GitHub ID.",
                    "give the number `"
                    + LOOKUP_IDS.format(repository=args.repository)
                    + "` prints (no wildcard stands in for an ID).",
                )
            continue
        if not (_BRANCH if name == "branch" else _ENVIRONMENT).fullmatch(value):
            raise InputError(
                f"--{name}",
                f"{value!r} is not a {name} name.",
                "give it exactly as GitHub shows it (IAM wildcards * and ? are not taken).",
            )
    _validate_issuer(args.issuer)
    if not args.audience.strip():
        raise InputError("--audience", "is empty.", f"leave it out to use {DEFAULT_AUDIENCE}.")
    for arn in args.kms_key_arn:
        if not _KMS_KEY_ARN.fullmatch(arn):
            raise InputError(
                "--kms-key-arn",
                f"{arn!r} is not a KMS key ARN.",
                "use arn:aws:kms:REGION:ACCOUNT:key/KEY-ID (an alias does not work in a policy).",
            )
    if args.only == "trust" and (args.repository is None or args.account_id is None):
        raise InputError(
            "--only trust",
            "the trust policy names the repository and the account's OIDC provider.",
            "add --repository and --account-id.",
        )


def _validate_issuer(issuer: str) -> None:
    """IAM takes an https URL with a host and maybe a path: no port, query, fragment or user."""
    parts = urllib.parse.urlsplit(issuer)
    try:
        port = parts.port
    except ValueError:
        port = -1
    if (
        parts.scheme != "https"
        or not parts.hostname
        or port is not None
        or parts.query
        or parts.fragment
        or "@" in parts.netloc
        or "*" in issuer
        or any(c.isspace() for c in issuer)
    ):
        raise InputError(
            "--issuer",
            f"{issuer!r} is not an OIDC issuer URL as IAM takes one.",
            "give the `iss` of the tokens: https://HOST or https://HOST/PATH, without a port, "
            "query or wildcard (GitHub Enterprise Server: https://HOST/_services/token).",
        )


def repository_ids(args: argparse.Namespace, env: Mapping[str, str]) -> RepositoryIds | None:
    """The IDs for the immutable `sub`: given, or inside Actions those of the repository the job
    runs in, when that is the one asked for. None with --legacy-subject. Raises when a trust
    policy is to be printed and they are missing, naming the command that looks them up."""
    given = (args.owner_id, args.repository_id)
    if args.legacy_subject:
        if given != (None, None):
            raise _Usage(
                "--legacy-subject",
                "admits the legacy `sub` alone, and the IDs are for the immutable one.",
                "give either --legacy-subject or --owner-id and --repository-id.",
            )
        return None
    if None not in given:
        return RepositoryIds(*given)
    if given != (None, None):
        missing = "--repository-id" if args.repository_id is None else "--owner-id"
        raise _Usage(
            missing,
            "is missing: the immutable `sub` names both the owner's ID and the repository's.",
            f"look both up with `{LOOKUP_IDS.format(repository=args.repository)}`.",
        )
    if args.repository is None:
        return None
    if env.get("GITHUB_ACTIONS") == "true":
        here = env.get("GITHUB_REPOSITORY", "")
        owner_id = env.get("GITHUB_REPOSITORY_OWNER_ID", "")
        repository_id = env.get("GITHUB_REPOSITORY_ID", "")
        if here.lower() == args.repository.lower() and here != args.repository:
            raise InputError(
                "--repository",
                f"{args.repository!r} is spelt {here!r} by GitHub (GITHUB_REPOSITORY), and the "
                "`sub` carries GitHub's spelling, which IAM compares case-sensitively.",
                f"give --repository {here}.",
            )
        if here == args.repository and _ID.fullmatch(owner_id) and _ID.fullmatch(repository_id):
            return RepositoryIds(owner_id, repository_id)
    if args.account_id is None:
        return None  # no trust policy is printed, so no IDs are needed
    raise _Usage(
        "--owner-id, --repository-id",
        f"the trust policy needs {args.repository}'s IDs for GitHub's immutable `sub` "
        "(repo:OWNER@OWNER_ID/REPO@REPO_ID:...).",
        f"look them up with `{LOOKUP_IDS.format(repository=args.repository)}` and pass "
        "--owner-id and --repository-id; or pass --legacy-subject if the repository keeps the "
        "legacy `sub` (GitHub Enterprise Server, or an older repository not opted in).",
    )


def main(
    argv: Sequence[str],
    stream: TextIO,
    err: TextIO | None = None,
    env: Mapping[str, str] | None = None,
) -> int:
    """Print the policies; 0 on success, 1 for a bad value, 2 for bad usage."""
    err = err or sys.stderr
    env = os.environ if env is None else env
    parser = build_parser()
    args = parser.parse_args(list(argv))
    if args.name_prefix is None and args.only != "trust":
        parser.error("the following arguments are required: --name-prefix")  # exits 2
    try:
        _validate(args)
        ids = repository_ids(args, env)
    except InputError as exc:
        print(f"secrets-sync iam-policy: {exc.message}", file=err)
        return exc.exit_code
    permissions = (
        permissions_policy(
            args.name_prefix,
            repository=args.repository,
            account_id=args.account_id,
            region=args.region,
            kms_key_arns=args.kms_key_arn,
        )
        if args.only != "trust"
        else None
    )
    trust = (
        trust_policy(
            args.repository,
            args.account_id,
            ids=ids,
            branch=args.branch,
            environment=args.environment,
            audience=args.audience.strip(),
            region=args.region,
            issuer=args.issuer.rstrip("/"),
        )
        if args.repository and args.account_id
        else None
    )
    notes = []
    if args.name_prefix == "" and permissions is not None:
        notes.append(
            "no name prefix: the policy covers every secret of the account, within its tag "
            "conditions. A prefix such as `myapp/` keeps a sync to its own secrets."
        )
    if not args.repository:
        notes.append(
            "no --repository: the policy cannot tell this repository's secrets from another's "
            "(deletes need only ManagedBy=secrets-sync), and the trust policy is left out."
        )
    elif not args.account_id:
        notes.append("no --account-id: the trust policy is left out.")
    else:
        if args.branch is None and args.environment is None:
            notes.append(
                f"the trust policy admits workflows on the branch {DEFAULT_BRANCH}; use --branch "
                "or --environment for another."
            )
        if ids is not None and args.owner_id is None:
            notes.append(
                f"the IDs are this job's repository's (GITHUB_REPOSITORY_OWNER_ID "
                f"{ids.owner_id}, GITHUB_REPOSITORY_ID {ids.repository_id})."
            )
    for note in notes:
        print(f"secrets-sync iam-policy: note: {note}", file=err)

    document: dict[str, Any]
    if args.only == "trust":
        assert trust is not None  # _validate made sure
        document = trust
    else:
        assert permissions is not None  # only --only trust leaves it out
        if args.only == "permissions":
            document = permissions
        else:
            document = {"permissions_policy": permissions}
            if trust is not None:
                document["trust_policy"] = trust
    stream.write(json.dumps(document, indent=2) + "\n")
    return 0
