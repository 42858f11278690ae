"""v1.1 audit trail: every write names its run and commit in tags, the role session names the
run for CloudTrail, and a run with nothing to do still writes nothing."""

from __future__ import annotations

import pytest

from secrets_sync.settings import default_session_name, load_settings, run_url
from tests.support.action import REPOSITORY, WRITES, assert_run_clean

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


def test_writes_carry_the_run_and_commit_and_a_noop_run_writes_nothing(action, proxy, sm):
    inputs = {"secrets": "key: KEY\nother: OTHER", "name-prefix": "audit/"}
    values = {"KEY": "audit-canary-1", "OTHER": "audit-canary-2"}
    first = action(inputs, env={**values, **run_env("1001")})
    assert first.returncode == 0, first.stdout
    for name in ("audit/key", "audit/other"):
        tags = tags_of(sm, name)
        assert tags["secrets-sync:run"] == url("1001")
        assert tags["secrets-sync:commit"] == SHA
    # The tags went with the CreateSecret itself: no TagResource of their own.
    assert "TagResource" not in proxy.ops()

    # Another run with nothing to do: its different run tags must not make it write.
    proxy.reset()
    noop = action(inputs, env={**values, **run_env("1002", sha="f" * 40)})
    assert noop.returncode == 0, noop.stdout
    assert noop.outputs["changed"] == "false"
    assert not WRITES & set(proxy.ops())
    assert tags_of(sm, "audit/key")["secrets-sync:run"] == url("1001")

    # An update (a re-run: attempt 2) names its own run and commit, on that secret only.
    proxy.reset()
    other_sha = "a" * 40
    update = action(
        inputs, env={**values, "KEY": "audit-canary-3", **run_env("1003", "2", other_sha)}
    )
    assert update.returncode == 0, update.stdout
    assert update.json("updated") == ["audit/key"]
    assert tags_of(sm, "audit/key")["secrets-sync:run"] == url("1003", "2")
    assert tags_of(sm, "audit/key")["secrets-sync:commit"] == other_sha
    assert tags_of(sm, "audit/other")["secrets-sync:run"] == url("1001")
    assert proxy.ops().count("TagResource") == 1  # one write's audit tags, in one call
    assert_run_clean(update, [*values.values(), "audit-canary-3"])


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
