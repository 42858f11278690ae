"""The plan: for each secret, what to do to bring AWS to the mapping. Pure functions only."""

from __future__ import annotations

import json
import re
from collections.abc import Mapping
from dataclasses import dataclass, field, fields
from enum import StrEnum
from typing import Any

from .errors import InputError
from .mapping import BASELINE_TAG, COMMIT_TAG, MANAGED_BY, REPOSITORY_TAG, RUN_TAG, SecretSpec
from .schema import MAX_TAGS
from .sources import MAX_SECRET_BYTES, Desired
from .state import Current, Replica
from .tagrecord import TAGS_RECORD, decode, encode

# How AWS names its own key for Secrets Manager; where a secret uses it, ListSecrets and
# DescribeSecret leave KmsKeyId out (a replica's ReplicationStatus names it by this alias).
DEFAULT_KMS_KEY = "alias/aws/secretsmanager"


class Action(StrEnum):
    CREATE = "create"
    UPDATE = "update"
    TAG = "tag"
    UNCHANGED = "unchanged"
    RESTORE = "restore"
    SKIP = "skip"
    CONFLICT = "conflict"
    DELETE = "delete"
    ROLLBACK = "rollback"


WRITES = frozenset(
    {Action.CREATE, Action.UPDATE, Action.TAG, Action.RESTORE, Action.DELETE, Action.ROLLBACK}
)


@dataclass(frozen=True)
class Step:
    name: str
    action: Action
    reason: str = ""
    desired: Desired | None = None
    current: Current | None = None
    write_value: bool = False
    description: str | None = None  # set only when it differs
    tags: tuple[tuple[str, str], ...] = ()  # tags to set: missing or different
    replica_regions: tuple[str, ...] = ()  # regions to add
    # Replicas AWS reports as failed, (region, AWS's StatusMessage): removed and added again.
    failed_replicas: tuple[tuple[str, str], ...] = ()
    error: str | None = None  # known before any write (e.g. the value could not be read)
    # A merge: the owned keys it writes, and the whole JSON it writes (current keys kept).
    merged_keys: tuple[str, ...] = ()
    merged: str | None = field(default=None, repr=False)
    drift: bool = False  # the current version was written outside secrets-sync (drift.py)
    target_version: str | None = None  # a rollback: the version to make current (rollback.py)
    # What the mapping no longer has, on a secret this repository manages (see _metadata).
    tags_to_remove: tuple[str, ...] = ()  # tag keys this action set (tagrecord.py)
    regions_to_remove: tuple[str, ...] = ()  # replica regions
    rekey_replicas: tuple[str, ...] = ()  # replicas removed and added again with a new KMS key
    kms_key_id: str | None = None  # the secret's new KMS key, set only when it differs
    unrecorded_tags: tuple[str, ...] = ()  # tag keys written but not recorded: no room left

    @property
    def policy(self) -> str | None:
        return self.desired.spec.update_policy if self.desired else None

    @property
    def arn(self) -> str | None:
        return self.current.arn if self.current else None

    @property
    def key_names(self) -> tuple[str, ...]:
        return self.desired.spec.key_names if self.desired else ()

    @property
    def removed_tags(self) -> tuple[str, ...]:
        """The user's tag keys to remove (the record, when it goes, is ours to say nothing of)."""
        return tuple(k for k in self.tags_to_remove if k != TAGS_RECORD)

    @property
    def changes(self) -> str:
        """What a write changes besides the value, in words: names, regions and keys only (for a
        create, which sets everything, only the tag keys the record has no room for)."""
        if self.action is Action.CREATE:
            return _unrecorded(self.unrecorded_tags)
        user_tags = [k for k, _ in self.tags if k != TAGS_RECORD and k not in _OURS]
        parts = [
            f"sets tags {_names(user_tags)}" if user_tags else "",
            f"removes tags {_names(list(self.removed_tags))}" if self.removed_tags else "",
            "sets the description" if self.description is not None else "",
            f"sets KMS key {self.kms_key_id}" if self.kms_key_id else "",
            f"adds replicas in {', '.join(self.replica_regions)}" if self.replica_regions else "",
            f"removes replicas in {', '.join(self.regions_to_remove)}"
            if self.regions_to_remove
            else "",
            f"re-adds replicas in {', '.join(self.rekey_replicas)} with their new KMS keys"
            if self.rekey_replicas
            else "",
            f"re-adds failed replicas in {', '.join(r for r, _ in self.failed_replicas)}"
            if self.failed_replicas
            else "",
            _unrecorded(self.unrecorded_tags),
        ]
        return "; ".join(p for p in parts if p)


def wanted_tags(desired: Desired, repository: str) -> dict[str, str]:
    return {**dict(desired.spec.tags), MANAGED_BY[0]: MANAGED_BY[1], REPOSITORY_TAG: repository}


_OURS = frozenset({MANAGED_BY[0], REPOSITORY_TAG, RUN_TAG, COMMIT_TAG})


def _kms_name(key: str) -> tuple[str, str]:
    """("alias", name) or ("key", id) of a KMS key as the API takes it: a key ID, a key ARN, an
    alias name or an alias ARN."""
    resource = key.split(":", 5)[5] if key.startswith("arn:") and key.count(":") >= 5 else key
    if resource.startswith("alias/"):
        return ("alias", resource.removeprefix("alias/"))
    return ("key", resource.removeprefix("key/"))


def kms_key_changed(wanted: str | None, current: str | None, *, omitted_if_default: bool) -> bool:
    """Whether the KMS key the mapping names differs from the one AWS reports. Only a key the
    mapping names counts (none: the secret keeps its own). AWS reports an alias or a key by ID
    or ARN, not always as given: an alias against a key ID could be the same key or not, which
    only KMS could say, and is taken as no change (a change would otherwise be applied again on
    every run). `omitted_if_default`: AWS leaves KmsKeyId out exactly when the key is its own
    aws/secretsmanager (ListSecrets, DescribeSecret), so a key it reports is never that one."""
    if not wanted:
        return False
    default = _kms_name(DEFAULT_KMS_KEY)
    named, reported = _kms_name(wanted), _kms_name(current or DEFAULT_KMS_KEY)
    if named == reported:
        return False
    if named[0] == reported[0] or reported == default:
        return True
    return named == default and omitted_if_default


@dataclass(frozen=True)
class Removals:
    """What a secret needs that the mapping dropped or changed, besides the value, the
    description and the replicas to add: the tags to set (the record of tag keys among them),
    the tag keys and replica regions to remove, the replicas to make again with a new KMS key,
    and the secret's new KMS key."""

    tags: tuple[tuple[str, str], ...] = ()
    tags_to_remove: tuple[str, ...] = ()
    unrecorded_tags: tuple[str, ...] = ()
    kms_key_id: str | None = None
    regions_to_remove: tuple[str, ...] = ()
    rekey_replicas: tuple[str, ...] = ()

    @property
    def removes(self) -> bool:
        return bool(
            self.tags_to_remove or self.kms_key_id or self.regions_to_remove or self.rekey_replicas
        )

    def fields(self) -> dict[str, Any]:
        """The Step fields (the tags go in as the tags to set)."""
        return {f.name: getattr(self, f.name) for f in fields(self) if f.name != "tags"}


def _removals(
    desired: Desired, current: Current, tags: Mapping[str, str], *, managed: bool
) -> Removals:
    to_set, remove, unrecorded = _record(desired, current, tags, managed=managed)
    kms = desired.spec.kms_key_id
    changed = kms_key_changed(kms, current.kms_key_id, omitted_if_default=True)
    dropped, rekey = _dropped_replicas(desired, current, managed=managed)
    return Removals(to_set, remove, unrecorded, kms if changed else None, dropped, rekey)


def _record(
    desired: Desired, current: Current, tags: Mapping[str, str], *, managed: bool
) -> tuple[tuple[tuple[str, str], ...], tuple[str, ...], tuple[str, ...]]:
    """The tags to set (the record included), the tag keys to remove, and the keys left out of
    the record for want of room. Only a key in the record of a secret this repository manages
    is removed; the record then holds the mapping's keys this action wrote, now or before."""
    user = dict(desired.spec.tags)
    recorded = decode(current.tags.get(TAGS_RECORD)) if managed else frozenset()
    to_set = {k: v for k, v in tags.items() if current.tags.get(k) != v}
    remove = sorted(
        k
        for k in recorded
        # Never one of ours, whatever a record says: the ownership tags stay.
        if k not in user
        and k in current.tags
        and k not in _OURS
        and not k.startswith("secrets-sync:")
    )
    value, left_out = encode(k for k in user if k in recorded or k in to_set)
    if value and current.tags.get(TAGS_RECORD) != value:
        to_set[TAGS_RECORD] = value
    elif not value and current.tags.get(TAGS_RECORD):
        # None of its keys is ours any more: it goes. On a secret being adopted the record is
        # someone else's word, emptied in the TagResource that adopts it (UntagResource is
        # only for secrets already ours), so that the next run trusts no key of it.
        if managed:
            remove.append(TAGS_RECORD)
        else:
            to_set[TAGS_RECORD] = ""
    unrecorded = tuple(k for k in left_out if k in to_set)
    return tuple(sorted(to_set.items())), tuple(remove), unrecorded


def _dropped_replicas(
    desired: Desired, current: Current, *, managed: bool
) -> tuple[tuple[str, ...], tuple[str, ...]]:
    """Replica regions the mapping dropped, and replicas whose KMS key changed (removed and
    added again: a replica's key is set only when it is made). As for a prune: only on a
    secret this repository already manages, and only where its replicas were read."""
    if not managed or current.replicas is None:
        return (), ()
    spec = desired.spec
    keys = dict(spec.replica_kms_keys)
    dropped = tuple(r.region for r in current.replicas if r.region not in spec.replica_regions)
    rekey = tuple(
        r.region
        for r in current.replicas
        if r.region in keys and not r.failed and _rekeyed(r, keys[r.region])
    )
    return dropped, rekey


def _rekeyed(replica: Replica, wanted: str) -> bool:
    return kms_key_changed(wanted, replica.kms_key_id, omitted_if_default=False)


def _unrecorded(keys: tuple[str, ...]) -> str:
    if not keys:
        return ""
    return (
        f"no room left in {TAGS_RECORD} for tag keys {_names(list(keys))}: they will not be "
        "removed when they leave the mapping"
    )


def same_value(current: str | None, wanted: str, is_json: bool) -> bool:
    """JSON secrets compare as JSON, so Terraform's jsonencode spacing is no change."""
    if current is None:
        return False
    if current == wanted:
        return True
    if not is_json:
        return False
    try:
        return bool(json.loads(current) == json.loads(wanted))
    except ValueError:
        return False


def _object(text: str | None) -> dict[str, object] | None:
    """A secret string's JSON object, or None when it is not one."""
    if text is None:
        return None
    try:
        data = json.loads(text)
    except ValueError:
        return None
    return data if isinstance(data, dict) else None


def _names(keys: list[str]) -> str:
    # Key names only, never a value; JSON-quoted, so no name can break a log line.
    shown = ", ".join(json.dumps(k[:64]) for k in keys[:10])
    return shown + (f" and {len(keys) - 10} more" if len(keys) > 10 else "")


@dataclass(frozen=True)
class ValueChange:
    """What the value of an existing secret needs: a write, nothing, or a refusal."""

    write: bool = False
    conflict: str | None = None
    merged_keys: tuple[str, ...] = ()
    merged: str | None = field(default=None, repr=False)


def value_change(desired: Desired, current: Current, *, adopting: bool) -> ValueChange:
    """Compare the value the mapping wants with the one AWS holds, under the secret's policy.
    Pure, so that a restore (which reads the value only after it) decides the same way."""
    spec = desired.spec
    if spec.update_policy == "if-not-exists":
        return ValueChange()  # an existing value is never written, whatever it holds
    is_binary = current.secret_binary is not None
    if spec.binary_source is not None:
        if current.secret_string is not None:
            return ValueChange(
                conflict="holds a string and the mapping gives `binary`; secrets-sync never "
                "rewrites a string secret as binary. Delete it or use another name."
            )
        return ValueChange(write=current.secret_binary != desired.secret_binary)
    if is_binary:
        return ValueChange(
            conflict="holds a binary value (SecretBinary) and the mapping gives a string; "
            "secrets-sync never rewrites a binary secret as a string. Map it with `binary:`."
        )
    wanted = desired.secret_string or ""
    if spec.update_policy == "merge":
        return _merge(spec.key_names, wanted, current.secret_string)
    if same_value(current.secret_string, wanted, spec.is_json):
        return ValueChange()
    present = _object(current.secret_string)
    if adopting and not spec.policy_given and present:
        named = _object(wanted) or {}
        dropped = [k for k in present if k not in named]
        if dropped:
            return ValueChange(
                conflict=f"not yet managed, and its JSON holds keys the mapping does not name "
                f"({_names(dropped)}); replacing it would drop them. Set `update-policy: merge` "
                "on it to keep them, or `update-policy: replace` to drop them."
            )
    return ValueChange(write=True)


def _merge(owned: tuple[str, ...], wanted: str, current: str | None) -> ValueChange:
    """The current JSON with the owned keys set to the mapping's values, every other member
    kept as its very text: a number is never rewritten (`1E3`, `1e400`, a 30-digit integer,
    `-0`, `1.10`) nor a string escaped anew (`\\u00e9`, `\\/`), as re-serialising would.

    Only the object around the members is ours: compact separators. A key given more than once
    keeps every occurrence when it is not owned (readers disagree on which one wins, so none
    is chosen for them); an owned key is written once, where it first stood, and counts as
    changed while it stands more than once."""
    members = [] if current is None else json_members(current)
    if members is None:
        return ValueChange(
            conflict="`update-policy: merge` needs a JSON object, and the current value is not "
            "one; nothing was written. Use `update-policy: replace` to overwrite it."
        )
    values = json.loads(wanted)
    present: dict[str, list[object]] = {}
    for key, _, raw in members:
        present.setdefault(key, []).append(json.loads(raw))
    changed = tuple(k for k in owned if present.get(k) != [values[k]])
    if not changed:
        return ValueChange()
    out: list[str] = []
    written: set[str] = set()
    for key, raw_key, raw in members:
        if key not in values:
            out.append(f"{raw_key}:{raw}")
        elif key not in written:
            written.add(key)
            out.append(_member(key, values[key]))
    out += [_member(k, v) for k, v in values.items() if k not in written]
    merged = "{" + ",".join(out) + "}"
    if len(merged.encode("utf-8")) > MAX_SECRET_BYTES:
        return ValueChange(
            conflict=f"the merged JSON would be over {MAX_SECRET_BYTES} bytes; nothing was written."
        )
    return ValueChange(write=True, merged_keys=changed, merged=merged)


def _member(key: str, value: object) -> str:
    return json.dumps(key, ensure_ascii=False) + ":" + json.dumps(value, ensure_ascii=False)


_DECODER = json.JSONDecoder()
_SPACE = re.compile(r"[ \t\n\r]*")  # JSON's whitespace, as json itself skips it


def _skip(text: str, at: int) -> int:
    """The index of the first character at or after `at` that is not whitespace."""
    space = _SPACE.match(text, at)
    return space.end() if space else at


def json_members(text: str) -> list[tuple[str, str, str]] | None:
    """A JSON object's members as (key, the key's text, the value's text), in order and
    duplicates included; None when the text is not one JSON object. Each value's text is the
    exact span json reads it from (raw_decode), so it can be written back unchanged."""
    if _object(text) is None:
        return None  # json.loads decides what is an object, here as everywhere else
    members: list[tuple[str, str, str]] = []
    at = _skip(text, _skip(text, 0) + 1)  # past the "{"
    while text[at] != "}":
        key, end = _DECODER.raw_decode(text, at)
        raw_key = text[at:end]
        at = _skip(text, _skip(text, end) + 1)  # past the ":"
        _, end = _DECODER.raw_decode(text, at)
        members.append((str(key), raw_key, text[at:end]))
        at = _skip(text, end)
        if text[at] == ",":
            at = _skip(text, at + 1)
    return members


def _generated(spec: SecretSpec) -> str:
    """What AWS generates at the create (GetRandomPassword, called only then): names only."""
    if spec.generate is not None:
        return " (generated)"
    if spec.generated:
        return f" (generated: {_names([k for k, _ in spec.generated])})"
    return ""


def owned_by(current: Current) -> str | None:
    """The repository whose syncs manage this secret, or None."""
    if current.tags.get(MANAGED_BY[0]) != MANAGED_BY[1]:
        return None
    return current.tags.get(REPOSITORY_TAG)


def plan_secret(desired: Desired, current: Current | None, *, repository: str, adopt: bool) -> Step:
    step = _plan_secret(desired, current, repository=repository, adopt=adopt)
    if current is None or not step.tags:
        return step
    # TagResource adds to the tags a secret has, and AWS allows 50 on a secret in all; the one
    # that sets the step's tags also sets the audit tags and the drift baseline (apply.py: they
    # go only where a TagResource happens anyway). Counted before any call, or the value would
    # be written and then the tags refused. Tags to remove go first (apply.py), and make room.
    ours = {RUN_TAG, COMMIT_TAG, BASELINE_TAG}
    kept = current.tags.keys() - set(step.tags_to_remove)
    tag_count = len(kept | dict(step.tags).keys() | ours)
    if tag_count <= MAX_TAGS:
        return step
    return Step(
        step.name,
        Action.CONFLICT,
        f"it has {len(current.tags)} tags and a write would bring it to {tag_count} (those "
        f"secrets-sync sets, {', '.join(sorted(ours))}, included); AWS allows {MAX_TAGS} on "
        "a secret: remove tags from it, or give it fewer here",
        desired,
        current,
    )


def _plan_secret(
    desired: Desired, current: Current | None, *, repository: str, adopt: bool
) -> Step:
    name = desired.name
    if not desired.has_value:
        return Step(
            name, Action.SKIP, f"no value for {', '.join(desired.missing)}", desired, current
        )
    tags = wanted_tags(desired, repository)
    spec = desired.spec
    if current is None:
        # The record holds every user tag key: this action sets them all.
        record, left_out = encode(dict(spec.tags))
        return Step(
            name,
            Action.CREATE,
            "new secret" + _generated(spec),
            desired,
            None,
            write_value=True,
            description=spec.description,
            tags=tuple(sorted({**tags, **({TAGS_RECORD: record} if record else {})}.items())),
            replica_regions=spec.replica_regions,
            unrecorded_tags=left_out,
        )
    if current.replica_of is not None:
        return Step(
            name,
            Action.CONFLICT,
            f"it is a replica of the secret in {current.replica_of} (Secrets Manager keeps it in "
            f"step with that primary); manage it there, with aws-region: {current.replica_of}",
            desired,
            current,
        )
    owner = owned_by(current)
    if owner is not None and owner != repository:
        return Step(
            name, Action.CONFLICT, f"managed by the secrets-sync of {owner}", desired, current
        )
    if owner is None and current.deleted:
        # Its value cannot be read while it is scheduled for deletion, so whether adoption
        # would take it over without a conflict cannot be known before RestoreSecret, and a
        # restore that adoption then refused would leave someone else's secret live. Never.
        return Step(
            name,
            Action.CONFLICT,
            "scheduled for deletion and not managed by secrets-sync (no secrets-sync tags); "
            "secrets-sync restores only secrets this repository manages. If it should be "
            f"synced, restore it yourself (aws secretsmanager restore-secret --secret-id {name}) "
            "and rerun, which then adopts it as adopt-existing says; otherwise map another name",
            desired,
            current,
        )
    if owner is None and not adopt:
        return Step(
            name,
            Action.CONFLICT,
            "exists without secrets-sync tags and adopt-existing is false",
            desired,
            current,
        )
    keeps_value = spec.update_policy == "if-not-exists"
    if current.rotation_enabled and not keeps_value:
        return Step(
            name,
            Action.CONFLICT,
            "rotation is enabled on it; a sync would fight the rotation",
            desired,
            current,
        )
    missing_tags = tuple(sorted((k, v) for k, v in tags.items() if current.tags.get(k) != v))
    # AWS leaves an empty description out of its answers: "" and none are the same.
    description = (
        spec.description
        if spec.description is not None
        and (spec.description or None) != (current.description or None)
        else None
    )
    replicas = (
        tuple(r for r in spec.replica_regions if r not in current.replica_regions)
        if current.replica_regions is not None
        else spec.replica_regions
    )
    failed = tuple(
        (r.region, r.message or "no reason given")
        for r in current.replicas or ()
        if r.failed and r.region in spec.replica_regions
    )
    more = _removals(desired, current, tags, managed=owner is not None)
    missing_tags = more.tags
    if current.deleted:
        return Step(
            name,
            Action.RESTORE,
            "scheduled for deletion",
            desired,
            current,
            write_value=not keeps_value,
            description=description,
            tags=missing_tags,
            replica_regions=replicas,
            failed_replicas=failed,
            **more.fields(),
        )
    if current.read_error and not keeps_value:
        return Step(
            name,
            Action.UPDATE,
            "current state unreadable",
            desired,
            current,
            error=current.read_error,
        )
    adopting = " (adopting)" if owner is None else ""
    change = value_change(desired, current, adopting=owner is None)
    if change.conflict:
        return Step(name, Action.CONFLICT, change.conflict, desired, current)
    if change.write:
        keys = f" (merging {', '.join(change.merged_keys)})" if change.merged_keys else ""
        return Step(
            name,
            Action.UPDATE,
            "value differs" + keys + adopting,
            desired,
            current,
            write_value=True,
            description=description,
            tags=missing_tags,
            replica_regions=replicas,
            merged_keys=change.merged_keys,
            merged=change.merged,
            failed_replicas=failed,
            **more.fields(),
        )
    if missing_tags or description is not None or replicas or failed or more.removes:
        what = [
            w
            for w, on in (
                ("tags", missing_tags or more.tags_to_remove),
                ("description", description is not None),
                ("KMS key", more.kms_key_id),
                ("replicas", replicas or failed or more.regions_to_remove or more.rekey_replicas),
            )
            if on
        ]
        return Step(
            name,
            Action.TAG,
            " and ".join(what) + " differ" + adopting + _kept(desired, current),
            desired,
            current,
            description=description,
            tags=missing_tags,
            replica_regions=replicas,
            failed_replicas=failed,
            **more.fields(),
        )
    return Step(name, Action.UNCHANGED, _kept(desired, current).lstrip("; "), desired, current)


def _kept(desired: Desired, current: Current) -> str:
    """For a JSON secret with generated keys, which is never written again: the keys from
    sources whose values no longer match, so that the owner learns the change was not written."""
    if not desired.spec.generated or desired.secret_string is None:
        return ""
    present, wanted = _object(current.secret_string), json.loads(desired.secret_string)
    if present is None:
        return ""
    stale = [k for k, v in wanted.items() if present.get(k) != v]
    if not stale:
        return ""
    return (
        f"; the value is kept though {_names(stale)} differ from the sources: a secret with "
        "generated keys is never written again (delete it to have it made anew)"
    )


def plan(
    desired: tuple[Desired, ...],
    current: Mapping[str, Current],
    *,
    repository: str,
    adopt: bool,
    prune: bool = False,
    name_prefix: str = "",
    max_deletions: int = 10,
) -> tuple[Step, ...]:
    steps = [
        plan_secret(d, current.get(d.name), repository=repository, adopt=adopt) for d in desired
    ]
    if prune:
        wanted = {d.name for d in desired}
        doomed = [
            c
            for name, c in sorted(current.items())
            if name.startswith(name_prefix)
            and name not in wanted
            and not c.deleted
            and c.replica_of is None  # a replica is its primary's, wherever that is
            and owned_by(c) == repository
        ]
        if len(doomed) > max_deletions:
            raise InputError(
                "prune",
                f"would delete {len(doomed)} secrets, more than max-deletions "
                f"({max_deletions}); nothing was written.",
                "check that the mapping is complete; if these deletions are meant, raise "
                f"`max-deletions` to {len(doomed)} for this run.",
            )
        steps += [Step(c.name, Action.DELETE, "no longer in the mapping", None, c) for c in doomed]
    return tuple(steps)
