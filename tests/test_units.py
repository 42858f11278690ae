"""Unit tests of the pure stages: mapping, sources, plan, summary and the runner adapter."""

from __future__ import annotations

import io
import json
import re

import pytest

from secrets_sync.apply import Result, dry_run
from secrets_sync.errors import InputError
from secrets_sync.mapping import K8sTarget, load_mapping, parse_default_tags
from secrets_sync.plan import Action, plan, plan_secret, same_value
from secrets_sync.runner import Runner
from secrets_sync.settings import load_settings
from secrets_sync.sources import lookup, resolve
from secrets_sync.state import Current
from secrets_sync.summary import markdown, outputs, plan_lines

REPO = "lornu-ai/app"
OURS = {"ManagedBy": "secrets-sync", "secrets-sync:repository": REPO}


# The mapping -----------------------------------------------------------------------------


def test_every_shape_of_the_contract():
    specs = load_mapping(
        """
        a: SRC_A
        b: [B1, B2]
        c: {keys: {api_key: C1, hook: C2}, description: D, tags: {Team: x}, kms-key-id: k,
            replica-regions: [eu-west-1], k8s: {secret: app-secrets}}
        d: {keys: [D1], replica-regions: [{region: eu-west-2, kms-key-id: alias/eu}, ap-south-1]}
        e: {value: E1, tags: {Env: dev}}
        """.replace("\n        ", "\n"),
        "secrets",
        name_prefix="p/",
        default_tags={"Env": "prod", "Cost": "1"},
        kms_key_id="dk",
    ).specs
    by = {s.key: s for s in specs}
    assert [s.name for s in specs] == ["p/a", "p/b", "p/c", "p/d", "p/e"]
    assert by["a"].fields == (("SRC_A", "SRC_A"),)
    assert by["b"].sources == ("B1", "B2")
    assert by["c"].fields == (("api_key", "C1"), ("hook", "C2"))
    assert by["c"].kms_key_id == "k"
    assert by["a"].kms_key_id == "dk"
    assert by["c"].replica_regions == ("eu-west-1",)
    assert by["c"].replica_kms_keys == ()  # its replica gets aws/secretsmanager there
    assert by["d"].replica_regions == ("eu-west-2", "ap-south-1")
    assert by["d"].replica_kms_keys == (("eu-west-2", "alias/eu"),)
    assert by["c"].k8s == K8sTarget("app-secrets", "default")
    assert dict(by["c"].tags) == {"Env": "prod", "Cost": "1", "Team": "x"}
    assert not by["e"].is_json
    assert by["e"].sources == ("E1",)
    assert dict(by["e"].tags) == {"Env": "dev", "Cost": "1"}  # per-secret tags win


def test_json_mapping_and_yaml_scalars_stay_strings():
    specs = load_mapping('{"2024": "YES", "on": {"value": "NULL"}}', "secrets").specs
    assert [s.key for s in specs] == ["2024", "on"]
    assert specs[0].sources == ("YES",)


@pytest.mark.parametrize(
    ("text", "place", "words"),
    [
        ("a: {keys: {api_key: bad-src}}", "secrets.a.keys.api_key", "not a source name"),
        ("a: X\na: Y", "secrets", "appears twice"),
        ("a: {value: X, keys: [Y]}", "secrets.a", "both `keys` and `value`"),
        ("a: {valeu: X}", "secrets.a", "unknown field 'valeu'"),
        ("a: {tags: {'aws:x': y}, value: X}", "secrets.a.tags", "aws:"),
        ("a: {value: X, tags: {ManagedBy: me}}", "secrets.a.tags.ManagedBy", "set by secrets-sync"),
        ("'a b': X", "secrets", "not a valid secret name"),
        ("a: [X, X]", "secrets.a", "twice"),
    ],
)
def test_mapping_errors_name_the_place_and_the_fix(text, place, words):
    with pytest.raises(InputError) as caught:
        load_mapping(text, "secrets")
    assert caught.value.place == place
    assert words in caught.value.problem
    assert caught.value.fix


def test_prefix_counts_towards_the_name_limit_and_suffix_lookalikes_warn():
    with pytest.raises(InputError, match="512"):
        load_mapping("a" * 500 + ": X", "secrets", name_prefix="p" * 13)
    assert load_mapping("api-AbC123: X", "secrets").warnings
    assert not load_mapping("api-key: X", "secrets").warnings


def test_default_tags_are_validated():
    assert parse_default_tags("Env: prod") == {"Env": "prod"}
    with pytest.raises(InputError, match="default-tags"):
        parse_default_tags("'aws:env': x")
    with pytest.raises(InputError, match="exceed 50"):
        parse_default_tags(json.dumps({f"k{i}": "v" for i in range(49)}))


# Sources ----------------------------------------------------------------------------------


def test_values_input_wins_over_env_and_empty_counts_as_missing():
    specs = load_mapping("a: [X, Y, Z]", "secrets").specs
    found = lookup(specs, {"X": "from-values", "Y": ""}, {"X": "from-env", "Y": "env-y"})
    assert found == {"X": "from-values", "Y": "env-y"}
    with pytest.raises(InputError, match="Z"):
        resolve(specs, found, missing="fail")
    (skipped,) = resolve(specs, found, missing="skip")
    assert skipped.secret_string is None
    assert skipped.missing == ("Z",)


def test_secret_strings_and_size_limit():
    specs = load_mapping("j: {keys: {k: A}}\np: {value: A}", "secrets").specs
    json_one, plain = resolve(specs, {"A": 'q"uote'}, missing="fail")
    assert json.loads(json_one.secret_string or "") == {"k": 'q"uote'}
    assert plain.secret_string == 'q"uote'
    assert "q" not in repr(json_one)  # the value is kept out of repr
    with pytest.raises(InputError, match="65536") as caught:
        resolve(specs, {"A": "x" * 65537}, missing="fail")
    assert "xxxx" not in str(caught.value)


# Plan -------------------------------------------------------------------------------------


def desired(text="k: K", value="v1", **kw):
    (spec,) = load_mapping(text, "secrets", **kw).specs
    (d,) = resolve((spec,), {s: value for s in spec.sources}, missing="fail")
    return d


def current(**kw):
    base = {
        "name": "k",
        "arn": "arn:k",
        "tags": dict(OURS),
        "secret_string": '{"K":"v1"}',
        "version_id": "v-1",
    }
    return Current(**{**base, **kw})


@pytest.mark.parametrize(
    ("cur", "adopt", "action", "reason"),
    [
        (None, True, Action.CREATE, "new"),
        ({}, True, Action.UNCHANGED, ""),
        ({"secret_string": '{ "K" : "v1" }'}, True, Action.UNCHANGED, ""),
        ({"secret_string": '{"K":"v2"}'}, True, Action.UPDATE, "value differs"),
        ({"secret_string": "not json"}, True, Action.UPDATE, "value differs"),
        ({"tags": {}}, True, Action.TAG, "tags differ (adopting)"),
        ({"tags": {}}, False, Action.CONFLICT, "adopt-existing is false"),
        ({"tags": {**OURS, "secrets-sync:repository": "o/r"}}, True, Action.CONFLICT, "o/r"),
        ({"rotation_enabled": True}, True, Action.CONFLICT, "rotation"),
        ({"deleted": True, "secret_string": None}, True, Action.RESTORE, "scheduled"),
        # A replica here of a primary elsewhere carries the primary's tags, ours too.
        ({"replica_of": "eu-west-1"}, True, Action.CONFLICT, "replica of the secret in eu-west-1"),
        # TagResource adds to the tags a secret has: 49 of its own and our 2 exceed 50.
        ({"tags": {f"T{n}": "v" for n in range(49)}}, True, Action.CONFLICT, "allows 50"),
        ({"tags": {**OURS, **{f"T{n}": "v" for n in range(48)}}}, True, Action.UNCHANGED, ""),
    ],
)
def test_plan_secret(cur, adopt, action, reason):
    c = None if cur is None else current(**cur)
    step = plan_secret(desired(), c, repository=REPO, adopt=adopt)
    assert step.action is action
    assert reason in step.reason


def test_plan_unreadable_value_fails_that_secret_only():
    step = plan_secret(
        desired(),
        current(secret_string=None, read_error="AccessDenied"),
        repository=REPO,
        adopt=True,
    )
    assert step.error is not None
    assert "AccessDenied" in step.error


@pytest.mark.parametrize(("wanted", "has"), [("", None), ("", ""), (None, "d"), ("d", "d")])
def test_an_empty_description_is_no_description(wanted, has):
    text = "k: {keys: [K]" + ("" if wanted is None else f", description: '{wanted}'") + "}"
    step = plan_secret(desired(text), current(description=has), repository=REPO, adopt=True)
    assert step.action is Action.UNCHANGED


def test_same_value_compares_json_only_for_json_secrets():
    assert same_value('{"a": 1}', '{"a":1}', is_json=True)
    assert not same_value('{"a": 1}', '{"a":1}', is_json=False)
    assert not same_value(None, "x", is_json=False)


def test_prune_scope_and_max_deletions():
    wanted = (desired(),)
    now = {
        "k": current(),
        "gone": current(name="gone", arn="arn:gone"),
        "theirs": current(
            name="theirs", arn="arn:t", tags={**OURS, "secrets-sync:repository": "o/r"}
        ),
        "untagged": current(name="untagged", arn="arn:u", tags={}),
        "deleted": current(name="deleted", arn="arn:d", deleted=True),
        "replica": current(name="replica", arn="arn:r", replica_of="eu-west-1"),
    }
    steps = plan(wanted, now, repository=REPO, adopt=True, prune=True)
    assert [(s.name, s.action) for s in steps if s.action is Action.DELETE] == [
        ("gone", Action.DELETE)
    ]
    assert not [
        s for s in plan(wanted, now, repository=REPO, adopt=True) if s.action is Action.DELETE
    ]
    with pytest.raises(InputError, match="max-deletions"):
        plan(wanted, now, repository=REPO, adopt=True, prune=True, max_deletions=0)


# Summary and outputs ------------------------------------------------------------------------


def test_outputs_and_markdown_from_results():
    steps = plan(
        (desired("k: K"), desired("p: {value: P}")), {"k": current()}, repository=REPO, adopt=True
    )
    results = dry_run(steps)
    outs = outputs(results)
    assert json.loads(outs["arns"]) == {"k": "arn:k"}
    assert json.loads(outs["created"]) == ["p"]
    assert json.loads(outs["unchanged"]) == ["k"]
    assert outs["changed"] == "true"
    assert json.loads(outs["results"])[0] == {
        "name": "k",
        "action": "unchanged",
        "arn": "arn:k",
        "version_id": "v-1",
        "error": None,
        "drift": False,
        "update_policy": "replace",
        "merged_keys": [],
        "removed_tags": [],
        "removed_replicas": [],
        "kms_key_id": None,
    }
    assert json.loads(outs["drifted"]) == []
    assert json.loads(outs["rolled-back"]) == []
    md = markdown(results, dry_run=True, region="us-east-1", repository=REPO)
    assert md.startswith("### secrets-sync plan (dry run, nothing written)\n")
    assert "| `k` | unchanged | `arn:k` | `K` | replace |" in md
    assert "| `p` | create |  | (plain string) | replace |" in md
    assert plan_lines(results) == ["unchanged  k", "create     p  new secret"]


def test_failed_result_lands_in_failed_and_needs_attention():
    (step,) = plan((desired(),), {}, repository=REPO, adopt=True)
    result = Result(step, step.action, None, error="create failed: AccessDeniedException: no")
    outs = outputs([result])
    assert json.loads(outs["failed"]) == ["k"]
    assert outs["changed"] == "false"
    assert "- `k`: create failed" in markdown([result], dry_run=False, region="r", repository=REPO)


# Runner adapter: exact bytes ---------------------------------------------------------------


def test_runner_writes_exact_workflow_commands(tmp_path):
    out = io.StringIO()
    runner = Runner(
        out, in_actions=True, output_path=tmp_path / "o", summary_path=tmp_path / "s", debug=True
    )
    (tmp_path / "o").write_text("")
    runner.add_mask("multi\nline%value")
    runner.info("uses line%value here")
    runner.warning("careful: 100%", title="t,1")
    runner.debug("dbg")
    with runner.group("Plan"):
        runner.error("bad\nthing")
    assert out.getvalue() == (
        "::add-mask::multi%0Aline%25value\n"
        "::add-mask::multi\\nline%25value\n"
        "::add-mask::multi\n"
        "::add-mask::line%25value\n"
        "uses *** here\n"
        "::warning title=t%2C1::careful: 100%25\n"
        "::debug::dbg\n"
        "::group::Plan\n"
        "::error::bad%0Athing\n"
        "::endgroup::\n"
    )
    runner.set_outputs({"arns": '{"a": "b"}', "changed": "true"})
    text = (tmp_path / "o").read_text()
    assert re.fullmatch(
        r"arns<<(ghadelimiter_[0-9a-f-]{36})\n\{\"a\": \"b\"\}\n\1\n"
        r"changed<<(ghadelimiter_[0-9a-f-]{36})\ntrue\n\2\n",
        text,
    )
    runner.append_summary("| line%value | multi |\n")
    assert (tmp_path / "s").read_text() == "| *** | multi |\n"  # short pieces stay


def test_runner_outside_actions_writes_no_commands():
    out = io.StringIO()
    runner = Runner(out, in_actions=False)
    runner.add_mask("hidden-value")
    runner.error("failed with hidden-value", title="x")
    with runner.group("g"):
        runner.info("plain")
    assert out.getvalue() == "error: x: failed with ***\nplain\n"
    assert runner.set_outputs({"a": "b"}) is False


# Settings ---------------------------------------------------------------------------------


def test_settings_read_once_from_env_with_cli_overrides(tmp_path):
    env = {
        "INPUT_SECRETS": "a: A",
        "INPUT_NAME-PREFIX": "p/",
        "INPUT_DRY-RUN": "TRUE",
        "AWS_DEFAULT_REGION": "eu-west-1",
        "GITHUB_REPOSITORY": REPO,
        "GITHUB_WORKSPACE": str(tmp_path),
        "INPUT_MAX-CONCURRENCY": "",
    }
    settings = load_settings(env, {"name-prefix": "q/"})
    assert settings.name_prefix == "q/"
    assert settings.dry_run is True
    assert settings.region == "eu-west-1"
    assert settings.max_concurrency == 8
    assert settings.recovery_window_days == 7
    with pytest.raises(InputError, match="`dry-run`"):
        load_settings({**env, "INPUT_DRY-RUN": "yes"})


# The record of tag keys, and KMS keys compared -----------------------------------------------


def test_the_tag_record_round_trips_every_key_a_tag_may_have():
    from secrets_sync import tagrecord
    from secrets_sync.mapping import _TAG_TEXT

    keys = {"Team", "Cost Center", "a+b=c", "x=3D", "=2B", "+3D", "app.kubernetes.io/name", "ü ß@"}
    value, left_out = tagrecord.encode(keys)
    assert left_out == ()
    assert tagrecord.decode(value) == keys
    assert _TAG_TEXT.fullmatch(value)  # a value AWS takes
    assert tagrecord.decode(None) == tagrecord.decode("") == frozenset()


def test_the_tag_record_keeps_what_fits_in_256_characters_and_says_what_not():
    from secrets_sync import tagrecord

    keys = [f"key-{n:02d}-" + "x" * 20 for n in range(12)]  # 27 characters each
    value, left_out = tagrecord.encode(keys)
    assert len(value) <= 256
    assert tagrecord.decode(value) == set(keys[:9])  # 9 * 27 + 8 separators = 251
    assert left_out == tuple(keys[9:])


def test_a_plan_says_which_written_tag_keys_found_no_room_in_the_record():
    many = {f"Key{n:02d}{'y' * 20}": "v" for n in range(12)}
    spec = "k: {keys: [K], tags: " + json.dumps(many) + "}"
    (step,) = plan((desired(spec),), {}, repository=REPO, adopt=True)
    assert len(step.unrecorded_tags) == 3
    assert "will not be removed when they leave the mapping" in step.changes
    (line,) = plan_lines(dry_run((step,)))
    assert "new secret: no room left in secrets-sync:tags for tag keys" in line


@pytest.mark.parametrize(
    ("wanted", "reported", "changed"),
    [
        (None, "arn:aws:kms:us-east-1:1:key/a", False),  # the mapping names none
        ("arn:aws:kms:us-east-1:1:key/a", "arn:aws:kms:us-east-1:1:key/a", False),
        ("a", "arn:aws:kms:us-east-1:1:key/a", False),  # the same key by ID
        ("arn:aws:kms:us-east-1:1:key/b", "arn:aws:kms:us-east-1:1:key/a", True),
        ("alias/app", "arn:aws:kms:us-east-1:1:alias/app", False),
        ("alias/other", "arn:aws:kms:us-east-1:1:alias/app", True),
        ("alias/app", "arn:aws:kms:us-east-1:1:key/a", False),  # only KMS could tell
        ("arn:aws:kms:us-east-1:1:key/a", None, True),  # from aws/secretsmanager
        ("alias/aws/secretsmanager", None, False),
        ("alias/aws/secretsmanager", "arn:aws:kms:us-east-1:1:key/a", True),  # reported: not it
    ],
)
def test_kms_keys_compare_only_where_aws_reports_them_comparably(wanted, reported, changed):
    from secrets_sync.plan import kms_key_changed

    assert kms_key_changed(wanted, reported, omitted_if_default=True) is changed


def test_a_replicas_kms_key_reported_by_id_is_not_taken_for_the_default():
    from secrets_sync.plan import kms_key_changed

    key = "arn:aws:kms:eu-west-1:1:key/a"
    assert not kms_key_changed("alias/aws/secretsmanager", key, omitted_if_default=False)
    assert kms_key_changed(key, "alias/aws/secretsmanager", omitted_if_default=False)
