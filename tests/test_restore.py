"""Restoring a secret scheduled for deletion: only a secret this repository manages is ever
restored (planned from the listing, or found by a create that AWS refused), the dry run says the
same, and a restore whose re-read fails writes nothing more: no value, no tag."""

from __future__ import annotations

import base64
import json
from typing import Any

import pytest

from secrets_sync.plan import Action, plan_secret
from tests.support.action import OURS, REPOSITORY, WRITES, assert_run_clean
from tests.support.proxy import Call
from tests.test_units import current, desired

OLD = {"host": "restore-host-canary", "password": "restore-old-canary"}
ENV = {"DB_PASSWORD": "restore-new-canary", "K": "restore-string-canary"}
KEYSTORE = b"\x00\xff-restore-keystore-canary\xfe"


def deleted(sm: Any, name: str) -> bool:
    return "DeletedDate" in sm.describe_secret(SecretId=name)


def writes(proxy: Any) -> list[str]:
    return [c.operation for c in proxy.calls if c.operation in WRITES]


def test_plan_restores_only_what_this_repository_manages():
    wanted = desired()
    ours = plan_secret(wanted, current(deleted=True), repository=REPOSITORY, adopt=True)
    assert ours.action is Action.RESTORE
    for adopt in (True, False):
        theirs = plan_secret(
            wanted, current(deleted=True, tags={}), repository=REPOSITORY, adopt=adopt
        )
        assert theirs.action is Action.CONFLICT
        assert "restores only secrets this repository manages" in theirs.reason
        assert "restore-secret --secret-id k" in theirs.reason
    other = {**dict(OURS_TAGS), "secrets-sync:repository": "other/repo"}
    elsewhere = plan_secret(
        wanted, current(deleted=True, tags=other), repository=REPOSITORY, adopt=True
    )
    assert elsewhere.action is Action.CONFLICT


OURS_TAGS = {t["Key"]: t["Value"] for t in OURS}


@pytest.mark.parametrize("dry_run", [False, True])
def test_an_unowned_secret_scheduled_for_deletion_is_never_restored(action, proxy, sm, dry_run):
    sm.create_secret(Name="app/db", SecretString=json.dumps(OLD))  # Terraform's, say
    sm.delete_secret(SecretId="app/db", RecoveryWindowInDays=7)
    inputs = {"secrets": "db: {keys: {password: DB_PASSWORD}}", "name-prefix": "app/"}
    if dry_run:
        inputs["dry-run"] = "true"
    run = action(inputs, env=ENV)
    assert run.returncode == (0 if dry_run else 1), run.stdout  # a dry run fails on drift only
    result = run.results()["app/db"]
    assert result["action"] == "conflict"
    assert "restores only secrets this repository manages" in result["error"]
    assert "restore-secret --secret-id app/db" in result["error"]
    assert run.json("failed") == ["app/db"]
    assert writes(proxy) == []
    assert deleted(sm, "app/db")
    assert "restore-secret" in run.summary
    assert_run_clean(run, [*OLD.values(), *ENV.values()])


def test_a_create_that_finds_an_unowned_planned_deletion_restores_nothing(action, proxy, realaws):
    import boto3

    via = boto3.client(
        "secretsmanager",
        region_name="us-east-1",
        endpoint_url=proxy.url,
        aws_access_key_id="testing",
        aws_secret_access_key="testing",
    )
    # Made and deleted minutes ago by someone else: the listing does not show it yet.
    via.create_secret(Name="app/db", SecretString=json.dumps(OLD))
    via.delete_secret(SecretId="app/db", RecoveryWindowInDays=7)
    proxy.reset()
    run = action({"secrets": "db: {keys: {password: DB_PASSWORD}}", "name-prefix": "app/"}, env=ENV)
    assert run.returncode == 1, run.stdout
    assert "restores only secrets this repository manages" in run.results()["app/db"]["error"]
    assert writes(proxy) == ["CreateSecret"]  # refused by AWS; nothing after it
    assert "DeletedDate" in via.describe_secret(SecretId="app/db")


def fail_reads_after_restore(call: Call, restored: list[Call]) -> int | None:
    if call.operation == "RestoreSecret":
        restored.append(call)
    if call.operation == "GetSecretValue" and restored:
        return 403  # AccessDenied: not retried, as a policy without GetSecretValue answers
    return None


@pytest.mark.parametrize(
    ("mapping", "arrange"),
    [
        # A merge would drop every key it does not own; a binary would be rewritten as a string.
        (
            "db: {keys: {password: DB_PASSWORD}, update-policy: merge}",
            lambda sm: sm.create_secret(Name="app/db", SecretString=json.dumps(OLD), Tags=OURS),
        ),
        (
            "db: {value: K}",
            lambda sm: sm.create_secret(Name="app/db", SecretBinary=KEYSTORE, Tags=OURS),
        ),
    ],
    ids=["merge", "binary"],
)
def test_a_restore_that_cannot_read_the_value_writes_nothing_more(
    action, proxy, sm, mapping, arrange
):
    arrange(sm)
    sm.delete_secret(SecretId="app/db", RecoveryWindowInDays=7)
    restored: list[Call] = []
    proxy.faults.rule = lambda call: fail_reads_after_restore(call, restored)
    run = action({"secrets": mapping, "name-prefix": "app/"}, env=ENV)
    assert run.returncode == 1, run.stdout
    assert run.json("failed") == ["app/db"]
    error = run.results()["app/db"]["error"]
    assert error.startswith("restored, but cannot read the current value (AccessDenied")
    assert "nothing was written" in error
    assert writes(proxy) == ["RestoreSecret"]  # no value, no tag
    assert not deleted(sm, "app/db")
    got = sm.get_secret_value(SecretId="app/db")
    if "SecretBinary" in got:
        assert got["SecretBinary"] == KEYSTORE
    else:
        assert json.loads(got["SecretString"]) == OLD
    tags = {t["Key"]: t["Value"] for t in sm.describe_secret(SecretId="app/db")["Tags"]}
    assert tags == OURS_TAGS
    canaries = [*OLD.values(), *ENV.values(), base64.b64encode(KEYSTORE).decode()]
    assert_run_clean(run, canaries)

    proxy.faults.rule = None  # the next run syncs it as any live secret of ours
    again = action({"secrets": mapping, "name-prefix": "app/"}, env=ENV)
    expected = "update" if "merge" in mapping else "conflict"  # a binary never becomes a string
    assert again.results()["app/db"]["action"] == expected
