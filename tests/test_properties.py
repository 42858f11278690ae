"""Property tests of everything that reads user input before AWS: whatever the document, the
parsers and validators either accept it or raise our own error; nothing else escapes.

Documents come three ways: random text over YAML's special characters, random structures
rendered as YAML (with anchors and aliases) or JSON and then mutated, and valid mappings, whose
normalised specs must round-trip what the document says."""

from __future__ import annotations

import json
from collections.abc import Callable
from pathlib import Path
from typing import Any

import pytest
import yaml
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st
from jsonschema.exceptions import best_match

from secrets_sync import document, schema
from secrets_sync.errors import SecretsSyncError
from secrets_sync.inputs import INPUTS, parse_values
from secrets_sync.mapping import MANAGED_BY, REPOSITORY_TAG, load_mapping, parse_default_tags
from secrets_sync.runner import Runner
from secrets_sync.settings import load_settings
from secrets_sync.sources import lookup, resolve

# Deterministic and quick: no example database, a fixed seed per test, no deadline (CI boxes
# are slow and shared).
FAST = settings(
    derandomize=True,
    database=None,
    deadline=None,
    max_examples=300,
    suppress_health_check=[HealthCheck.too_slow, HealthCheck.filter_too_much],
)
SLOWER = settings(FAST, max_examples=150)

WORDS = [
    *schema.FIELDS,
    "merge",
    "if-not-exists",
    "replace",
    "secret",
    "namespace",
    "A",
    "DB_USER",
    "STRIPE_KEY",
    "api_key",
    "Team",
    "aws:team",
    "ManagedBy",
    REPOSITORY_TAG,
    "us-east-1",
    "mars-1",
    "app-secrets",
    "Bad_Name",
    "a b",
    "",
    " ",
    "-",
    "<<",
    "~",
    "null",
    "true",
    "0x1F",
    "1e999",
    "2024-01-01",
    "é",
    "\u2028",
    "\t",
    "\n",
    "x" * 513,
    "T" * 129,
]
YAML_TOKENS = [
    ":",
    ": ",
    "- ",
    "[",
    "]",
    "{",
    "}",
    ",",
    "'",
    '"',
    "&a ",
    "*a",
    "<<: *a",
    "!!int ",
    "!!float ",
    "!!binary ",
    "!!timestamp ",
    "!!set ",
    "!!omap ",
    "!!python/name:os.system ",
    "!x ",
    "? ",
    "|\n",
    ">-\n",
    "#",
    "%YAML 1.1\n---\n",
    "---\n",
    "...\n",
    "\t",
    "\n",
    "  ",
    "\\",
    "\x00",
    "\ufeff",
    "\ud800",
]


def only_our_errors(fn: Callable[[], Any]) -> Any:
    """Run fn: it returns, or raises SecretsSyncError with a message naming a fix."""
    try:
        return fn()
    except SecretsSyncError as exc:
        error = exc
    assert error.problem
    assert error.message.startswith(f"{error.place}: " if error.place else error.problem)
    return None


# Random text ----------------------------------------------------------------------------------

yamlish_text = st.lists(
    st.sampled_from(YAML_TOKENS) | st.sampled_from(WORDS) | st.text(max_size=8), max_size=40
).map("".join)


@FAST
@given(text=yamlish_text | st.text())
def test_any_text_as_the_mapping(text: str) -> None:
    only_our_errors(lambda: load_mapping(text, "secrets", name_prefix="p/"))


@FAST
@given(text=yamlish_text | st.text())
def test_any_text_as_default_tags(text: str) -> None:
    tags = only_our_errors(lambda: parse_default_tags(text))
    if tags is not None:
        assert all(isinstance(k, str) and isinstance(v, str) for k, v in tags.items())
        assert not set(tags) & {MANAGED_BY[0], REPOSITORY_TAG}


# Random structures, rendered and mutated ------------------------------------------------------

scalars = st.sampled_from(WORDS) | st.text(max_size=12) | st.integers() | st.booleans() | st.none()
documents = st.recursive(
    scalars,
    lambda children: (
        st.lists(children, max_size=5)
        | st.dictionaries(st.sampled_from(WORDS) | st.text(max_size=10), children, max_size=6)
    ),
    max_leaves=30,
)


@st.composite
def rendered(draw: st.DrawFn) -> str:
    """A random structure as JSON or YAML text; sometimes a node is shared (YAML then writes an
    anchor and an alias), sometimes the text is then mutated a little."""
    doc = draw(documents)
    if isinstance(doc, dict) and doc and draw(st.booleans()):
        shared = draw(documents)
        for key in draw(st.lists(st.sampled_from(sorted(doc, key=str)), max_size=3)):
            doc[key] = shared
    style = draw(st.sampled_from(["json", "yaml-block", "yaml-flow"]))
    if style == "json":
        text = json.dumps(doc, ensure_ascii=draw(st.booleans()))
    else:
        text = yaml.safe_dump(
            doc, default_flow_style=style == "yaml-flow", allow_unicode=draw(st.booleans())
        )
    for _ in range(draw(st.integers(0, 3))):
        at = draw(st.integers(0, len(text)))
        edit = draw(st.sampled_from(["insert", "delete", "duplicate"]))
        if edit == "insert":
            text = text[:at] + draw(st.sampled_from(YAML_TOKENS)) + text[at:]
        elif edit == "delete":
            text = text[:at] + text[at + draw(st.integers(1, 5)) :]
        else:
            lines = text.splitlines(keepends=True)
            if lines:
                line = draw(st.sampled_from(lines))
                text += line if line.endswith("\n") else "\n" + line
    return text


@FAST
@given(text=rendered())
def test_any_near_valid_document_as_the_mapping(text: str) -> None:
    only_our_errors(lambda: load_mapping(text, "secrets", default_tags={"Env": "prod"}))


@SLOWER
@given(text=rendered())
def test_any_near_valid_document_as_default_tags(text: str) -> None:
    only_our_errors(lambda: parse_default_tags(text))


@SLOWER
@given(data=documents)
def test_any_structure_inside_a_valid_secret_entry(data: Any) -> None:
    # Deep inside an otherwise good entry, where the schema's branches meet odd shapes.
    for field in schema.FIELDS:
        text = json.dumps({"stripe": {"keys": {"api_key": "STRIPE_KEY"}, field: data}})
        only_our_errors(lambda text=text: load_mapping(text, "secrets"))


def _read(loader: Any, text: str) -> tuple[str, Any]:
    try:
        return "data", yaml.load(text, Loader=loader)  # noqa: S506 - our safe loaders
    except document._UNREADABLE:
        return "refused", None


def test_the_locked_pyyaml_carries_libyaml() -> None:
    # The lock's PyYAML wheels are built with libyaml; without it every mapping would be read
    # by the pure parser, correctly but seven times slower.
    assert yaml.__with_libyaml__
    assert document._FAST_LOADER is not None


@FAST
@given(text=rendered() | yamlish_text)
def test_libyaml_and_the_pure_parser_agree_where_both_read_the_text(text: str) -> None:
    # parse_document reads with libyaml and hands what it refuses to the pure parser. Where
    # both accept a text they must build the same data. The one known difference: libyaml takes
    # a byte-order mark at the start of any document of the stream for a mark (YAML 1.2 allows
    # it there), the pure parser only the first; such a name is refused by the schema anyway.
    # Where only libyaml accepts, it follows the YAML spec the pure parser does not (a tab
    # inside a plain scalar, `?` inside a flow scalar); the schema then judges the data.
    fast = _read(document._FAST_LOADER, text)
    pure = _read(document._PURE_LOADER, text)
    if fast[0] == pure[0] == "data" and "\ufeff" not in text[1:]:
        assert fast == pure


def test_aliases_that_explode_or_recurse_are_refused() -> None:
    laughs = "\n".join(
        ["l0: &l0 [A, A, A, A, A, A, A, A, A, A]"]
        + [f"l{n}: &l{n} [{', '.join([f'*l{n - 1}'] * 10)}]" for n in range(1, 9)]
    )
    for text in (laughs, "a: &a [*a]", "a: &a {keys: *a}"):
        with pytest.raises(SecretsSyncError) as caught:
            load_mapping(text, "secrets")
        assert caught.value.place == "secrets"
    # A shared (not exploding) alias is fine: tags written once, used twice.
    specs = load_mapping(
        "a: {keys: [A], tags: &t {Team: core}}\nb: {keys: [B], tags: *t}", "secrets"
    ).specs
    assert [dict(s.tags) for s in specs] == [{"Team": "core"}, {"Team": "core"}]


# Valid mappings round-trip -------------------------------------------------------------------

names = st.from_regex(r"[A-Za-z0-9/_+=.@-]{1,20}", fullmatch=True)
sources = st.from_regex(r"[A-Za-z_][A-Za-z0-9_]{0,15}", fullmatch=True)
# Any text, less what PyYAML's emitter cannot write back faithfully (line breaks such as NEL fold
# into spaces inside quoted scalars): that is a rendering limit, not the parser's.
plain_text = st.text(st.characters(blacklist_categories=["Cc", "Cs", "Zl", "Zp"]), max_size=20)
json_keys = plain_text.filter(bool)
tag_keys = st.from_regex(r"[A-Za-z][\w.:/=+@ -]{0,20}", fullmatch=True).filter(
    lambda k: (
        k not in (MANAGED_BY[0], REPOSITORY_TAG)
        and not k.lower().startswith("aws:")
        and "\n" not in k
    )
)
tag_values = st.from_regex(r"[\w.:/=+@ -]{0,20}", fullmatch=True).filter(lambda v: "\n" not in v)
tags = st.dictionaries(tag_keys, tag_values, max_size=5)
regions = st.sampled_from(["us-east-1", "eu-west-1", "ap-southeast-2"])
extras = st.fixed_dictionaries(
    {},
    optional={
        "description": plain_text,
        "tags": tags,
        "kms-key-id": json_keys,
        "replica-regions": st.lists(regions, unique=True, max_size=2),
    },
)
entries = st.one_of(
    sources,
    st.lists(sources, min_size=1, max_size=4, unique=True),
    st.builds(
        lambda keys, more: {"keys": keys, **more},
        st.dictionaries(json_keys, sources, min_size=1, max_size=4)
        | st.lists(sources, min_size=1, max_size=4, unique=True),
        extras,
    ),
    st.builds(lambda src, more: {"value": src, **more}, sources, extras),
)
mappings = st.dictionaries(names, entries, min_size=1, max_size=6)


def named_sources(entry: Any) -> list[str]:
    if isinstance(entry, str):
        return [entry]
    if isinstance(entry, list):
        return entry
    if "value" in entry:
        return [entry["value"]]
    keys = entry["keys"]
    return list(keys.values()) if isinstance(keys, dict) else keys


@SLOWER
@given(
    doc=mappings,
    prefix=st.sampled_from(["", "app/", "lornu-ai/prod/"]),
    default=tags,
    as_json=st.booleans(),
)
def test_valid_mappings_round_trip(
    doc: dict[str, Any], prefix: str, default: dict[str, str], as_json: bool
) -> None:
    text = json.dumps(doc) if as_json else yaml.safe_dump(doc, allow_unicode=True, sort_keys=False)
    specs = load_mapping(text, "secrets", name_prefix=prefix, default_tags=default).specs
    assert [s.key for s in specs] == list(doc)
    assert [s.name for s in specs] == [prefix + k for k in doc]
    for spec, entry in zip(specs, doc.values(), strict=True):
        assert set(spec.sources) == set(named_sources(entry))
        assert spec.is_json == (not isinstance(entry, dict) or "keys" in entry)
        if isinstance(entry, dict) and isinstance(entry.get("keys"), dict):
            assert dict(spec.fields) == entry["keys"]
        elif spec.is_json:
            assert spec.key_names == spec.sources  # a list: each source is its own JSON key
        own = entry.get("tags", {}) if isinstance(entry, dict) else {}
        assert dict(spec.tags) == {**default, **own}
        if isinstance(entry, dict):
            assert spec.description == entry.get("description")
            assert spec.replica_regions == tuple(entry.get("replica-regions", ()))
    # JSON and YAML renderings of one mapping are one mapping.
    other = yaml.safe_dump(doc, sort_keys=False) if as_json else json.dumps(doc)
    assert load_mapping(other, "secrets", name_prefix=prefix, default_tags=default).specs == specs


@SLOWER
@given(doc=mappings, values=st.dictionaries(sources, st.text(max_size=30), max_size=10))
def test_valid_mappings_resolve_or_say_which_source_is_missing(
    doc: dict[str, Any], values: dict[str, str]
) -> None:
    specs = load_mapping(json.dumps(doc), "secrets").specs
    found = only_our_errors(lambda: lookup(specs, values, {}))
    if found is None:
        return  # a value that is not UTF-8 text
    desired = only_our_errors(lambda: resolve(specs, found, missing="skip"))
    assert desired is not None
    for d in desired:
        if d.secret_string is None:
            assert d.missing
            assert set(d.missing) <= set(d.spec.sources) - set(found)
        elif d.spec.is_json:
            assert json.loads(d.secret_string) == {k: found[s] for k, s in d.spec.fields}
        else:
            assert d.secret_string == found[d.spec.sources[0]]


# The `values` input and every other input -----------------------------------------------------

json_values = st.recursive(
    st.none() | st.booleans() | st.integers() | st.floats() | st.text(),
    lambda children: (
        st.lists(children, max_size=4) | st.dictionaries(st.text(max_size=8), children, max_size=4)
    ),
    max_leaves=10,
)


@FAST
@given(text=st.text() | json_values.map(json.dumps) | yamlish_text)
def test_any_values_input(text: str) -> None:
    values = only_our_errors(lambda: parse_values(text))
    if values is not None:
        assert all(isinstance(k, str) and isinstance(v, str) for k, v in values.items())


@FAST
@given(values=st.dictionaries(st.text(max_size=10), st.text(max_size=20), max_size=8))
def test_values_input_round_trips(values: dict[str, str]) -> None:
    parsed = only_our_errors(lambda: parse_values(json.dumps(values)))
    texts = all(not any(0xD800 <= ord(c) <= 0xDFFF for c in v) for v in values.values())
    assert (parsed == values) if texts else (parsed is None)


GOOD_INPUTS: dict[str, list[str]] = {
    "secrets": ["a: A", "db: [DB_USER, DB_PASSWORD]", '{"x": {"value": "X"}}'],
    "secrets-file": ["m.yml", "missing.yml", "../m.yml", "/etc/hostname", "."],
    "values": ["{}", '{"A": "v"}'],
    "aws-region": ["us-east-1", "eu-central-1"],
    "role-to-assume": ["arn:aws:iam::123456789012:role/x", "arn:aws-cn:iam::123456789012:role/a/b"],
    "role-duration-seconds": ["900", "3600", "43200"],
    "recovery-window-days": ["7", "30"],
    "max-concurrency": ["1", "64"],
    "max-deletions": ["0", "10"],
    "dry-run": ["true", "false", "True", "FALSE"],
    "prune": ["true", "false"],
    "adopt-existing": ["true", "false"],
    "missing": ["fail", "skip"],
    "name-prefix": ["", "app/", "lornu-ai/"],
    "eso-manifests": ["k8s/out.yaml"],
    "eso-refresh-interval": ["1h", "15m30s", "0"],
    "eso-secret-store-kind": ["ClusterSecretStore", "SecretStore"],
}


@st.composite
def input_envs(draw: st.DrawFn, workspace: str) -> dict[str, str]:
    env = {"GITHUB_WORKSPACE": workspace}
    env["GITHUB_REPOSITORY"] = draw(st.sampled_from(["lornu-ai/app", "a/b"]) | st.text(max_size=9))
    if draw(st.booleans()):
        env["SECRETS_SYNC_TIMEOUT"] = draw(
            st.sampled_from(["1", "0.5", "600", "601", "-1", "nan", "inf", "1e2", "1_0"])
            | st.text(max_size=5)
        )
    for spec in INPUTS:
        if draw(st.integers(0, 3)) == 0:
            continue
        good = GOOD_INPUTS.get(spec.name, [spec.default or ""])
        env[spec.env_name] = draw(st.sampled_from(good) | st.text(max_size=12) | yamlish_text)
    return env


def test_settings_from_random_inputs(tmp_path: Path) -> None:
    (tmp_path / "m.yml").write_text("a: A\n")

    @FAST
    @given(env=input_envs(str(tmp_path)))
    def check(env: dict[str, str]) -> None:
        settings_ = only_our_errors(lambda: load_settings(env))
        if settings_ is None:
            return
        assert settings_.region
        assert 1 <= settings_.max_concurrency <= 64
        assert 7 <= settings_.recovery_window_days <= 30
        assert settings_.workspace == tmp_path.resolve()
        if settings_.eso_manifests is not None:
            assert settings_.eso_manifests.is_relative_to(tmp_path.resolve())
        # And on through everything a run does before its first AWS call.
        only_our_errors(lambda: before_aws(settings_, env))

    check()


def before_aws(s: Any, env: dict[str, str]) -> None:
    tags = parse_default_tags(s.default_tags_text)
    mapping = load_mapping(
        s.mapping_text,
        s.mapping_origin,
        name_prefix=s.name_prefix,
        default_tags=tags,
        kms_key_id=s.kms_key_id,
    )
    resolve(mapping.specs, lookup(mapping.specs, s.values, env), missing=s.missing)


# Start-up shortcuts, held to what they stand for -------------------------------------------------


def _explained(data: Any) -> tuple[list[Any], str, str] | None:
    error = best_match(schema._validator().iter_errors(data))
    return None if error is None else schema._explain(error)


@FAST
@given(
    data=st.dictionaries(
        st.sampled_from(WORDS) | st.text(max_size=6),
        st.sampled_from(WORDS) | st.text(max_size=6) | documents,
        max_size=6,
    )
)
def test_plain_entries_checked_apart_give_the_full_validators_verdict(data: Any) -> None:
    """Valid `NAME: SOURCE` entries skip the full validator (schema.validate); on any mapping
    that gives exactly the error (or none) the full validator gives."""
    assert schema._plain_entries_are_sources()  # else the shortcut is off and this proves nothing
    if data:
        assert _explained(schema._without_valid_plain_entries(data)) == _explained(data)


@FAST
@given(value=st.text() | st.sampled_from(['a"b', "a\\b", "x\x7f", " pad ", "é", "\u2028"]))
def test_mask_pieces_shortcut_is_the_full_set(value: str) -> None:
    """Runner._pieces spares printable ASCII two json.dumps calls; the masks are the same."""
    full = {
        value,
        json.dumps(value)[1:-1],
        json.dumps(value, ensure_ascii=False)[1:-1],
        *(line.strip() for line in value.splitlines()),
    }
    assert set(Runner._pieces(value)) == full


@FAST
@given(
    ref=st.sampled_from(["name", "source"]),
    instance=st.sampled_from(WORDS) | st.text() | st.text(min_size=500, max_size=520) | documents,
)
def test_string_checks_say_what_the_schema_says(ref: str, instance: Any) -> None:
    """schema._string_check reads `name` and `source` from the schema into plain checks."""
    check = schema._string_check(ref)
    assert not hasattr(check, "__self__")  # the plain check, not the validator it falls back to
    assert check(instance) == schema._validator(ref).is_valid(instance)
