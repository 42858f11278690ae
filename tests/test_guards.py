"""Guards that keep the action from damaging what it does not own: prune limits and scope,
rotation-enabled secrets, and secrets of another repository."""

from __future__ import annotations

from tests.support.action import REPOSITORY
from tests.test_rotation import rotation_function

OURS = [
    {"Key": "ManagedBy", "Value": "secrets-sync"},
    {"Key": "secrets-sync:repository", "Value": REPOSITORY},
]
WRITES = {
    "CreateSecret",
    "UpdateSecret",
    "PutSecretValue",
    "TagResource",
    "DeleteSecret",
    "RestoreSecret",
    "ReplicateSecretToRegions",
}


def deleted(sm, name):
    return "DeletedDate" in sm.describe_secret(SecretId=name)


def test_prune_over_max_deletions_deletes_nothing(action, proxy, sm):
    for i in range(4):
        sm.create_secret(Name=f"app/old{i}", SecretString="x", Tags=OURS)
    run = action(
        {"secrets": "keep: KEEP", "name-prefix": "app/", "prune": "true", "max-deletions": "3"},
        env={"KEEP": "keep-canary-1"},
    )
    assert run.returncode == 1
    (error,) = run.errors
    assert "would delete 4 secrets" in error
    assert "max-deletions" in error
    assert not WRITES & set(proxy.ops())
    assert not any(deleted(sm, f"app/old{i}") for i in range(4))

    raised = action(
        {"secrets": "keep: KEEP", "name-prefix": "app/", "prune": "true", "max-deletions": "4"},
        env={"KEEP": "keep-canary-1"},
    )
    assert raised.returncode == 0, raised.stdout
    assert sorted(raised.json("deleted")) == [f"app/old{i}" for i in range(4)]
    assert all(deleted(sm, f"app/old{i}") for i in range(4))


def test_prune_default_limit_is_ten(action, proxy, sm):
    for i in range(11):
        sm.create_secret(Name=f"app/old{i:02}", SecretString="x", Tags=OURS)
    run = action(
        {"secrets": "keep: KEEP", "name-prefix": "app/", "prune": "true"},
        env={"KEEP": "keep-canary-1"},
    )
    assert run.returncode == 1
    assert "more than max-deletions (10)" in run.errors[0]
    assert "DeleteSecret" not in proxy.ops()


def test_prune_refuses_an_empty_mapping(action, proxy, sm):
    sm.create_secret(Name="app/old", SecretString="x", Tags=OURS)
    run = action({"secrets": "{}", "name-prefix": "app/", "prune": "true"})
    assert run.returncode == 1
    assert "no secrets" in run.errors[0]
    assert proxy.calls == []


def test_prune_never_touches_other_scopes(action, proxy, sm):
    others = {
        "app/other-repo": [OURS[0], {"Key": "secrets-sync:repository", "Value": "o/r"}],
        "app/only-managed-by": [OURS[0]],
        "app/only-repo-tag": [OURS[1]],
        "app/untagged": [],
        "APP/upper-case-prefix": OURS,  # ListSecrets' name filter ignores case; we must not
        "apple/outside-prefix": OURS,
    }
    for name, tags in others.items():
        sm.create_secret(Name=name, SecretString="x", Tags=tags)
    run = action(
        {"secrets": "keep: KEEP", "name-prefix": "app/", "prune": "true"},
        env={"KEEP": "keep-canary-1"},
    )
    assert run.returncode == 0, run.stdout
    assert run.json("deleted") == []
    assert "DeleteSecret" not in proxy.ops()
    assert not any(deleted(sm, name) for name in others)


def test_rotation_enabled_secret_is_a_conflict_and_never_written(action, proxy, sm, moto):
    sm.create_secret(Name="app/rotated", SecretString='{"R":"old-rotated-canary"}', Tags=OURS)
    sm.rotate_secret(
        SecretId="app/rotated",
        RotationLambdaARN=rotation_function(moto),
        RotationRules={"AutomaticallyAfterDays": 30},
        RotateImmediately=False,
    )
    assert sm.describe_secret(SecretId="app/rotated")["RotationEnabled"] is True
    before = sm.get_secret_value(SecretId="app/rotated")["SecretString"]
    run = action(
        {"secrets": "rotated: R\nplain: P", "name-prefix": "app/"},
        env={"R": "new-rotated-canary", "P": "plain-canary-1"},
    )
    assert run.returncode == 1
    result = run.results()["app/rotated"]
    assert result["action"] == "conflict"
    assert "rotation" in result["error"]
    assert run.json("failed") == ["app/rotated"]
    assert run.json("created") == ["app/plain"]  # the others still sync
    writes = [c for c in proxy.calls if c.operation in WRITES and c.secret_id == "app/rotated"]
    assert writes == []
    assert sm.get_secret_value(SecretId="app/rotated")["SecretString"] == before
