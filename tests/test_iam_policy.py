"""`secrets-sync iam-policy`: the printed JSON, its scoping and conditions, and that the
permissions policy is both sufficient and minimal for real syncs.

moto does not enforce IAM, so the tests do: a small evaluator of the policy language this command
uses (Allow statements; Action and Resource globs; StringEquals, StringLike, Bool and their
IfExists forms) sits in the recording proxy and judges every Secrets Manager call of a real run,
translated into the IAM actions and condition keys AWS's service authorization reference gives for
that API operation. A denied call gets AWS's AccessDeniedException. Runs that create, update,
adopt, tag, replicate, restore and prune must pass untouched, and must use every action granted."""

from __future__ import annotations

import io
import json
import re
import shlex
import subprocess
import sys
import threading
from dataclasses import dataclass, field
from typing import Any

import pytest

from secrets_sync import iam
from secrets_sync.mapping import MANAGED_BY, REPOSITORY_TAG
from tests.support.action import ENTRYPOINT, REPOSITORY, assert_no_leak, assert_run_clean
from tests.support.oidc import (
    NOT_AUTHORIZED,
    TrustingSts,
    github_claims,
    make_jwt,
    read_payload,
    trust_admits,
)
from tests.support.proxy import Call

ACCOUNT = "123456789012"  # moto's default account
REGION = "us-east-1"
PREFIX = "lornu-ai/"
OWNER_ID, REPOSITORY_ID = "1234567", "7654321"  # the local token service's, by default
IDS = ["--owner-id", OWNER_ID, "--repository-id", REPOSITORY_ID]
ARGS = ["--name-prefix", PREFIX, "--repository", REPOSITORY, "--account-id", ACCOUNT, *IDS]
OURS = {MANAGED_BY[0]: MANAGED_BY[1], REPOSITORY_TAG: REPOSITORY}


def arn(name: str, *, region: str = REGION, account: str = ACCOUNT) -> str:
    return f"arn:aws:secretsmanager:{region}:{account}:secret:{name}-AbC123"


# A policy evaluator, for the subset of the policy language iam.py writes -------------------------


@dataclass(frozen=True)
class Request:
    action: str
    resource: str
    context: dict[str, str] = field(default_factory=dict)


def _glob(pattern: str, text: str, *, case: bool = True) -> bool:
    regex = "".join(".*" if c == "*" else "." if c == "?" else re.escape(c) for c in pattern)
    return re.fullmatch(regex, text, 0 if case else re.IGNORECASE) is not None


def _listed(value: str | list[str]) -> list[str]:
    return [value] if isinstance(value, str) else value


def _condition_holds(operator: str, key: str, wanted: str | list[str], ctx: dict[str, str]):
    base, if_exists = operator.removesuffix("IfExists"), operator.endswith("IfExists")
    actual = ctx.get(key.lower())
    if actual is None:
        return if_exists
    wanted = _listed(wanted)
    if base == "StringEquals":
        return actual in wanted
    if base == "StringLike":
        return any(_glob(w, actual) for w in wanted)
    if base == "Bool":
        return actual.lower() in [w.lower() for w in wanted]
    raise AssertionError(f"the evaluator does not know the operator {operator}; teach it")


def statement_allows(statement: dict[str, Any], request: Request) -> bool:
    assert statement["Effect"] == "Allow"
    if not any(_glob(a, request.action, case=False) for a in _listed(statement["Action"])):
        return False
    if not any(_glob(r, request.resource) for r in _listed(statement["Resource"])):
        return False
    return all(
        _condition_holds(operator, key, wanted, request.context)
        for operator, keys in statement.get("Condition", {}).items()
        for key, wanted in keys.items()
    )


def allowed(policy: dict[str, Any], request: Request) -> bool:
    return any(statement_allows(s, request) for s in policy["Statement"])


def granted_actions(policy: dict[str, Any]) -> set[str]:
    return {a for s in policy["Statement"] for a in _listed(s["Action"])}


# From a Secrets Manager API call to the IAM requests it makes --------------------------------


def _tag_context(prefix: str, tags: dict[str, str]) -> dict[str, str]:
    return {f"aws:{prefix}/{k}".lower(): v for k, v in tags.items()}


def requests_for(call: Call, lookup: Any) -> list[Request]:
    """The IAM actions, resources and condition keys of one call, per the "API operations"
    table of the service authorization reference. `lookup(secret_id)` gives the secret's ARN
    and its tags before the call, or None when it does not exist."""
    op, body = call.operation, call.body
    action = f"secretsmanager:{op}"

    def on(secret_id: str, name: str = action, **extra: str) -> Request:
        found = lookup(secret_id)
        target, tags = found if found else (arn(secret_id), {})
        return Request(name, target, {**_tag_context("ResourceTag", tags), **extra})

    if op in ("ListSecrets", "GetRandomPassword"):  # neither takes a resource
        return [Request(action, "*")]
    if op == "BatchGetSecretValue":
        out = [Request(action, "*")]
        out += [on(i, "secretsmanager:GetSecretValue") for i in body.get("SecretIdList", [])]
        if body.get("Filters"):
            out.append(Request("secretsmanager:ListSecrets", "*"))
        return out
    if op == "CreateSecret":
        new = arn(body["Name"])
        tags = {t["Key"]: t["Value"] for t in body.get("Tags", [])}
        ctx = _tag_context("RequestTag", tags)
        out = [Request(action, new, ctx)]
        if tags:
            out.append(Request("secretsmanager:TagResource", new, ctx))
        if body.get("AddReplicaRegions"):
            out.append(Request("secretsmanager:ReplicateSecretToRegions", new))
        return out
    if op == "TagResource":
        tags = {t["Key"]: t["Value"] for t in body.get("Tags", [])}
        return [on(body["SecretId"], **_tag_context("RequestTag", tags))]
    if op == "DeleteSecret":
        extra = {}
        if "ForceDeleteWithoutRecovery" in body:
            extra["secretsmanager:forcedeletewithoutrecovery"] = str(
                body["ForceDeleteWithoutRecovery"]
            ).lower()
        return [on(body["SecretId"], **extra)]
    # GetSecretValue, DescribeSecret, UpdateSecret, RestoreSecret, ReplicateSecretToRegions, and
    # anything new: the action of the same name on the secret.
    return [on(body["SecretId"])]


class Enforcer:
    """A proxy rule that judges each call against the policy before it reaches moto."""

    def __init__(self, policy: dict[str, Any], sm: Any) -> None:
        self.policy = policy
        self.sm = sm
        self.used: set[str] = set()
        self.denied: list[Request] = []
        self._lock = threading.Lock()  # the proxy serves calls on many threads

    def lookup(self, secret_id: str) -> tuple[str, dict[str, str]] | None:
        try:
            found = self.sm.describe_secret(SecretId=secret_id)
        except self.sm.exceptions.ResourceNotFoundException:
            return None
        return found["ARN"], {t["Key"]: t["Value"] for t in found.get("Tags", [])}

    def __call__(self, call: Call) -> int | None:
        if call.service != "secretsmanager":
            return None
        requests = requests_for(call, self.lookup)
        denied = [r for r in requests if not allowed(self.policy, r)]
        with self._lock:
            self.used |= {r.action for r in requests if r not in denied}
            self.denied += denied
        return 403 if denied else None


def policy_for(*args: str) -> dict[str, Any]:
    out = io.StringIO()
    assert iam.main([*ARGS, "--region", REGION, *args], out, io.StringIO()) == 0
    return json.loads(out.getvalue())["permissions_policy"]


# Sufficient and minimal, proved on real runs ----------------------------------------------------


def test_policy_lets_every_kind_of_sync_through_and_grants_nothing_unused(
    action, proxy, sm, realaws
):
    policy = policy_for()
    enforcer = Enforcer(policy, sm)
    proxy.faults.rule = enforcer
    values = {"A": "a-canary-1", "B": "b-canary-1", "C": "c-canary-1", "D": "d-canary-1"}
    mapping = """
    a: {keys: [A], replica-regions: [eu-west-1], tags: {Team: core}}
    b: {value: B, description: plain, tags: {Env: dev}}
    c: C
    d: [D]
    e: {generate: {length: 20}}
    legacy: LEGACY
    """.replace("\n    ", "\n")
    inputs = {"secrets": mapping, "name-prefix": PREFIX}

    # 1. Create (with tags, a description and a replica) and adopt a secret Terraform made.
    sm.create_secret(
        Name=f"{PREFIX}legacy",
        SecretString='{"LEGACY":"old-canary"}',
        Tags=[{"Key": "ManagedBy", "Value": "Terraform"}],
    )
    run = action(inputs, env={**values, "LEGACY": "new-canary"})
    assert run.returncode == 0, run.stdout
    assert sorted(run.json("created")) == [f"{PREFIX}{n}" for n in "abcde"]
    assert run.json("updated") == [f"{PREFIX}legacy"]

    # 2. Update a value, change tags and a description, add a replica; restore a deleted one.
    sm.delete_secret(SecretId=f"{PREFIX}c", RecoveryWindowInDays=7)
    mapping2 = mapping.replace(
        "{value: B, description: plain, tags: {Env: dev}}",
        "{value: B, description: changed, replica-regions: [eu-west-2], tags: {Env: dev}}",
    )
    mapping2 = mapping2.replace("Team: core", "Team: platform")
    run = action(
        {**inputs, "secrets": mapping2}, env={**values, "A": "a-canary-2", "LEGACY": "new-canary"}
    )
    assert run.returncode == 0, run.stdout
    actions = {r["name"]: r["action"] for r in run.json("results")}
    assert actions == {
        f"{PREFIX}a": "update",
        f"{PREFIX}b": "tag",
        f"{PREFIX}c": "restore",
        f"{PREFIX}d": "unchanged",
        f"{PREFIX}e": "unchanged",
        f"{PREFIX}legacy": "unchanged",
    }

    # 2b. Drift: a console edit of `d` is caught (ListSecretVersionIds and GetSecretValue find
    # what secrets-sync last wrote) and overwritten; the same value written outside for
    # `legacy` is no drift and no write.
    sm.put_secret_value(SecretId=f"{PREFIX}d", SecretString='{"D":"console-canary"}')
    sm.put_secret_value(SecretId=f"{PREFIX}legacy", SecretString='{"LEGACY":"new-canary"}')
    run = action(
        {**inputs, "secrets": mapping2}, env={**values, "A": "a-canary-2", "LEGACY": "new-canary"}
    )
    assert run.returncode == 0, run.stdout
    assert run.json("drifted") == [f"{PREFIX}d"]

    # 2c. Roll `a` back to its first value: one UpdateSecretVersionStage.
    run = action({**inputs, "secrets": mapping2, "rollback": "true", "only": "a"})
    assert run.returncode == 0, run.stdout
    assert run.json("rolled-back") == [f"{PREFIX}a"]

    # 3. Prune what left the mapping, a replicated secret too: its replicas go first. (Minutes
    # later: until ListSecrets shows a new secret, a prune cannot see it.) `b` loses the tag
    # this action set on it (UntagResource).
    realaws.settle()
    mapping3 = "\n".join(
        line for line in mapping2.splitlines() if not line.startswith(("a:", "d:"))
    ).replace(", tags: {Env: dev}", "")
    run = action(
        {**inputs, "secrets": mapping3, "prune": "true"},
        env={**values, "LEGACY": "new-canary"},
    )
    assert run.returncode == 0, run.stdout
    assert sorted(run.json("deleted")) == [f"{PREFIX}a", f"{PREFIX}d"]
    assert_run_clean(run, [*values.values(), "a-canary-2", "new-canary"])

    assert enforcer.denied == []  # sufficient: nothing the syncs did was refused
    assert enforcer.used == granted_actions(policy)  # minimal: nothing granted goes unused
    assert set(proxy.ops()) <= {a.removeprefix("secretsmanager:") for a in enforcer.used}


def test_another_repositorys_secret_under_the_prefix_is_neither_read_nor_changed(action, proxy, sm):
    theirs = {MANAGED_BY[0]: MANAGED_BY[1], REPOSITORY_TAG: "other-org/other-repo"}
    sm.create_secret(
        Name=f"{PREFIX}shared",
        SecretString='{"K":"theirs-canary"}',
        Tags=[{"Key": k, "Value": v} for k, v in theirs.items()],
    )
    enforcer = Enforcer(policy_for(), sm)
    proxy.faults.rule = enforcer
    run = action(
        {"secrets": "shared: K\nmine: M", "name-prefix": PREFIX},
        env={"K": "mine-canary-1", "M": "mine-canary-2"},
    )
    assert run.returncode == 1
    assert run.results()[f"{PREFIX}shared"]["action"] == "conflict"
    assert run.json("created") == [f"{PREFIX}mine"]
    refused = {(r.action, r.resource.rsplit(":", 1)[1]) for r in enforcer.denied}
    assert {a for a, res in refused if res.startswith(f"{PREFIX}shared")} == {
        "secretsmanager:GetSecretValue"
    }
    assert (
        sm.get_secret_value(SecretId=f"{PREFIX}shared")["SecretString"] == '{"K":"theirs-canary"}'
    )
    assert_run_clean(run, ["mine-canary-1", "mine-canary-2", "theirs-canary"])


# What the conditions allow and refuse -------------------------------------------------------------


def _req(action: str, name: str = f"{PREFIX}x", *, tags=None, request_tags=None, **ctx: str):
    context = {
        **_tag_context("ResourceTag", tags or {}),
        **_tag_context("RequestTag", request_tags or {}),
    }
    context.update({k.lower(): v for k, v in ctx.items()})
    return Request(f"secretsmanager:{action}", arn(name), context)


FORCE = "secretsmanager:ForceDeleteWithoutRecovery"


@pytest.mark.parametrize(
    ("request_", "ok"),
    [
        (_req("DeleteSecret", tags=OURS), True),
        (_req("DeleteSecret", tags=OURS, **{FORCE: "false"}), True),
        (_req("DeleteSecret", tags=OURS, **{FORCE: "true"}), False),
        (_req("DeleteSecret"), False),
        (_req("DeleteSecret", tags={"ManagedBy": "Terraform"}), False),
        (_req("DeleteSecret", tags={**OURS, REPOSITORY_TAG: "other-org/other-repo"}), False),
        (_req("DeleteSecret", tags={REPOSITORY_TAG: REPOSITORY}), False),
        (_req("DeleteSecret", "other/x", tags=OURS), False),
        (_req("CreateSecret", request_tags=OURS), True),
        (_req("CreateSecret", request_tags={**OURS, "Team": "x"}), True),
        (_req("CreateSecret"), False),
        (_req("CreateSecret", request_tags={"ManagedBy": "secrets-sync"}), False),
        (_req("CreateSecret", request_tags={**OURS, REPOSITORY_TAG: "o/r"}), False),
        (_req("CreateSecret", "lornu-ai-other/x", request_tags=OURS), False),
        (_req("TagResource", request_tags=OURS), True),  # adopt an untagged secret
        (_req("TagResource", tags={"ManagedBy": "Terraform"}, request_tags=OURS), True),
        (_req("TagResource", tags={**OURS, REPOSITORY_TAG: "o/r"}, request_tags=OURS), False),
        (_req("UpdateSecret", tags=OURS), True),
        (_req("UpdateSecret", tags={REPOSITORY_TAG: "o/r"}), False),
        (_req("GetSecretValue"), True),
        (_req("GetSecretValue", tags={**OURS, REPOSITORY_TAG: "o/r"}), False),
        (_req("RestoreSecret", tags=OURS), True),
        (_req("ReplicateSecretToRegions", tags=OURS), True),
        (_req("DescribeSecret", "other/x"), False),
        (_req("PutSecretValue", tags=OURS), True),
        (_req("PutSecretValue"), True),  # adopting an unclaimed secret writes its value
        (_req("PutSecretValue", tags={**OURS, REPOSITORY_TAG: "o/r"}), False),
        (_req("UpdateSecretVersionStage", tags=OURS), True),
        # Labels move only on a secret already tagged ours: never an unclaimed or another's.
        (_req("UpdateSecretVersionStage"), False),
        (_req("UpdateSecretVersionStage", tags={"ManagedBy": "Terraform"}), False),
        (_req("UpdateSecretVersionStage", tags={**OURS, REPOSITORY_TAG: "o/r"}), False),
        # Tags this action set come off only a secret tagged ours (tagrecord.py).
        (_req("UntagResource", tags=OURS), True),
        (_req("UntagResource"), False),
        (_req("UntagResource", tags={"ManagedBy": "Terraform"}), False),
        (_req("UntagResource", tags={**OURS, REPOSITORY_TAG: "o/r"}), False),
        (_req("PutResourcePolicy", tags=OURS), False),
        (_req("GetSecretValue", "x", tags=OURS), False),
        (
            Request("secretsmanager:GetSecretValue", arn(f"{PREFIX}x", account="999999999999")),
            False,
        ),
        (Request("secretsmanager:GetSecretValue", arn(f"{PREFIX}x", region="eu-west-1")), False),
        (Request("secretsmanager:ListSecrets", "*"), True),
        (Request("secretsmanager:BatchGetSecretValue", "*"), True),
        (Request("secretsmanager:GetRandomPassword", "*"), True),  # `generate`'s values
    ],
)
def test_conditions(request_, ok):
    assert allowed(policy_for(), request_) is ok


def test_policy_scoping_and_shape():
    policy = policy_for()
    assert policy["Version"] == "2012-10-17"
    sids = [s["Sid"] for s in policy["Statement"]]
    assert len(set(sids)) == len(sids)
    for statement in policy["Statement"]:
        assert statement["Effect"] == "Allow"
        actions = _listed(statement["Action"])
        assert all(re.fullmatch(r"secretsmanager:[A-Z][A-Za-z]+", a) for a in actions)
        if statement["Resource"] == "*":  # only actions that take no resource
            assert set(actions) <= {
                "secretsmanager:ListSecrets",
                "secretsmanager:BatchGetSecretValue",
                "secretsmanager:GetRandomPassword",
            }
        else:
            assert statement["Resource"] == (
                f"arn:aws:secretsmanager:{REGION}:{ACCOUNT}:secret:{PREFIX}*"
            )
    assert granted_actions(policy) == {
        f"secretsmanager:{a}"
        for a in (
            "ListSecrets",
            "BatchGetSecretValue",
            "GetSecretValue",
            "DescribeSecret",
            "CreateSecret",
            "PutSecretValue",  # every value write, with our token (versions.py)
            "UpdateSecret",  # a description change, with no value
            "ListSecretVersionIds",  # a suspected drift's reference version (drift.py)
            "UpdateSecretVersionStage",  # a rollback
            "TagResource",
            "UntagResource",  # only tags this action set, only on secrets tagged ours
            "RestoreSecret",
            "ReplicateSecretToRegions",
            "RemoveRegionsFromReplication",
            "DeleteSecret",
            "GetRandomPassword",  # a `generate` secret's value, just before its create
        )
    }
    # IAM's size limits count the policy without whitespace.
    assert len(json.dumps(policy, separators=(",", ":"))) < 6144


def test_without_account_or_region_the_arn_has_wildcards_for_them():
    assert iam.secret_arn("p/", region=None, account_id=None) == (
        "arn:aws:secretsmanager:*:*:secret:p/*"
    )
    assert iam.secret_arn("", region="cn-north-1", account_id=ACCOUNT) == (
        f"arn:aws-cn:secretsmanager:cn-north-1:{ACCOUNT}:secret:*"
    )


def test_without_repository_deletes_still_need_the_managed_by_tag():
    out, err = io.StringIO(), io.StringIO()
    assert iam.main(["--name-prefix", PREFIX], out, err) == 0
    document = json.loads(out.getvalue())
    assert list(document) == ["permissions_policy"]
    policy = document["permissions_policy"]
    assert REPOSITORY_TAG not in json.dumps(policy)
    assert allowed(policy, _req("DeleteSecret", tags={"ManagedBy": "secrets-sync"}))
    assert not allowed(policy, _req("DeleteSecret", tags={"ManagedBy": "Terraform"}))
    assert not allowed(policy, _req("CreateSecret"))
    assert "no --repository" in err.getvalue()
    assert "trust policy is left out" in err.getvalue()


def test_kms_keys_are_usable_only_through_secrets_manager():
    key = f"arn:aws:kms:{REGION}:{ACCOUNT}:key/1234abcd-12ab-34cd-56ef-1234567890ab"
    policy = policy_for("--kms-key-arn", key, "--kms-key-arn", key)
    (statement,) = [s for s in policy["Statement"] if s["Action"][0].startswith("kms:")]
    assert statement["Action"] == ["kms:Decrypt", "kms:Encrypt", "kms:GenerateDataKey"]
    assert statement["Resource"] == [key]
    via = {"kms:viaservice": f"secretsmanager.{REGION}.amazonaws.com"}
    assert allowed(policy, Request("kms:Decrypt", key, via))
    assert not allowed(policy, Request("kms:Decrypt", key, {"kms:viaservice": "s3.x"}))
    assert not allowed(policy, Request("kms:Decrypt", key))


# The command line ---------------------------------------------------------------------------------


def run_cli(*args: str) -> subprocess.CompletedProcess[str]:
    return subprocess.run(
        [sys.executable, str(ENTRYPOINT), "iam-policy", *args],
        capture_output=True,
        text=True,
        timeout=60,
        check=False,
        env={"PATH": "/usr/bin:/bin", "LANG": "C.UTF-8"},
    )


def test_subprocess_prints_both_documents_as_the_in_process_call_does():
    proc = run_cli(*ARGS, "--region", REGION)
    assert proc.returncode == 0, proc.stderr
    document = json.loads(proc.stdout)
    assert list(document) == ["permissions_policy", "trust_policy"]
    assert document["permissions_policy"] == policy_for()
    assert document["trust_policy"] == trust_policy_for("--region", REGION)
    assert "admits workflows on the branch main" in proc.stderr
    assert not [line for line in (proc.stdout + proc.stderr).splitlines() if line.startswith("::")]


def test_only_permissions_prints_the_bare_document():
    proc = run_cli("--name-prefix", PREFIX, "--only", "permissions")
    assert proc.returncode == 0, proc.stderr
    assert json.loads(proc.stdout)["Version"] == "2012-10-17"


@pytest.mark.parametrize(
    ("args", "words"),
    [
        (["--name-prefix", "a*b"], "--name-prefix: 'a*b' is not a valid secret name prefix."),
        (["--name-prefix", "p/", "--repository", "no-slash"], "--repository: 'no-slash' is not"),
        (["--name-prefix", "p/", "--account-id", "12345"], "--account-id: '12345' is not an AWS"),
        (["--name-prefix", "p/", "--region", "mars-1"], "--region: 'mars-1' is not an AWS region"),
        (["--name-prefix", "p/", "--branch", "main"], "--branch: pins the trust policy"),
        (["--name-prefix", "p/", "--owner-id", "1"], "--owner-id: pins the trust policy"),
        ([*ARGS[:6], "--owner-id", "*", "--repository-id", "2"], "--owner-id: '*' is not a"),
        ([*ARGS[:6], "--owner-id", "1", "--repository-id", "0x2"], "'0x2' is not a GitHub ID"),
        ([*ARGS, "--issuer", "http://ghes.example/_services/token"], "--issuer: 'http://"),
        ([*ARGS, "--issuer", "https://ghes.example:8443/_services/token"], "--issuer: "),
        ([*ARGS, "--issuer", "https://token.actions.githubusercontent.com/*"], "--issuer: "),
        ([*ARGS, "--issuer", "https://ghes.example/?x=1"], "without a port, query"),
        ([*ARGS, "--branch", "feat*"], "--branch: 'feat*' is not a branch name."),
        ([*ARGS, "--environment", " prod"], "--environment: ' prod' is not"),
        (["--name-prefix", "p/", "--kms-key-arn", "alias/x"], "--kms-key-arn: 'alias/x' is not"),
        (["--name-prefix", "p/", "--only", "trust"], "add --repository and --account-id."),
        ([*ARGS, "--audience", " "], "--audience: is empty."),
    ],
)
def test_bad_values_exit_1_with_one_line(args, words):
    out, err = io.StringIO(), io.StringIO()
    assert iam.main(args, out, err) == 1
    assert out.getvalue() == ""
    lines = err.getvalue().splitlines()
    assert len(lines) == 1, err.getvalue()
    assert lines[0].startswith("secrets-sync iam-policy: ")
    assert words in lines[0]
    assert "Fix:" in lines[0]


def test_subprocess_bad_value_is_one_line_and_exit_1():
    proc = run_cli("--name-prefix", "a*b", "--repository", REPOSITORY)
    assert (proc.returncode, proc.stdout) == (1, "")
    assert proc.stderr.splitlines() == [
        "secrets-sync iam-policy: --name-prefix: 'a*b' is not a valid secret name prefix. "
        "Fix: use at most 511 characters of A-Z a-z 0-9 / _ + = . @ -, as in the action's "
        "`name-prefix`."
    ]


@pytest.mark.parametrize(
    "args",
    [
        [],
        ["--repository", REPOSITORY],
        ["--name-prefix", "p/", "--branch", "main", "--environment", "prod"],
        ["--name-prefix", "p/", "--only", "both"],
        ["--name-prefix", "p/", "--bogus"],
        ["--only", "permissions"],
    ],
)
def test_bad_usage_exits_2(args, capsys):
    with pytest.raises(SystemExit) as caught:
        iam.main(args, io.StringIO(), io.StringIO())
    assert caught.value.code == 2
    captured = capsys.readouterr()
    assert captured.out == ""
    assert "usage: secrets-sync iam-policy" in captured.err


def test_subprocess_bad_usage_exits_2():
    proc = run_cli("--name-prefix", "p/", "--bogus")
    assert (proc.returncode, proc.stdout) == (2, "")
    assert "usage: secrets-sync iam-policy" in proc.stderr
    assert "unrecognized arguments: --bogus" in proc.stderr


def test_an_empty_prefix_is_allowed_but_said_to_cover_the_account():
    out, err = io.StringIO(), io.StringIO()
    assert iam.main(["--name-prefix", "", *ARGS[2:], "--only", "permissions"], out, err) == 0
    resources = {s["Resource"] for s in json.loads(out.getvalue())["Statement"]}
    assert resources == {"*", f"arn:aws:secretsmanager:*:{ACCOUNT}:secret:*"}
    assert "no name prefix: the policy covers every secret of the account" in err.getvalue()


# The trust policy: both `sub` forms, held to the fake STS ----------------------------------------
#
# trust_admits (tests/support/oidc.py) is STS's judgement of a token against a trust policy; the
# same judge sits in the proxy for the end-to-end runs below (TrustingSts). Every policy here is
# the one `iam-policy` prints, and every token one the local token service would issue.

OTHER_IDS = {"owner_id": "7777777", "repository_id": "8888888"}  # same names, another repository
ROLE = f"arn:aws:iam::{ACCOUNT}:role/github-secrets-sync"
GHES = "https://ghes.example/_services/token"
ENTERPRISE = "https://token.actions.githubusercontent.com/lornu"


def trust_policy_for(*args: str, env: dict[str, str] | None = None) -> dict[str, Any]:
    out = io.StringIO()
    given = [*ARGS, "--only", "trust", *args]
    if "--legacy-subject" in args:
        given = given[: given.index("--owner-id")] + given[given.index("--owner-id") + 4 :]
    assert iam.main(given, out, io.StringIO(), env or {}) == 0
    return json.loads(out.getvalue())


def token(**how: Any) -> dict[str, Any]:
    return github_claims("sts.amazonaws.com", repository=REPOSITORY, **how)


def admits(policy: dict[str, Any], claims: dict[str, Any], role: str = ROLE) -> bool:
    return trust_admits(policy, claims, role)


@pytest.mark.parametrize("immutable", [False, True], ids=["legacy", "immutable"])
def test_trust_policy_admits_this_repositorys_branch_in_both_forms_and_nothing_else(immutable):
    trust = trust_policy_for()
    assert admits(trust, token(immutable=immutable))
    # Another repository under the same names (a recycled name): other IDs.
    assert not admits(trust, token(immutable=True, **OTHER_IDS))
    assert not admits(trust, token(immutable=True, owner_id="7777777"))
    assert not admits(trust, token(immutable=True, repository_id="8888888"))
    assert not admits(trust, token(immutable=immutable, ref="refs/heads/feature"))
    assert not admits(trust, token(immutable=immutable, ref="refs/tags/v1"))
    assert not admits(trust, token(immutable=immutable, environment="production"))
    pull_request = {**token(immutable=immutable), "sub": f"repo:{REPOSITORY}:pull_request"}
    assert not admits(trust, pull_request)
    other = github_claims("sts.amazonaws.com", repository="lornu-ai/other", immutable=immutable)
    assert not admits(trust, other)
    # GitHub spells the names in `sub` as the repository has them; IAM compares case-sensitively.
    upper = github_claims("sts.amazonaws.com", repository="Lornu-AI/App", immutable=immutable)
    assert not admits(trust, upper)
    assert not admits(trust, {**token(immutable=immutable), "aud": "sigstore"})
    assert not admits(trust, token(immutable=immutable), ROLE.replace(ACCOUNT, "999999999999"))
    assert not admits(trust, token(immutable=immutable, issuer=ENTERPRISE))


def test_trust_policy_pins_the_branch_or_environment_asked_in_both_forms():
    release = trust_policy_for("--branch", "release/v1")
    for immutable in (False, True):
        assert admits(release, token(immutable=immutable, ref="refs/heads/release/v1"))
        assert not admits(release, token(immutable=immutable))
    production = trust_policy_for("--environment", "production")
    for immutable in (False, True):
        assert admits(production, token(immutable=immutable, environment="production"))
        assert not admits(production, token(immutable=immutable, environment="staging"))
        assert not admits(production, token(immutable=immutable))
        assert not admits(production, token(immutable=True, environment="production", **OTHER_IDS))


def test_trust_policy_for_another_audience():
    trust = trust_policy_for("--environment", "production", "--audience", "sts.amazonaws.com.cn")
    claims = github_claims("sts.amazonaws.com.cn", repository=REPOSITORY, environment="production")
    assert admits(trust, claims)
    assert not admits(trust, {**claims, "aud": "sts.amazonaws.com"})
    assert len(json.dumps(trust, separators=(",", ":"))) < 2048  # IAM's default trust limit


def test_trust_policy_shape_both_subjects_under_one_string_equals():
    (statement,) = trust_policy_for()["Statement"]
    assert statement["Principal"] == {
        "Federated": f"arn:aws:iam::{ACCOUNT}:oidc-provider/token.actions.githubusercontent.com"
    }
    assert statement["Condition"] == {
        "StringEquals": {
            "token.actions.githubusercontent.com:aud": "sts.amazonaws.com",
            "token.actions.githubusercontent.com:sub": [
                f"repo:lornu-ai@{OWNER_ID}/app@{REPOSITORY_ID}:ref:refs/heads/main",
                f"repo:{REPOSITORY}:ref:refs/heads/main",
            ],
        }
    }
    assert "*" not in json.dumps(statement["Condition"])  # no wildcard stands in for an ID


def test_legacy_subject_admits_the_legacy_form_only():
    trust = trust_policy_for("--legacy-subject")
    (statement,) = trust["Statement"]
    sub = statement["Condition"]["StringEquals"]["token.actions.githubusercontent.com:sub"]
    assert sub == f"repo:{REPOSITORY}:ref:refs/heads/main"
    assert admits(trust, token())
    # What every new repository met with the old printed policy (issue 21).
    assert not admits(trust, token(immutable=True))


@pytest.mark.parametrize(
    ("issuer", "name"),
    [
        (GHES, "ghes.example/_services/token"),
        (GHES + "/", "ghes.example/_services/token"),
        (ENTERPRISE, "token.actions.githubusercontent.com/lornu"),
        ("https://token.lornu.ghe.com", "token.lornu.ghe.com"),
    ],
)
def test_an_issuer_names_the_provider_and_the_condition_keys(issuer, name):
    trust = trust_policy_for("--issuer", issuer)
    (statement,) = trust["Statement"]
    assert statement["Principal"] == {"Federated": f"arn:aws:iam::{ACCOUNT}:oidc-provider/{name}"}
    assert set(statement["Condition"]["StringEquals"]) == {f"{name}:aud", f"{name}:sub"}
    iss = issuer.rstrip("/")
    assert admits(trust, token(issuer=iss))
    assert admits(trust, token(issuer=iss, immutable=True))
    assert not admits(trust, token())  # github.com's issuer is another provider
    assert not admits(trust_policy_for(), token(issuer=iss))


def test_the_partition_follows_the_region():
    trust = trust_policy_for("--region", "cn-north-1")
    (statement,) = trust["Statement"]
    assert statement["Principal"]["Federated"].startswith(f"arn:aws-cn:iam::{ACCOUNT}:")
    assert admits(trust, token(), ROLE.replace("arn:aws:", "arn:aws-cn:"))


# The pure builder and reader --------------------------------------------------------------------


def test_subject_in_both_forms_and_read_back():
    ids = iam.RepositoryIds("1", "2")
    assert iam.subject("o/r", ids=ids) == "repo:o@1/r@2:ref:refs/heads/main"
    assert iam.subject("o/r", branch="b/x", ids=ids) == "repo:o@1/r@2:ref:refs/heads/b/x"
    assert iam.subject("o/r", environment="prod", ids=ids) == "repo:o@1/r@2:environment:prod"
    assert iam.subject("o/r", environment="prod") == "repo:o/r:environment:prod"
    assert iam.read_subject("repo:O-x@1/R.y@2:ref:refs/heads/b/x") == iam.Subject(
        "immutable", "O-x/R.y", ids, branch="b/x"
    )
    assert iam.read_subject("repo:o/r:environment:Prod env") == iam.Subject(
        "legacy", "o/r", environment="Prod env"
    )
    assert iam.read_subject("repo:o/r:pull_request") == iam.Subject("legacy", "o/r")
    assert iam.read_subject("repo:o@1/r@2:ref:refs/tags/v1") == iam.Subject("immutable", "o/r", ids)
    # The changelog's first example joined IDs with a hyphen, which a legacy name can hold: it
    # reads as a legacy sub of another repository, and is never printed.
    assert iam.read_subject("repo:o-1/r-2:ref:refs/heads/main").form == "legacy"
    for customised in ("repo:o/r", "project:x:ref:main", "repo:o@1/r:ref:refs/heads/m", ""):
        assert iam.read_subject(customised) == iam.Subject("customised")


def test_trust_policy_builder_without_ids_has_one_subject():
    trust = iam.trust_policy(REPOSITORY, ACCOUNT, ids=None, environment="e", issuer=GHES)
    (statement,) = trust["Statement"]
    assert statement["Condition"]["StringEquals"] == {
        "ghes.example/_services/token:aud": "sts.amazonaws.com",
        "ghes.example/_services/token:sub": f"repo:{REPOSITORY}:environment:e",
    }


@pytest.mark.parametrize(
    "how",
    [
        {},
        {"ids": None, "environment": "prod env"},
        {"branch": "release/v1", "issuer": GHES, "audience": "a b"},
        {"region": "us-gov-west-1"},
    ],
)
def test_the_command_prints_the_policy_it_stands_for(how):
    given = {"ids": iam.RepositoryIds(OWNER_ID, REPOSITORY_ID), **how}
    line = iam.command(REPOSITORY, ACCOUNT, **given)
    words = shlex.split(line)
    assert words[:2] == ["secrets-sync", "iam-policy"]
    out = io.StringIO()
    assert iam.main(words[2:], out, io.StringIO(), {}) == 0
    assert json.loads(out.getvalue()) == iam.trust_policy(REPOSITORY, ACCOUNT, **given)


# The IDs: given, from the job, or the way to look them up ---------------------------------------

NO_IDS = [*ARGS[:6], "--only", "trust"]
IN_ACTIONS = {
    "GITHUB_ACTIONS": "true",
    "GITHUB_REPOSITORY": REPOSITORY,
    "GITHUB_REPOSITORY_OWNER_ID": "31",
    "GITHUB_REPOSITORY_ID": "42",
}


def test_without_ids_outside_actions_it_stops_with_the_lookup_command():
    out, err = io.StringIO(), io.StringIO()
    assert iam.main(NO_IDS, out, err, {}) == 2
    assert out.getvalue() == ""
    (line,) = err.getvalue().splitlines()
    assert line.startswith("secrets-sync iam-policy: --owner-id, --repository-id: ")
    assert f"`gh api repos/{REPOSITORY} --jq '.owner.id, .id'`" in line
    assert "--legacy-subject" in line


def test_subprocess_without_ids_exits_2_with_one_line():
    proc = run_cli(*NO_IDS)
    assert (proc.returncode, proc.stdout) == (2, "")
    assert len(proc.stderr.splitlines()) == 1
    assert "gh api repos/lornu-ai/app --jq '.owner.id, .id'" in proc.stderr


def test_without_an_account_no_trust_policy_is_printed_and_no_ids_are_needed():
    out, err = io.StringIO(), io.StringIO()
    assert iam.main(["--name-prefix", PREFIX, "--repository", REPOSITORY], out, err, {}) == 0
    assert list(json.loads(out.getvalue())) == ["permissions_policy"]


def test_inside_actions_the_ids_default_to_the_jobs_repository():
    out, err = io.StringIO(), io.StringIO()
    assert iam.main(NO_IDS, out, err, IN_ACTIONS) == 0
    (statement,) = json.loads(out.getvalue())["Statement"]
    sub = statement["Condition"]["StringEquals"]["token.actions.githubusercontent.com:sub"]
    assert sub[0] == "repo:lornu-ai@31/app@42:ref:refs/heads/main"
    assert "GITHUB_REPOSITORY_OWNER_ID 31, GITHUB_REPOSITORY_ID 42" in err.getvalue()
    # Given IDs win over the job's.
    out = io.StringIO()
    assert iam.main([*NO_IDS, *IDS], out, io.StringIO(), IN_ACTIONS) == 0
    assert OWNER_ID in out.getvalue()


def test_inside_actions_another_repositorys_ids_are_not_borrowed():
    env = {**IN_ACTIONS, "GITHUB_REPOSITORY": "lornu-ai/infra"}
    err = io.StringIO()
    assert iam.main(NO_IDS, io.StringIO(), err, env) == 2
    assert "gh api repos/lornu-ai/app" in err.getvalue()


def test_inside_actions_a_repository_spelt_in_another_case_is_refused():
    env = {**IN_ACTIONS, "GITHUB_REPOSITORY": "Lornu-AI/App"}
    err = io.StringIO()
    assert iam.main(NO_IDS, io.StringIO(), err, env) == 1
    (line,) = err.getvalue().splitlines()
    assert "--repository: 'lornu-ai/app' is spelt 'Lornu-AI/App' by GitHub" in line
    assert "Fix: give --repository Lornu-AI/App." in line


@pytest.mark.parametrize(
    ("args", "words"),
    [
        ([*ARGS, "--legacy-subject"], "--legacy-subject: admits the legacy `sub` alone"),
        ([*NO_IDS, "--owner-id", "1"], "--repository-id: is missing"),
        ([*NO_IDS, "--repository-id", "1"], "--owner-id: is missing"),
    ],
)
def test_conflicting_or_half_given_ids_are_usage_errors(args, words):
    err = io.StringIO()
    assert iam.main(args, io.StringIO(), err, {}) == 2
    (line,) = err.getvalue().splitlines()
    assert words in line
    assert "Fix:" in line


def test_only_trust_needs_no_name_prefix():
    out = io.StringIO()
    assert iam.main([*ARGS[2:], "--only", "trust"], out, io.StringIO(), {}) == 0
    assert json.loads(out.getvalue()) == trust_policy_for()


# End to end: the action against STS holding it to the printed trust policy ---------------------


@pytest.fixture
def sts(proxy):
    """Puts STS's judgement of the token (TrustingSts) in front of moto, which takes any token;
    `sts.trust(policy)` sets the role's trust policy."""

    class Sts(TrustingSts):
        def trust(self, policy: dict[str, Any]) -> Sts:
            self.policy = policy
            return self

    judge = Sts({}, inner=proxy.model)
    proxy.model = judge
    return judge


def assume(action, oidc) -> Any:
    before = len(oidc.issued)
    run = action(
        {"secrets": "app/key: APP_KEY", "role-to-assume": ROLE},
        env={"APP_KEY": "app-key-canary-5e7d", **oidc.env()},
    )
    # The token is masked, and no form of it is anywhere but in its mask line.
    tokens = oidc.issued[before:]
    assert tokens
    assert all(f"::add-mask::{t}" in run.log_lines for t in tokens)
    unmasked = "\n".join(x for x in run.log_lines if not x.startswith("::add-mask::"))
    assert_no_leak(
        {"log": unmasked, "stderr": run.stderr, "summary": run.summary, "out": run.output_text},
        [*tokens, "app-key-canary-5e7d"],
    )
    return run


@pytest.mark.parametrize(
    ("immutable", "environment"),
    [(False, None), (True, None), (True, "production"), (False, "production")],
)
def test_sts_admits_both_forms_under_the_printed_policy(
    action, proxy, oidc, sts, immutable, environment
):
    sts.trust(trust_policy_for(*(["--environment", environment] if environment else [])))
    oidc.immutable, oidc.environment = immutable, environment
    run = assume(action, oidc)
    assert run.returncode == 0, run.stdout + run.stderr
    [(sub, admitted)] = sts.judged
    assert admitted
    assert ("@1234567/app@7654321:" in sub) is immutable
    assert proxy.ops("sts") == ["AssumeRoleWithWebIdentity"]


def refusal(run) -> str:
    assert run.returncode == 1, run.stdout + run.stderr
    [error] = run.errors
    assert "(AccessDenied: Not authorized to perform sts:AssumeRoleWithWebIdentity)" in error
    return error


def test_the_old_legacy_policy_refuses_a_new_repository_and_the_message_fixes_it(
    action, proxy, oidc, sts
):
    # Issue 21: the policy printed before v1.2 (the legacy `sub` alone), a token of a repository
    # created since GitHub's change (the immutable `sub`).
    sts.trust(trust_policy_for("--legacy-subject"))
    oidc.immutable = True
    error = refusal(assume(action, oidc))
    assert (
        f"Its sub 'repo:lornu-ai@{OWNER_ID}/app@{REPOSITORY_ID}:ref:refs/heads/main' is in "
        "GitHub's immutable form, with the owner's and repository's IDs."
    ) in error
    assert (
        "Fix: the first suspect is a trust policy written for the other form (the legacy" in error
    )
    assert proxy.ops() == []  # no Secrets Manager call
    # The command the message gives, run as given, prints a policy STS then admits the token by.
    line = error[error.index("`secrets-sync iam-policy ") + 1 : error.index(" > trust.json`")]
    assert f"--owner-id {OWNER_ID} --repository-id {REPOSITORY_ID}" in line
    out = io.StringIO()
    assert iam.main(shlex.split(line)[2:], out, io.StringIO(), {}) == 0
    sts.trust(json.loads(out.getvalue()))
    run = assume(action, oidc)
    assert run.returncode == 0, run.stdout
    assert [admitted for _, admitted in sts.judged] == [False, True]


def test_an_immutable_only_policy_refuses_a_legacy_token_saying_so(action, oidc, sts):
    trust = trust_policy_for()
    (statement,) = trust["Statement"]
    condition = statement["Condition"]["StringEquals"]
    condition["token.actions.githubusercontent.com:sub"] = condition[
        "token.actions.githubusercontent.com:sub"
    ][0]  # the immutable form alone, as some hand-written policies have it
    sts.trust(trust)
    error = refusal(assume(action, oidc))
    assert "is in GitHub's legacy form, names only, without IDs" in error
    assert "the other form (the immutable form repo:OWNER@OWNER_ID/REPO@REPO_ID:...)" in error


@pytest.mark.parametrize(
    ("how", "printed"),
    [
        ({"immutable": True, **OTHER_IDS}, "--owner-id 7777777 --repository-id 8888888 "),
        ({"immutable": True, "ref": "refs/heads/feature"}, "--branch feature"),
        ({"environment": "staging"}, "--environment staging"),
    ],
    ids=["same-name-other-ids", "other-branch", "other-environment"],
)
def test_sts_refuses_another_repository_branch_or_environment(action, oidc, sts, how, printed):
    environment = ["--environment", "production"] if "environment" in how else []
    sts.trust(trust_policy_for(*environment))
    for name, value in how.items():
        setattr(oidc, name, value)
    error = refusal(assume(action, oidc))
    assert sts.judged == [(oidc_sub(oidc), False)]
    assert f"Its sub '{oidc_sub(oidc)}'" in error
    assert printed in error  # what would admit this token: the message does not guess another


def oidc_sub(oidc) -> str:
    return str(read_payload(oidc.issued[-1])["sub"])


def test_an_enterprise_server_issuer_end_to_end(action, oidc, sts):
    oidc.issuer = GHES
    sts.providers = {GHES: ("sts.amazonaws.com",)}
    sts.trust(trust_policy_for("--issuer", GHES, "--legacy-subject"))
    run = assume(action, oidc)
    assert run.returncode == 0, run.stdout + run.stderr
    # A policy for github.com's issuer does not name this provider: refused, and the message
    # speaks of the issuer the token names.
    sts.trust(trust_policy_for())
    error = refusal(assume(action, oidc))
    assert f"arn:aws:iam::{ACCOUNT}:oidc-provider/ghes.example/_services/token" in error
    assert f"--issuer {GHES}" in error
    assert '"ghes.example/_services/token:sub": "repo:lornu-ai/app:ref:refs/heads/main"' in error


# The fake STS's judge itself: the policy language it reads ---------------------------------------

PROVIDER = f"arn:aws:iam::{ACCOUNT}:oidc-provider/token.actions.githubusercontent.com"
KEY = "token.actions.githubusercontent.com"


def statement(condition: dict[str, Any], **over: Any) -> dict[str, Any]:
    return {
        "Effect": "Allow",
        "Principal": {"Federated": PROVIDER},
        "Action": "sts:AssumeRoleWithWebIdentity",
        "Condition": condition,
        **over,
    }


def judged(*statements: dict[str, Any], claims: dict[str, Any] | None = None) -> bool:
    policy = {"Version": "2012-10-17", "Statement": list(statements)}
    return trust_admits(policy, claims or token(), ROLE)


LEGACY_SUB = f"repo:{REPOSITORY}:ref:refs/heads/main"


@pytest.mark.parametrize(
    ("condition", "ok"),
    [
        ({"StringEquals": {f"{KEY}:sub": LEGACY_SUB}}, True),
        ({"StringEquals": {f"{KEY}:sub": ["repo:x/y:ref:refs/heads/main", LEGACY_SUB]}}, True),
        ({"StringEquals": {f"{KEY}:sub": ["repo:x/y:ref:refs/heads/main"]}}, False),
        ({"StringEquals": {f"{KEY}:sub": LEGACY_SUB.upper()}}, False),  # values: case-sensitive
        ({"StringEquals": {f"{KEY.upper()}:SUB": LEGACY_SUB}}, True),  # key names: not
        ({"StringEquals": {f"{KEY}:sub": "repo:lornu-ai/*"}}, False),  # taken literally
        ({"StringLike": {f"{KEY}:sub": "repo:lornu-ai/*"}}, True),
        ({"StringLike": {f"{KEY}:sub": ["repo:other/*", "repo:lornu-ai/ap?:*"]}}, True),
        ({"StringLike": {f"{KEY}:sub": "repo:lornu-ai/ap?"}}, False),
        ({"StringLike": {f"{KEY}:sub": "repo:LORNU-AI/*"}}, False),
        # Every operator and every key must hold; a key the token lacks does not.
        ({"StringEquals": {f"{KEY}:aud": "sts.amazonaws.com", f"{KEY}:sub": "x"}}, False),
        (
            {
                "StringEquals": {f"{KEY}:aud": "sts.amazonaws.com"},
                "StringLike": {f"{KEY}:sub": "repo:lornu-ai/app:*"},
            },
            True,
        ),
        ({"StringEquals": {"other.example:sub": LEGACY_SUB}}, False),
        ({}, True),
    ],
)
def test_the_judge_reads_string_operators_with_strings_and_lists(condition, ok):
    assert judged(statement(condition)) is ok


def test_the_judge_needs_the_action_and_the_tokens_provider_and_lets_deny_win():
    allow = {"StringEquals": {f"{KEY}:sub": LEGACY_SUB}}
    assert judged(statement(allow, Action=["sts:AssumeRole", "sts:AssumeRoleWith*"]))
    assert not judged(statement(allow, Action="sts:AssumeRole"))
    assert judged(statement(allow, Principal={"Federated": ["arn:x", PROVIDER]}))
    assert not judged(statement(allow, Principal={"AWS": PROVIDER}))
    assert not judged(statement(allow, Principal={"Federated": PROVIDER + "/lornu"}))
    deny = statement({"StringLike": {f"{KEY}:sub": "*:ref:refs/heads/main"}}, Effect="Deny")
    assert not judged(statement(allow), deny)
    assert not judged(statement(allow, Effect="Deny"))


@pytest.mark.parametrize(
    "condition",
    [
        {"StringEqualsIgnoreCase": {f"{KEY}:sub": LEGACY_SUB}},
        {"ForAnyValue:StringLike": {f"{KEY}:sub": LEGACY_SUB}},
        {"StringEquals": {f"{KEY}:repository": REPOSITORY}},
    ],
)
def test_the_judge_refuses_to_guess_what_it_was_not_taught(condition):
    with pytest.raises(AssertionError, match=r"teach it|IAM documents no OIDC condition key"):
        judged(statement(condition))


def test_the_fake_sts_answers_as_sts_does_for_an_unknown_provider_or_audience():
    sts = TrustingSts(trust_policy_for())
    jwt = make_jwt(token(issuer=GHES), b"k")
    call = Call("sts", "AssumeRoleWithWebIdentity", {"WebIdentityToken": jwt, "RoleArn": ROLE}, 0)
    assert sts.refuse(call) == (
        400,
        "InvalidIdentityToken",
        f"No OpenIDConnect provider found in your account for {GHES}",
    )
    jwt = make_jwt({**token(), "aud": "sigstore"}, b"k")
    call = Call("sts", "AssumeRoleWithWebIdentity", {"WebIdentityToken": jwt, "RoleArn": ROLE}, 0)
    assert sts.refuse(call) == (400, "InvalidIdentityToken", "Incorrect token audience")
    jwt = make_jwt(token(ref="refs/heads/x"), b"k")
    call = Call("sts", "AssumeRoleWithWebIdentity", {"WebIdentityToken": jwt, "RoleArn": ROLE}, 0)
    assert sts.refuse(call) == (403, "AccessDenied", NOT_AUTHORIZED)
    assert sts.refuse(Call("secretsmanager", "ListSecrets", {}, 0)) is None
