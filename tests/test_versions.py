"""The `versions` output: for every secret of the mapping that exists, the VersionId that is
AWSCURRENT after the run, changed or not, so that a later step rolls exactly the workloads whose
secrets changed (docs/eso.md)."""

from __future__ import annotations

import json
from typing import Any

from tests.support.action import OURS, assert_run_clean

THEIRS = [
    {"Key": "ManagedBy", "Value": "secrets-sync"},
    {"Key": "secrets-sync:repository", "Value": "other-org/other-repo"},
]
MAPPING = """
same: SAME
old: OLD
retag: {keys: [RETAG], description: now described}
theirs: THEIRS
new: NEW
gone: GONE
never: NEVER
""".strip()
VALUES = {
    "SAME": "same-canary-value",
    "OLD": "old-canary-value-2",
    "RETAG": "retag-canary-value",
    "THEIRS": "theirs-canary-value",
    "NEW": "new-canary-value",
}
INPUTS = {"secrets": MAPPING, "name-prefix": "v/", "missing": "skip", "prune": "true"}


def current(sm: Any, name: str) -> str:
    return str(sm.get_secret_value(SecretId=name)["VersionId"])


def seed(sm: Any) -> dict[str, str]:
    """Secrets as they stand before the run, and their current versions."""
    made = {
        "same": ('{"SAME":"same-canary-value"}', OURS),
        "old": ('{"OLD":"old-canary-value-1"}', OURS),
        "retag": ('{"RETAG":"retag-canary-value"}', OURS),
        "theirs": ('{"THEIRS":"their-own-canary"}', THEIRS),
        "gone": ('{"GONE":"gone-canary-value"}', OURS),
        "pruned": ('{"P":"pruned-canary-value"}', OURS),
    }
    for key, (text, tags) in made.items():
        sm.create_secret(Name=f"v/{key}", SecretString=text, Tags=tags)
    return {f"v/{key}": current(sm, f"v/{key}") for key in made}


def test_versions_name_what_is_current_after_the_run_for_every_mapped_secret(action, sm):
    before = seed(sm)
    run = action(INPUTS, env=VALUES)
    assert run.returncode == 1, run.stdout  # `theirs` is another repository's: a conflict
    actions = {k: v["action"] for k, v in run.results().items()}
    assert actions == {
        "v/same": "unchanged",
        "v/old": "update",
        "v/retag": "tag",
        "v/theirs": "conflict",
        "v/new": "create",
        "v/gone": "skip",
        "v/never": "skip",
        "v/pruned": "delete",
    }
    versions = run.json("versions")
    # Every mapped secret that exists, and only those: not the one never made, not the pruned.
    assert set(versions) == {"v/same", "v/old", "v/retag", "v/theirs", "v/new", "v/gone"}
    for name, version in versions.items():
        assert version == current(sm, name), name
    assert versions["v/old"] != before["v/old"]  # updated: the new version
    for name in ("v/same", "v/retag", "v/theirs", "v/gone"):
        assert versions[name] == before[name], name  # no new version
    # The same versions as `results`, where those carry one.
    for name, result in run.results().items():
        if result["version_id"]:
            assert versions[name] == result["version_id"], name
    assert run.outputs["versions"] == json.dumps(versions, sort_keys=True)
    assert_run_clean(run, [*VALUES.values(), "old-canary-value-1", "their-own-canary"])


def test_a_rerun_that_changes_nothing_gives_the_same_versions(action, sm):
    inputs = {"secrets": "a: A\nb: {value: B}", "name-prefix": "v/"}
    first = action(inputs, env={"A": "a-canary-1", "B": "b-canary-1"})
    assert first.returncode == 0, first.stdout
    again = action(inputs, env={"A": "a-canary-1", "B": "b-canary-2"})
    assert again.returncode == 0, again.stdout
    before, after = first.json("versions"), again.json("versions")
    assert after["v/a"] == before["v/a"]  # unchanged: the workloads reading it do not roll
    assert after["v/b"] != before["v/b"] == first.results()["v/b"]["version_id"]
    assert after == {name: current(sm, name) for name in ("v/a", "v/b")}
    assert_run_clean(again, ["a-canary-1", "b-canary-2"])


def test_a_dry_run_gives_the_versions_current_now(action, sm):
    before = seed(sm)
    run = action({**INPUTS, "dry-run": "true"}, env=VALUES)
    assert run.returncode == 0, run.stdout
    versions = run.json("versions")
    # Nothing was written: each existing secret's version is the one it had, a create has none.
    assert versions == {k: v for k, v in before.items() if k != "v/pruned"}
    assert_run_clean(run, VALUES.values())


def test_after_a_rollback_the_version_made_current(action, sm):
    inputs = {"secrets": "a: A", "name-prefix": "v/"}
    first = action(inputs, env={"A": "a-canary-1"})
    second = action(inputs, env={"A": "a-canary-2"})
    assert second.json("versions")["v/a"] != first.json("versions")["v/a"]
    back = action({**inputs, "rollback": "true", "only": "*"})
    assert back.returncode == 0, back.stdout
    assert (
        back.json("versions")
        == {"v/a": first.json("versions")["v/a"]}
        == {"v/a": current(sm, "v/a")}
    )
