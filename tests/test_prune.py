"""Prune guards: `prune: true` deletes only secrets under the prefix that carry both our tags
with this repository and are gone from the mapping, always with a recovery window, and never
more than `max-deletions` at once: the limit (default, boundary, raised, message), every
near-miss of the scope tags and the prefix, the recovery window as sent, planned deletions,
`missing: skip`, dry runs, a denied delete, and every way of writing an empty mapping. A
candidate edited outside secrets-sync since it last wrote it obeys `on-drift`."""

from __future__ import annotations

from typing import Any

import pytest

from secrets_sync.versions import new_token
from tests.support.action import OURS, REPOSITORY, WRITES, assert_run_clean

MANAGED = OURS[0]
KEEP = {"secrets": "keep: KEEP", "name-prefix": "app/", "prune": "true"}
ENV = {"KEEP": "keep-prune-canary"}


def deleted(sm: Any, name: str) -> bool:
    return "DeletedDate" in sm.describe_secret(SecretId=name)


def deletes(proxy: Any) -> list[Any]:
    return [c for c in proxy.calls if c.operation == "DeleteSecret"]


@pytest.mark.parametrize("window", [None, "7", "30"])
def test_deletion_always_keeps_the_recovery_window(action, proxy, sm, window):
    sm.create_secret(Name="app/gone", SecretString="x", Tags=OURS)
    inputs = {**KEEP, **({"recovery-window-days": window} if window else {})}
    run = action(inputs, env=ENV)
    assert run.returncode == 0, run.stdout
    (call,) = deletes(proxy)
    assert call.body["RecoveryWindowInDays"] == int(window or 7)
    assert "ForceDeleteWithoutRecovery" not in call.body
    assert deleted(sm, "app/gone")
    sm.restore_secret(SecretId="app/gone")  # recoverable, as promised


def test_only_exact_scope_tags_of_this_repository_make_a_secret_ours(action, proxy, sm):
    near_misses = {
        "app/repo-upper": [MANAGED, {"Key": "secrets-sync:repository", "Value": "LORNU-AI/APP"}],
        "app/repo-longer": [MANAGED, {"Key": "secrets-sync:repository", "Value": f"{REPOSITORY}x"}],
        "app/repo-shorter": [MANAGED, {"Key": "secrets-sync:repository", "Value": REPOSITORY[:-1]}],
        "app/repo-empty": [MANAGED, {"Key": "secrets-sync:repository", "Value": ""}],
        "app/managed-by-other": [{"Key": "ManagedBy", "Value": "Terraform"}, OURS[1]],
        "app/managed-by-case": [{"Key": "ManagedBy", "Value": "Secrets-Sync"}, OURS[1]],
        "app/tag-key-case": [MANAGED, {"Key": "Secrets-Sync:Repository", "Value": REPOSITORY}],
        "app/sub/dir-other": [MANAGED, {"Key": "secrets-sync:repository", "Value": "x/y"}],
        "app/only-managed-by": [MANAGED],
        "app/only-repo-tag": [OURS[1]],
        "app/untagged": [],
    }
    for name, tags in near_misses.items():
        sm.create_secret(Name=name, SecretString="x", Tags=tags)
    sm.create_secret(Name="app/sub/dir-ours", SecretString="x", Tags=OURS)
    run = action(KEEP, env=ENV)
    assert run.returncode == 0, run.stdout
    assert run.json("deleted") == ["app/sub/dir-ours"]  # the control: pruning did run
    assert [c.secret_id for c in deletes(proxy)] == [
        sm.describe_secret(SecretId="app/sub/dir-ours")["ARN"]
    ]
    assert not any(deleted(sm, name) for name in near_misses)


def test_never_outside_the_prefix(action, proxy, sm):
    # Whatever the name filter lets through (moto's ignores case; AWS's is case-sensitive), we
    # match the prefix exactly.
    for name in ("ap/ours", "app-other/ours", "xapp/ours", "App/ours", "APP/ours", "/app/ours"):
        sm.create_secret(Name=name, SecretString="x", Tags=OURS)
    run = action(KEEP, env=ENV)
    assert run.returncode == 0, run.stdout
    assert deletes(proxy) == []
    # What was listed is what the name filter matched; we match the prefix exactly ourselves.
    listed = [c for c in proxy.calls if c.operation == "ListSecrets"]
    assert listed
    assert all(c.body["Filters"] == [{"Key": "name", "Values": ["app/"]}] for c in listed)


def test_planned_deletions_and_skipped_secrets_are_left_alone(action, proxy, sm):
    sm.create_secret(Name="app/already", SecretString="x", Tags=OURS)
    sm.delete_secret(SecretId="app/already", RecoveryWindowInDays=30)
    sm.create_secret(Name="app/skipped", SecretString='{"SKIPPED":"old"}', Tags=OURS)
    run = action(
        {**KEEP, "secrets": "keep: KEEP\nskipped: SKIPPED", "missing": "skip"},
        env={**ENV, "SKIPPED": ""},
    )
    assert run.returncode == 0, run.stdout
    assert run.json("skipped") == ["app/skipped"]
    assert run.json("deleted") == []
    assert deletes(proxy) == []
    assert not deleted(sm, "app/skipped")


def test_the_default_limit_is_ten(action, proxy, sm):
    for i in range(11):
        sm.create_secret(Name=f"app/old{i:02}", SecretString="x", Tags=OURS)
    run = action(KEEP, env=ENV)
    assert run.returncode == 1
    assert "more than max-deletions (10)" in run.errors[0]
    assert not WRITES & set(proxy.ops())


def test_a_raised_limit_lets_the_deletions_through(action, proxy, sm):
    for i in range(4):
        sm.create_secret(Name=f"app/old{i}", SecretString="x", Tags=OURS)
    run = action({**KEEP, "max-deletions": "4"}, env=ENV)
    assert run.returncode == 0, run.stdout
    assert sorted(run.json("deleted")) == [f"app/old{i}" for i in range(4)]
    assert all(deleted(sm, f"app/old{i}") for i in range(4))


def test_the_limit_is_inclusive_and_its_message_says_how_to_raise_it(action, proxy, sm):
    for i in range(10):
        sm.create_secret(Name=f"app/old{i:02}", SecretString="x", Tags=OURS)
    at_limit = action(KEEP, env=ENV)  # exactly max-deletions (10): allowed
    assert at_limit.returncode == 0, at_limit.stdout
    assert len(at_limit.json("deleted")) == 10

    for i in range(4):
        sm.create_secret(Name=f"app/more{i}", SecretString="x", Tags=OURS)
    proxy.reset()
    over = action({**KEEP, "max-deletions": "3"}, env=ENV)
    assert over.returncode == 1
    (error,) = over.errors
    assert "would delete 4 secrets, more than max-deletions (3)" in error
    assert "raise `max-deletions` to 4" in error
    assert "nothing was written" in error
    assert not WRITES & set(proxy.ops())
    assert "max-deletions" in over.summary
    assert over.outputs == {}  # refused whole: no partial results

    proxy.reset()
    dry = action({**KEEP, "max-deletions": "3", "dry-run": "true"}, env=ENV)
    assert dry.returncode == 1  # a dry run shows the same refusal
    assert not WRITES & set(proxy.ops())
    assert not any(deleted(sm, f"app/more{i}") for i in range(4))


def test_a_dry_run_prune_deletes_nothing(action, proxy, sm):
    sm.create_secret(Name="app/gone", SecretString="x", Tags=OURS)
    run = action({**KEEP, "dry-run": "true"}, env=ENV)
    assert run.returncode == 0, run.stdout
    assert run.json("deleted") == ["app/gone"]  # would be
    assert not WRITES & set(proxy.ops())
    assert not deleted(sm, "app/gone")


def test_a_denied_delete_fails_that_secret_only(action, proxy, sm):
    for name in ("app/gone1", "app/gone2"):
        sm.create_secret(Name=name, SecretString="x", Tags=OURS)
    proxy.faults.rule = lambda c: (
        403 if c.operation == "DeleteSecret" and "app/gone1" in str(c.secret_id) else None
    )
    run = action(KEEP, env=ENV)
    assert run.returncode == 1
    assert run.json("failed") == ["app/gone1"]
    assert run.json("deleted") == ["app/gone2"]
    assert run.json("created") == ["app/keep"]
    assert not deleted(sm, "app/gone1")
    assert deleted(sm, "app/gone2")


@pytest.mark.parametrize(
    "mapping",
    [
        pytest.param("{}", id="empty-object"),
        pytest.param("# every secret removed\n", id="only-a-comment"),
        pytest.param("---\n...\n", id="empty-document"),
        pytest.param("[]", id="empty-list"),
        pytest.param("null", id="null-word"),
        pytest.param("~", id="tilde"),
        pytest.param('""', id="empty-string"),
    ],
)
def test_an_empty_mapping_never_prunes(action, proxy, sm, mapping):
    sm.create_secret(Name="app/precious", SecretString="x", Tags=OURS)
    run = action({**KEEP, "secrets": mapping})
    assert run.returncode == 1
    assert len(run.errors) == 1
    assert proxy.calls == []
    assert not deleted(sm, "app/precious")


def test_an_empty_mapping_file_never_prunes(action, proxy, sm):
    sm.create_secret(Name="app/precious", SecretString="x", Tags=OURS)
    run = action(
        {"secrets-file": "secrets.yml", "name-prefix": "app/", "prune": "true"},
        files={"secrets.yml": "# nothing left\n"},
    )
    assert run.returncode == 1
    assert "empty" in run.errors[0]
    assert proxy.calls == []
    assert not deleted(sm, "app/precious")


# Prune obeys on-drift (under both readings of a left version's labels) -----------------------


def ours_then_edited(sm: Any, name: str = "app/gone") -> None:
    """A secret secrets-sync wrote (its token as the version id), then edited by hand."""
    sm.create_secret(
        Name=name, SecretString="synced-canary", Tags=OURS, ClientRequestToken=new_token("1", "1")
    )
    sm.put_secret_value(SecretId=name, SecretString="hand-canary")


@pytest.mark.usefixtures("label_reading")
@pytest.mark.parametrize("dry", [False, True])
@pytest.mark.parametrize(
    ("policy", "bucket", "code"), [("skip", "skipped", 0), ("fail", "failed", 1)]
)
def test_a_drifted_candidate_is_left_under_skip_and_fail(
    action, proxy, sm, policy, bucket, code, dry
):
    ours_then_edited(sm)
    inputs = {**KEEP, "on-drift": policy, **({"dry-run": "true"} if dry else {})}
    run = action(inputs, env=ENV)
    assert run.returncode == code, run.stdout
    assert run.json(bucket) == ["app/gone"]
    assert run.json("deleted") == []
    assert run.json("drifted") == ["app/gone"]
    said = (
        run.results()["app/gone"]["error"]
        if code
        else next(line for line in run.log_lines if line.startswith("::warning"))
    )
    assert "drifted: no longer in the mapping, and its current value was changed outside" in said
    assert f"on-drift is {policy}" in said
    assert deletes(proxy) == []
    assert not deleted(sm, "app/gone")
    assert_run_clean(run, ["synced-canary", "hand-canary", *ENV.values()])


@pytest.mark.usefixtures("label_reading")
def test_a_drifted_candidate_is_deleted_under_overwrite_with_a_warning_that_says_so(
    action, proxy, sm
):
    ours_then_edited(sm)
    run = action(KEEP, env=ENV)
    assert run.returncode == 0, run.stdout
    assert run.json("deleted") == ["app/gone"]
    assert run.json("drifted") == ["app/gone"]
    [warning] = [line for line in run.log_lines if line.startswith("::warning")]
    assert "app/gone: drifted: no longer in the mapping" in warning
    assert "deleted all the same" in warning
    assert deleted(sm, "app/gone")


@pytest.mark.usefixtures("label_reading")
def test_the_delete_decides_from_its_own_fresh_read(action, proxy, sm):
    # Ours when the run read the listing, edited by hand just before the delete's DescribeSecret.
    sm.create_secret(
        Name="app/gone",
        SecretString="synced-canary",
        Tags=OURS,
        ClientRequestToken=new_token("1", "1"),
    )
    edited = []

    def edit_first(call: Any) -> None:
        if call.operation == "DescribeSecret" and not edited:
            edited.append(call)
            sm.put_secret_value(SecretId="app/gone", SecretString="hand-canary")

    proxy.faults.rule = edit_first
    run = action({**KEEP, "on-drift": "skip"}, env=ENV)
    assert run.returncode == 0, run.stdout
    assert edited
    assert run.json("skipped") == ["app/gone"]
    assert run.json("drifted") == ["app/gone"]
    assert deletes(proxy) == []
    assert not deleted(sm, "app/gone")


@pytest.mark.usefixtures("label_reading")
def test_a_candidate_from_before_version_tokens_is_no_drift(action, proxy, sm):
    sm.create_secret(Name="app/gone", SecretString="v10-canary", Tags=OURS)
    sm.put_secret_value(SecretId="app/gone", SecretString="v10-canary-2")
    run = action({**KEEP, "on-drift": "fail"}, env=ENV)
    assert run.returncode == 0, run.stdout
    assert run.json("deleted") == ["app/gone"]
    assert run.json("drifted") == []
