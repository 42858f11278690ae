"""Rollback: AWSPREVIOUS made current again with one UpdateSecretVersionStage, read fresh with
DescribeSecret, only where secrets-sync wrote both versions and the previous is the older; a
hand fix, a rollback done already (here or in the console), an `if-not-exists` secret and
anything not ours are left alone, with the reason. Every test runs under both readings of what
AWS does to the labels of a version AWSCURRENT leaves (label_reading)."""

from __future__ import annotations

import json

import pytest

from secrets_sync.plan import Action
from secrets_sync.rollback import plan_rollback
from secrets_sync.sources import Desired
from secrets_sync.state import Current
from secrets_sync.versions import LEGACY_LABEL, new_token, written_by
from tests.support.action import OURS, REPOSITORY, WRITES, assert_run_clean
from tests.test_audit import run_env

pytestmark = pytest.mark.usefixtures("label_reading")

INPUTS = {"secrets": "key: KEY\nother: OTHER", "name-prefix": "rb/"}
GOOD = {"KEY": "good-canary-value-1", "OTHER": "other-canary-value-1"}
BAD = {**GOOD, "KEY": "bad-canary-value-2"}
ROLLBACK = {**INPUTS, "rollback": "true", "only": "key"}


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


def warning_of(run):
    [warning] = [line for line in run.log_lines if line.startswith("::warning")]
    return warning


def test_rollback_is_one_call_after_a_fresh_read_and_the_next_sync_is_quiet(action, proxy, sm):
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
    assert run.results()["rb/key"]["version_id"] == good_version
    # Read fresh, never from the (lagging) listing; one write, the label move.
    assert proxy.ops() == ["DescribeSecret", "UpdateSecretVersionStage"]
    assert "rb/other" not in json.dumps(run.json("results"))  # not selected, not touched
    assert "| `rb/key` | rollback |" in run.summary
    assert "becomes current again" in run.stdout
    assert_run_clean(run, [*GOOD.values(), *BAD.values()])

    # One call: done whole or not at all, so no half-done rollback can be left for a later
    # run to mistake for drift. The next sync, GitHub's secret not fixed yet, writes the bad
    # value again (the runbook says to hold the schedule or fix the secret first), quietly.
    proxy.reset()
    resync = action({**INPUTS, "on-drift": "fail"}, env=BAD)
    assert resync.returncode == 0, resync.stdout
    assert resync.json("updated") == ["rb/key"]
    assert resync.json("drifted") == []
    assert value(sm, "rb/key") == {"KEY": BAD["KEY"]}


def test_after_a_rollback_with_githubs_secret_fixed_the_sync_is_a_noop(action, proxy, sm):
    good_then_bad(action)
    assert action(ROLLBACK).json("rolled-back") == ["rb/key"]
    proxy.reset()
    run = action({**INPUTS, "on-drift": "fail"}, env=GOOD)
    assert run.returncode == 0, run.stdout
    assert run.json("drifted") == []
    assert run.outputs["changed"] == "false"
    assert not WRITES & set(proxy.ops())


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
    assert "rolled back already" in warning_of(again)
    assert "docs/operations.md#rollback" in warning_of(again)

    # After a fixed secret is synced, a rollback is possible again (to the good version).
    fixed = {**GOOD, "KEY": "fixed-canary-value-3"}
    assert action(INPUTS, env=fixed).json("updated") == ["rb/key"]
    assert action(ROLLBACK).json("rolled-back") == ["rb/key"]
    assert value(sm, "rb/key") == {"KEY": GOOD["KEY"]}


def test_the_runbooks_rollback_after_one_made_in_the_console_is_refused(action, proxy, sm):
    good_then_bad(action)
    bad, good = version_with(sm, "rb/key", "AWSCURRENT"), version_with(sm, "rb/key", "AWSPREVIOUS")
    # The console's "roll back": AWSCURRENT moved to the previous version.
    sm.update_secret_version_stage(
        SecretId="rb/key", VersionStage="AWSCURRENT", MoveToVersionId=good, RemoveFromVersionId=bad
    )
    proxy.reset()
    run = action(ROLLBACK)
    assert run.returncode == 0, run.stdout
    assert run.json("skipped") == ["rb/key"]
    assert "rolled back already (here or in the console)" in warning_of(run)
    assert value(sm, "rb/key") == {"KEY": GOOD["KEY"]}
    assert not WRITES & set(proxy.ops())


def test_a_fix_made_by_hand_is_never_undone(action, proxy, sm):
    good_then_bad(action)
    sm.put_secret_value(SecretId="rb/key", SecretString='{"KEY":"hotfix-canary-4"}')
    proxy.reset()
    run = action(ROLLBACK)
    assert run.returncode == 0, run.stdout
    assert run.json("skipped") == ["rb/key"]
    warning = warning_of(run)
    assert "not written by secrets-sync" in warning
    assert "incident runbook" in warning
    assert value(sm, "rb/key") == {"KEY": "hotfix-canary-4"}
    assert not WRITES & set(proxy.ops())
    assert_run_clean(run, ["hotfix-canary-4", *GOOD.values(), *BAD.values()])


def test_an_if_not_exists_secret_is_not_rolled_back(action, proxy, sm):
    inputs = {"secrets": "seed: {value: SEED, update-policy: if-not-exists}", "name-prefix": "rb/"}
    assert action(inputs, env={"SEED": "seed-canary-1"}).returncode == 0
    # Its value is someone else's after creation: rotated outside, then (say) by our token.
    sm.put_secret_value(SecretId="rb/seed", SecretString="rotated-canary-2")
    sm.put_secret_value(
        SecretId="rb/seed", SecretString="rotated-canary-3", ClientRequestToken=new_token("9", "1")
    )
    run = action({**inputs, "rollback": "true", "only": "*"})
    assert run.returncode == 0, run.stdout
    assert run.json("skipped") == ["rb/seed"]
    assert "if-not-exists" in warning_of(run)
    assert sm.get_secret_value(SecretId="rb/seed")["SecretString"] == "rotated-canary-3"


def test_a_rollback_needs_an_explicit_selection(action, proxy, sm):
    good_then_bad(action)
    proxy.reset()
    run = action({**INPUTS, "rollback": "true"})
    assert run.returncode == 1
    [error] = run.errors
    assert "input `rollback`" in error
    assert 'only: "*"' in error
    assert proxy.calls == []  # not even credentials
    assert value(sm, "rb/key") == {"KEY": BAD["KEY"]}

    everything = action({**INPUTS, "rollback": "true", "only": "*"})
    assert everything.returncode == 0, everything.stdout
    assert everything.json("rolled-back") == ["rb/key"]
    assert everything.json("skipped") == ["rb/other"]  # one version only
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
    assert "no previous version" in warning_of(run)
    assert value(sm, "rb/key") == {"KEY": BAD["KEY"]}
    assert not WRITES & set(proxy.ops())


def test_rollback_leaves_what_is_not_ours_or_has_one_version(action, proxy, sm):
    sm.create_secret(Name="rb/key", SecretString='{"KEY":"tf-canary-1"}')
    sm.update_secret(SecretId="rb/key", SecretString='{"KEY":"tf-canary-2"}')
    sm.create_secret(Name="rb/other", SecretString='{"OTHER":"only-canary-1"}', Tags=OURS)
    proxy.reset()
    run = action({**INPUTS, "rollback": "true", "only": "*"})
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


def test_back_to_a_version_v11_wrote_as_far_as_aws_tells(action, proxy, sm, label_reading):
    # v1.1 wrote the good value, with its label; this version writes the bad one over it.
    sm.create_secret(Name="rb/key", SecretString=json.dumps({"KEY": GOOD["KEY"]}), Tags=OURS)
    v11 = sm.get_secret_value(SecretId="rb/key")["VersionId"]
    sm.update_secret_version_stage(
        SecretId="rb/key", VersionStage=LEGACY_LABEL, MoveToVersionId=v11
    )
    assert action({**INPUTS, "secrets": "key: KEY"}, env=BAD).json("updated") == ["rb/key"]
    run = action({**ROLLBACK, "secrets": "key: KEY"})
    assert run.returncode == 0, run.stdout
    if label_reading == "kept":
        # The old version still carries v1.1's label: ours, and older than any token.
        assert run.json("rolled-back") == ["rb/key"]
        assert value(sm, "rb/key") == {"KEY": GOOD["KEY"]}
    else:
        # The label went with AWSCURRENT's move: nothing says secrets-sync wrote it.
        assert run.json("skipped") == ["rb/key"]
        assert "was not written by secrets-sync" in warning_of(run)
        assert value(sm, "rb/key") == {"KEY": BAD["KEY"]}


# The pure rule ----------------------------------------------------------------------------------

OUR_TAGS = {t["Key"]: t["Value"] for t in OURS}


def _plan(stages, tags=OUR_TAGS, policy="", **more):
    from secrets_sync.mapping import load_mapping

    text = f"key: {{keys: [KEY]{', update-policy: ' + policy if policy else ''}}}"
    [spec] = load_mapping(text, "secrets").specs
    current = Current("key", "arn", tags=dict(tags), stages=stages, **more)
    return plan_rollback(Desired(spec, None), current, repository=REPOSITORY)


def test_plan_rollback():
    early, late = new_token("1", "1", now=100.0), new_token("2", "1", now=200.0)
    hand = "a" * 36
    two = {early: ("AWSPREVIOUS",), late: ("AWSCURRENT",)}
    step = _plan(two)
    assert (step.action, step.target_version) == (Action.ROLLBACK, early)
    assert "run 1 attempt 1" in step.reason
    assert written_by(step.target_version) is not None
    assert _plan({late: ("AWSCURRENT",)}).action is Action.SKIP
    assert _plan(two, tags={}).action is Action.CONFLICT
    other = {**OUR_TAGS, "secrets-sync:repository": "o/r"}
    assert _plan(two, tags=other).action is Action.CONFLICT
    assert _plan(two, deleted=True).action is Action.SKIP
    assert _plan(two, policy="if-not-exists").action is Action.SKIP
    assert _plan(two, policy="merge").action is Action.ROLLBACK
    backwards = {early: ("AWSCURRENT",), late: ("AWSPREVIOUS",)}
    assert "rolled back already" in _plan(backwards).reason
    assert "not written by" in _plan({early: ("AWSPREVIOUS",), hand: ("AWSCURRENT",)}).reason
    assert "not written by" in _plan({hand: ("AWSPREVIOUS",), late: ("AWSCURRENT",)}).reason
    v11 = {hand: ("AWSPREVIOUS", LEGACY_LABEL), late: ("AWSCURRENT",)}
    assert _plan(v11).target_version == hand
    unreadable = plan_rollback(Desired(_plan(two).desired.spec, None), "denied", repository="x")
    assert unreadable.error == "denied; nothing was changed"
