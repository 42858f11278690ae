"""Templates (`template:` and `keys: {k: {template: ...}}`): the pure builder, the checks of the
mapping, the ESO keys, and the action end to end with values full of `$`, braces and newlines."""

from __future__ import annotations

import json

import pytest
from hypothesis import given
from hypothesis import strategies as st

from secrets_sync.errors import InputError
from secrets_sync.mapping import load_mapping
from secrets_sync.sources import build_secret_string, fill, resolve
from tests.support.action import WRITES, assert_no_leak, assert_run_clean
from tests.test_eso import MANIFESTS, build, external_secrets, resolve_like_eso
from tests.test_leaks import assert_masked_first

# Values that would change if anything expanded them a second time: `${OTHER}` and `$OTHER`
# name a source that has a value, and braces, quotes and newlines test the JSON escaping.
OTHER = "other-canary-value-9d"
USER = "canary-user-${OTHER}-$OTHER-{brace}-$$"
PASSWORD = 'pw-canary-$5\n{"x": "}"}\\\nthird-line-canary'
MAPPING = """
db-url:
  template: "postgres://${DB_USER}:${DB_PASSWORD}@db:5432/app?fee=$$5"
  description: Connection URL
  k8s: {secret: app}
db:
  keys:
    user: DB_USER
    dsn: {template: "user=$DB_USER\\npassword=${DB_PASSWORD}"}
  k8s: {secret: app}
"""
ENV = {"DB_USER": USER, "DB_PASSWORD": PASSWORD, "OTHER": OTHER}
URL = f"postgres://{USER}:{PASSWORD}@db:5432/app?fee=$5"
DSN = f"user={USER}\npassword={PASSWORD}"
INPUTS = {"name-prefix": "lornu-ai/", "eso-manifests": MANIFESTS}  # MAPPING has `k8s`


# The builder ------------------------------------------------------------------------------------


@given(st.text(), st.text())
def test_fill_puts_each_value_in_verbatim(a, b):
    # string.Template.substitute makes one pass over the template: a value's own `$`, `${X}`
    # or braces are never read as placeholders, whatever the other values are.
    values = {"A": a, "B": b, "OTHER": "expanded"}
    assert fill("<${A}|$B$$>", values) == f"<{a}|{b}$>"


def test_fill_does_not_expand_a_placeholder_inside_a_value():
    values = {"A": "${OTHER} and $OTHER and $$ and ${", "OTHER": "expanded"}
    assert fill("x${A}y", values) == "x${OTHER} and $OTHER and $$ and ${y"


def test_both_shapes_build_the_strings_a_user_expects():
    plain, keyed = load_mapping(MAPPING, "secrets").specs
    assert (plain.is_json, keyed.is_json) == (False, True)
    assert plain.sources == ("DB_USER", "DB_PASSWORD")
    assert keyed.sources == ("DB_USER", "DB_PASSWORD")  # each source once
    assert keyed.key_names == ("user", "dsn")
    assert build_secret_string(plain, ENV) == URL
    text = build_secret_string(keyed, ENV)
    assert text == json.dumps({"user": USER, "dsn": DSN}, separators=(",", ":"), ensure_ascii=False)
    assert json.loads(text) == {"user": USER, "dsn": DSN}


def test_resolve_keeps_the_built_strings_for_masking_and_out_of_repr():
    specs = load_mapping(MAPPING, "secrets").specs
    plain, keyed = resolve(specs, ENV, missing="fail")
    assert plain.secret_string == URL
    assert keyed.built == (DSN,)
    assert_no_leak({"repr": repr(plain) + repr(keyed)}, [URL, DSN, USER, PASSWORD])


def test_a_missing_placeholder_source_fails_or_skips_like_any_source():
    specs = load_mapping(MAPPING + "other: OTHER\n", "secrets").specs
    with pytest.raises(InputError, match="DB_PASSWORD") as caught:
        resolve(specs, {"DB_USER": USER, "OTHER": OTHER}, missing="fail")
    assert caught.value.place == "sources"
    plain, keyed, other = resolve(specs, {"DB_USER": USER, "OTHER": OTHER}, missing="skip")
    assert (plain.secret_string, plain.missing) == (None, ("DB_PASSWORD",))
    assert (keyed.secret_string, keyed.missing) == (None, ("DB_PASSWORD",))
    assert other.secret_string == json.dumps({"OTHER": OTHER}, separators=(",", ":"))


PASTED = "sk_live_pasted_canary_4f2a"


@pytest.mark.parametrize(
    ("text", "place", "words"),
    [
        (
            f'a: {{template: "{PASTED} $ ${{A}}"}}',
            "secrets.a.template",
            f"character {len(PASTED) + 2} ",
        ),
        (f'a: {{template: "{PASTED}$"}}', "secrets.a.template", "`$$` for a literal dollar"),
        ('a: {template: "${A-B}"}', "secrets.a.template", "character 1"),
        ('a: {template: "${1A}"}', "secrets.a.template", "starts no placeholder"),
        (f"a: {{template: {PASTED}}}", "secrets.a.template", "no placeholder"),
        ('a: {template: ""}', "secrets.a.template", "empty"),
        ('a: {template: "${A}", value: A}', "secrets.a", "both `value` and `template`"),
        ('a: {template: "${A}", keys: [A]}', "secrets.a", "both `keys` and `template`"),
        (f'a: {{keys: {{k: {{template: "{PASTED} $"}}}}}}', "secrets.a.keys.k.template", "$$"),
        (f"a: {{keys: {{k: {{template: {PASTED}}}}}}}", "secrets.a.keys.k.template", "no place"),
        ('a: {keys: {k: {text: "${A}"}}}', "secrets.a.keys.k", "unknown field 'text'"),
        ("a: {keys: {k: [A]}}", "secrets.a.keys.k", "neither a source name nor"),
    ],
)
def test_template_errors_name_the_place_and_never_quote_the_text(text, place, words):
    with pytest.raises(InputError) as caught:
        load_mapping(text, "secrets")
    assert caught.value.place == place
    assert words in caught.value.message
    assert "Fix:" in caught.value.message
    assert PASTED not in caught.value.message
    assert "sk_live" not in caught.value.message


def test_a_spec_repr_shows_no_template_text():
    (spec,) = load_mapping(f'a: {{template: "{PASTED}:${{A}}"}}', "secrets").specs
    assert PASTED not in repr(spec)


# ESO ----------------------------------------------------------------------------------------


def test_eso_brings_a_plain_template_under_its_name_and_keyed_templates_by_extract():
    (doc,) = build(
        "app/db-url: {template: 'x${A}', k8s: {secret: app}}\n"
        "db: {keys: {k: {template: '${B}'}}, k8s: {secret: app}}"
    )
    assert doc["spec"]["data"] == [
        {"secretKey": "db-url", "remoteRef": {"key": "lornu-ai/app/db-url"}}
    ]
    assert doc["spec"]["dataFrom"] == [{"extract": {"key": "lornu-ai/db"}}]


# End to end -------------------------------------------------------------------------------------


def test_templates_are_stored_exactly_masked_first_and_a_rerun_writes_nothing(action, proxy, sm):
    inputs = {"secrets": MAPPING, **INPUTS}
    first = action(inputs, env=ENV)
    assert first.returncode == 0, first.stdout + first.stderr
    assert sorted(first.json("created")) == ["lornu-ai/db", "lornu-ai/db-url"]
    assert sm.get_secret_value(SecretId="lornu-ai/db-url")["SecretString"] == URL
    stored = sm.get_secret_value(SecretId="lornu-ai/db")["SecretString"]
    assert json.loads(stored) == {"user": USER, "dsn": DSN}
    assert sm.describe_secret(SecretId="lornu-ai/db-url")["Description"] == "Connection URL"
    assert "| `lornu-ai/db` | create |" in first.summary
    assert "`user`, `dsn`" in first.summary

    # ESO brings the built strings into the Kubernetes Secret under the keys docs/eso.md names.
    (doc,) = external_secrets(first.workspace / MANIFESTS)
    strings = {n: sm.get_secret_value(SecretId=n)["SecretString"] for n in first.json("arns")}
    assert resolve_like_eso(doc, strings) == {"db-url": URL, "user": USER, "dsn": DSN}

    # The built strings are secrets in their own right: masked (each line too) before anything
    # else is printed, and found nowhere, in any form.
    canaries = [URL, DSN, stored, USER, PASSWORD, OTHER]
    assert_masked_first(first, [URL, DSN, USER, PASSWORD])
    assert_run_clean(first, canaries)

    proxy.reset()
    second = action(inputs, env=ENV)
    assert second.returncode == 0, second.stdout + second.stderr
    assert second.outputs["changed"] == "false"
    assert sorted(second.json("unchanged")) == ["lornu-ai/db", "lornu-ai/db-url"]
    assert not WRITES & set(proxy.ops()), proxy.ops()
    assert_masked_first(second, [URL, DSN, USER, PASSWORD])
    assert_run_clean(second, canaries)


def test_a_changed_placeholder_value_updates_only_its_secrets(action, proxy, sm):
    inputs = {"secrets": MAPPING + "other: OTHER\n", **INPUTS}
    assert action(inputs, env=ENV).returncode == 0
    proxy.reset()
    run = action(inputs, env={**ENV, "DB_PASSWORD": "new-pw-canary-${X}"})
    assert run.returncode == 0, run.stdout + run.stderr
    assert sorted(run.json("updated")) == ["lornu-ai/db", "lornu-ai/db-url"]
    assert run.json("unchanged") == ["lornu-ai/other"]
    assert sm.get_secret_value(SecretId="lornu-ai/db-url")["SecretString"] == URL.replace(
        PASSWORD, "new-pw-canary-${X}"
    )
    assert [op for op in proxy.ops() if op in WRITES] == ["PutSecretValue", "PutSecretValue"]


def test_missing_skip_leaves_a_template_secret_untouched(action, proxy, sm):
    run = action(
        {"secrets": MAPPING + "other: OTHER\n", "missing": "skip", **INPUTS},
        env={"DB_USER": USER, "OTHER": OTHER},
    )
    assert run.returncode == 0, run.stdout + run.stderr
    assert sorted(run.json("skipped")) == ["lornu-ai/db", "lornu-ai/db-url"]
    assert run.json("created") == ["lornu-ai/other"]
    assert "no value for DB_PASSWORD" in run.stdout
    # The create, one call.
    assert [op for op in proxy.ops() if op in WRITES] == ["CreateSecret"]
    assert_run_clean(run, [USER, OTHER])
