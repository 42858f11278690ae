"""The core, end to end: the entrypoint as the runner runs it, against moto over HTTP."""

from __future__ import annotations

import json

from tests.support.action import REPOSITORY, assert_run_clean

MAPPING = """
resend-api-key: RESEND_API_KEY
db: [DB_USER, DB_PASSWORD]
stripe:
  description: Stripe for billing
  keys: { api_key: STRIPE_KEY, webhook_secret: STRIPE_WEBHOOK }
  tags: { Team: billing }
sentry-dsn: { value: SENTRY_DSN }
"""
CANARIES = {
    "RESEND_API_KEY": "re_canary_7f3a9c1d2e",
    "DB_USER": "canary-user-b81f",
    "DB_PASSWORD": 'p@ss"w0rd\\canary\nsecond-line-canary',
    "STRIPE_KEY": "sk_live_canary_0c9d8e",
    "STRIPE_WEBHOOK": "whsec_canary_ünïcødé_42",
    "SENTRY_DSN": "https://canary0123@sentry.example/1",
}


def test_create_then_noop(action, proxy, sm, realaws):
    inputs = {"secrets": MAPPING, "name-prefix": "lornu-ai/"}
    first = action(inputs, env=CANARIES)
    assert first.returncode == 0, first.stdout + first.stderr
    assert sorted(first.json("created")) == [
        "lornu-ai/db",
        "lornu-ai/resend-api-key",
        "lornu-ai/sentry-dsn",
        "lornu-ai/stripe",
    ]
    assert first.outputs["changed"] == "true"

    db = json.loads(sm.get_secret_value(SecretId="lornu-ai/db")["SecretString"])
    assert db == {"DB_USER": CANARIES["DB_USER"], "DB_PASSWORD": CANARIES["DB_PASSWORD"]}
    stripe = sm.describe_secret(SecretId="lornu-ai/stripe")
    assert stripe["Description"] == "Stripe for billing"
    tags = {t["Key"]: t["Value"] for t in stripe["Tags"]}
    assert tags == {
        "Team": "billing",
        "ManagedBy": "secrets-sync",
        "secrets-sync:repository": REPOSITORY,
        "secrets-sync:tags": "Team",  # the tag keys this action set (tagrecord.py)
    }
    plain = sm.get_secret_value(SecretId="lornu-ai/sentry-dsn")["SecretString"]
    assert plain == CANARIES["SENTRY_DSN"]
    arns = first.json("arns")
    assert arns["lornu-ai/stripe"] == stripe["ARN"]
    assert "| `lornu-ai/stripe` | create |" in first.summary
    assert "`api_key`, `webhook_secret`" in first.summary
    assert_run_clean(first, CANARIES.values())

    # At once, ListSecrets does not show them yet (it lags by minutes on AWS): what the batch
    # read found by name is described instead, and nothing is written or created twice.
    proxy.reset()
    second = action(inputs, env=CANARIES)
    assert second.returncode == 0, second.stdout
    assert second.outputs["changed"] == "false"
    assert sorted(second.json("unchanged")) == sorted(arns)
    assert second.json("arns") == arns
    assert sorted(proxy.ops()) == ["BatchGetSecretValue", *["DescribeSecret"] * 4, "ListSecrets"]
    assert_run_clean(second, CANARIES.values())

    realaws.settle()  # minutes later, the listing has them
    proxy.reset()
    third = action(inputs, env=CANARIES)
    assert third.returncode == 0, third.stdout
    assert third.outputs["changed"] == "false"
    assert third.json("arns") == arns
    # One listing and one batch read, which go out side by side (in either order).
    assert sorted(proxy.ops()) == ["BatchGetSecretValue", "ListSecrets"]


def tags_of(sm, name):
    return {t["Key"]: t["Value"] for t in sm.describe_secret(SecretId=name).get("Tags", [])}


def versions(sm, name):
    return sm.list_secret_version_ids(SecretId=name, IncludeDeprecated=True)["Versions"]


OURS = [
    {"Key": "ManagedBy", "Value": "secrets-sync"},
    {"Key": "secrets-sync:repository", "Value": REPOSITORY},
]


def test_terraform_jsonencode_spacing_is_unchanged(action, proxy, sm):
    # Terraform's jsonencode wrote this; the same JSON with other spacing and key order.
    sm.create_secret(
        Name="app/db",
        SecretString='{ "DB_PASSWORD" : "pw-canary-1",  "DB_USER":"user-canary-1" }',
        Tags=OURS,
    )
    run = action(
        {"secrets": "db: [DB_USER, DB_PASSWORD]", "name-prefix": "app/"},
        env={"DB_USER": "user-canary-1", "DB_PASSWORD": "pw-canary-1"},
    )
    assert run.returncode == 0, run.stdout
    assert run.json("unchanged") == ["app/db"]
    assert not {"UpdateSecret", "PutSecretValue"} & set(proxy.ops())
    assert len(versions(sm, "app/db")) == 1


def test_update_changes_value_once_and_reports_version(action, proxy, sm):
    created = sm.create_secret(Name="app/key", SecretString='{"KEY":"old-canary-value"}', Tags=OURS)
    run = action({"secrets": "key: KEY", "name-prefix": "app/"}, env={"KEY": "new-canary-value"})
    assert run.returncode == 0, run.stdout
    assert run.json("updated") == ["app/key"]
    assert json.loads(sm.get_secret_value(SecretId="app/key")["SecretString"]) == {
        "KEY": "new-canary-value"
    }
    result = run.results()["app/key"]
    assert result["action"] == "update"
    assert result["version_id"] != created["VersionId"]
    assert result["version_id"] == sm.get_secret_value(SecretId="app/key")["VersionId"]
    assert proxy.ops().count("PutSecretValue") == 1
    assert "TagResource" not in proxy.ops()
    assert_run_clean(run, ["new-canary-value", "old-canary-value"])


def test_tag_only_change_writes_no_version(action, proxy, sm):
    created = sm.create_secret(
        Name="app/key", SecretString='{"KEY":"same-canary-value"}', Tags=OURS
    )
    run = action(
        {
            "secrets": "key: {keys: [KEY], tags: {Team: core}, description: Core key}",
            "name-prefix": "app/",
            "default-tags": "Env: prod",
        },
        env={"KEY": "same-canary-value"},
    )
    assert run.returncode == 0, run.stdout
    assert run.results()["app/key"]["action"] == "tag"
    assert run.json("updated") == ["app/key"]
    tags = tags_of(sm, "app/key")
    # Its value was not written by secrets-sync, and is GitHub's: taken over as it is, with
    # the TagResource that happens anyway (the drift baseline: docs/operations.md#drift).
    baseline = tags.pop("secrets-sync:baseline")
    assert baseline.startswith(created["VersionId"] + "@")
    assert tags == {
        "Team": "core",
        "Env": "prod",
        "secrets-sync:tags": "Env+Team",
        **{t["Key"]: t["Value"] for t in OURS},
    }
    assert sm.describe_secret(SecretId="app/key")["Description"] == "Core key"
    assert len(versions(sm, "app/key")) == 1


def test_adopt_existing_takes_over_untagged_secret(action, sm):
    sm.create_secret(
        Name="app/key",
        SecretString='{"KEY":"old-canary-value"}',
        Tags=[{"Key": "ManagedBy", "Value": "Terraform"}, {"Key": "Owner", "Value": "x"}],
    )
    run = action({"secrets": "key: KEY", "name-prefix": "app/"}, env={"KEY": "new-canary-value"})
    assert run.returncode == 0, run.stdout
    assert run.results()["app/key"]["action"] == "update"
    tags = tags_of(sm, "app/key")
    assert tags["ManagedBy"] == "secrets-sync"
    assert tags["secrets-sync:repository"] == REPOSITORY
    assert tags["Owner"] == "x"  # tags we do not own are left alone


def test_adopt_existing_false_reports_conflict_and_touches_nothing(action, proxy, sm):
    sm.create_secret(Name="app/key", SecretString='{"KEY":"old-canary-value"}')
    run = action(
        {"secrets": "key: KEY", "name-prefix": "app/", "adopt-existing": "false"},
        env={"KEY": "new-canary-value"},
    )
    assert run.returncode == 1
    assert run.json("failed") == ["app/key"]
    assert run.results()["app/key"]["action"] == "conflict"
    assert "adopt-existing is false" in run.results()["app/key"]["error"]
    assert any("app/key" in line for line in run.errors)
    assert set(proxy.ops()) <= {"ListSecrets", "BatchGetSecretValue"}
    assert sm.get_secret_value(SecretId="app/key")["SecretString"] == '{"KEY":"old-canary-value"}'


def test_secret_of_another_repository_is_a_conflict(action, proxy, sm):
    sm.create_secret(
        Name="app/key",
        SecretString='{"KEY":"theirs-canary"}',
        Tags=[
            {"Key": "ManagedBy", "Value": "secrets-sync"},
            {"Key": "secrets-sync:repository", "Value": "other-org/other-repo"},
        ],
    )
    run = action({"secrets": "key: KEY", "name-prefix": "app/"}, env={"KEY": "mine-canary-1"})
    assert run.returncode == 1
    assert "other-org/other-repo" in run.results()["app/key"]["error"]
    assert not {"UpdateSecret", "TagResource", "PutSecretValue"} & set(proxy.ops())


def test_restore_secret_scheduled_for_deletion(action, proxy, sm):
    sm.create_secret(Name="app/key", SecretString='{"KEY":"same-canary-value"}', Tags=OURS)
    sm.delete_secret(SecretId="app/key", RecoveryWindowInDays=7)
    run = action({"secrets": "key: KEY", "name-prefix": "app/"}, env={"KEY": "same-canary-value"})
    assert run.returncode == 0, run.stdout
    assert run.results()["app/key"]["action"] == "restore"
    assert "DeletedDate" not in sm.describe_secret(SecretId="app/key")
    assert "RestoreSecret" in proxy.ops()
    assert "PutSecretValue" not in proxy.ops()  # the restored value was already right
    assert len(versions(sm, "app/key")) == 1


def test_missing_fail_writes_nothing(action, proxy):
    run = action({"secrets": "a: A_VALUE\nb: B_VALUE"}, env={"A_VALUE": "a-canary-value"})
    assert run.returncode == 1
    assert "B_VALUE" in run.errors[0]
    assert "nothing was written" in run.errors[0]
    assert proxy.calls == []
    assert_run_clean(run, ["a-canary-value"])


def test_missing_skip_leaves_secret_untouched(action, proxy, sm):
    sm.create_secret(Name="b", SecretString='{"B_VALUE":"b-old-canary"}', Tags=OURS)
    run = action(
        {"secrets": "a: A_VALUE\nb: B_VALUE", "missing": "skip"},
        env={"A_VALUE": "a-canary-value", "B_VALUE": ""},
    )
    assert run.returncode == 0, run.stdout
    assert run.json("skipped") == ["b"]
    assert run.json("created") == ["a"]
    assert "b" in run.json("arns")  # it exists, so later steps still get its ARN
    assert sm.get_secret_value(SecretId="b")["SecretString"] == '{"B_VALUE":"b-old-canary"}'
    assert "no value for B_VALUE" in run.stdout


def test_dry_run_makes_no_write_call(action, proxy, sm):
    sm.create_secret(Name="app/old", SecretString='{"OLD":"x-canary-old"}', Tags=OURS)
    run = action(
        {
            "secrets": "new: NEW\nold: OLD",
            "name-prefix": "app/",
            "dry-run": "true",
            "prune": "true",
        },
        env={"NEW": "new-canary-value", "OLD": "changed-canary"},
    )
    assert run.returncode == 0, run.stdout
    # Reads only. `app/old` is ours and its current version is not (made before secrets-sync
    # wrote versions with its token): a write over it looks for a version of ours to judge
    # drift against (ListSecretVersionIds), and finds none.
    assert set(proxy.ops()) == {"ListSecrets", "BatchGetSecretValue", "ListSecretVersionIds"}
    assert run.json("created") == ["app/new"]
    assert run.json("updated") == ["app/old"]
    assert run.outputs["changed"] == "true"
    assert "plan (dry run, nothing written)" in run.summary
    assert sm.list_secrets()["SecretList"][0]["Name"] == "app/old"
    assert_run_clean(run, ["new-canary-value", "changed-canary", "x-canary-old"])


def test_secrets_file_and_values_input(action, sm):
    values = json.dumps({"RESEND_API_KEY": "from-values-canary", "UNUSED": "unused-canary"})
    run = action(
        {"secrets-file": ".github/secrets-sync.yml", "values": values},
        env={"SENTRY_DSN": "from-env-canary"},
        files={".github/secrets-sync.yml": "resend: RESEND_API_KEY\nsentry: {value: SENTRY_DSN}\n"},
    )
    assert run.returncode == 0, run.stdout
    assert json.loads(sm.get_secret_value(SecretId="resend")["SecretString"]) == {
        "RESEND_API_KEY": "from-values-canary"
    }
    assert sm.get_secret_value(SecretId="sentry")["SecretString"] == "from-env-canary"
    assert_run_clean(run, ["from-values-canary", "unused-canary", "from-env-canary"])


def test_batch_read_denied_falls_back_to_get_secret_value(action, proxy, sm):
    for i in range(3):
        sm.create_secret(Name=f"app/s{i}", SecretString=f'{{"S{i}":"v{i}-canary"}}', Tags=OURS)
    proxy.faults.rule = lambda call: 403 if call.operation == "BatchGetSecretValue" else None
    mapping = "\n".join(f"s{i}: S{i}" for i in range(3))
    run = action(
        {"secrets": mapping, "name-prefix": "app/"}, env={f"S{i}": f"v{i}-canary" for i in range(3)}
    )
    assert run.returncode == 0, run.stdout
    assert sorted(run.json("unchanged")) == ["app/s0", "app/s1", "app/s2"]
    assert proxy.ops().count("GetSecretValue") == 3
    assert not {"UpdateSecret", "CreateSecret"} & set(proxy.ops())


def test_create_that_loses_a_race_reads_and_carries_on(action, proxy, sm):
    raced = []

    def rival(call):
        # Another run creates the secret between our ListSecrets and our CreateSecret.
        if call.operation == "CreateSecret" and not raced:
            raced.append(call)
            sm.create_secret(Name="app/key", SecretString='{"KEY":"rival-canary"}', Tags=OURS)
        return None

    proxy.faults.rule = rival
    run = action({"secrets": "key: KEY", "name-prefix": "app/"}, env={"KEY": "mine-canary-2"})
    assert run.returncode == 0, run.stdout
    assert run.results()["app/key"]["action"] == "update"
    assert json.loads(sm.get_secret_value(SecretId="app/key")["SecretString"]) == {
        "KEY": "mine-canary-2"
    }
    assert len(versions(sm, "app/key")) == 2


def test_one_failing_secret_does_not_stop_the_others(action, proxy, sm):
    proxy.faults.rule = lambda call: (
        403 if call.operation == "CreateSecret" and call.secret_id == "bad" else None
    )
    run = action(
        {"secrets": "bad: BAD\ngood1: G1\ngood2: G2"},
        env={"BAD": "bad-canary-1", "G1": "good-canary-1", "G2": "good-canary-2"},
    )
    assert run.returncode == 1
    assert run.json("failed") == ["bad"]
    assert sorted(run.json("created")) == ["good1", "good2"]
    assert "AccessDeniedException" in run.results()["bad"]["error"]
    assert any(line.startswith("::error") and "bad" in line for line in run.errors)
    assert "Needs attention" in run.summary
    assert_run_clean(run, ["bad-canary-1", "good-canary-1", "good-canary-2"])


def test_prune_deletes_only_our_secrets_with_recovery_window(action, proxy, sm):
    sm.create_secret(Name="app/keep", SecretString='{"KEEP":"k-canary"}', Tags=OURS)
    sm.create_secret(Name="app/gone", SecretString="x", Tags=OURS)
    sm.create_secret(Name="app/untagged", SecretString="x")
    sm.create_secret(Name="other/gone", SecretString="x", Tags=OURS)
    run = action(
        {
            "secrets": "keep: KEEP",
            "name-prefix": "app/",
            "prune": "true",
            "recovery-window-days": "9",
        },
        env={"KEEP": "k-canary"},
    )
    assert run.returncode == 0, run.stdout
    assert run.json("deleted") == ["app/gone"]
    deletes = [c for c in proxy.calls if c.operation == "DeleteSecret"]
    assert len(deletes) == 1
    assert deletes[0].body["RecoveryWindowInDays"] == 9
    assert "ForceDeleteWithoutRecovery" not in deletes[0].body
    assert "DeletedDate" in sm.describe_secret(SecretId="app/gone")
    assert "DeletedDate" not in sm.describe_secret(SecretId="app/untagged")
    assert "DeletedDate" not in sm.describe_secret(SecretId="other/gone")
    assert "app/gone" not in run.json("arns")


def test_outside_actions_prints_json_results(proxy, tmp_path):
    from tests.support.action import run_action

    run = run_action(
        {"secrets": "k: K", "aws-region": "us-east-1"},
        endpoint=proxy.url,
        workspace=tmp_path / "ws",
        env={"K": "cli-canary-value"},
        drop=["GITHUB_ACTIONS", "GITHUB_OUTPUT", "GITHUB_STEP_SUMMARY"],
    )
    assert run.returncode == 0, run.stderr
    doc = json.loads(run.stdout)
    assert doc["created"] == ["k"]
    assert doc["results"][0]["action"] == "create"
    assert "::" not in run.stderr  # no workflow commands outside Actions
    assert "cli-canary-value" not in run.stdout + run.stderr
