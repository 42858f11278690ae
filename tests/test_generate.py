"""`generate`: a value Secrets Manager generates (GetRandomPassword) when it creates the secret,
as a whole plain-string secret or as keys of a JSON one. It never passes through GitHub, is
masked the moment it arrives, and is never written again (`if-not-exists`).

The generated values are unknown to a test in advance: each test reads them from moto after the
run and checks that they stand nowhere in what the run showed, except in the runner's
`::add-mask::` lines, which the runner consumes."""

from __future__ import annotations

import json
import string
from typing import Any

import pytest
from actions_toolkit.command import escape_data

from secrets_sync.errors import InputError
from secrets_sync.mapping import load_mapping
from secrets_sync.sources import resolve
from tests.support.action import WRITES, ActionRun, assert_no_leak, assert_run_clean
from tests.test_eso import MANIFESTS, external_secrets, resolve_like_eso

MAPPING = """
db-password: {generate: {length: 40, exclude-characters: "/@\\" "}}
db:
  keys:
    username: DB_USER
    password: {generate: {length: 24, exclude-punctuation: true}}
    api-token: {generate: {}}
"""
ENV = {"DB_USER": "db-user-canary-value"}
INPUTS = {"secrets": MAPPING, "name-prefix": "gen/"}


def value(sm: Any, name: str) -> str:
    return str(sm.get_secret_value(SecretId=name)["SecretString"])


def generated(sm: Any) -> dict[str, str]:
    """The values AWS generated, as the run left them in Secrets Manager."""
    keyed = json.loads(value(sm, "gen/db"))
    return {
        "whole": value(sm, "gen/db-password"),
        "password": keyed["password"],
        "api-token": keyed["api-token"],
    }


def assert_shown_only_as_masks(run: ActionRun, values: list[str]) -> None:
    """Each value is masked with the runner (`::add-mask::`, which the runner consumes) and
    stands nowhere else: not in the log, stderr, the outputs, the summary or any file."""
    lines = run.log_lines
    results = lines.index("::group::Results")  # the first line after the apply to name a secret
    for secret in values:
        assert lines.index(f"::add-mask::{escape_data(secret)}") < results
    texts = {
        "stdout": "\n".join(x for x in lines if not x.startswith("::add-mask::")),
        "stderr": run.stderr,
        "GITHUB_OUTPUT": run.output_text,
        "step summary": run.summary,
    }
    texts |= {str(p): p.read_text() for p in run.workspace.rglob("*") if p.is_file()}
    assert_no_leak(texts, values)


def test_created_once_from_get_random_password_and_masked_on_arrival(action, proxy, sm):
    run = action({**INPUTS, "max-concurrency": "1"}, env=ENV)  # one secret at a time: in order
    assert run.returncode == 0, run.stdout
    assert sorted(run.json("created")) == ["gen/db", "gen/db-password"]
    made = generated(sm)
    # The options reached GetRandomPassword: lengths, and the characters left out.
    assert len(made["whole"]) == 40
    assert not set(made["whole"]) & set('/@" ')
    assert len(made["password"]) == 24
    assert not set(made["password"]) & set(string.punctuation)
    assert len(made["api-token"]) == 32  # AWS's default
    assert json.loads(value(sm, "gen/db"))["username"] == ENV["DB_USER"]
    # One GetRandomPassword per generated value, each just before the create it feeds.
    ops = proxy.ops()
    assert ops.count("GetRandomPassword") == 3
    assert ops.count("CreateSecret") == 2
    calls = [c for c in proxy.calls if c.operation in ("GetRandomPassword", "CreateSecret")]
    for i, call in enumerate(calls):
        if call.operation == "CreateSecret":
            wanted = 1 if call.body["Name"] == "gen/db-password" else 2
            assert [c.operation for c in calls[i - wanted : i]] == ["GetRandomPassword"] * wanted
    # Named as generated in the plan and the summary: the names only.
    assert any(
        "gen/db-password" in line and "new secret (generated)" in line for line in run.log_lines
    )
    assert any('new secret (generated: "password", "api-token")' in line for line in run.log_lines)
    assert "(plain string, generated)" in run.summary
    assert "`password` (generated)" in run.summary
    assert {r["update_policy"] for r in run.json("results")} == {"if-not-exists"}
    assert_shown_only_as_masks(run, list(made.values()))
    assert_run_clean(run, ENV.values())


def test_a_rerun_writes_nothing_and_generates_nothing(action, proxy, sm, realaws):
    first = action(INPUTS, env=ENV)
    assert first.returncode == 0, first.stdout
    made = generated(sm)
    proxy.reset()
    # Even with the source of its other key changed: the secret is never written again.
    again = action(INPUTS, env={"DB_USER": "another-user-canary"})
    assert again.returncode == 0, again.stdout
    assert again.json("unchanged") == ["gen/db-password", "gen/db"]
    assert not (WRITES | {"GetRandomPassword"}) & set(proxy.ops())
    assert generated(sm) == made
    assert json.loads(value(sm, "gen/db"))["username"] == ENV["DB_USER"]
    # ...and the plan says so, naming the key (never a value).
    [line] = [x for x in again.log_lines if x.startswith("unchanged") and "gen/db " in x]
    assert '"username" differ from the sources' in line
    assert again.json("versions") == first.json("versions")
    assert_run_clean(again, [*made.values(), "another-user-canary"])
    # Once the listing shows them, a no-op with generated secrets is the two reads of any no-op.
    realaws.settle()
    proxy.reset()
    quiet = action(INPUTS, env=ENV)
    assert quiet.json("unchanged") == ["gen/db-password", "gen/db"]
    assert sorted(proxy.ops()) == ["BatchGetSecretValue", "ListSecrets"]


def test_a_dry_run_says_create_generated_and_calls_nothing(action, proxy, sm):
    run = action({**INPUTS, "dry-run": "true"}, env=ENV)
    assert run.returncode == 0, run.stdout
    assert sorted(run.json("created")) == ["gen/db", "gen/db-password"]
    assert any("create" in line and "new secret (generated)" in line for line in run.log_lines)
    # No value exists yet: GetRandomPassword is asked only at a real create.
    assert not (WRITES | {"GetRandomPassword"}) & set(proxy.ops())
    assert sm.list_secrets()["SecretList"] == []
    assert_run_clean(run, ENV.values())


def test_an_existing_secret_keeps_its_value_tags_and_description_still_follow(action, proxy, sm):
    sm.create_secret(Name="gen/db-password", SecretString="made-by-terraform-canary")
    run = action(
        {"secrets": "db-password: {generate: {}, description: Generated}", "name-prefix": "gen/"}
    )
    assert run.returncode == 0, run.stdout
    assert run.results()["gen/db-password"]["action"] == "tag"  # adopted: tags, description
    assert "GetRandomPassword" not in proxy.ops()
    assert "PutSecretValue" not in proxy.ops()
    assert value(sm, "gen/db-password") == "made-by-terraform-canary"
    assert sm.describe_secret(SecretId="gen/db-password")["Description"] == "Generated"


def test_a_create_that_loses_the_race_keeps_the_winner(action, proxy, sm, realaws):
    # Another run created it between our read and our create: our generated value is dropped,
    # the winner's kept, and nothing is written over it.
    def sneak_in(call):
        if call.operation == "CreateSecret" and not sm.list_secrets()["SecretList"]:
            sm.create_secret(Name="gen/db-password", SecretString="the-winner-canary")
        return None

    proxy.faults.rule = sneak_in
    run = action({"secrets": "db-password: {generate: {}}", "name-prefix": "gen/"})
    assert run.returncode == 0, run.stdout
    assert value(sm, "gen/db-password") == "the-winner-canary"
    assert "PutSecretValue" not in proxy.ops()
    assert_run_clean(run, ["the-winner-canary"])


def test_a_deleted_generated_secret_is_restored_with_its_value(action, proxy, sm, realaws):
    action({"secrets": "db-password: {generate: {}}", "name-prefix": "gen/"})
    realaws.settle()  # the listing shows it (a create it lags behind is the race test above)
    made = value(sm, "gen/db-password")
    sm.delete_secret(SecretId="gen/db-password", RecoveryWindowInDays=7)
    proxy.reset()
    run = action({"secrets": "db-password: {generate: {}}", "name-prefix": "gen/"})
    assert run.returncode == 0, run.stdout
    assert run.results()["gen/db-password"]["action"] == "restore"
    assert not {"GetRandomPassword", "PutSecretValue", "CreateSecret"} & set(proxy.ops())
    assert value(sm, "gen/db-password") == made


def test_eso_manifests_bring_generated_values_as_any_other(action, sm):
    mapping = MAPPING.replace(
        "db-password: {generate: {length: 40,",
        "db-password: {k8s: {secret: app}, generate: {length: 40,",
    )
    mapping += "  k8s: {secret: app}\n"
    run = action({**INPUTS, "secrets": mapping, "eso-manifests": MANIFESTS}, env=ENV)
    assert run.returncode == 0, run.stdout
    [doc] = external_secrets(run.workspace / MANIFESTS)
    made = generated(sm)
    strings = {name: value(sm, name) for name in ("gen/db", "gen/db-password")}
    assert resolve_like_eso(doc, strings) == {
        "db-password": made["whole"],  # a plain string: under the end of its name
        "username": ENV["DB_USER"],
        "password": made["password"],
        "api-token": made["api-token"],
    }
    assert_shown_only_as_masks(run, list(made.values()))


@pytest.mark.parametrize(
    ("policy_input", "own", "ok"),
    [
        ("", "", True),  # the input left empty: `generate` implies if-not-exists
        ("if-not-exists", "", True),
        ("", "update-policy: if-not-exists,", True),
        ("replace", "update-policy: if-not-exists,", True),  # per-secret wins, as ever
        ("replace", "", False),
        ("merge", "", False),
        ("", "update-policy: replace,", False),
        ("if-not-exists", "update-policy: merge,", False),
    ],
)
def test_the_policy_is_if_not_exists_and_nothing_else(policy_input, own, ok):
    text = f"a: {{{own} generate: {{}}}}\nb: {{keys: {{k: {{generate: {{}}}}}}, {own}}}"
    load = lambda: load_mapping(text, "secrets", update_policy=policy_input or None)  # noqa: E731
    if not ok:
        with pytest.raises(InputError, match="never written"):
            load()
        return
    for spec in load().specs:
        assert (spec.update_policy, spec.policy_given, spec.generates) == (
            "if-not-exists",
            True,
            True,
        )


def test_the_size_check_counts_generated_keys_at_their_longest():
    # 61,000 bytes from a source and a generated key of 4,096 characters, each of which may
    # take two bytes JSON-escaped: over 65,536 at worst, so refused before any AWS call.
    text = "a: {keys: {big: BIG, pw: {generate: {length: 4096}}}}"
    (spec,) = load_mapping(text, "secrets").specs
    with pytest.raises(InputError, match="generated keys"):
        resolve((spec,), {"BIG": "x" * 61_000}, missing="fail")
    # Without the punctuation that escapes, the same length fits.
    quiet = text.replace("length: 4096", "length: 4096, exclude-punctuation: true")
    (spec,) = load_mapping(quiet, "secrets").specs
    (desired,) = resolve((spec,), {"BIG": "x" * 61_000}, missing="fail")
    assert desired.has_value
    assert desired.generates
