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
import subprocess
import sys
import threading
from dataclasses import dataclass, field
from typing import Any

import pytest

from secrets_sync import iam
from secrets_sync.mapping import MANAGED_BY, REPOSITORY_TAG
from tests.support.action import ENTRYPOINT, REPOSITORY, assert_run_clean
from tests.support.proxy import Call

ACCOUNT = "123456789012"  # moto's default account
REGION = "us-east-1"
PREFIX = "lornu-ai/"
ARGS = ["--name-prefix", PREFIX, "--repository", REPOSITORY, "--account-id", ACCOUNT]
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

    if op == "ListSecrets":
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
    assert sorted(run.json("created")) == [f"{PREFIX}{n}" for n in "abcd"]
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
        f"{PREFIX}legacy": "unchanged",
    }

    # 2b. Drift: a console edit of `d` is caught and overwritten (PutSecretValue); the same
    # value written outside for `legacy` moves our label (UpdateSecretVersionStage).
    sm.put_secret_value(SecretId=f"{PREFIX}d", SecretString='{"D":"console-canary"}')
    sm.put_secret_value(SecretId=f"{PREFIX}legacy", SecretString='{"LEGACY":"new-canary"}')
    run = action(
        {**inputs, "secrets": mapping2}, env={**values, "A": "a-canary-2", "LEGACY": "new-canary"}
    )
    assert run.returncode == 0, run.stdout
    assert sorted(run.json("drifted")) == [f"{PREFIX}d", f"{PREFIX}legacy"]

    # 2c. Roll `a` back to its first value, moving labels only.
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
        (Request("secretsmanager:GetRandomPassword", "*"), False),
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
        if statement["Resource"] == "*":
            assert set(actions) == {
                "secretsmanager:ListSecrets",
                "secretsmanager:BatchGetSecretValue",
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
            "PutSecretValue",  # every value write: it carries our drift label (drift.LABEL)
            "UpdateSecret",  # a description change, with no value
            "UpdateSecretVersionStage",  # the label on a created version; a rollback
            "TagResource",
            "UntagResource",  # only tags this action set, only on secrets tagged ours
            "RestoreSecret",
            "ReplicateSecretToRegions",
            "RemoveRegionsFromReplication",
            "DeleteSecret",
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


# The trust policy ---------------------------------------------------------------------------------


def _assume(trust: dict[str, Any], sub: str, aud: str = "sts.amazonaws.com", account=ACCOUNT):
    (statement,) = trust["Statement"]
    provider = f"arn:aws:iam::{account}:oidc-provider/token.actions.githubusercontent.com"
    if statement["Principal"] != {"Federated": provider}:
        return False
    context = {
        "token.actions.githubusercontent.com:sub": sub,
        "token.actions.githubusercontent.com:aud": aud,
    }
    request = Request("sts:AssumeRoleWithWebIdentity", "*", context)
    return statement_allows({**statement, "Resource": "*"}, request)


def trust_for(*args: str) -> dict[str, Any]:
    out = io.StringIO()
    assert iam.main([*ARGS, "--only", "trust", *args], out, io.StringIO()) == 0
    return json.loads(out.getvalue())


def test_trust_policy_admits_one_branch_of_one_repository():
    trust = trust_for()
    assert _assume(trust, f"repo:{REPOSITORY}:ref:refs/heads/main")
    assert not _assume(trust, f"repo:{REPOSITORY}:ref:refs/heads/feature")
    assert not _assume(trust, f"repo:{REPOSITORY}:pull_request")
    assert not _assume(trust, "repo:lornu-ai/other:ref:refs/heads/main")
    assert not _assume(trust, f"repo:{REPOSITORY}:ref:refs/heads/main", aud="sigstore")
    assert not _assume(trust, f"repo:{REPOSITORY}:ref:refs/heads/main", account="999999999999")
    release = trust_for("--branch", "release/v1")
    assert _assume(release, f"repo:{REPOSITORY}:ref:refs/heads/release/v1")
    assert not _assume(release, f"repo:{REPOSITORY}:ref:refs/heads/main")


def test_trust_policy_for_an_environment_and_another_audience():
    trust = trust_for("--environment", "production", "--audience", "sts.amazonaws.com.cn")
    assert _assume(trust, f"repo:{REPOSITORY}:environment:production", "sts.amazonaws.com.cn")
    assert not _assume(trust, f"repo:{REPOSITORY}:environment:staging", "sts.amazonaws.com.cn")
    assert not _assume(trust, f"repo:{REPOSITORY}:ref:refs/heads/main", "sts.amazonaws.com.cn")
    assert len(json.dumps(trust, separators=(",", ":"))) < 2048  # IAM's default trust limit


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
    assert document["trust_policy"] == trust_for("--region", REGION)
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
