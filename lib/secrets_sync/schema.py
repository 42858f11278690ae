"""The mapping's JSON Schema: its validator, the shortcuts that keep a large mapping's check fast,
and each schema error said in the words a user of the mapping needs."""

from __future__ import annotations

import json
import re
import sys
from collections.abc import Callable, Iterable, Mapping
from functools import cache
from importlib import resources
from pathlib import Path
from typing import Any

import jsonschema
from jsonschema.exceptions import ValidationError, best_match

from .errors import InputError

MAX_TAGS = 50
MAX_NAME = 512
SCHEMA_FILE = "secrets-sync.schema.json"
_SHAPES = ("keys", "value", "template", "binary", "generate")  # a secret takes exactly one
FIELDS = (
    *_SHAPES,
    "update-policy",
    "description",
    "tags",
    "kms-key-id",
    "replica-regions",
    "k8s",
)
POLICIES = ("replace", "if-not-exists", "merge")
# `generate`'s options: GetRandomPassword's parameters (the API reference), in kebab-case.
GENERATE_OPTIONS = {
    "length": "PasswordLength",
    "exclude-characters": "ExcludeCharacters",
    "exclude-numbers": "ExcludeNumbers",
    "exclude-punctuation": "ExcludePunctuation",
    "exclude-uppercase": "ExcludeUppercase",
    "exclude-lowercase": "ExcludeLowercase",
    "include-space": "IncludeSpace",
    "require-each-included-type": "RequireEachIncludedType",
}
MAX_PASSWORD_LENGTH = 4096


@cache
def schema() -> dict[str, Any]:
    packaged = resources.files("secrets_sync").joinpath(SCHEMA_FILE)
    if packaged.is_file():
        data: dict[str, Any] = json.loads(packaged.read_text(encoding="utf-8"))
        return data
    checkout = Path(__file__).resolve().parents[2] / "schema" / SCHEMA_FILE
    data = json.loads(checkout.read_text(encoding="utf-8"))
    return data


def _ecma_pattern(
    validator: Any, pattern: str, instance: Any, schema: Any
) -> Iterable[ValidationError]:
    """`pattern` as JSON Schema means it (ECMA-262): `$` matches only at the very end. Python's
    `$` also matches before a final newline, which would let a name ending in one through."""
    if validator.is_type(instance, "string") and not _ecma_regex(pattern).search(instance):
        yield ValidationError(f"{instance!r} does not match {pattern!r}")


@cache
def _ecma_regex(pattern: str) -> re.Pattern[str]:
    return re.compile(re.sub(r"(?<!\\)\$$", r"\\Z", pattern))


@cache
def _validator(ref: str = "") -> jsonschema.protocols.Validator:
    root = schema()
    cls: Any = jsonschema.validators.extend(  # type: ignore[no-untyped-call]
        jsonschema.validators.validator_for(root), {"pattern": _ecma_pattern}
    )
    validator: jsonschema.protocols.Validator = cls(_inline(root["$defs"][ref] if ref else root))
    return validator


def _inline(node: Any, seen: tuple[str, ...] = ()) -> Any:
    """The schema with each `{"$ref": "#/$defs/x"}` replaced by x itself. jsonschema resolves a
    $ref anew each time it meets one, a third of the time it took to check 1,000 entries; the
    errors are the same, since their schema paths leave the $ref out either way."""
    defs = schema()["$defs"]
    if isinstance(node, list):
        return [_inline(item, seen) for item in node]
    if not isinstance(node, dict):
        return node
    ref = node.get("$ref")
    if isinstance(ref, str) and len(node) == 1 and ref.startswith("#/$defs/"):
        name = ref.removeprefix("#/$defs/")
        if name in seen:  # a recursive schema cannot be inlined; ours is not one
            raise ValueError(f"the schema's $defs refer to themselves through {name}")
        return _inline(defs[name], (*seen, name))
    return {k: _inline(v, seen) for k, v in node.items() if k != "$defs"}


def place_of(origin: str, path: Iterable[Any]) -> str:
    place = origin
    for part in path:
        place += f"[{part}]" if isinstance(part, int) else f".{part}"
    return place


def _explain(error: ValidationError, ref: str = "") -> tuple[list[Any], str, str]:
    """(path, problem, fix) for one schema error, in the words a user of the mapping needs."""
    path = list(error.absolute_path)
    schema_path = list(error.relative_schema_path)
    kind, inst = error.validator, error.instance
    shapes = (
        "use `NAME: SOURCE`, `NAME: [SOURCE, ...]`, or a mapping with `keys:`, `value:` or "
        "`template:`."
    )
    if "propertyNames" in schema_path:
        if ref == "tags" or (path and path[-1] == "tags") or kind == "not":
            if kind == "not":
                return (
                    path,
                    f"tag key {inst!r} uses the prefix `aws:`, which AWS reserves.",
                    "rename the tag.",
                )
            return (
                path,
                f"tag key {inst!r} is empty or longer than 128 characters.",
                "use a tag key of 1 to 128 characters.",
            )
        if kind == "maxLength" and not path:
            return (
                path,
                f"the name {str(inst)[:40]!r}... is longer than {MAX_NAME} characters.",
                "shorten it.",
            )
        if not path:
            return (
                path,
                f"{inst!r} is not a valid secret name.",
                "use 1 to 512 characters of A-Z a-z 0-9 / _ + = . @ -.",
            )
        return path, f"JSON key {inst!r} is empty or too long.", "use 1 to 1024 characters."
    if len(path) >= 2 and path[-2] == "generate" and path[-1] in GENERATE_OPTIONS:
        option = path[-1]
        if option == "length":
            return (
                path,
                "is not a whole number from 1 to 4096.",
                "give the length of the value to generate, e.g. `length: 32` (AWS allows 1 to "
                f"{MAX_PASSWORD_LENGTH}).",
            )
        if option == "exclude-characters":
            return (
                path,
                f"is not text of at most {MAX_PASSWORD_LENGTH} characters.",
                "list the characters to leave out as one quoted string, e.g. "
                "`exclude-characters: '/@'`.",
            )
        return path, "is neither true nor false.", f"write `{option}: true` or `false`."
    if path and path[-1] == "generate" and kind == "type" and path[-2:-1] != ["keys"]:
        return (
            path,
            "is not a mapping of GetRandomPassword options.",
            "write `generate: {length: 32}`, or `generate: {}` for AWS's defaults.",
        )
    if kind == "oneOf" and isinstance(inst, dict) and len(path) >= 3 and path[-2] == "keys":
        both = "template" in inst and "generate" in inst
        return (
            path,
            "has both `template` and `generate`."
            if both
            else "has neither `template` nor `generate`.",
            "give one: `{template: ...${SOURCE}...}` builds the key's value from sources, "
            "`{generate: {...}}` has AWS generate it.",
        )
    if kind == "type" and not path:
        return (
            path,
            "the mapping is not a mapping of secret names.",
            "write one `name: SOURCE` line per secret; the README shows each shape.",
        )
    if kind == "minProperties" and not path:
        return path, "the mapping has no secrets.", "add at least one `name: SOURCE` line."
    if (
        kind == "pattern"
        and isinstance(inst, str)
        and str(error.validator_value).startswith("^[A-Za-z_]")
    ):
        if inst == "":
            return path, "no source name is given.", f"{shapes}"
        # Not quoted: what stands here may be a secret pasted in by mistake.
        return (
            path,
            "is not a source name.",
            "name a key of `values` or a variable of the step's env: letters, digits and _, "
            "not starting with a digit (as GitHub secret names are); never the value itself.",
        )
    if kind == "additionalProperties" and isinstance(inst, dict):
        props = error.schema.get("properties") if isinstance(error.schema, Mapping) else None
        allowed = list(props or FIELDS)
        extra = sorted(set(inst) - set(allowed))
        return (
            path,
            f"unknown field {', '.join(map(repr, extra))}.",
            f"use only {', '.join(allowed)}.",
        )
    if kind == "enum" and path and path[-1] == "update-policy":
        return (
            path,
            f"{inst!r} is not an update policy.",
            f"use one of {', '.join(POLICIES)}.",
        )
    if kind == "oneOf" and isinstance(inst, dict):
        given = [f"`{name}`" for name in _SHAPES if name in inst]
        if "`binary`" in given:
            return (
                path,
                f"has {' and '.join(given)}.",
                "a binary secret holds one source's bytes: give `binary: SOURCE` alone.",
            )
        if given:
            return (
                path,
                f"has {'both ' if len(given) == 2 else ''}{' and '.join(given)}.",
                "give one: `keys` for a JSON secret, `value` or `template` for a plain string, "
                "`binary` for bytes, `generate` for a value AWS generates (inside `keys:`, "
                "`json_key: {generate: {...}}` generates one key).",
            )
        return (
            path,
            "has none of `keys`, `value`, `template`, `binary` or `generate`.",
            "add `keys:` (a JSON secret), `value: SOURCE` or `template: ...${SOURCE}...` "
            "(a plain-string secret), `binary: SOURCE` (base64 stored as bytes), or "
            "`generate: {length: 32}` (a value AWS generates).",
        )
    if kind == "type" and len(path) >= 3 and path[-2] == "keys" and isinstance(path[-1], str):
        return (
            path,
            "is neither a source name nor a `{template: ...}` or `{generate: ...}` mapping.",
            "write `json_key: SOURCE`, `json_key: {template: ...${SOURCE}...}` or "
            "`json_key: {generate: {length: 32}}`.",
        )
    if kind == "minLength" and path and path[-1] == "template":
        return path, "is empty.", "write the string to build, with `${SOURCE}` for each value."
    if kind == "type" and "spec" in str(schema_path):
        return path, "is not a source name, a list or a mapping.", shapes
    if kind == "type":
        return path, f"must be a {error.validator_value}.", shapes
    if kind == "minItems":
        return path, "is an empty list.", "list at least one source."
    if kind == "uniqueItems":
        return path, "lists the same entry twice.", "list each entry once."
    if kind in ("minProperties",):
        return path, "is empty.", "give at least one `json_key: SOURCE`."
    if kind == "maxProperties":
        return (
            path,
            f"has more than {error.validator_value} tags.",
            f"AWS allows {MAX_TAGS} tags on a secret, ours included.",
        )
    if kind == "maxLength":
        return path, f"is longer than {error.validator_value} characters.", "shorten it."
    if kind == "minLength":
        return path, "is empty.", "give a value, or leave the field out."
    if kind == "required":
        return path, f"{error.message.split(' ')[0]} is missing.", "add it."
    if kind == "pattern" and path and path[-1] in ("secret", "namespace"):
        return (
            path,
            f"{inst!r} is not a Kubernetes name.",
            "use lower-case letters, digits and '-' (and '.' in a secret name).",
        )
    if kind == "pattern" and (
        (len(path) >= 2 and path[-2] == "replica-regions") or (path and path[-1] == "region")
    ):
        return path, f"{inst!r} is not an AWS region name.", "use a code such as `eu-west-1`."
    return path, error.message + ".", shapes


def validate(instance: Any, origin: str, ref: str = "") -> None:
    if not ref and _plain_entries_are_sources() and isinstance(instance, dict) and instance:
        instance = _without_valid_plain_entries(instance)
    error = best_match(_validator(ref).iter_errors(instance))
    if error is not None:
        path, problem, fix = _explain(error, ref)
        raise InputError(place_of(origin, path), problem, fix)


# The keywords the two shortcuts below understand; a schema using any other turns them off.
_PLAIN_ROOT_KEYWORDS = frozenset(
    {"$schema", "$id", "title", "description", "type", "minProperties", "propertyNames"}
    | {"additionalProperties", "$defs"}
)
_STRING_KEYWORDS = frozenset({"description", "type", "minLength", "maxLength", "pattern"})


@cache
def _plain_entries_are_sources() -> bool:
    """Whether the schema checks a `NAME: SOURCE` entry by no more than `name` for its key and
    `source` for its value, and the mapping as a whole by nothing that depends on how many
    entries it has beyond one. Then _without_valid_plain_entries is exact; otherwise (a schema
    changed since) every entry goes through the full validator."""
    root = schema()
    return (
        set(root) <= _PLAIN_ROOT_KEYWORDS
        and root.get("minProperties", 1) <= 1
        and root.get("propertyNames") == {"$ref": "#/$defs/name"}
        and root.get("additionalProperties") == {"$ref": "#/$defs/secret"}
        and root["$defs"]["secret"].get("if") == {"type": "string"}
        and root["$defs"]["secret"].get("then") == {"$ref": "#/$defs/source"}
    )


def _without_valid_plain_entries(mapping: dict[Any, Any]) -> dict[Any, Any]:
    """The mapping less its valid `NAME: SOURCE` entries (at least one entry kept): validating
    each of a thousand entries through the whole schema was most of a large mapping's start-up,
    while these two small checks are a fraction of it. An entry that fails them stays, so the
    full validator reports it exactly as before."""
    name, source = _string_check("name"), _string_check("source")
    rest = {k: v for k, v in mapping.items() if not (source(v) and name(k))}
    return rest or dict([next(iter(mapping.items()))])


@cache
def _string_check(ref: str) -> Callable[[Any], bool]:
    """What the validator of `$defs/<ref>` says of an instance, as a plain function when that
    definition is a string with a length range and a pattern (a thousand jsonschema calls cost
    more than the rest of the check); the validator itself for anything else."""
    node = schema()["$defs"][ref]
    if node.get("type") != "string" or not set(node) <= _STRING_KEYWORDS:
        return _validator(ref).is_valid
    low, high = node.get("minLength", 0), node.get("maxLength", sys.maxsize)
    search = _ecma_regex(node.get("pattern", "")).search

    def check(instance: Any) -> bool:
        return isinstance(instance, str) and low <= len(instance) <= high and bool(search(instance))

    return check
