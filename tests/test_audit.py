"""The audit trail: the version a run wrote names the run (its VersionId is our token), the
tags written with a create or a tag change name the run and commit, the role session names the
run for CloudTrail, a run with nothing to do writes nothing, and a change is one write call."""

from __future__ import annotations

import subprocess
import sys

import pytest

from secrets_sync.settings import default_session_name, load_settings, run_url
from secrets_sync.versions import written_by
from tests.support.action import ENTRYPOINT, REPOSITORY, WRITES, assert_run_clean

SHA = "0123456789abcdef0123456789abcdef01234567"


def run_env(run_id: str, attempt: str = "1", sha: str = SHA) -> dict[str, str]:
    """What the runner sets for one attempt of one workflow run."""
    return {
        "GITHUB_RUN_ID": run_id,
        "GITHUB_RUN_ATTEMPT": attempt,
        "GITHUB_SERVER_URL": "https://github.com",
        "GITHUB_SHA": sha,
    }


def url(run_id: str, attempt: str = "1") -> str:
    return f"https://github.com/{REPOSITORY}/actions/runs/{run_id}/attempts/{attempt}"


def tags_of(sm, name):
    return {t["Key"]: t["Value"] for t in sm.describe_secret(SecretId=name).get("Tags", [])}


def test_the_version_names_its_run_and_a_noop_run_writes_nothing(action, proxy, sm):
    inputs = {"secrets": "key: KEY\nother: OTHER", "name-prefix": "audit/"}
    values = {"KEY": "audit-canary-1", "OTHER": "audit-canary-2"}
    first = action(inputs, env={**values, **run_env("1001")})
    assert first.returncode == 0, first.stdout
    for name in ("audit/key", "audit/other"):
        tags = tags_of(sm, name)
        assert tags["secrets-sync:run"] == url("1001")
        assert tags["secrets-sync:commit"] == SHA
        writer = written_by(current_version(sm, name))
        assert (writer.run_id, writer.attempt) == (1001, 1)
    # The tags went with the CreateSecret itself: one call a secret.
    assert [op for op in proxy.ops() if op in WRITES] == ["CreateSecret", "CreateSecret"]

    # Another run with nothing to do: its different run must not make it write.
    proxy.reset()
    noop = action(inputs, env={**values, **run_env("1002", sha="f" * 40)})
    assert noop.returncode == 0, noop.stdout
    assert noop.outputs["changed"] == "false"
    assert not WRITES & set(proxy.ops())

    # An update (a re-run: attempt 2) is one PutSecretValue, whose version names the run; the
    # tags, which it does not touch, still name the run that set them.
    proxy.reset()
    update = action(inputs, env={**values, "KEY": "audit-canary-3", **run_env("1003", "2")})
    assert update.returncode == 0, update.stdout
    assert update.json("updated") == ["audit/key"]
    assert [op for op in proxy.ops() if op in WRITES] == ["PutSecretValue"]
    version = current_version(sm, "audit/key")
    assert update.results()["audit/key"]["version_id"] == version
    writer = written_by(version)
    assert (writer.run_id, writer.attempt) == (1003, 2)
    assert tags_of(sm, "audit/key")["secrets-sync:run"] == url("1001")

    # ...and `secrets-sync written-by` reads it back, with no AWS call.
    said = subprocess.run(
        [sys.executable, str(ENTRYPOINT), "written-by", version, "--repository", REPOSITORY],
        capture_output=True,
        text=True,
        check=True,
        env={"PATH": "/usr/bin:/bin"},
    ).stdout.splitlines()
    assert said[0].startswith("run 1003 attempt 2, ")
    assert said[1] == url("1003", "2")

    # A tag change is one TagResource, and the audit tags go with it.
    proxy.reset()
    tagged = {**inputs, "default-tags": "Team: core"}
    retag = action(tagged, env={**values, "KEY": "audit-canary-3", **run_env("1004", sha="a" * 40)})
    assert retag.returncode == 0, retag.stdout
    assert [op for op in proxy.ops() if op in WRITES] == ["TagResource", "TagResource"]
    assert tags_of(sm, "audit/key")["secrets-sync:run"] == url("1004")
    assert tags_of(sm, "audit/key")["secrets-sync:commit"] == "a" * 40
    assert_run_clean(update, [*values.values(), "audit-canary-3"])


@pytest.mark.parametrize(
    ("change", "writes"),
    [
        ({"KEY": "changed-canary"}, ["PutSecretValue"]),
        ({"DESCRIPTION": "changed"}, ["UpdateSecret"]),
        ({"TEAM": "platform"}, ["TagResource"]),
        ({"KEY": "changed-canary", "DESCRIPTION": "changed"}, ["PutSecretValue", "UpdateSecret"]),
    ],
)
def test_one_write_call_per_change(action, proxy, sm, change, writes):
    settings = {"KEY": "one-canary", "DESCRIPTION": "first", "TEAM": "core"}

    def run(how):
        mapping = (
            f"key: {{keys: [KEY], description: {how['DESCRIPTION']}, "
            f"tags: {{Team: {how['TEAM']}}}}}"
        )
        done = action({"secrets": mapping, "name-prefix": "one/"}, env={**how, **run_env("7")})
        assert done.returncode == 0, done.stdout
        return done

    run(settings)
    assert [op for op in proxy.ops() if op in WRITES] == ["CreateSecret"]
    proxy.reset()
    run({**settings, **change})
    assert sorted(op for op in proxy.ops() if op in WRITES) == sorted(writes)


def current_version(sm, name):
    return sm.get_secret_value(SecretId=name)["VersionId"]


def test_the_default_session_name_ties_cloudtrail_to_the_run(action, proxy):
    run = action(
        {
            "secrets": "key: KEY",
            "role-to-assume": "arn:aws:iam::123456789012:role/secrets-sync",
        },
        env={"KEY": "session-canary-1", **run_env("987654321", "3")},
    )
    assert run.returncode == 0, run.stdout + run.stderr
    [call] = [c for c in proxy.calls if c.service == "sts"]
    assert call.body["RoleSessionName"] == "secrets-sync-987654321-3"


@pytest.mark.parametrize(
    ("env", "expected"),
    [
        ({}, "secrets-sync"),  # outside Actions
        ({"GITHUB_RUN_ID": "42"}, "secrets-sync-42"),
        ({"GITHUB_RUN_ID": "42", "GITHUB_RUN_ATTEMPT": "7"}, "secrets-sync-42-7"),
        ({"GITHUB_RUN_ID": "4\u0662", "GITHUB_RUN_ATTEMPT": "1"}, "secrets-sync"),  # not digits
        # The longest ids the runner could give still fit RoleSessionName's 64 characters.
        (
            {"GITHUB_RUN_ID": "9" * 20, "GITHUB_RUN_ATTEMPT": "9" * 20},
            f"secrets-sync-{'9' * 20}-{'9' * 20}",
        ),
    ],
)
def test_default_session_name(env, expected):
    name = default_session_name(env)
    assert name == expected
    settings = load_settings(
        {**env, "GITHUB_REPOSITORY": REPOSITORY, "INPUT_SECRETS": "a: A", "AWS_REGION": "us-east-1"}
    )
    assert settings.role_session_name == expected
    assert len(name) <= 64


def test_an_explicit_session_name_wins():
    settings = load_settings(
        {
            **run_env("42"),
            "GITHUB_REPOSITORY": REPOSITORY,
            "INPUT_SECRETS": "a: A",
            "AWS_REGION": "us-east-1",
            "INPUT_ROLE-SESSION-NAME": "deploy@lornu",
        }
    )
    assert settings.role_session_name == "deploy@lornu"
    assert settings.run_url == url("42")
    assert settings.commit == SHA


def test_run_url_is_left_out_when_it_cannot_be_a_tag():
    assert run_url({}, REPOSITORY) is None
    assert run_url({"GITHUB_RUN_ID": "5"}, REPOSITORY) == (
        f"https://github.com/{REPOSITORY}/actions/runs/5"
    )
    ghes = {"GITHUB_RUN_ID": "5", "GITHUB_SERVER_URL": "https://git.example.com/"}
    assert run_url(ghes, REPOSITORY) == f"https://git.example.com/{REPOSITORY}/actions/runs/5"
    assert (
        run_url({**ghes, "GITHUB_SERVER_URL": "https://x.example/" + "p" * 250}, REPOSITORY) is None
    )
    assert run_url({**ghes, "GITHUB_SERVER_URL": "https://x.example/a?b"}, REPOSITORY) is None
