"""The plan: for each secret, what to do to bring AWS to the mapping. Pure functions only."""

from __future__ import annotations

import json
from collections.abc import Mapping
from dataclasses import dataclass
from enum import StrEnum

from .errors import InputError
from .mapping import MANAGED_BY, REPOSITORY_TAG
from .sources import Desired
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
    error: str | None = None  # known before any write (e.g. the value could not be read)
    drift: bool = False  # the current version was written outside secrets-sync (drift.py)
    relabel: bool = False  # move our staging label to the current version (drift.py)
    target_version: str | None = None  # a rollback: the version to make current (rollback.py)

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


def owned_by(current: Current) -> str | None:
    """The repository whose syncs manage this secret, or None."""
    if current.tags.get(MANAGED_BY[0]) != MANAGED_BY[1]:
        return None
    return current.tags.get(REPOSITORY_TAG)


def plan_secret(desired: Desired, current: Current | None, *, repository: str, adopt: bool) -> Step:
    name = desired.name
    if desired.secret_string is None:
        return Step(
            name, Action.SKIP, f"no value for {', '.join(desired.missing)}", desired, current
        )
    tags = wanted_tags(desired, repository)
    spec = desired.spec
    if current is None:
        return Step(
            name,
            Action.CREATE,
            "new secret",
            desired,
            None,
            write_value=True,
            description=spec.description,
            tags=tuple(sorted(tags.items())),
            replica_regions=spec.replica_regions,
        )
    owner = owned_by(current)
    if owner is not None and owner != repository:
        return Step(
            name, Action.CONFLICT, f"managed by the secrets-sync of {owner}", desired, current
        )
    if owner is None and not adopt:
        return Step(
            name,
            Action.CONFLICT,
            "exists without secrets-sync tags and adopt-existing is false",
            desired,
            current,
        )
    if current.rotation_enabled:
        return Step(
            name,
            Action.CONFLICT,
            "rotation is enabled on it; a sync would fight the rotation",
            desired,
            current,
        )
    missing_tags = tuple(sorted((k, v) for k, v in tags.items() if current.tags.get(k) != v))
    description = (
        spec.description
        if spec.description is not None and spec.description != current.description
        else None
    )
    replicas = (
        tuple(r for r in spec.replica_regions if r not in current.replica_regions)
        if current.replica_regions is not None
        else spec.replica_regions
    )
    if current.deleted:
        return Step(
            name,
            Action.RESTORE,
            "scheduled for deletion",
            desired,
            current,
            write_value=True,
            description=description,
            tags=missing_tags,
            replica_regions=replicas,
        )
    if current.read_error:
        return Step(
            name,
            Action.UPDATE,
            "current value unreadable",
            desired,
            current,
            error=f"cannot read the current value ({current.read_error})",
        )
    adopting = " (adopting)" if owner is None else ""
    if not same_value(current.secret_string, desired.secret_string, spec.is_json):
        return Step(
            name,
            Action.UPDATE,
            "value differs" + adopting,
            desired,
            current,
            write_value=True,
            description=description,
            tags=missing_tags,
            replica_regions=replicas,
        )
    if missing_tags or description is not None or replicas:
        what = [
            w
            for w, on in (
                ("tags", missing_tags),
                ("description", description),
                ("replicas", replicas),
            )
            if on
        ]
        return Step(
            name,
            Action.TAG,
            " and ".join(what) + " differ" + adopting,
            desired,
            current,
            description=description,
            tags=missing_tags,
            replica_regions=replicas,
        )
    return Step(name, Action.UNCHANGED, "", desired, current)


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
