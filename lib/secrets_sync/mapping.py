"""The mapping as specs: each validated entry of the document normalised to a SecretSpec, with
the checks the schema cannot make (tags, templates, update policies, replica regions)."""

from __future__ import annotations

import re
from collections.abc import Mapping
from dataclasses import dataclass, field, replace
from string import Template
from typing import Any

from .document import parse_document
from .errors import InputError
from .schema import GENERATE_OPTIONS, MAX_NAME, MAX_TAGS, place_of, validate

MANAGED_BY = ("ManagedBy", "secrets-sync")
REPOSITORY_TAG = "secrets-sync:repository"
# The run (URL, with attempt) and commit that created the secret or last set its tags: written
# only with a CreateSecret or TagResource that happens anyway (the run that wrote the value is
# in its VersionId: versions.py).
RUN_TAG = "secrets-sync:run"
COMMIT_TAG = "secrets-sync:commit"
# Drift bookkeeping (drift.py): `<VersionId>@<ms, hex>`, a current version secrets-sync did not
# write but took over as it was (GitHub's value), and when.
BASELINE_TAG = "secrets-sync:baseline"
TAGS_RECORD = "secrets-sync:tags"  # the user tag keys this action set (tagrecord.py)
RESERVED_TAGS = frozenset(
    {MANAGED_BY[0], REPOSITORY_TAG, RUN_TAG, COMMIT_TAG, BASELINE_TAG, TAGS_RECORD}
)

# AWS: letters, numbers, separators (\p{Z}: spaces, not tabs or line breaks) and _.:/=+-@.
_TAG_TEXT = re.compile(r"^[\w .:/=+\-@\u00a0\u1680\u2000-\u200a\u2028\u2029\u202f\u205f\u3000]*$")
_ARN_SUFFIX_LOOKALIKE = re.compile(r"-[A-Za-z0-9]{6}$")


@dataclass(frozen=True)
class K8sTarget:
    secret: str
    namespace: str = "default"


@dataclass(frozen=True)
class Generate:
    """A value Secrets Manager generates: GetRandomPassword's parameters, as the API names them
    (those not given take AWS's defaults). The value itself exists only at the create."""

    params: tuple[tuple[str, int | str | bool], ...] = ()

    @property
    def length(self) -> int:
        return int(dict(self.params).get("PasswordLength", DEFAULT_PASSWORD_LENGTH))

    @property
    def most_bytes(self) -> int:
        """The most bytes the value can take inside a JSON string: each character is printable
        ASCII, and `"` and `\\` (punctuation) take two there."""
        given = dict(self.params)
        excluded = str(given.get("ExcludeCharacters", ""))
        escapes = not given.get("ExcludePunctuation") and not {'"', "\\"} <= set(excluded)
        return self.length * (2 if escapes else 1)


DEFAULT_PASSWORD_LENGTH = 32  # GetRandomPassword's, without PasswordLength


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
    update_policy: str = "replace"  # one of schema.POLICIES
    # Whether the policy was given (per secret or by the input): an implicit `replace` adopts
    # safely, refusing to drop JSON keys the mapping does not name.
    policy_given: bool = False
    replica_kms_keys: tuple[tuple[str, str], ...] = ()  # (region, KMS key) the mapping names
    generate: Generate | None = None  # a plain-string secret AWS generates at the create
    generated: tuple[tuple[str, Generate], ...] = ()  # (JSON key, options) AWS generates

    @property
    def is_json(self) -> bool:
        return (
            self.value_source is None
            and self.binary_source is None
            and self.template is None
            and self.generate is None
        )

    @property
    def generates(self) -> bool:
        """Whether AWS generates this secret's value, or a key of it, when it is created."""
        return self.generate is not None or bool(self.generated)

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
        return tuple(k for k, _ in (*self.fields, *self.templates, *self.generated))


def placeholders(template: str) -> tuple[str, ...]:
    """The source names a template's placeholders use, in order of first use."""
    return tuple(Template(template).get_identifiers())


@dataclass(frozen=True)
class SecretMapping:
    specs: tuple[SecretSpec, ...]
    warnings: tuple[str, ...]


def _check_tags(tags: Mapping[str, str], place: str) -> None:
    for key, value in tags.items():
        if key in RESERVED_TAGS:
            raise InputError(
                f"{place}.{key}",
                "this tag is set by secrets-sync itself.",
                "remove it; secrets-sync sets ManagedBy, secrets-sync:repository, "
                "secrets-sync:run, secrets-sync:commit, secrets-sync:baseline and "
                "secrets-sync:tags.",
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
    validate(data, "input `default-tags`", "tags")
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
    validate(data, origin)
    specs: list[SecretSpec] = []
    warnings: list[str] = []
    for key, entry in data.items():
        place = place_of(origin, [key])
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
    generated: tuple[tuple[str, Generate], ...] = ()
    if isinstance(keys, list):
        fields = tuple((src, src) for src in keys)
    elif isinstance(keys, dict):
        fields = tuple((k, src) for k, src in keys.items() if isinstance(src, str))
        entries = {k: v for k, v in keys.items() if isinstance(v, dict)}
        templates = tuple((k, v["template"]) for k, v in entries.items() if "template" in v)
        generated = tuple(
            (k, _generate(v["generate"], f"{place}.keys.{k}.generate"))
            for k, v in entries.items()
            if "generate" in v
        )
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
        generate=_generate(entry["generate"], f"{place}.generate") if "generate" in entry else None,
        generated=generated,
    )


_SWITCHES = {"true": True, "false": False}


def _generate(options: Mapping[str, Any], place: str) -> Generate:
    """`generate`'s options as GetRandomPassword's parameters. The schema has checked each one's
    form (YAML gives them as text, JSON Schema editors as numbers and booleans)."""
    params: dict[str, int | str | bool] = {}
    for option, value in options.items():
        name = GENERATE_OPTIONS[option]
        if option == "length":
            params[name] = int(value)
        elif option == "exclude-characters":
            params[name] = str(value)
        else:
            params[name] = value if isinstance(value, bool) else _SWITCHES[str(value).lower()]
    kinds = ("ExcludeNumbers", "ExcludePunctuation", "ExcludeUppercase", "ExcludeLowercase")
    if all(params.get(k) for k in kinds) and not params.get("IncludeSpace"):
        raise InputError(
            place,
            "excludes numbers, punctuation, upper- and lower-case letters: no character is left.",
            "leave at least one kind of character in.",
        )
    return Generate(tuple(params.items()))


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
    if spec.generates:
        return _generated_policy(spec, own, place, default)
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


def _generated_policy(
    spec: SecretSpec, own: str | None, place: str, default: str | None
) -> SecretSpec:
    """A generated value exists only in AWS, so it can never be written again: the policy is
    `if-not-exists`, implied by `generate`. A policy given for this secret that says otherwise is
    an error, and so is the input's given explicitly (per-secret wins, as ever: its own
    `if-not-exists` settles it); the input left empty does not conflict."""
    keeps = "if-not-exists"
    where = "it" if spec.generate is not None else "a key of it"
    if own is not None and own != keeps:
        raise InputError(
            f"{place}.update-policy",
            f"`{own}` would write the value again, and `generate` has AWS generate {where} "
            "once, at the create: it is never written after (the policy is `if-not-exists`).",
            "remove `update-policy` from this secret (or write `if-not-exists`); to write a "
            "value on every change, give it from a source instead of `generate`.",
        )
    if own is None and default not in (None, keeps):
        raise InputError(
            "input `update-policy`",
            f"`{default}` would write the value of {place} again, and `generate` has AWS "
            f"generate {where} once, at the create: it is never written after.",
            f"give {place} its own `update-policy: if-not-exists`, or leave the input empty.",
        )
    return replace(spec, update_policy=keeps, policy_given=True)


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
