"""Secrets with rotation enabled are another writer's: a sync would fight the rotation. Each is
reported as a conflict and never written, whatever else about it differs, on every path that
could reach it (a value that differs, adoption, restore, a dry run, a create that lost a race
to it). Rotation is turned on in moto the way AWS requires, with a rotation Lambda function;
moto's RotateSecret with RotateImmediately=False only invokes the function's testSecret step,
which leaves the value alone."""

from __future__ import annotations

import io
import zipfile
from typing import Any

import boto3
import pytest

from tests.conftest import REGION
from tests.support.action import OURS, WRITES
from tests.support.proxy import Call


def rotation_function(moto: str) -> str:
    creds: dict[str, Any] = {
        "region_name": REGION,
        "endpoint_url": moto,
        "aws_access_key_id": "testing",
        "aws_secret_access_key": "testing",
    }
    role = boto3.client("iam", **creds).create_role(
        RoleName="rotation-role", AssumeRolePolicyDocument="{}"
    )["Role"]["Arn"]
    code = io.BytesIO()
    with zipfile.ZipFile(code, "w") as zf:
        zf.writestr("index.py", "def handler(event, context):\n    return None\n")
    return boto3.client("lambda", **creds).create_function(
        FunctionName="rotate-secret",
        Runtime="python3.12",
        Role=role,
        Handler="index.handler",
        Code={"ZipFile": code.getvalue()},
    )["FunctionArn"]


def enable_rotation(sm: Any, moto: str, name: str) -> None:
    sm.rotate_secret(
        SecretId=name,
        RotationLambdaARN=rotation_function(moto),
        RotationRules={"AutomaticallyAfterDays": 30},
        RotateImmediately=False,
    )
    assert sm.describe_secret(SecretId=name)["RotationEnabled"] is True


def writes_to(proxy: Any, name: str) -> list[str]:
    return [c.operation for c in proxy.calls if c.operation in WRITES and name in str(c.secret_id)]


def snapshot(sm: Any, name: str) -> tuple[Any, ...]:
    d = sm.describe_secret(SecretId=name)
    value = sm.get_secret_value(SecretId=name) if "DeletedDate" not in d else {}
    versions = sm.list_secret_version_ids(SecretId=name, IncludeDeprecated=True)["Versions"]
    return (
        value.get("SecretString"),
        sorted((t["Key"], t["Value"]) for t in d.get("Tags", [])),
        d.get("Description"),
        "DeletedDate" in d,
        sorted(v["VersionId"] for v in versions),
    )


CASES = [
    # (what exists, mapping entry, inputs, env value): each would be a write without rotation
    pytest.param(
        {"Tags": OURS, "SecretString": '{"R":"rotated-canary-1"}'},
        "rot: R",
        {},
        "rotated-canary-2",
        id="value-differs",
    ),
    pytest.param(
        {"Tags": OURS, "SecretString": '{"R":"rotated-canary-1"}'},
        "rot: {keys: [R], tags: {Team: core}}",
        {},
        "rotated-canary-1",
        id="only-tags-differ",
    ),
    pytest.param(
        {"Tags": OURS, "SecretString": '{"R":"rotated-canary-1"}', "Description": "old"},
        "rot: {keys: [R], description: new}",
        {},
        "rotated-canary-1",
        id="only-description-differs",
    ),
    pytest.param(
        {"SecretString": '{"R":"rotated-canary-1"}'},
        "rot: R",
        {},
        "rotated-canary-2",
        id="untagged-would-be-adopted",
    ),
    pytest.param(
        {"Tags": OURS, "SecretString": '{"R":"rotated-canary-1"}'},
        "rot: R",
        {},
        "rotated-canary-1",
        id="value-already-equal",
    ),
    pytest.param(
        {"Tags": OURS, "SecretString": '{"R":"rotated-canary-1"}', "_delete": True},
        "rot: R",
        {},
        "rotated-canary-2",
        id="scheduled-for-deletion",
    ),
]


@pytest.mark.parametrize(("existing", "entry", "inputs", "new"), CASES)
def test_a_rotated_secret_is_a_conflict_and_untouched(
    action, proxy, sm, moto, existing, entry, inputs, new
):
    arrange = {k: v for k, v in existing.items() if not k.startswith("_")}
    sm.create_secret(Name="app/rot", **arrange)
    enable_rotation(sm, moto, "app/rot")
    if existing.get("_delete"):
        sm.delete_secret(SecretId="app/rot", RecoveryWindowInDays=7)
    before = snapshot(sm, "app/rot")
    run = action(
        {"secrets": f"{entry}\nplain: P", "name-prefix": "app/", **inputs},
        env={"R": new, "P": "plain-rotation-canary"},
    )
    assert run.returncode == 1, run.stdout
    result = run.results()["app/rot"]
    assert result["action"] == "conflict"
    assert "rotation is enabled" in result["error"]
    assert run.json("failed") == ["app/rot"]
    assert any("app/rot" in line and "rotation" in line for line in run.errors)
    assert run.json("created") == ["app/plain"]  # the rest of the run goes on
    assert writes_to(proxy, "app/rot") == []
    assert snapshot(sm, "app/rot") == before


def test_a_dry_run_reports_the_conflict(action, proxy, sm, moto):
    sm.create_secret(Name="app/rot", SecretString='{"R":"old-rot-canary"}', Tags=OURS)
    enable_rotation(sm, moto, "app/rot")
    run = action(
        {"secrets": "rot: R", "name-prefix": "app/", "dry-run": "true"},
        env={"R": "new-rot-canary"},
    )
    assert run.returncode == 0  # a dry run prints the plan
    assert run.results()["app/rot"]["action"] == "conflict"
    assert run.json("failed") == ["app/rot"]
    assert "rotation" in run.summary
    assert writes_to(proxy, "app/rot") == []


def test_a_create_that_loses_the_race_to_a_rotated_secret_does_not_write_it(
    action, proxy, sm, moto
):
    # Between our listing and our CreateSecret, someone creates it with rotation on.
    function = rotation_function(moto)

    def rival(call: Call) -> int | None:
        exists = sm.list_secrets(Filters=[{"Key": "name", "Values": ["app/rot"]}])["SecretList"]
        if call.operation == "CreateSecret" and call.secret_id == "app/rot" and not exists:
            sm.create_secret(Name="app/rot", SecretString='{"R":"rival-canary"}', Tags=OURS)
            sm.rotate_secret(
                SecretId="app/rot",
                RotationLambdaARN=function,
                RotationRules={"AutomaticallyAfterDays": 30},
                RotateImmediately=False,
            )
        return None

    proxy.faults.rule = rival
    run = action({"secrets": "rot: R", "name-prefix": "app/"}, env={"R": "mine-rot-canary"})
    assert run.returncode == 1, run.stdout
    assert run.results()["app/rot"]["action"] == "conflict"
    assert writes_to(proxy, "app/rot") == ["CreateSecret"]  # refused as existing; nothing else
    assert sm.get_secret_value(SecretId="app/rot")["SecretString"] == '{"R":"rival-canary"}'


def test_once_rotation_is_cancelled_the_secret_syncs_again(action, proxy, sm, moto):
    sm.create_secret(Name="app/rot", SecretString='{"R":"old-rot-canary"}', Tags=OURS)
    enable_rotation(sm, moto, "app/rot")
    sm.cancel_rotate_secret(SecretId="app/rot")
    assert not sm.describe_secret(SecretId="app/rot").get("RotationEnabled")
    run = action({"secrets": "rot: R", "name-prefix": "app/"}, env={"R": "new-rot-canary"})
    assert run.returncode == 0, run.stdout
    assert run.json("updated") == ["app/rot"]
    assert sm.get_secret_value(SecretId="app/rot")["SecretString"] == '{"R":"new-rot-canary"}'
