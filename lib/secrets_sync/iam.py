"""`secrets-sync iam-policy`: the IAM policies a sync needs, as JSON to paste.

The permissions policy grants exactly the Secrets Manager actions a sync calls, on the ARNs under
the name prefix; what it may change or delete is narrowed further by the tags every sync writes
(mapping.MANAGED_BY and mapping.REPOSITORY_TAG). Action names and condition keys follow the
Secrets Manager service authorization reference: BatchGetSecretValue and ListSecrets take no
resource ARN; CreateSecret with tags also needs TagResource, and with replicas
ReplicateSecretToRegions; BatchGetSecretValue also needs GetSecretValue on every secret it reads;
RemoveRegionsFromReplication removes a pruned secret's replicas (AWS deletes no primary that has
any) and a failed replica before it is replicated again. Values are written with PutSecretValue
(it carries our staging label, drift.LABEL), descriptions with UpdateSecret;
UpdateSecretVersionStage labels a created version and moves AWSCURRENT back in a rollback.
The trust policy lets only one repository's workflows (one branch, or one environment) assume
the role with GitHub's OIDC token."""

from __future__ import annotations

import argparse
import json
import re
import sys
from collections.abc import Sequence
from typing import Any, TextIO

from .errors import InputError
from .mapping import MANAGED_BY, REPOSITORY_TAG

OIDC_HOST = "token.actions.githubusercontent.com"
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
            # Our drift label on a version just written, and a rollback's AWSCURRENT: only
            # ever on a secret already tagged ours (tags go on before any label moves).
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


def subject(repository: str, *, branch: str | None = None, environment: str | None = None) -> str:
    """The `sub` claim of GitHub's OIDC token for a job on that branch or in that environment
    (GitHub's default claim format; a repository with a customised one needs its own)."""
    if environment is not None:
        return f"repo:{repository}:environment:{environment}"
    return f"repo:{repository}:ref:refs/heads/{branch or DEFAULT_BRANCH}"


def trust_policy(
    repository: str,
    account_id: str,
    *,
    branch: str | None = None,
    environment: str | None = None,
    audience: str = DEFAULT_AUDIENCE,
    region: str | None = None,
) -> dict[str, Any]:
    provider = f"arn:{partition(region)}:iam::{account_id}:oidc-provider/{OIDC_HOST}"
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
                        f"{OIDC_HOST}:aud": audience,
                        f"{OIDC_HOST}:sub": subject(
                            repository, branch=branch, environment=environment
                        ),
                    }
                },
            }
        ],
    }


def build_parser() -> argparse.ArgumentParser:
    parser = argparse.ArgumentParser(
        prog="secrets-sync iam-policy",
        description="Print the IAM permissions policy a sync needs for a name prefix, and the "
        "trust policy that lets one repository's workflows assume the role with GitHub's OIDC "
        'token, as one JSON object: {"permissions_policy": ..., "trust_policy": ...}.',
    )
    parser.add_argument(
        "--name-prefix",
        required=True,
        metavar="PREFIX",
        help="The action's `name-prefix`: the policy covers only secrets whose names start "
        "with it.",
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
    if not _PREFIX.fullmatch(args.name_prefix):
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
    for name in ("branch", "environment"):
        value = getattr(args, name)
        if value is None:
            continue
        if args.repository is None:
            raise InputError(
                f"--{name}", "pins the trust policy, which needs a repository.", "add --repository."
            )
        if not (_BRANCH if name == "branch" else _ENVIRONMENT).fullmatch(value):
            raise InputError(
                f"--{name}",
                f"{value!r} is not a {name} name.",
                "give it exactly as GitHub shows it (IAM wildcards * and ? are not taken).",
            )
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


def main(argv: Sequence[str], stream: TextIO, err: TextIO | None = None) -> int:
    """Print the policies; 0 on success, 1 for a bad value, 2 (from argparse) for bad usage."""
    err = err or sys.stderr
    args = build_parser().parse_args(list(argv))
    try:
        _validate(args)
    except InputError as exc:
        print(f"secrets-sync iam-policy: {exc.message}", file=err)
        return exc.exit_code
    permissions = permissions_policy(
        args.name_prefix,
        repository=args.repository,
        account_id=args.account_id,
        region=args.region,
        kms_key_arns=args.kms_key_arn,
    )
    trust = (
        trust_policy(
            args.repository,
            args.account_id,
            branch=args.branch,
            environment=args.environment,
            audience=args.audience.strip(),
            region=args.region,
        )
        if args.repository and args.account_id
        else None
    )
    notes = []
    if not args.name_prefix:
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
    elif args.branch is None and args.environment is None:
        notes.append(
            f"the trust policy admits workflows on the branch {DEFAULT_BRANCH}; use --branch or "
            "--environment for another."
        )
    for note in notes:
        print(f"secrets-sync iam-policy: note: {note}", file=err)

    document: dict[str, Any]
    if args.only == "permissions":
        document = permissions
    elif args.only == "trust":
        assert trust is not None  # _validate made sure
        document = trust
    else:
        document = {"permissions_policy": permissions}
        if trust is not None:
            document["trust_policy"] = trust
    stream.write(json.dumps(document, indent=2) + "\n")
    return 0
