"""The plan: for each secret, what to do to bring AWS to the mapping. Pure functions only."""

from __future__ import annotations

import json
import re
from collections.abc import Mapping
from dataclasses import dataclass, field
from enum import StrEnum

from .errors import InputError
from .mapping import BASELINE_TAG, COMMIT_TAG, MANAGED_BY, REPOSITORY_TAG, RUN_TAG, SecretSpec
from .schema import MAX_TAGS
from .sources import MAX_SECRET_BYTES, Desired
from .state import Current


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

    @property
    def policy(self) -> str | None:
        return self.desired.spec.update_policy if self.desired else None

    @property
    def arn(self) -> str | None:
        return self.current.arn if self.current else None

    @property
    def key_names(self) -> tuple[str, ...]:
        return self.desired.spec.key_names if self.desired else ()


def wanted_tags(desired: Desired, repository: str) -> dict[str, str]:
    return {**dict(desired.spec.tags), MANAGED_BY[0]: MANAGED_BY[1], REPOSITORY_TAG: repository}


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
    # be written and then the tags refused.
    ours = {RUN_TAG, COMMIT_TAG, BASELINE_TAG}
    tag_count = len(current.tags.keys() | dict(step.tags).keys() | ours)
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
        return Step(
            name,
            Action.CREATE,
            "new secret" + _generated(spec),
            desired,
            None,
            write_value=True,
            description=spec.description,
            tags=tuple(sorted(tags.items())),
            replica_regions=spec.replica_regions,
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
        )
    if missing_tags or description is not None or replicas or failed:
        what = [
            w
            for w, on in (
                ("tags", missing_tags),
                ("description", description is not None),
                ("replicas", replicas or failed),
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
