"""v1.1 drift: a secret written outside secrets-sync since its last sync, known from the
ListSecrets answer the run reads anyway (our staging label, drift.LABEL, on the version we
wrote), and handled as `on-drift` says."""

from __future__ import annotations

import json

import pytest

from secrets_sync.drift import LABEL
from tests.support.action import OURS, WRITES, assert_run_clean

INPUTS = {"secrets": "key: KEY\nquiet: QUIET", "name-prefix": "drift/"}
VALUES = {"KEY": "github-canary-value-1", "QUIET": "quiet-canary-value-1"}
OUTSIDE = '{"KEY":"console-canary-value-9"}'  # what someone typed into the console


def stages(sm, name):
    listed = sm.list_secret_version_ids(SecretId=name)["Versions"]
    return {v["VersionId"]: v.get("VersionStages", []) for v in listed}


def value(sm, name):
    return sm.get_secret_value(SecretId=name)["SecretString"]


def synced(action):
    run = action(INPUTS, env=VALUES)
    assert run.returncode == 0, run.stdout
    return run


def drift_out_of_band(sm, how):
    if how == "PutSecretValue":
        sm.put_secret_value(SecretId="drift/key", SecretString=OUTSIDE)
    else:
        sm.update_secret(SecretId="drift/key", SecretString=OUTSIDE)


def test_every_value_sync_writes_carries_our_label(action, sm):
    run = synced(action)
    for name in ("drift/key", "drift/quiet"):
        [(version, labels)] = [(v, s) for v, s in stages(sm, name).items() if LABEL in s]
        assert "AWSCURRENT" in labels
        assert run.results()[name]["version_id"] == version
        assert run.results()[name]["drift"] is False
    assert run.json("drifted") == []


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
    assert "drift/key" in warning
    assert warning.startswith("::warning title=secrets-sync%3A drift::drift/key: ")
    assert "| `drift/key` | update (**drifted**) |" in run.summary
    assert json.loads(value(sm, "drift/key")) == {"KEY": VALUES["KEY"]}
    # Repaired: our label is on the new current version, and nowhere else.
    labelled = [v for v, s in stages(sm, "drift/key").items() if LABEL in s]
    assert labelled == [run.results()["drift/key"]["version_id"]]
    assert_run_clean(run, [*VALUES.values(), OUTSIDE, "console-canary-value-9"])

    # And the next run is a quiet no-op again.
    proxy.reset()
    again = action(INPUTS, env=VALUES)
    assert again.json("drifted") == []
    assert not WRITES & set(proxy.ops())


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
    drift_out_of_band(sm, "UpdateSecret")
    proxy.reset()
    alarm = action({**INPUTS, "on-drift": "fail", "dry-run": "true"}, env=VALUES)
    assert alarm.returncode == 1
    assert alarm.json("drifted") == ["drift/key"]
    assert not WRITES & set(proxy.ops())
    assert value(sm, "drift/key") == OUTSIDE


def test_the_same_value_written_outside_moves_our_label_without_a_new_version(action, proxy, sm):
    synced(action)
    sm.put_secret_value(SecretId="drift/key", SecretString=json.dumps({"KEY": VALUES["KEY"]}))
    before = stages(sm, "drift/key")
    proxy.reset()
    run = action(INPUTS, env=VALUES)
    assert run.returncode == 0, run.stdout
    assert run.json("drifted") == ["drift/key"]
    assert run.results()["drift/key"]["action"] == "tag"
    assert "PutSecretValue" not in proxy.ops()
    assert proxy.ops().count("UpdateSecretVersionStage") == 1
    after = stages(sm, "drift/key")
    assert after.keys() == before.keys()
    [current] = [v for v, s in after.items() if "AWSCURRENT" in s]
    assert LABEL in after[current]
    proxy.reset()
    assert action(INPUTS, env=VALUES).json("drifted") == []


def test_no_drift_for_secrets_from_before_the_label_nor_on_the_run_adopting_them(action, proxy, sm):
    # Terraform wrote it, then changed it: two versions, no label of ours anywhere.
    sm.create_secret(Name="drift/key", SecretString='{"KEY":"tf-canary-value-1"}')
    sm.update_secret(SecretId="drift/key", SecretString='{"KEY":"tf-canary-value-2"}')
    # A secret of ours from before v1.1, equal to GitHub's value.
    sm.create_secret(
        Name="drift/quiet", SecretString=json.dumps({"QUIET": VALUES["QUIET"]}), Tags=OURS
    )
    sm.update_secret(SecretId="drift/quiet", SecretString=json.dumps({"QUIET": VALUES["QUIET"]}))
    run = action(INPUTS, env=VALUES)
    assert run.returncode == 0, run.stdout
    assert run.json("drifted") == []
    assert run.results()["drift/key"]["action"] == "update"
    assert run.results()["drift/quiet"]["action"] == "unchanged"
    assert not [line for line in run.log_lines if line.startswith("::warning")]
    # The adopted secret now carries our label on the version written; the unchanged one
    # got no write at all, so no label either: drift is known from its next write.
    assert [v for v, s in stages(sm, "drift/key").items() if LABEL in s] == [
        run.results()["drift/key"]["version_id"]
    ]
    assert not [v for v, s in stages(sm, "drift/quiet").items() if LABEL in s]


def test_adoption_with_the_same_value_labels_it_with_the_tag_write(action, proxy, sm):
    sm.create_secret(Name="drift/key", SecretString=json.dumps({"KEY": VALUES["KEY"]}))
    run = action({**INPUTS, "secrets": "key: KEY"}, env=VALUES)
    assert run.returncode == 0, run.stdout
    assert run.results()["drift/key"]["action"] == "tag"
    assert run.json("drifted") == []
    [current] = [v for v, s in stages(sm, "drift/key").items() if "AWSCURRENT" in s]
    assert LABEL in stages(sm, "drift/key")[current]
    sm.update_secret(SecretId="drift/key", SecretString=OUTSIDE)
    assert action({**INPUTS, "secrets": "key: KEY"}, env=VALUES).json("drifted") == ["drift/key"]


def test_drift_costs_no_call_on_a_noop_run(action, proxy, sm, realaws):
    synced(action)
    realaws.settle()  # a day later: the listing shows the secret (a lagging one costs a read)
    proxy.reset()
    noop = action(INPUTS, env=VALUES)
    assert noop.outputs["changed"] == "false"
    assert sorted(proxy.ops()) == ["BatchGetSecretValue", "ListSecrets"]
    # ...and knowing a drift costs none either: the same two calls, then the write.
    drift_out_of_band(sm, "PutSecretValue")
    proxy.reset()
    caught = action({**INPUTS, "dry-run": "true"}, env=VALUES)
    assert caught.json("drifted") == ["drift/key"]
    assert sorted(proxy.ops()) == ["BatchGetSecretValue", "ListSecrets"]


# The pure rules, one by one -------------------------------------------------------------------


def _step(action, stages, *, deleted=False, error=None):
    from secrets_sync.plan import Action, Step
    from secrets_sync.state import Current

    current = Current("n", "arn", stages=stages, deleted=deleted)
    writes = action is Action.UPDATE
    return Step("n", action, "planned", None, current, write_value=writes, error=error)


@pytest.mark.parametrize(
    ("stages", "drifted"),
    [
        ({"v1": ("AWSCURRENT", LABEL)}, False),  # ours is current
        ({"v1": (LABEL, "AWSPREVIOUS"), "v2": ("AWSCURRENT",)}, True),  # someone wrote v2
        ({"v1": (LABEL,), "v2": ("AWSPREVIOUS",), "v3": ("AWSCURRENT",)}, True),  # twice
        ({"v1": ("AWSPREVIOUS",), "v2": ("AWSCURRENT",)}, False),  # from before the label
        ({}, False),  # no version at all
    ],
)
def test_drifted(stages, drifted):
    from secrets_sync.drift import drifted as is_drifted
    from secrets_sync.state import Current

    assert is_drifted(Current("n", "arn", stages=stages)) is drifted
    assert is_drifted(Current("n", "arn", stages=stages, deleted=True)) is False


@pytest.mark.parametrize(
    ("policy", "action", "expected"),
    [
        ("overwrite", "update", "update"),
        ("overwrite", "unchanged", "tag"),
        ("overwrite", "tag", "tag"),
        ("skip", "update", "skip"),
        ("skip", "unchanged", "skip"),
        ("fail", "update", "conflict"),
        ("fail", "tag", "conflict"),
        ("fail", "conflict", "conflict"),  # a conflict stays one, for its own reason
    ],
)
def test_on_drift(policy, action, expected):
    from secrets_sync.drift import on_drift
    from secrets_sync.plan import Action

    drifting = {"v1": (LABEL, "AWSPREVIOUS"), "v2": ("AWSCURRENT",)}
    step = on_drift(_step(Action(action), drifting), policy)
    assert (str(step.action), step.drift) == (expected, True)
    assert step.relabel is (expected == "tag")
    assert step.write_value is (expected == "update")
    calm = _step(Action(action), {"v1": ("AWSCURRENT", LABEL)})
    assert on_drift(calm, policy) == calm


def test_an_unreadable_drifted_secret_keeps_its_error():
    from secrets_sync.drift import on_drift
    from secrets_sync.plan import Action

    step = _step(Action.UPDATE, {"v1": (LABEL,), "v2": ("AWSCURRENT",)}, error="denied")
    assert on_drift(step, "skip") == _replace(step, drift=True)


def _replace(step, **changes):
    from dataclasses import replace

    return replace(step, **changes)


def test_a_label_move_that_fails_transiently_is_redone_by_the_retry_round(action, proxy, sm):
    from secrets_sync.credentials import MAX_ATTEMPTS
    from tests.support.proxy import Faults

    synced(action)
    sm.put_secret_value(SecretId="drift/key", SecretString=json.dumps({"KEY": VALUES["KEY"]}))
    count = {"n": 0}

    def rule(call):
        if call.operation == "UpdateSecretVersionStage":
            count["n"] += 1
            return 503 if count["n"] <= MAX_ATTEMPTS else None  # every SDK attempt of the first
        return None

    proxy.faults = Faults(rule=rule)
    run = action(INPUTS, env=VALUES)
    assert run.returncode == 0, run.stdout
    assert run.results()["drift/key"]["action"] == "tag"
    assert count["n"] == MAX_ATTEMPTS + 1  # the retry round moved the label, from a fresh read
    [current] = [v for v, s in stages(sm, "drift/key").items() if "AWSCURRENT" in s]
    assert LABEL in stages(sm, "drift/key")[current]


# Policies that leave room for writes from outside ---------------------------------------------


def test_a_merge_drifts_only_when_a_key_it_owns_changed(action, proxy, sm):
    inputs = {
        "secrets": "db: {keys: {password: PASSWORD}, update-policy: merge}",
        "name-prefix": "drift/",
        "on-drift": "fail",
    }
    env = {"PASSWORD": "merge-password-canary-1"}
    sm.create_secret(Name="drift/db", SecretString=json.dumps({"host": "h1", "password": "old"}))
    assert action(inputs, env=env).returncode == 0  # adopted by merge: our label on its version

    theirs = {"host": "h2-canary", "password": env["PASSWORD"]}
    sm.put_secret_value(SecretId="drift/db", SecretString=json.dumps(theirs))
    proxy.reset()
    run = action(inputs, env=env)
    assert run.returncode == 0, run.stdout  # `host` is not the mapping's: no drift, no alarm
    assert run.json("drifted") == []
    assert run.json("unchanged") == ["drift/db"]
    assert not WRITES & set(proxy.ops())

    sm.put_secret_value(
        SecretId="drift/db", SecretString=json.dumps({**theirs, "password": "console-canary-7"})
    )
    run = action(inputs, env=env)
    assert run.returncode == 1  # the key it owns was changed outside: drift, and the alarm
    assert run.json("drifted") == ["drift/db"]
    assert json.loads(value(sm, "drift/db"))["password"] == "console-canary-7"
    assert_run_clean(run, [env["PASSWORD"], "console-canary-7", "h2-canary"])


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
    assert not WRITES & set(proxy.ops())
    assert value(sm, "drift/seed") == "rotated-outside-canary"
    assert_run_clean(run, ["seed-canary-1", "rotated-outside-canary"])
