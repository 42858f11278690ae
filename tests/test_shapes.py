"""Secret shapes and update policies, end to end through the entrypoint against moto: safe
adoption of what Terraform made (JSON and binary), `binary:`, `update-policy` (replace,
if-not-exists, merge) with reruns that write nothing, and a merge that loses a race."""

from __future__ import annotations

import base64
import json
from typing import Any

from tests.support.action import OURS, REPOSITORY, WRITES, ActionRun, assert_run_clean
from tests.test_rotation import enable_rotation
from tests.test_sync import tags_of, versions

# What Terraform's aws_secretsmanager_secret_version with jsonencode() leaves: no tags of ours.
TF_DB = {
    "username": "tf-user-canary",
    "password": "tf-old-password-canary",
    "host": "db.internal.canary",
    "port": 5432,
}
DB_ENV = {"DB_USER": "tf-user-canary", "DB_PASSWORD": "new-password-canary"}
DB_MAPPING = "db: {keys: {username: DB_USER, password: DB_PASSWORD}%s}"
# Bytes no UTF-8 decoder accepts, with all three padding cases around them.
KEYSTORE = bytes(range(256)) + b"\x00\xfe\xff-keystore-canary"
KEYSTORE_B64 = base64.b64encode(KEYSTORE).decode()
CANARIES = [
    *DB_ENV.values(),
    *(str(v) for v in TF_DB.values() if isinstance(v, str)),
    KEYSTORE_B64,
]


def writes(proxy: Any) -> list[str]:
    return [c.operation for c in proxy.calls if c.operation in WRITES]


def value_of(sm: Any, name: str) -> Any:
    got = sm.get_secret_value(SecretId=name)
    return got.get("SecretBinary") if "SecretBinary" in got else json.loads(got["SecretString"])


def terraform_db(sm: Any) -> None:
    sm.create_secret(Name="app/db", SecretString=json.dumps(TF_DB))


def sync_db(action: Any, extra: str = "", **inputs: str) -> ActionRun:
    return action(
        {"secrets": DB_MAPPING % extra, "name-prefix": "app/", **inputs},
        env=DB_ENV,
    )


# Safe adoption -------------------------------------------------------------------------------


def test_adopting_terraform_json_with_unnamed_keys_is_a_conflict(action, proxy, sm):
    terraform_db(sm)
    run = sync_db(action)
    assert run.returncode == 1, run.stdout
    result = run.results()["app/db"]
    assert result["action"] == "conflict"
    assert '"host", "port"' in result["error"]
    assert "update-policy: merge" in result["error"]
    assert "update-policy: replace" in result["error"]
    assert result["update_policy"] == "replace"
    assert writes(proxy) == []
    assert value_of(sm, "app/db") == TF_DB
    assert tags_of(sm, "app/db") == {}
    assert_run_clean(run, CANARIES)


def test_explicit_replace_drops_the_unnamed_keys(action, proxy, sm):
    terraform_db(sm)
    run = sync_db(action, **{"update-policy": "replace"})
    assert run.returncode == 0, run.stdout
    assert run.results()["app/db"]["action"] == "update"
    assert value_of(sm, "app/db") == {
        "username": "tf-user-canary",
        "password": DB_ENV["DB_PASSWORD"],
    }
    assert "update-policy: replace" in run.stdout
    assert tags_of(sm, "app/db")["ManagedBy"] == "secrets-sync"
    assert_run_clean(run, CANARIES)

    proxy.reset()
    again = sync_db(action, **{"update-policy": "replace"})
    assert again.json("unchanged") == ["app/db"]
    assert writes(proxy) == []


def test_our_own_secret_is_replaced_whole_by_default(action, proxy, sm):
    # Safe adoption guards what is not yet ours; a key added by hand to our secret is drift.
    sm.create_secret(Name="app/db", SecretString=json.dumps(TF_DB), Tags=OURS)
    run = sync_db(action)
    assert run.returncode == 0, run.stdout
    assert set(value_of(sm, "app/db")) == {"username", "password"}


def test_adopting_a_terraform_binary_secret(action, proxy, sm):
    sm.create_secret(Name="app/keystore", SecretBinary=KEYSTORE)
    inputs = {"secrets": "keystore: {binary: KEYSTORE_B64}", "name-prefix": "app/"}
    run = action(inputs, env={"KEYSTORE_B64": KEYSTORE_B64})
    assert run.returncode == 0, run.stdout
    assert run.results()["app/keystore"]["action"] == "tag"
    # Tags only, in one call (with the drift baseline: the version it holds); no value.
    assert writes(proxy) == ["TagResource"]
    assert len(versions(sm, "app/keystore")) == 1
    assert "| `app/keystore` | tag |" in run.summary
    assert "(binary)" in run.summary
    assert_run_clean(run, CANARIES)


def test_binary_is_never_rewritten_as_a_string_nor_a_string_as_binary(action, proxy, sm):
    sm.create_secret(Name="app/keystore", SecretBinary=KEYSTORE)
    sm.create_secret(Name="app/token", SecretString="plain-token-canary", Tags=OURS)
    run = action(
        {"secrets": "keystore: {value: K}\ntoken: {binary: T}", "name-prefix": "app/"},
        env={"K": "string-canary-value", "T": KEYSTORE_B64},
    )
    assert run.returncode == 1
    results = run.results()
    assert results["app/keystore"]["action"] == "conflict"
    assert "binary" in results["app/keystore"]["error"]
    assert results["app/token"]["action"] == "conflict"
    assert "string secret as binary" in results["app/token"]["error"]
    assert writes(proxy) == []
    assert value_of(sm, "app/keystore") == KEYSTORE
    # Replace given explicitly does not cross shapes either.
    again = action(
        {
            "secrets": "keystore: {value: K, update-policy: replace}",
            "name-prefix": "app/",
        },
        env={"K": "string-canary-value"},
    )
    assert again.results()["app/keystore"]["action"] == "conflict"
    assert value_of(sm, "app/keystore") == KEYSTORE
    assert_run_clean(run, [*CANARIES, "plain-token-canary", "string-canary-value"])


# binary: --------------------------------------------------------------------------------------


def test_binary_create_rerun_and_update(action, proxy, sm):
    inputs = {"secrets": "keystore: {binary: KEYSTORE_B64}", "name-prefix": "app/"}
    # Wrapped at 76 columns, as `base64` writes it: whitespace is no part of the bytes.
    wrapped = "\n".join(KEYSTORE_B64[i : i + 76] for i in range(0, len(KEYSTORE_B64), 76))
    first = action(inputs, env={"KEYSTORE_B64": wrapped})
    assert first.returncode == 0, first.stdout
    assert first.json("created") == ["app/keystore"]
    assert value_of(sm, "app/keystore") == KEYSTORE
    creates = [c for c in proxy.calls if c.operation == "CreateSecret"]
    assert "SecretString" not in creates[0].body
    assert_run_clean(first, [*CANARIES, wrapped])

    proxy.reset()
    second = action(inputs, env={"KEYSTORE_B64": KEYSTORE_B64})
    assert second.returncode == 0, second.stdout
    assert second.json("unchanged") == ["app/keystore"]
    assert writes(proxy) == []

    proxy.reset()
    other = b"\x01\x02-new-keystore-canary\xff"
    third = action(inputs, env={"KEYSTORE_B64": base64.b64encode(other).decode()})
    assert third.json("updated") == ["app/keystore"]
    assert writes(proxy) == ["PutSecretValue"]
    assert value_of(sm, "app/keystore") == other
    assert_run_clean(third, [KEYSTORE_B64, base64.b64encode(other).decode()])


# if-not-exists -------------------------------------------------------------------------------


def test_if_not_exists_creates_once_and_never_writes_the_value_again(action, proxy, sm):
    mapping = "seed: {value: SEED, update-policy: if-not-exists, tags: {Team: %s}}"
    inputs = {"secrets": mapping % "a", "name-prefix": "app/"}
    first = action(inputs, env={"SEED": "first-seed-canary"})
    assert first.json("created") == ["app/seed"]
    assert first.results()["app/seed"]["update_policy"] == "if-not-exists"

    proxy.reset()
    second = action(inputs, env={"SEED": "second-seed-canary"})
    assert second.returncode == 0, second.stdout
    assert second.json("unchanged") == ["app/seed"]
    assert writes(proxy) == []
    assert sm.get_secret_value(SecretId="app/seed")["SecretString"] == "first-seed-canary"
    assert "update-policy: if-not-exists" in second.stdout

    proxy.reset()
    third = action({**inputs, "secrets": mapping % "b"}, env={"SEED": "third-seed-canary"})
    assert third.results()["app/seed"]["action"] == "tag"
    assert writes(proxy) == ["TagResource"]
    assert sm.get_secret_value(SecretId="app/seed")["SecretString"] == "first-seed-canary"
    assert_run_clean(third, ["first-seed-canary", "third-seed-canary"])


def test_if_not_exists_allows_a_rotating_secret(action, proxy, sm, moto):
    sm.create_secret(Name="app/rotated", SecretString="rotated-canary-value", Tags=OURS)
    enable_rotation(sm, moto, "app/rotated")
    proxy.reset()
    run = action(
        {"secrets": "rotated: {value: R}", "name-prefix": "app/", "update-policy": "if-not-exists"},
        env={"R": "seed-canary-value"},
    )
    assert run.returncode == 0, run.stdout
    assert run.json("unchanged") == ["app/rotated"]
    assert writes(proxy) == []
    assert sm.get_secret_value(SecretId="app/rotated")["SecretString"] == "rotated-canary-value"


# merge ---------------------------------------------------------------------------------------


def test_merge_adopts_terraform_json_keeping_every_other_key(action, proxy, sm):
    terraform_db(sm)
    run = sync_db(action, ", update-policy: merge")
    assert run.returncode == 0, run.stdout
    result = run.results()["app/db"]
    assert result["action"] == "update"
    assert result["update_policy"] == "merge"
    assert result["merged_keys"] == ["password"]
    assert value_of(sm, "app/db") == {**TF_DB, "password": DB_ENV["DB_PASSWORD"]}
    assert "merge (wrote `password`)" in run.summary
    assert "merging password" in run.stdout
    merged = sm.get_secret_value(SecretId="app/db")["SecretString"]
    assert_run_clean(run, [*CANARIES, merged])

    proxy.reset()
    again = sync_db(action, ", update-policy: merge")
    assert again.returncode == 0, again.stdout
    assert again.json("unchanged") == ["app/db"]
    assert again.results()["app/db"]["merged_keys"] == []
    assert writes(proxy) == []
    # Someone adds a key by hand: a merge keeps it too, and writes nothing.
    sm.put_secret_value(
        SecretId="app/db", SecretString=json.dumps({**value_of(sm, "app/db"), "sslmode": "x"})
    )
    proxy.reset()
    third = sync_db(action, ", update-policy: merge")
    assert third.json("unchanged") == ["app/db"]
    assert writes(proxy) == []


def test_merge_input_with_a_dry_run_says_which_keys(action, proxy, sm):
    terraform_db(sm)
    run = sync_db(action, **{"update-policy": "merge", "dry-run": "true"})
    assert run.returncode == 0, run.stdout
    assert run.results()["app/db"]["merged_keys"] == ["password"]
    assert "merge (would write `password`)" in run.summary
    assert writes(proxy) == []
    assert value_of(sm, "app/db") == TF_DB


def test_merge_onto_a_value_that_is_not_a_json_object_is_a_conflict(action, proxy, sm):
    sm.create_secret(Name="app/db", SecretString="not-json-canary", Tags=OURS)
    run = sync_db(action, ", update-policy: merge")
    assert run.returncode == 1
    assert "not one" in run.results()["app/db"]["error"]
    assert writes(proxy) == []


def test_merge_that_loses_a_race_writes_nothing_and_a_rerun_converges(action, proxy, sm):
    terraform_db(sm)
    rival = {**TF_DB, "host": "db2.internal.canary"}
    raced: list[Any] = []

    def other_writer(call):
        # Another writer lands between the plan's read and the merge's re-read before writing.
        if call.operation == "GetSecretValue" and not raced:
            raced.append(call)
            sm.put_secret_value(SecretId="app/db", SecretString=json.dumps(rival))
        return None

    proxy.faults.rule = other_writer
    run = sync_db(action, ", update-policy: merge")
    assert raced, "the merge did not re-read before writing"
    assert run.returncode == 1
    assert run.json("failed") == ["app/db"]
    assert "changed since it was read" in run.results()["app/db"]["error"]
    assert not {"UpdateSecret", "PutSecretValue"} & set(writes(proxy))
    assert value_of(sm, "app/db") == rival
    assert_run_clean(run, CANARIES)

    proxy.faults.rule = None
    again = sync_db(action, ", update-policy: merge")
    assert again.returncode == 0, again.stdout
    assert value_of(sm, "app/db") == {**rival, "password": DB_ENV["DB_PASSWORD"]}
    assert tags_of(sm, "app/db")["secrets-sync:repository"] == REPOSITORY


def test_merge_onto_a_secret_with_no_value_yet_writes_the_owned_keys(action, proxy, sm):
    # Created without a value (as `aws secretsmanager create-secret --name` leaves it): no
    # version holds AWSCURRENT, and GetSecretValue answers ResourceNotFoundException.
    sm.create_secret(Name="app/db", Tags=OURS)
    run = sync_db(action, ", update-policy: merge")
    assert run.returncode == 0, run.stdout + run.stderr
    assert run.json("updated") == ["app/db"]
    assert run.results()["app/db"]["merged_keys"] == ["username", "password"]
    assert value_of(sm, "app/db") == DB_ENV_KEYS
    assert writes(proxy).count("PutSecretValue") == 1
    assert_run_clean(run, CANARIES)

    proxy.reset()
    again = sync_db(action, ", update-policy: merge")
    assert again.returncode == 0, again.stdout
    assert again.json("unchanged") == ["app/db"]
    assert writes(proxy) == []


DB_ENV_KEYS = {"username": DB_ENV["DB_USER"], "password": DB_ENV["DB_PASSWORD"]}


def test_merge_keeps_the_keys_it_does_not_own_as_their_very_text(action, proxy, sm):
    text = (
        '{"n": 1E3, "big": 123456789012345678901234567890, "inf": 1e400, "z": -0,\n'
        ' "f": 1.10, "s": "\\u00e9\\/", "password": "old-password-canary"}'
    )
    sm.create_secret(Name="app/db", SecretString=text, Tags=OURS)
    run = sync_db(action, ", update-policy: merge")
    assert run.returncode == 0, run.stdout + run.stderr
    after = sm.get_secret_value(SecretId="app/db")["SecretString"]
    assert after == (
        '{"n":1E3,"big":123456789012345678901234567890,"inf":1e400,"z":-0,"f":1.10,'
        f'"s":"\\u00e9\\/","password":"{DB_ENV["DB_PASSWORD"]}","username":"{DB_ENV["DB_USER"]}"}}'
    )
    assert_run_clean(run, [*CANARIES, "old-password-canary", after])


def test_merged_keys_after_a_retry_are_the_retried_plans(action, proxy, sm):
    from secrets_sync import limiter

    sm.create_secret(Name="app/db", SecretString=json.dumps(TF_DB), Tags=OURS)
    puts: list[Any] = []

    def throttled_while_another_writes(call: Any) -> int | None:
        # The first write is throttled past every retry; meanwhile another writer changes a
        # key the mapping owns, so the retry round's fresh plan merges one key more.
        if call.operation != "PutSecretValue":
            return None
        puts.append(call)
        if len(puts) == 1:
            sm.put_secret_value(
                SecretId="app/db", SecretString=json.dumps({**TF_DB, "username": "someone-else"})
            )
        return 400 if len(puts) <= limiter.THROTTLE_ATTEMPTS else None

    proxy.faults.rule = throttled_while_another_writes
    run = sync_db(action, ", update-policy: merge")
    assert run.returncode == 0, run.stdout + run.stderr
    assert len(puts) == limiter.THROTTLE_ATTEMPTS + 1  # the retry round wrote
    assert run.results()["app/db"]["merged_keys"] == ["username", "password"]
    assert "merge (wrote `username`, `password`)" in run.summary
    assert value_of(sm, "app/db") == {**TF_DB, **DB_ENV_KEYS}
    assert_run_clean(run, [*CANARIES, "someone-else"])
