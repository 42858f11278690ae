"""The mapping: parsed from YAML or JSON, validated against the JSON Schema, normalised to specs."""

from __future__ import annotations

import json
import re
import sys
from collections.abc import Callable, Iterable, Mapping
from dataclasses import dataclass, field, replace
from functools import cache
from importlib import resources
from pathlib import Path
from string import Template
from typing import Any, ClassVar

import jsonschema
import yaml
from jsonschema.exceptions import ValidationError, best_match

from .errors import InputError

MANAGED_BY = ("ManagedBy", "secrets-sync")
REPOSITORY_TAG = "secrets-sync:repository"
RUN_TAG = "secrets-sync:run"  # the audit trail: the run (URL, with attempt) that last wrote
COMMIT_TAG = "secrets-sync:commit"  # ...and its commit
ROLLED_BACK_TAG = "secrets-sync:rolled-back-from"  # the version the last rollback left
RESERVED_TAGS = frozenset({MANAGED_BY[0], REPOSITORY_TAG, RUN_TAG, COMMIT_TAG, ROLLED_BACK_TAG})
MAX_TAGS = 50
MAX_NAME = 512
MAX_NODES = 100_000  # entries a document may expand to through aliases (a mapping has far fewer)
SCHEMA_FILE = "secrets-sync.schema.json"

# AWS: letters, numbers, separators (\p{Z}: spaces, not tabs or line breaks) and _.:/=+-@.
_TAG_TEXT = re.compile(r"^[\w .:/=+\-@\u00a0\u1680\u2000-\u200a\u2028\u2029\u202f\u205f\u3000]*$")
_ARN_SUFFIX_LOOKALIKE = re.compile(r"-[A-Za-z0-9]{6}$")
_SHAPES = ("keys", "value", "template", "binary")  # a secret takes exactly one of these
_FIELDS = (
    *_SHAPES,
    "update-policy",
    "description",
    "tags",
    "kms-key-id",
    "replica-regions",
    "k8s",
)
POLICIES = ("replace", "if-not-exists", "merge")


@dataclass(frozen=True)
class K8sTarget:
    secret: str
    namespace: str = "default"


@dataclass(frozen=True)
class SecretSpec:
    """One secret as the mapping asks for it; it holds source names, never values."""

    key: str
    name: str
    fields: tuple[tuple[str, str], ...]  # (JSON key, source) of a JSON secret
    value_source: str | None  # the source of a plain-string secret
    description: str | None
    tags: tuple[tuple[str, str], ...]  # default-tags overlaid with the secret's own
    kms_key_id: str | None
    replica_regions: tuple[str, ...]
    k8s: K8sTarget | None
    # A template holds source names only, but a value pasted into one by mistake must not reach
    # a traceback: kept out of repr, and never quoted in a message.
    template: str | None = field(default=None, repr=False)  # the text of a plain-string secret
    templates: tuple[tuple[str, str], ...] = field(default=(), repr=False)  # (JSON key, text)
    binary_source: str | None = None  # the source (base64) of a SecretBinary secret
    update_policy: str = "replace"  # one of POLICIES
    # Whether the policy was given (per secret or by the input): an implicit `replace` adopts
    # safely, refusing to drop JSON keys the mapping does not name.
    policy_given: bool = False
    replica_kms_keys: tuple[tuple[str, str], ...] = ()  # (region, KMS key) the mapping names

    @property
    def is_json(self) -> bool:
        return self.value_source is None and self.binary_source is None and self.template is None

    @property
    def sources(self) -> tuple[str, ...]:
        if self.value_source is not None:
            return (self.value_source,)
        if self.binary_source is not None:
            return (self.binary_source,)
        if self.template is not None:
            return placeholders(self.template)
        named = [src for _, src in self.fields]
        named += [src for _, text in self.templates for src in placeholders(text)]
        return tuple(dict.fromkeys(named))

    @property
    def key_names(self) -> tuple[str, ...]:
        return tuple(k for k, _ in (*self.fields, *self.templates))


def placeholders(template: str) -> tuple[str, ...]:
    """The source names a template's placeholders use, in order of first use."""
    return tuple(Template(template).get_identifiers())


@dataclass(frozen=True)
class SecretMapping:
    specs: tuple[SecretSpec, ...]
    warnings: tuple[str, ...]


# Parsing --------------------------------------------------------------------------------


def _construct_mapping(loader: yaml.SafeLoader, node: yaml.MappingNode) -> dict[str, Any]:
    loader.flatten_mapping(node)
    out: dict[str, Any] = {}
    for key_node, value_node in node.value:
        key = loader.construct_object(key_node, deep=True)
        if not isinstance(key, str):
            raise _DuplicateOrBadKey(
                key_node, "a key is a list or a mapping", "write each key as a plain name."
            )
        if key in out:
            raise _DuplicateOrBadKey(
                key_node,
                f"the key {key!r} appears twice",
                "give each name once; a later entry does not override an earlier one.",
            )
        out[key] = loader.construct_object(value_node, deep=True)
    return out


def _construct_str(loader: yaml.SafeLoader, node: yaml.ScalarNode) -> str:
    value = str(loader.construct_scalar(node))
    if value.isascii() or not any("\ud800" <= c <= "\udfff" for c in value):
        return value
    # YAML's \u escapes leave a JSON surrogate pair (how ensure_ascii writes an emoji) as two
    # halves: join them. A half on its own is no text at all, and no AWS call could carry it.
    try:
        return value.encode("utf-16", "surrogatepass").decode("utf-16")
    except UnicodeDecodeError:
        raise _DuplicateOrBadKey(
            node, "a \\u escape is half of a surrogate pair", "escape whole characters only."
        ) from None


def _loader(base: type[Any]) -> type[Any]:
    """Safe YAML in which every scalar is a string (the mapping holds only names) and a
    key given twice is an error instead of a silent overwrite. Explicit tags other than
    strings, lists and mappings (`!!int x`, `!!timestamp ...`, `!!binary`) are refused: their
    constructors fail in many ways, and the mapping needs none of them."""

    class Loader(base):  # type: ignore[misc]
        yaml_implicit_resolvers: dict[Any, Any] = {}  # noqa: RUF012 - replaces the inherited table
        yaml_constructors: ClassVar[dict[Any, Any]] = {
            "tag:yaml.org,2002:seq": yaml.SafeLoader.construct_yaml_seq,
            yaml.resolver.BaseResolver.DEFAULT_MAPPING_TAG: _construct_mapping,
            yaml.resolver.BaseResolver.DEFAULT_SCALAR_TAG: _construct_str,
            None: yaml.SafeLoader.construct_undefined,
        }

    return Loader


# libyaml's parser, which PyYAML's wheels carry, reads a 1,000-entry mapping in a seventh of the
# time of PyYAML's own. Where both read a text they build the same data (a hypothesis property
# holds them to it): the constructors, and so what a document means, are ours in both. libyaml
# refuses a few texts the pure parser reads (the \u surrogate pairs of JSON written with
# ensure_ascii), so what it refuses is read again by the pure parser, whose verdict and message
# stand; it also reads a few the pure parser refuses (a tab inside a plain scalar), as YAML says.
_PURE_LOADER = _loader(yaml.SafeLoader)
_FAST_LOADER = _loader(yaml.CSafeLoader) if yaml.__with_libyaml__ else None


# What yaml.load raises on a text it cannot read: ValueError and friends come from an explicit
# tag such as `!!int x` or `!!timestamp 2024-13-45` whose constructor refused the text.
_UNREADABLE = (yaml.YAMLError, RecursionError, ValueError, TypeError, OverflowError)


class _DuplicateOrBadKey(yaml.YAMLError):
    def __init__(self, node: yaml.Node, problem: str, fix: str) -> None:
        super().__init__(problem)
        self.problem = problem
        self.fix = fix
        self.mark = node.start_mark


def _load(text: str) -> Any:
    if _FAST_LOADER is not None:
        try:
            return yaml.load(text, Loader=_FAST_LOADER)  # noqa: S506 - a safe loader
        except _UNREADABLE:
            pass
    return yaml.load(text, Loader=_PURE_LOADER)  # noqa: S506 - a safe loader


def parse_document(text: str, origin: str) -> Any:
    """YAML or JSON text to plain data; errors give the line and column but quote nothing."""
    try:
        data = _load(text)
        _check_size(data, origin)
        return data
    except _DuplicateOrBadKey as exc:
        where = f"line {exc.mark.line + 1}, column {exc.mark.column + 1}"
        raise InputError(origin, f"{where}: {exc.problem}.", exc.fix) from None
    except yaml.MarkedYAMLError as exc:
        mark = exc.problem_mark or exc.context_mark
        where = f"line {mark.line + 1}, column {mark.column + 1}: " if mark else ""
        raise InputError(
            origin,
            f"{where}not valid YAML or JSON ({exc.problem or exc.context}).",
            "check the indentation and quoting; the README shows each shape.",
        ) from None
    except _UNREADABLE as exc:
        raise InputError(
            origin,
            f"not valid YAML or JSON ({type(exc).__name__}).",
            "check the syntax; the README shows each shape.",
        ) from None


def _check_size(data: Any, origin: str) -> None:
    """Refuse documents that aliases blow up (a "billion laughs") or make refer to themselves:
    validating them would take exponential time or never end."""
    sizes: dict[int, int | None] = {}  # id -> expanded size; None while being counted
    stack: list[tuple[Any, bool]] = [(data, False)]
    while stack:
        node, counted = stack.pop()
        if not isinstance(node, dict | list):
            continue
        children = [*node.keys(), *node.values()] if isinstance(node, dict) else node
        if counted:
            size = 1 + sum(sizes.get(id(c)) or 1 for c in children)
            if size > MAX_NODES:
                raise InputError(
                    origin,
                    f"the document expands to more than {MAX_NODES} entries through aliases.",
                    "write the mapping out without nested aliases.",
                )
            sizes[id(node)] = size
            continue
        if id(node) in sizes:
            if sizes[id(node)] is None:
                raise InputError(
                    origin,
                    "an alias refers to a node that contains it.",
                    "remove the recursive alias.",
                )
            continue
        sizes[id(node)] = None
        stack.append((node, True))
        stack.extend((c, False) for c in children)


# Validation -----------------------------------------------------------------------------


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


def _place(origin: str, path: Iterable[Any]) -> str:
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
        allowed = list(props or _FIELDS)
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
                "`binary` for bytes.",
            )
        return (
            path,
            "has none of `keys`, `value`, `template` or `binary`.",
            "add `keys:` (a JSON secret), `value: SOURCE` or `template: ...${SOURCE}...` "
            "(a plain-string secret), or `binary: SOURCE` (base64 stored as bytes).",
        )
    if kind == "type" and len(path) >= 3 and path[-2] == "keys" and isinstance(path[-1], str):
        return (
            path,
            "is neither a source name nor a `{template: ...}` mapping.",
            "write `json_key: SOURCE` or `json_key: {template: ...${SOURCE}...}`.",
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


def _check(instance: Any, origin: str, ref: str = "") -> None:
    if not ref and _plain_entries_are_sources() and isinstance(instance, dict) and instance:
        instance = _without_valid_plain_entries(instance)
    error = best_match(_validator(ref).iter_errors(instance))
    if error is not None:
        path, problem, fix = _explain(error, ref)
        raise InputError(_place(origin, path), problem, fix)


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


def _check_tags(tags: Mapping[str, str], place: str) -> None:
    for key, value in tags.items():
        if key in RESERVED_TAGS:
            raise InputError(
                f"{place}.{key}",
                "this tag is set by secrets-sync itself.",
                "remove it; secrets-sync sets ManagedBy, secrets-sync:repository, "
                "secrets-sync:run, secrets-sync:commit and secrets-sync:rolled-back-from.",
            )
        if value[:4].lower() == "aws:":
            raise InputError(
                f"{place}.{key}",
                "the value starts with `aws:`, which AWS reserves in tag keys and values.",
                "change the value.",
            )
        if not _TAG_TEXT.fullmatch(key) or not _TAG_TEXT.fullmatch(value):
            raise InputError(
                f"{place}.{key}",
                "has characters AWS does not allow in tags.",
                "use letters, digits, spaces and _ . : / = + - @.",
            )
    if len(tags) + len(RESERVED_TAGS) > MAX_TAGS:
        raise InputError(
            place,
            f"{len(tags)} tags plus the {len(RESERVED_TAGS)} of secrets-sync exceed {MAX_TAGS}.",
            "use fewer tags.",
        )


def parse_default_tags(text: str) -> dict[str, str]:
    data = parse_document(text or "{}", "input `default-tags`")
    if data in ("", None):
        data = {}
    if not isinstance(data, dict):
        raise InputError(
            "input `default-tags`",
            "is not a mapping of tag keys to values.",
            "write `Key: value` pairs, e.g. `{Team: platform, Env: prod}`.",
        )
    _check(data, "input `default-tags`", "tags")
    _check_tags(data, "input `default-tags`")
    return dict(data)


def load_mapping(
    text: str,
    origin: str,
    *,
    name_prefix: str = "",
    default_tags: Mapping[str, str] | None = None,
    kms_key_id: str | None = None,
    update_policy: str | None = None,
    region: str | None = None,
) -> SecretMapping:
    """Parse, validate and normalise a mapping. Raises InputError naming the place and the fix.
    `region` is the run's: a secret cannot be replicated to the region it lives in."""
    data = parse_document(text, origin)
    if data in ("", None):
        raise InputError(origin, "the mapping is empty.", "add at least one `name: SOURCE` line.")
    _check(data, origin)
    specs: list[SecretSpec] = []
    warnings: list[str] = []
    for key, entry in data.items():
        place = _place(origin, [key])
        name = name_prefix + key
        if len(name) > MAX_NAME:
            raise InputError(
                place,
                f"with the prefix the name is {len(name)} characters long.",
                f"keep name-prefix plus name within {MAX_NAME} characters.",
            )
        if _ARN_SUFFIX_LOOKALIKE.search(name):
            warnings.append(
                f"{name}: ends in '-' and six characters, like the random suffix of a secret "
                "ARN; a partial ARN lookup may match the wrong secret. Consider another name."
            )
        spec = _spec(key, name, entry, place, default_tags or {}, kms_key_id, region)
        specs.append(_with_policy(spec, entry, place, update_policy))
    seen: set[str] = set()
    for spec in specs:
        if spec.name in seen:
            raise InputError(
                origin, f"two entries name the secret {spec.name!r}.", "give each secret once."
            )
        seen.add(spec.name)
    return SecretMapping(tuple(specs), tuple(warnings))


def _spec(
    key: str,
    name: str,
    entry: Any,
    place: str,
    default_tags: Mapping[str, str],
    default_kms: str | None,
    region: str | None,
) -> SecretSpec:
    if isinstance(entry, str):
        entry = {"keys": [entry]}
    elif isinstance(entry, list):
        entry = {"keys": entry}
    keys = entry.get("keys")
    fields: tuple[tuple[str, str], ...] = ()
    templates: tuple[tuple[str, str], ...] = ()
    if isinstance(keys, list):
        fields = tuple((src, src) for src in keys)
    elif isinstance(keys, dict):
        fields = tuple((k, src) for k, src in keys.items() if isinstance(src, str))
        templates = tuple((k, v["template"]) for k, v in keys.items() if isinstance(v, dict))
    for k, text in templates:
        _check_template(text, f"{place}.keys.{k}.template")
    if "template" in entry:
        _check_template(entry["template"], f"{place}.template")
    tags = {**default_tags, **entry.get("tags", {})}
    _check_tags(tags, f"{place}.tags")
    k8s = entry.get("k8s")
    replicas = _replicas(entry.get("replica-regions", []), f"{place}.replica-regions", region)
    return SecretSpec(
        key=key,
        name=name,
        fields=fields,
        value_source=entry.get("value"),
        binary_source=entry.get("binary"),
        description=entry.get("description"),
        tags=tuple(sorted(tags.items())),
        kms_key_id=entry.get("kms-key-id") or default_kms,
        replica_regions=tuple(replicas),
        k8s=K8sTarget(k8s["secret"], k8s.get("namespace", "default")) if k8s else None,
        template=entry.get("template"),
        templates=templates,
        replica_kms_keys=tuple((r, k) for r, k in replicas.items() if k),
    )


def _check_template(text: str, place: str) -> None:
    """A template whose every `$` starts a placeholder, and which names at least one source.
    The text is never quoted: what stands there may be a value pasted in by mistake."""
    template = Template(text)
    if not template.is_valid():
        at = next(
            m.start() for m in template.pattern.finditer(text) if m.group("invalid") is not None
        )
        raise InputError(
            place,
            f"the `$` at character {at + 1} starts no placeholder.",
            "write `${SOURCE}` or `$SOURCE` to insert a source (letters, digits and _, not "
            "starting with a digit), and `$$` for a literal dollar.",
        )
    if not template.get_identifiers():
        raise InputError(
            place,
            "has no placeholder, so it would hold only the mapping's own text.",
            "insert each value as `${SOURCE}`; values come from sources, never from the mapping.",
        )


def _with_policy(spec: SecretSpec, entry: Any, place: str, default: str | None) -> SecretSpec:
    """The secret's update policy: its own, else the input's. `merge` keeps the keys the
    mapping does not name, so it needs a JSON secret to have keys at all."""
    own = entry.get("update-policy") if isinstance(entry, dict) else None
    policy = own or default
    if policy == "merge" and not spec.is_json:
        shape = (
            "a `binary`"
            if spec.binary_source is not None
            else "a `template`"
            if spec.template is not None
            else "a plain `value`"
        )
        if own:
            raise InputError(
                f"{place}.update-policy",
                f"`merge` keeps the JSON keys the mapping does not name; {shape} secret has none.",
                "use `keys:` for a JSON secret, or `update-policy: replace` or `if-not-exists`.",
            )
        raise InputError(
            "input `update-policy`",
            f"`merge` applies to JSON secrets only, and {place} is {shape} secret.",
            f"give {place} its own `update-policy: replace` (or `if-not-exists`).",
        )
    if policy is None:
        return spec
    return replace(spec, update_policy=policy, policy_given=True)


def _replicas(entries: list[Any], place: str, region: str | None) -> dict[str, str | None]:
    """`replica-regions` entries (a region, or `{region, kms-key-id}`) as region -> key."""
    out: dict[str, str | None] = {}
    for i, item in enumerate(entries):
        where = f"{place}[{i}]"
        replica, key = (
            (item, None) if isinstance(item, str) else (item["region"], item.get("kms-key-id"))
        )
        if replica == region:
            raise InputError(
                where,
                f"{replica} is the run's own region (aws-region): the secret itself lives there.",
                "list only other regions to replicate to.",
            )
        if replica in out:
            raise InputError(where, f"{replica} is listed twice.", "list each region once.")
        out[replica] = key
    return out
