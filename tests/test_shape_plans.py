"""The pure stages of secret shapes and update policies: binary sources, the value decision of
each policy, and hypothesis properties of merge and if-not-exists over any mapping and any
current JSON."""

from __future__ import annotations

import base64
import json
from typing import Any

import pytest
from hypothesis import given
from hypothesis import strategies as st

from secrets_sync.errors import InputError
from secrets_sync.mapping import load_mapping
from secrets_sync.plan import Action, _merge, json_members, plan_secret, value_change
from secrets_sync.settings import load_settings
from secrets_sync.sources import binary_forms, decode_binary, resolve
from secrets_sync.state import Current, _with_value
from tests.test_properties import FAST, json_keys
from tests.test_units import OURS, REPO, current, desired

TF = '{"username":"u","password":"p","host":"h","port":5432}'
DB = "db: {keys: {username: U, password: P}%s}"


def db(extra: str = "", **kw: Any) -> Any:
    (spec,) = load_mapping((DB % extra).replace("db:", "k:"), "secrets", **kw).specs
    (d,) = resolve((spec,), {"U": "u", "P": "p2"}, missing="fail")
    return d


def untagged(**kw: Any) -> Current:
    return current(tags={}, **kw)


# Safe adoption and shapes -------------------------------------------------------------------


@pytest.mark.parametrize(
    ("wanted", "now", "action", "words"),
    [
        # Not ours, unnamed keys, policy not given: refused, naming the keys only.
        (db(), untagged(secret_string=TF), Action.CONFLICT, '"host", "port"'),
        (db(", update-policy: replace"), untagged(secret_string=TF), Action.UPDATE, ""),
        (db(update_policy="replace"), untagged(secret_string=TF), Action.UPDATE, ""),
        (db(", update-policy: merge"), untagged(secret_string=TF), Action.UPDATE, "password"),
        # Ours: replace is the mapping's value, unnamed keys and all.
        (db(), current(secret_string=TF), Action.UPDATE, ""),
        # Not ours, every key named: an ordinary adoption.
        (db(), untagged(secret_string='{"username":"u","password":"x"}'), Action.UPDATE, ""),
        # A plain string replacing a JSON object not yet ours drops every key.
        (desired("k: {value: K}"), untagged(secret_string=TF), Action.CONFLICT, '"username"'),
        (desired("k: {value: K}"), untagged(secret_string="old"), Action.UPDATE, ""),
        (desired("k: K"), current(secret_binary=b"\x00"), Action.CONFLICT, "binary"),
        (desired("k: {value: K}"), current(secret_binary=b"v1"), Action.CONFLICT, "binary"),
    ],
)
def test_value_decisions(wanted, now, action, words):
    step = plan_secret(wanted, now, repository=REPO, adopt=True)
    assert step.action is action, step.reason
    assert words in step.reason
    assert "5432" not in step.reason
    assert '"h"' not in step.reason


def binary_desired(data: bytes) -> Any:
    (spec,) = load_mapping("k: {binary: B}", "secrets").specs
    (d,) = resolve((spec,), {"B": base64.b64encode(data).decode()}, missing="fail")
    return d


def test_binary_compares_as_bytes_and_never_crosses():
    wanted = binary_desired(b"\xff\x00bytes")
    assert wanted.secret_string is None
    assert wanted.secret_binary == b"\xff\x00bytes"
    same = plan_secret(
        wanted,
        current(secret_string=None, secret_binary=b"\xff\x00bytes"),
        repository=REPO,
        adopt=True,
    )
    assert same.action is Action.UNCHANGED
    other = plan_secret(
        wanted, current(secret_string=None, secret_binary=b"x"), repository=REPO, adopt=True
    )
    assert other.action is Action.UPDATE
    assert other.write_value
    text = plan_secret(wanted, current(secret_string="\xff\x00bytes"), repository=REPO, adopt=True)
    assert text.action is Action.CONFLICT


def test_state_carries_a_binary_value_kept_out_of_repr():
    listed = Current("k", "arn:k")
    got = _with_value(listed, {"VersionId": "v", "SecretBinary": b"\x00binary-canary"})
    assert got.secret_binary == b"\x00binary-canary"
    assert got.secret_string is None
    assert "binary-canary" not in repr(got)


@pytest.mark.parametrize(
    "text", ["", " \n", "not base64!", "QR==", "QUJD-_8", "QUJD\x00", "QQ", "QUJD====", "Q"]
)
def test_decode_binary_is_strict(text):
    (spec,) = load_mapping("k: {binary: B}", "secrets").specs
    with pytest.raises(InputError) as caught:
        decode_binary(spec, text)
    assert caught.value.place == "source `B`"
    assert text not in caught.value.message or not text


def test_decode_binary_takes_wrapped_base64_and_masks_every_form():
    (spec,) = load_mapping("k: {binary: B}", "secrets").specs
    data = bytes(range(200))
    b64 = base64.b64encode(data).decode()
    assert decode_binary(spec, "\n".join(b64[i : i + 76] for i in range(0, len(b64), 76))) == data
    forms = binary_forms(data + b"\xfb\xff")
    assert base64.b64encode(data + b"\xfb\xff").decode() in forms
    assert base64.b64encode(data + b"\xfb\xff").decode().rstrip("=") in forms
    assert base64.urlsafe_b64encode(data + b"\xfb\xff").decode() in forms
    assert "text-canary" in binary_forms(b"text-canary")


# Policies ------------------------------------------------------------------------------------


def test_update_policy_input_and_per_secret():
    env = {"INPUT_SECRETS": "a: A", "INPUT_AWS-REGION": "us-east-1", "GITHUB_REPOSITORY": REPO}
    assert load_settings(env).update_policy is None  # the action.yml default, "", passed in
    assert load_settings({**env, "INPUT_UPDATE-POLICY": "replace"}).update_policy == "replace"
    specs = load_mapping(
        "a: A\nb: {keys: [B], update-policy: merge}", "s", update_policy="if-not-exists"
    ).specs
    assert [(s.update_policy, s.policy_given) for s in specs] == [
        ("if-not-exists", True),
        ("merge", True),
    ]
    (plain,) = load_mapping("a: A", "s").specs
    assert (plain.update_policy, plain.policy_given) == ("replace", False)


def test_merge_conflicts_on_what_it_cannot_merge():
    wanted = db(", update-policy: merge")
    assert value_change(wanted, current(secret_string="[1, 2]"), adopting=False).conflict
    assert value_change(wanted, current(secret_string="text"), adopting=False).conflict
    assert value_change(wanted, current(secret_binary=b"{}"), adopting=False).conflict
    big = json.dumps({"other": "x" * 65_530})
    assert "65536" in (
        value_change(wanted, current(secret_string=big), adopting=False).conflict or ""
    )


def test_if_not_exists_allows_rotation_and_an_unreadable_value():
    wanted = desired("k: {keys: [K], update-policy: if-not-exists}")
    rotating = plan_secret(
        wanted, current(rotation_enabled=True, secret_string="x"), repository=REPO, adopt=True
    )
    assert rotating.action is Action.UNCHANGED
    unreadable = plan_secret(
        wanted, current(secret_string=None, read_error="AccessDenied"), repository=REPO, adopt=True
    )
    assert unreadable.action is Action.UNCHANGED
    assert unreadable.error is None


# Properties ----------------------------------------------------------------------------------

json_values = st.recursive(
    st.none() | st.booleans() | st.integers() | st.text(max_size=10),
    lambda inner: (
        st.lists(inner, max_size=3) | st.dictionaries(st.text(max_size=5), inner, max_size=3)
    ),
    max_leaves=6,
)
sources = st.from_regex(r"[A-Z][A-Z0-9_]{0,6}", fullmatch=True)


@FAST
@given(
    owned=st.dictionaries(json_keys, sources, min_size=1, max_size=5),
    present=st.dictionaries(st.text(max_size=8), json_values, max_size=6),
    values=st.dictionaries(sources, st.text(min_size=1, max_size=10), max_size=8),
    ours=st.booleans(),
)
def test_merge_never_removes_or_changes_a_key_it_does_not_own(owned, present, values, ours):
    (spec,) = load_mapping(
        json.dumps({"k": {"keys": owned, "update-policy": "merge"}}), "secrets"
    ).specs
    full = {src: values.get(src, "fallback") for src in owned.values()}
    (wanted,) = resolve((spec,), full, missing="fail")
    now = current(secret_string=json.dumps(present), tags=dict(OURS) if ours else {})
    step = plan_secret(wanted, now, repository=REPO, adopt=True)
    assert step.action in (Action.UPDATE, Action.UNCHANGED, Action.TAG)
    if step.write_value:
        written = json.loads(step.merged or "")
        assert set(present) <= set(written)
        assert all(written[k] == v for k, v in present.items() if k not in owned)
        assert all(written[k] == full[src] for k, src in owned.items())
        assert set(step.merged_keys) <= set(owned)
        assert step.merged_keys
    else:
        assert all(present.get(k) == full[src] for k, src in owned.items())


@FAST
@given(
    text=st.none() | st.text(max_size=20) | st.builds(json.dumps, json_values),
    binary=st.none() | st.binary(max_size=8),
    tags=st.sampled_from([{}, dict(OURS), {"Team": "x"}]),
    deleted=st.booleans(),
    rotating=st.booleans(),
    unreadable=st.booleans(),
    shape=st.sampled_from(["k: {keys: [K], %s}", "k: {value: K, %s}", "k: {binary: K, %s}"]),
)
def test_if_not_exists_never_writes_a_value_to_an_existing_secret(
    text, binary, tags, deleted, rotating, unreadable, shape
):
    (spec,) = load_mapping(shape % "update-policy: if-not-exists", "secrets").specs
    (wanted,) = resolve((spec,), {"K": "QUJD"}, missing="fail")
    now = current(
        secret_string=text,
        secret_binary=binary,
        tags=tags,
        deleted=deleted,
        rotation_enabled=rotating,
        read_error="AccessDenied" if unreadable else None,
    )
    step = plan_secret(wanted, now, repository=REPO, adopt=True)
    assert not step.write_value
    assert step.merged is None
    assert not value_change(wanted, now, adopting=True).write


# Merge keeps what it does not own as its very text ----------------------------------------

_ws = st.sampled_from(["", " ", "\n  ", "\t", "\r\n"])
_raw_numbers = st.from_regex(
    r"-?(0|[1-9][0-9]{0,40})(\.[0-9]{1,6})?([eE][+-]?[0-9]{1,3})?", fullmatch=True
)
_raw_strings = st.lists(
    st.sampled_from(["a", "é", "\\u00e9", "\\/", "/", "\\n", '\\"', "\\\\", "\\ud83d\\udddd", " "]),
    max_size=6,
).map(lambda parts: '"' + "".join(parts) + '"')
_raw_values = st.recursive(
    _raw_numbers | _raw_strings | st.sampled_from(["true", "false", "null"]),
    lambda inner: (
        st.lists(st.tuples(_ws, inner), max_size=3).map(
            lambda items: "[" + ",".join(w + v for w, v in items) + "]"
        )
        | st.lists(st.tuples(_raw_strings, _ws, inner), max_size=3).map(
            lambda items: "{" + ",".join(f"{k}{w}:{w}{v}" for k, w, v in items) + "}"
        )
    ),
    max_leaves=5,
)
_raw_keys = st.sampled_from(['"host"', '"port"', '"h\\u00e9"', '"p\\/x"', '"password"', '"a"'])


@FAST
@given(
    members=st.lists(st.tuples(_raw_keys, _ws, _raw_values), max_size=8),
    owned=st.lists(st.sampled_from(["password", "a", "user"]), min_size=1, unique=True),
    outer=_ws,
)
def test_merge_keeps_every_unowned_member_byte_for_byte(members, owned, outer):
    text = outer + "{" + ",".join(f"{outer}{k}{w}:{w}{v}{outer}" for k, w, v in members) + "}"
    assert isinstance(json.loads(text), dict)
    wanted = json.dumps({k: f"new-{k}" for k in owned})
    change = _merge(tuple(owned), wanted, text)
    if not change.write:
        assert all(
            [json.loads(v) for k, _, v in members if json.loads(k) == o] == [f"new-{o}"]
            for o in owned
        )
        return
    written = json_members(change.merged or "")
    assert written is not None
    kept = [(k, v) for k, _, v in members if json.loads(k) not in owned]
    # Every member it does not own, in order, duplicates and all, as its very text.
    assert [(raw_k, v) for key, raw_k, v in written if key not in owned] == kept
    # Each owned key once, with the mapping's value.
    assert sorted(key for key, _, _ in written if key in owned) == sorted(owned)
    assert all(json.loads(v) == f"new-{key}" for key, _, v in written if key in owned)


@pytest.mark.parametrize(
    ("now", "after"),
    [
        ('{"n": 1E3, "p": "old"}', '{"n":1E3,"p":"new"}'),
        (
            '{"big": 123456789012345678901234567890, "p": "x"}',
            '{"big":123456789012345678901234567890,"p":"new"}',
        ),
        ('{"inf": 1e400, "z": -0, "f": 1.10}', '{"inf":1e400,"z":-0,"f":1.10,"p":"new"}'),
        ('{"s": "\\u00e9\\/"}', '{"s":"\\u00e9\\/","p":"new"}'),
        # An unowned key given twice keeps both; an owned one is written once, where it stood.
        ('{"d": 1, "p": "a", "d": 2, "p": "new"}', '{"d":1,"p":"new","d":2}'),
        ("{}", '{"p":"new"}'),
    ],
)
def test_merge_examples(now, after):
    change = _merge(("p",), '{"p": "new"}', now)
    assert change.write
    assert change.merged == after
