"""Drift: a secret of ours whose current value was changed outside secrets-sync, in what the
mapping owns, since secrets-sync last wrote it. Known from the VersionId the run reads anyway
(our token: versions.py), judged against the newest version we wrote only where a write would go
over a version written outside; handled as `on-drift` says. Every test here runs under both
readings of what AWS does to the labels of a version AWSCURRENT leaves (label_reading): nothing
here may rest on a label surviving on an old version."""

from __future__ import annotations

import json
import signal
import time
import uuid

import pytest

from secrets_sync.mapping import BASELINE_TAG
from secrets_sync.versions import LEGACY_LABEL, new_token, written_by
from tests.support.action import OURS, WRITES, assert_run_clean
from tests.test_audit import run_env

pytestmark = pytest.mark.usefixtures("label_reading")

INPUTS = {"secrets": "key: KEY\nquiet: QUIET", "name-prefix": "drift/"}
VALUES = {"KEY": "github-canary-value-1", "QUIET": "quiet-canary-value-1"}
OUTSIDE = '{"KEY":"console-canary-value-9"}'  # what someone typed into the console
READS = {"ListSecrets", "BatchGetSecretValue"}
LOOK = ["ListSecretVersionIds", "GetSecretValue"]  # the two reads of a suspected drift


def ops(proxy):
    """The calls made, but DescribeSecret: the read of a secret made so lately that the
    listing does not show it yet (tests/support/realaws/), which is not what these are about."""
    return sorted(op for op in proxy.ops() if op != "DescribeSecret")


def current_id(sm, name):
    return sm.get_secret_value(SecretId=name)["VersionId"]


def value(sm, name):
    return sm.get_secret_value(SecretId=name)["SecretString"]


def tags_of(sm, name):
    return {t["Key"]: t["Value"] for t in sm.describe_secret(SecretId=name).get("Tags", [])}


def synced(action, env=None):
    run = action(INPUTS, env={**VALUES, **(env or {})})
    assert run.returncode == 0, run.stdout
    return run


def drift_out_of_band(sm, how, text=OUTSIDE):
    if how == "PutSecretValue":
        sm.put_secret_value(SecretId="drift/key", SecretString=text)
    else:
        sm.update_secret(SecretId="drift/key", SecretString=text)


def test_every_value_written_is_a_version_named_by_our_token(action, proxy, sm):
    run = synced(action, run_env("4242", "3"))
    creates = {c.secret_id: c.body["ClientRequestToken"] for c in proxy.calls if c.body.get("Name")}
    for name in ("drift/key", "drift/quiet"):
        version = current_id(sm, name)
        assert version == creates[name] == run.results()[name]["version_id"]
        writer = written_by(version)
        assert (writer.run_id, writer.attempt) == (4242, 3)
        assert abs(writer.at.timestamp() - time.time()) < 120
        assert run.results()[name]["drift"] is False
    assert run.json("drifted") == []
    assert "UpdateSecretVersionStage" not in proxy.ops()  # one call a create

    proxy.reset()
    update = action(INPUTS, env={**VALUES, "KEY": "github-canary-value-2", **run_env("4243")})
    assert [op for op in proxy.ops() if op in WRITES] == ["PutSecretValue"]
    [put] = [c for c in proxy.calls if c.operation == "PutSecretValue"]
    assert "VersionStages" not in put.body  # plain: AWSCURRENT, nothing of ours
    assert put.body["ClientRequestToken"] == current_id(sm, "drift/key")
    assert written_by(update.results()["drift/key"]["version_id"]).run_id == 4243


@pytest.mark.parametrize("how", ["PutSecretValue", "UpdateSecret"])
def test_out_of_band_write_is_caught_and_overwritten_with_a_warning(action, proxy, sm, how):
    synced(action)
    drift_out_of_band(sm, how)
    proxy.reset()
    run = action(INPUTS, env=VALUES)
    assert run.returncode == 0, run.stdout
    assert run.json("drifted") == ["drift/key"]
    assert run.results()["drift/key"]["drift"] is True
    assert run.results()["drift/quiet"]["drift"] is False
    assert run.json("updated") == ["drift/key"]
    [warning] = [line for line in run.log_lines if line.startswith("::warning")]
    assert warning.startswith("::warning title=secrets-sync%3A drift::drift/key: drifted")
    assert "| `drift/key` | update (**drifted**) |" in run.summary
    assert json.loads(value(sm, "drift/key")) == {"KEY": VALUES["KEY"]}
    # The look cost two reads, for that secret alone, and the repair one write.
    assert ops(proxy) == sorted([*READS, *LOOK, "PutSecretValue"])
    assert_run_clean(run, [*VALUES.values(), OUTSIDE, "console-canary-value-9"])

    # And the next run is a quiet no-op again: the current version is ours.
    proxy.reset()
    again = action(INPUTS, env=VALUES)
    assert again.json("drifted") == []
    assert set(ops(proxy)) == READS


def test_on_drift_skip_leaves_it_and_reports_it_skipped(action, proxy, sm):
    synced(action)
    drift_out_of_band(sm, "UpdateSecret")
    run = action({**INPUTS, "on-drift": "skip"}, env=VALUES)
    assert run.returncode == 0, run.stdout
    assert run.json("skipped") == ["drift/key"]
    assert run.json("drifted") == ["drift/key"]
    assert value(sm, "drift/key") == OUTSIDE
    [warning] = [line for line in run.log_lines if line.startswith("::warning")]
    assert "drift/key" in warning
    assert "on-drift is skip" in warning
    assert "| `drift/key` | skip (**drifted**) |" in run.summary
    assert_run_clean(run, [*VALUES.values(), OUTSIDE, "console-canary-value-9"])


def test_on_drift_fail_leaves_it_fails_and_syncs_the_others(action, proxy, sm):
    synced(action)
    drift_out_of_band(sm, "PutSecretValue")
    run = action({**INPUTS, "on-drift": "fail"}, env={**VALUES, "QUIET": "quiet-canary-value-2"})
    assert run.returncode == 1
    assert run.json("failed") == ["drift/key"]
    assert run.json("updated") == ["drift/quiet"]
    assert "drifted" in run.results()["drift/key"]["error"]
    assert value(sm, "drift/key") == OUTSIDE
    assert [line for line in run.errors if "drift/key" in line]


def test_the_drift_alarm_is_a_dry_run_that_fails(action, proxy, sm):
    synced(action)
    proxy.reset()
    calm = action({**INPUTS, "on-drift": "fail", "dry-run": "true"}, env=VALUES)
    assert calm.returncode == 0, calm.stdout
    assert set(ops(proxy)) == READS  # knowing there is none costs no call
    drift_out_of_band(sm, "UpdateSecret")
    proxy.reset()
    alarm = action({**INPUTS, "on-drift": "fail", "dry-run": "true"}, env=VALUES)
    assert alarm.returncode == 1
    assert alarm.json("drifted") == ["drift/key"]
    assert ops(proxy) == sorted([*READS, *LOOK])
    assert value(sm, "drift/key") == OUTSIDE


def test_a_value_written_outside_equal_to_githubs_is_no_drift_then_or_later(action, proxy, sm):
    synced(action)
    same = json.dumps({"KEY": VALUES["KEY"]})
    sm.put_secret_value(SecretId="drift/key", SecretString=same)
    proxy.reset()
    run = action({**INPUTS, "on-drift": "fail"}, env=VALUES)
    assert run.returncode == 0, run.stdout
    assert run.json("drifted") == []
    assert run.json("unchanged") == ["drift/key", "drift/quiet"]
    assert set(ops(proxy)) == READS  # nothing to write, nothing to look at

    # GitHub's value then changes: the version written outside holds what secrets-sync last
    # wrote, so it is no drift either (it would otherwise be skipped, or fail, for ever).
    proxy.reset()
    rotated = {**VALUES, "KEY": "github-canary-value-2"}
    run = action({**INPUTS, "on-drift": "fail"}, env=rotated)
    assert run.returncode == 0, run.stdout
    assert run.json("drifted") == []
    assert run.json("updated") == ["drift/key"]
    assert json.loads(value(sm, "drift/key")) == {"KEY": "github-canary-value-2"}


def test_no_drift_for_secrets_written_before_tokens(action, proxy, sm):
    # Terraform wrote it, then changed it: not ours, adopted.
    sm.create_secret(Name="drift/key", SecretString='{"KEY":"tf-canary-value-1"}')
    sm.update_secret(SecretId="drift/key", SecretString='{"KEY":"tf-canary-value-2"}')
    # Ours, from v1.0 (random version ids) and v1.1 (its label on the version it wrote), and
    # GitHub's values changed since.
    sm.create_secret(Name="drift/quiet", SecretString='{"QUIET":"v10-canary"}', Tags=OURS)
    sm.update_secret(SecretId="drift/quiet", SecretString='{"QUIET":"v10-canary-2"}')
    sm.create_secret(Name="drift/v11", SecretString='{"V11":"v11-canary"}', Tags=OURS)
    v11 = current_id(sm, "drift/v11")
    sm.update_secret_version_stage(
        SecretId="drift/v11", VersionStage=LEGACY_LABEL, MoveToVersionId=v11
    )
    inputs = {**INPUTS, "secrets": INPUTS["secrets"] + "\nv11: V11", "on-drift": "fail"}
    run = action(inputs, env={**VALUES, "V11": "v11-canary-2"})
    assert run.returncode == 0, run.stdout
    assert run.json("drifted") == []
    assert sorted(run.json("updated")) == ["drift/key", "drift/quiet", "drift/v11"]
    assert not [line for line in run.log_lines if line.startswith("::warning")]
    # v1.1's version is ours from the answer itself: no look for it. v1.0's is looked at, and
    # nothing of ours is found to compare with.
    looked = {c.secret_id for c in proxy.calls if c.operation == "ListSecretVersionIds"}
    assert looked == {sm.describe_secret(SecretId="drift/quiet")["ARN"]}

    # From now on they are watched: an edit outside is drift.
    for name in ("drift/key", "drift/quiet", "drift/v11"):
        sm.put_secret_value(SecretId=name, SecretString='{"X":"console-canary-3"}')
    again = action(inputs, env={**VALUES, "V11": "v11-canary-2"})
    assert sorted(again.json("drifted")) == ["drift/key", "drift/quiet", "drift/v11"]
    assert_run_clean(again, [*VALUES.values(), "console-canary-3", "v11-canary-2"])


def test_a_v11_secret_whose_label_is_on_the_current_version_is_ours(action, proxy, sm):
    sm.create_secret(Name="drift/key", SecretString=json.dumps({"KEY": "old-canary"}), Tags=OURS)
    current = current_id(sm, "drift/key")
    sm.update_secret_version_stage(
        SecretId="drift/key", VersionStage=LEGACY_LABEL, MoveToVersionId=current
    )
    run = action({**INPUTS, "secrets": "key: KEY", "on-drift": "fail"}, env=VALUES)
    assert run.returncode == 0, run.stdout
    assert run.json("updated") == ["drift/key"]
    assert "ListSecretVersionIds" not in proxy.ops()


def test_adoption_with_the_same_value_takes_that_version_over(action, proxy, sm):
    created = sm.create_secret(Name="drift/key", SecretString=json.dumps({"KEY": VALUES["KEY"]}))
    run = action({**INPUTS, "secrets": "key: KEY"}, env=VALUES)
    assert run.returncode == 0, run.stdout
    assert run.results()["drift/key"]["action"] == "tag"
    assert [op for op in proxy.ops() if op in WRITES] == ["TagResource"]
    assert run.json("drifted") == []
    assert tags_of(sm, "drift/key")[BASELINE_TAG].startswith(created["VersionId"] + "@")
    sm.update_secret(SecretId="drift/key", SecretString=OUTSIDE)
    assert action({**INPUTS, "secrets": "key: KEY"}, env=VALUES).json("drifted") == ["drift/key"]


def test_adoption_with_a_value_write_is_watched_from_that_write(action, proxy, sm):
    sm.create_secret(Name="drift/key", SecretString='{"KEY":"tf-canary-value-1"}')
    run = action({**INPUTS, "secrets": "key: KEY"}, env=VALUES)
    assert run.json("updated") == ["drift/key"]
    assert [op for op in proxy.ops() if op in WRITES] == ["PutSecretValue", "TagResource"]
    assert BASELINE_TAG not in tags_of(sm, "drift/key")  # its own write is its reference
    drift_out_of_band(sm, "PutSecretValue")
    assert action({**INPUTS, "secrets": "key: KEY"}, env=VALUES).json("drifted") == ["drift/key"]


def test_two_edits_outside_are_still_drift(action, proxy, sm):
    synced(action)
    drift_out_of_band(sm, "PutSecretValue")
    drift_out_of_band(sm, "PutSecretValue", '{"KEY":"console-canary-value-10"}')
    # Our version has no label left at all now (deprecated), and is still found.
    run = action({**INPUTS, "on-drift": "skip"}, env=VALUES)
    assert run.json("drifted") == ["drift/key"]
    assert run.json("skipped") == ["drift/key"]


def test_the_retry_round_keeps_its_fresh_reads_verdict(action, proxy, sm):
    from secrets_sync.credentials import MAX_ATTEMPTS
    from tests.support.proxy import Faults

    synced(action)
    count = {"n": 0}

    def rule(call):
        # The update is throttled on every SDK attempt; meanwhile someone edits it by hand.
        if call.operation == "PutSecretValue":
            count["n"] += 1
            if count["n"] == 1:
                drift_out_of_band(sm, "PutSecretValue")
            return 503 if count["n"] <= MAX_ATTEMPTS else None
        return None

    proxy.faults = Faults(rule=rule)
    rotated = {**VALUES, "KEY": "github-canary-value-2"}
    run = action({**INPUTS, "on-drift": "skip"}, env=rotated)
    assert run.returncode == 0, run.stdout
    # The first plan saw no drift; the retry round's fresh read did, and its verdict stands.
    assert run.json("drifted") == ["drift/key"]
    assert run.json("skipped") == ["drift/key"]
    assert value(sm, "drift/key") == OUTSIDE
    assert count["n"] == MAX_ATTEMPTS  # not written over
    assert "| `drift/key` | skip (**drifted**) |" in run.summary


def test_a_create_in_flight_at_cancellation_is_ours_on_the_rerun(action, proxy, sm):
    def slow(call):
        return 7.0 if call.operation == "CreateSecret" else None

    proxy.faults.hang_for = slow
    started = action.start({**INPUTS, "secrets": "key: KEY"}, env=VALUES)
    deadline = time.monotonic() + 30
    while proxy.peak("CreateSecret") < 1:
        assert time.monotonic() < deadline
        time.sleep(0.02)
    started.proc.send_signal(signal.SIGTERM)
    run = started.finish(timeout=30)
    assert run.returncode == 1
    assert "may have landed" in run.results()["drift/key"]["error"]
    while "drift/key" not in [s["Name"] for s in sm.list_secrets()["SecretList"]]:
        assert time.monotonic() < deadline, "the create never landed"
        time.sleep(0.1)

    proxy.faults.hang_for = None
    proxy.reset()
    rerun = action({**INPUTS, "secrets": "key: KEY", "on-drift": "fail"}, env=VALUES)
    assert rerun.returncode == 0, rerun.stdout
    assert rerun.json("unchanged") == ["drift/key"]
    assert rerun.json("drifted") == []
    assert not WRITES & set(proxy.ops())
    assert written_by(current_id(sm, "drift/key")) is not None
    drift_out_of_band(sm, "PutSecretValue")
    caught = action({**INPUTS, "secrets": "key: KEY", "on-drift": "fail"}, env=VALUES)
    assert caught.json("drifted") == ["drift/key"]


# Policies that leave room for writes from outside ---------------------------------------------


def test_a_merge_drifts_only_when_a_key_it_owns_changed(action, proxy, sm):
    inputs = {
        "secrets": "db: {keys: {password: PASSWORD}, update-policy: merge}",
        "name-prefix": "drift/",
        "on-drift": "fail",
    }
    env = {"PASSWORD": "merge-password-canary-1"}
    sm.create_secret(Name="drift/db", SecretString=json.dumps({"host": "h1", "password": "old"}))
    assert action(inputs, env=env).returncode == 0  # adopted by merge: a version of ours

    theirs = {"host": "h2-canary", "password": env["PASSWORD"]}
    sm.put_secret_value(SecretId="drift/db", SecretString=json.dumps(theirs))
    proxy.reset()
    run = action(inputs, env=env)
    assert run.returncode == 0, run.stdout  # `host` is not the mapping's: no drift, no alarm
    assert run.json("drifted") == []
    assert run.json("unchanged") == ["drift/db"]
    assert not WRITES & set(proxy.ops())

    # The key the mapping owns is rotated in GitHub: written, keeping `host`, and no drift
    # (the version outside changed only what the mapping does not own).
    rotated = {"PASSWORD": "merge-password-canary-2"}
    proxy.reset()
    run = action(inputs, env=rotated)
    assert run.returncode == 0, run.stdout
    assert run.json("drifted") == []
    assert run.json("updated") == ["drift/db"]
    assert json.loads(value(sm, "drift/db")) == {**theirs, "password": rotated["PASSWORD"]}

    sm.put_secret_value(
        SecretId="drift/db", SecretString=json.dumps({**theirs, "password": "console-canary-7"})
    )
    run = action(inputs, env=rotated)
    assert run.returncode == 1  # the key it owns was changed outside: drift, and the alarm
    assert run.json("drifted") == ["drift/db"]
    assert json.loads(value(sm, "drift/db"))["password"] == "console-canary-7"
    assert_run_clean(run, [*env.values(), *rotated.values(), "console-canary-7", "h2-canary"])


def test_if_not_exists_never_drifts(action, proxy, sm):
    inputs = {
        "secrets": "seed: {value: SEED, update-policy: if-not-exists}",
        "name-prefix": "drift/",
        "on-drift": "fail",
    }
    env = {"SEED": "seed-canary-1"}
    assert action(inputs, env=env).returncode == 0
    sm.put_secret_value(SecretId="drift/seed", SecretString="rotated-outside-canary")
    proxy.reset()
    run = action(inputs, env=env)
    assert run.returncode == 0, run.stdout
    assert run.json("drifted") == []
    assert run.json("unchanged") == ["drift/seed"]
    assert set(ops(proxy)) == READS
    assert value(sm, "drift/seed") == "rotated-outside-canary"
    assert_run_clean(run, ["seed-canary-1", "rotated-outside-canary"])


# The pure rules, one by one -------------------------------------------------------------------


def _current(version_id, stages=("AWSCURRENT",), tags=None, **more):
    from secrets_sync.state import Current

    tags = {t["Key"]: t["Value"] for t in OURS} if tags is None else tags
    return Current("n", "arn", tags=tags, version_id=version_id, version_stages=stages, **more)


def test_written_outside():
    from secrets_sync.drift import baseline_tag, written_outside

    hand = str(uuid.uuid4())
    assert written_outside(_current(hand)) is True
    assert written_outside(_current(new_token("1", "1"))) is False
    assert written_outside(_current(hand, ("AWSCURRENT", LEGACY_LABEL))) is False
    assert written_outside(_current(hand, tags={})) is False  # not ours: adoption, not drift
    assert written_outside(_current(hand, deleted=True)) is False
    assert written_outside(_current(None)) is False  # no value yet
    taken = dict([baseline_tag(hand), *[(t["Key"], t["Value"]) for t in OURS]])
    assert written_outside(_current(hand, tags=taken)) is False
    assert written_outside(_current(str(uuid.uuid4()), tags=taken)) is True


def test_find_reference_takes_the_newest_of_ours_or_the_baseline():
    from secrets_sync.drift import baseline_tag, find_reference

    old, new = new_token("1", "1", now=100.0), new_token("2", "1", now=200.0)
    hand, taken = str(uuid.uuid4()), str(uuid.uuid4())
    listed = [(old, ()), (new, ("AWSPREVIOUS",)), (hand, ("AWSCURRENT",)), (taken, ())]
    assert find_reference(listed, _current(hand)) == (new, False)
    tags = dict([baseline_tag(taken, now=150.0), *[(t["Key"], t["Value"]) for t in OURS]])
    assert find_reference(listed, _current(hand, tags=tags)) == (new, False)
    tags = dict([baseline_tag(taken, now=250.0), *[(t["Key"], t["Value"]) for t in OURS]])
    assert find_reference(listed, _current(hand, tags=tags)) == (taken, True)
    # v1.1's label on an older version is never relied on; with nothing else, no reference.
    assert (
        find_reference([(taken, ("AWSPREVIOUS", LEGACY_LABEL)), (hand, ())], _current(hand)) is None
    )
    assert baseline_tag("has space@x", now=0.0) == (BASELINE_TAG, "has space@x@0")  # AWS allows it
    assert baseline_tag("a|b") is None  # a character no tag value may hold


def test_owned_part_is_what_the_mapping_owns():
    from secrets_sync.drift import owned_part
    from tests.test_units import desired

    merge = desired("db: {keys: {password: P}, update-policy: merge}")
    assert owned_part(merge, '{"password":"x","host":"a"}', None) == owned_part(
        merge, '{"host":"b", "password": "x"}', None
    )
    assert owned_part(merge, '{"password":"x"}', None) != owned_part(merge, '{"host":"b"}', None)
    whole = desired("db: [P]")
    assert owned_part(whole, '{"P":"x"}', None) == owned_part(whole, '{ "P": "x" }', None)
    assert owned_part(whole, '{"P":"x","Q":1}', None) != owned_part(whole, '{"P":"x"}', None)
    plain = desired("db: {value: P}")
    assert owned_part(plain, "x", None) != owned_part(plain, "y", None)
    assert owned_part(plain, None, b"x") != owned_part(plain, "x", None)


@pytest.mark.parametrize(
    ("policy", "action", "error"),
    [("overwrite", "update", False), ("skip", "skip", False), ("fail", "conflict", True)],
)
def test_verdict(policy, action, error):
    from secrets_sync.drift import verdict
    from secrets_sync.plan import Action, Step

    step = Step("n", Action.UPDATE, "value differs", None, _current(str(uuid.uuid4())), True)
    judged = verdict(step, policy)
    assert (str(judged.action), judged.drift) == (action, True)
    assert judged.reason.startswith("drifted: ")
    assert f"on-drift is {policy}" in judged.reason
    assert judged.write_value is (action == "update")


def test_a_resend_keeps_its_token_so_a_write_that_landed_is_one_version(action, proxy, sm):
    from tests.support.proxy import Faults

    synced(action)
    before = len(
        sm.list_secret_version_ids(SecretId="drift/key", IncludeDeprecated=True)["Versions"]
    )
    answers = {"n": 0}

    def lost(call):
        # The first PutSecretValue lands, and its answer is lost: botocore sends it again.
        if call.operation == "PutSecretValue":
            answers["n"] += 1
            return 503 if answers["n"] == 1 else None
        return None

    proxy.faults = Faults(after=lost)
    run = action(INPUTS, env={**VALUES, "KEY": "github-canary-value-2"})
    assert run.returncode == 0, run.stdout
    sent = [c.body["ClientRequestToken"] for c in proxy.calls if c.operation == "PutSecretValue"]
    assert len(sent) == 2
    assert len(set(sent)) == 1  # the same request, the same token
    after = sm.list_secret_version_ids(SecretId="drift/key", IncludeDeprecated=True)["Versions"]
    assert len(after) == before + 1  # AWS took the resend as the version it already had
    assert current_id(sm, "drift/key") == sent[0] == run.results()["drift/key"]["version_id"]
