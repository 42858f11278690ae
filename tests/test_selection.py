"""v1.1 selection: `only` limits a run to some secrets of the mapping."""

from __future__ import annotations

import pytest

from secrets_sync.errors import InputError
from secrets_sync.mapping import load_mapping
from secrets_sync.selection import parse_only, select
from tests.support.action import assert_run_clean

MAPPING = "db: [DB_USER, DB_PASSWORD]\nstripe/api: STRIPE_KEY\nstripe/webhook: STRIPE_HOOK"


def test_one_rotated_secret_is_pushed_without_the_others_sources(action, proxy, sm):
    # Only the rotated secret's source is at hand: the others' are neither needed nor read.
    run = action(
        {"secrets": MAPPING, "name-prefix": "sel/", "only": "stripe/api"},
        env={"STRIPE_KEY": "rotated-canary-key-1"},
    )
    assert run.returncode == 0, run.stdout + run.stderr
    assert run.json("created") == ["sel/stripe/api"]
    assert [r["name"] for r in run.json("results")] == ["sel/stripe/api"]
    assert [s["Name"] for s in sm.list_secrets()["SecretList"]] == ["sel/stripe/api"]
    touched = {c.secret_id for c in proxy.calls if c.secret_id}
    assert all("sel/stripe/api" in t for t in touched), touched
    assert "selected by `only` from 3" in run.stdout
    assert_run_clean(run, ["rotated-canary-key-1"])


def test_full_names_globs_commas_and_newlines(action, sm):
    env = {"STRIPE_KEY": "k-canary-1", "STRIPE_HOOK": "h-canary-1", "DB_USER": "u-canary-1"}
    run = action(
        {"secrets": MAPPING, "name-prefix": "sel/", "only": "sel/stripe/*,\n  stripe/api\n"},
        env=env,
    )
    assert run.returncode == 0, run.stdout
    assert sorted(run.json("created")) == ["sel/stripe/api", "sel/stripe/webhook"]


def specs():
    return load_mapping(MAPPING, "secrets", name_prefix="app/").specs


@pytest.mark.parametrize(
    ("text", "keys"),
    [
        ("db", ["db"]),
        ("app/db", ["db"]),
        ("stripe/*", ["stripe/api", "stripe/webhook"]),
        ("*", ["db", "stripe/api", "stripe/webhook"]),
        ("db, stripe/webhook", ["db", "stripe/webhook"]),
        ("\n\nstripe/webhook\n,db,\n", ["db", "stripe/webhook"]),  # mapping order, not yours
        ("app/stripe/a*", ["stripe/api"]),
    ],
)
def test_select(text, keys):
    assert [s.key for s in select(specs(), parse_only(text))] == keys


def test_no_patterns_selects_everything():
    assert select(specs(), parse_only(" \n, ")) == specs()


@pytest.mark.parametrize("text", ["DB", "stripe", "app/stripe", "other/*"])
def test_a_pattern_matching_nothing_is_an_error_naming_it(text):
    # Case-sensitive, as secret names are; and a glob matches whole names only.
    with pytest.raises(InputError) as raised:
        select(specs(), parse_only(text))
    assert repr(text) in raised.value.message
    assert "keys: db, stripe/api, stripe/webhook" in raised.value.message
