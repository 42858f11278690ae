"""v1.1 rollback: AWSPREVIOUS made current again by moving staging labels, with no value
written and none needed; what is not ours, or has no previous version, is left alone."""

from __future__ import annotations

import json

from secrets_sync.drift import LABEL
from secrets_sync.plan import Action
from secrets_sync.rollback import plan_rollback
from secrets_sync.sources import Desired
from secrets_sync.state import Current
from tests.support.action import OURS, REPOSITORY, WRITES, assert_run_clean
from tests.test_audit import run_env, url

INPUTS = {"secrets": "key: KEY\nother: OTHER", "name-prefix": "rb/"}
GOOD = {"KEY": "good-canary-value-1", "OTHER": "other-canary-value-1"}
BAD = {**GOOD, "KEY": "bad-canary-value-2"}
ROLLBACK = {**INPUTS, "rollback": "true", "only": "key"}
VALUE_WRITES = {"CreateSecret", "UpdateSecret", "PutSecretValue"}


def value(sm, name):
    return json.loads(sm.get_secret_value(SecretId=name)["SecretString"])


def labels(sm, name):
    listed = sm.list_secret_version_ids(SecretId=name, IncludeDeprecated=True)["Versions"]
    return {v["VersionId"]: set(v.get("VersionStages", [])) for v in listed}


def version_with(sm, name, label):
    return next((v for v, s in labels(sm, name).items() if label in s), None)


def good_then_bad(action):
    assert action(INPUTS, env=GOOD).returncode == 0
    bad = action(INPUTS, env=BAD)
    assert bad.json("updated") == ["rb/key"]
    return bad


def test_rollback_makes_the_previous_version_current_writing_no_value(action, proxy, sm):
    good_then_bad(action)
    good_version = version_with(sm, "rb/key", "AWSPREVIOUS")
    proxy.reset()
    # No source values at all: a rollback needs none, GitHub could not give the old one anyway.
    run = action(ROLLBACK, env=run_env("555", "2"))
    assert run.returncode == 0, run.stdout
    assert run.json("rolled-back") == ["rb/key"]
    assert run.outputs["changed"] == "true"
    assert value(sm, "rb/key") == {"KEY": GOOD["KEY"]}
    assert version_with(sm, "rb/key", "AWSCURRENT") == good_version
    assert version_with(sm, "rb/key", LABEL) == good_version  # drift stays quiet about it
    assert run.results()["rb/key"]["version_id"] == good_version
    assert not VALUE_WRITES & set(proxy.ops())
    assert "rb/other" not in json.dumps(run.json("results"))  # not selected, not touched
    assert "| `rb/key` | rollback |" in run.summary
    tags = {t["Key"]: t["Value"] for t in sm.describe_secret(SecretId="rb/key")["Tags"]}
    assert tags["secrets-sync:rolled-back-from"] == version_with(sm, "rb/key", "AWSPREVIOUS")
    assert tags["secrets-sync:run"] == url("555", "2")  # the audit trail names the rollback
    assert_run_clean(run, [*GOOD.values(), *BAD.values()])

    # The next sync, with the GitHub secret not fixed, writes the bad value again (no drift):
    # the runbook says to fix the secret or hold the schedule first.
    proxy.reset()
    resync = action(INPUTS, env=BAD)
    assert resync.json("updated") == ["rb/key"]
    assert resync.json("drifted") == []
    assert value(sm, "rb/key") == {"KEY": BAD["KEY"]}


def test_rollback_twice_does_not_bring_the_bad_value_back(action, proxy, sm):
    good_then_bad(action)
    assert action(ROLLBACK).json("rolled-back") == ["rb/key"]
    proxy.reset()
    again = action(ROLLBACK)
    assert again.returncode == 0, again.stdout
    assert again.json("rolled-back") == []
    assert again.json("skipped") == ["rb/key"]
    assert value(sm, "rb/key") == {"KEY": GOOD["KEY"]}
    assert not WRITES & set(proxy.ops())
    [warning] = [line for line in again.log_lines if line.startswith("::warning")]
    assert "rb/key" in warning
    assert "already rolled back" in warning

    # After a fixed secret is synced, a rollback is possible again (to the good version).
    fixed = {**GOOD, "KEY": "fixed-canary-value-3"}
    assert action(INPUTS, env=fixed).json("updated") == ["rb/key"]
    assert action(ROLLBACK).json("rolled-back") == ["rb/key"]
    assert value(sm, "rb/key") == {"KEY": GOOD["KEY"]}


def test_rollback_of_a_secret_whose_previous_version_was_deprecated(action, proxy, sm):
    good_then_bad(action)
    # AWS deprecates a version when its last label goes; here AWSPREVIOUS is taken off it.
    previous = version_with(sm, "rb/key", "AWSPREVIOUS")
    sm.update_secret_version_stage(
        SecretId="rb/key", VersionStage="AWSPREVIOUS", RemoveFromVersionId=previous
    )
    proxy.reset()
    run = action(ROLLBACK)
    assert run.returncode == 0, run.stdout
    assert run.json("skipped") == ["rb/key"]
    assert "no previous version" in next(
        line for line in run.log_lines if line.startswith("::warning")
    )
    assert value(sm, "rb/key") == {"KEY": BAD["KEY"]}
    assert not WRITES & set(proxy.ops())


def test_rollback_leaves_what_is_not_ours_or_has_one_version(action, proxy, sm):
    sm.create_secret(Name="rb/key", SecretString='{"KEY":"tf-canary-1"}')
    sm.update_secret(SecretId="rb/key", SecretString='{"KEY":"tf-canary-2"}')
    sm.create_secret(Name="rb/other", SecretString='{"OTHER":"only-canary-1"}', Tags=OURS)
    proxy.reset()
    run = action({**INPUTS, "rollback": "true"})
    assert run.returncode == 1  # a secret asked for and not ours: said as a failure
    assert run.json("failed") == ["rb/key"]
    assert "left alone" in run.results()["rb/key"]["error"]
    assert run.json("skipped") == ["rb/other"]
    assert not WRITES & set(proxy.ops())
    assert sm.get_secret_value(SecretId="rb/key")["SecretString"] == '{"KEY":"tf-canary-2"}'
    assert_run_clean(run, ["tf-canary-1", "tf-canary-2", "only-canary-1"])


def test_dry_run_rollback_says_what_it_would_do(action, proxy, sm):
    good_then_bad(action)
    proxy.reset()
    run = action({**ROLLBACK, "dry-run": "true"})
    assert run.returncode == 0, run.stdout
    assert run.json("rolled-back") == ["rb/key"]
    assert not WRITES & set(proxy.ops())
    assert value(sm, "rb/key") == {"KEY": BAD["KEY"]}
    assert "Would roll back" in run.stdout
    assert "becomes current again" in run.stdout
    assert run.summary.startswith("### secrets-sync plan (dry run, nothing written)")


# The pure rule ----------------------------------------------------------------------------------

OUR_TAGS = {t["Key"]: t["Value"] for t in OURS}


def _plan(stages, tags=OUR_TAGS, **more):
    from secrets_sync.mapping import load_mapping

    [spec] = load_mapping("key: KEY", "secrets").specs
    current = Current("key", "arn", tags=dict(tags), stages=stages, **more)
    return plan_rollback(Desired(spec, None), current, repository=REPOSITORY)


def test_plan_rollback():
    two = {"v1": ("AWSPREVIOUS", LABEL), "v2": ("AWSCURRENT",)}
    step = _plan(two)
    assert (step.action, step.target_version) == (Action.ROLLBACK, "v1")
    assert _plan({"v2": ("AWSCURRENT", LABEL)}).action is Action.SKIP
    assert _plan(two, tags={}).action is Action.CONFLICT
    assert _plan(two, tags={**OUR_TAGS, "secrets-sync:repository": "o/r"}).action is (
        Action.CONFLICT
    )
    assert _plan(two, deleted=True).action is Action.SKIP
    again = _plan(two, tags={**OUR_TAGS, "secrets-sync:rolled-back-from": "v1"})
    assert (again.action, again.target_version) == (Action.SKIP, None)
    # A rollback after a later write is allowed again: AWSPREVIOUS is another version now.
    later = _plan(two, tags={**OUR_TAGS, "secrets-sync:rolled-back-from": "v0"})
    assert later.action is Action.ROLLBACK
