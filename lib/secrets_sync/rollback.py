"""Rollback: make the previous version (AWSPREVIOUS) of each selected secret current again.

Only staging labels move (UpdateSecretVersionStage), so no value is written and none is needed
from GitHub, which can never give an old one back. Moving AWSCURRENT makes the version it left
AWSPREVIOUS: a second rollback would bring the bad value back, so a rollback tags the secret with
the version it rolled back from, and a rollback that would return to it is refused until a sync
or another write has happened (then AWSPREVIOUS is something else)."""

from __future__ import annotations

from typing import TYPE_CHECKING

from .drift import CURRENT, LABEL, PREVIOUS
from .mapping import ROLLED_BACK_TAG
from .plan import Action, Step, owned_by
from .sources import Desired
from .state import Current

if TYPE_CHECKING:
    from mypy_boto3_secretsmanager import SecretsManagerClient


def plan_rollback(desired: Desired, current: Current | None, *, repository: str) -> Step:
    name = desired.name
    if current is None:
        return Step(name, Action.SKIP, "does not exist; nothing to roll back", desired)
    owner = owned_by(current)
    if owner != repository:
        whose = f"the secrets-sync of {owner}" if owner else "no secrets-sync (no tags of ours)"
        return Step(name, Action.CONFLICT, f"managed by {whose}; left alone", desired, current)
    if current.deleted:
        return Step(
            name, Action.SKIP, "scheduled for deletion; a sync restores it", desired, current
        )
    now, previous = current.version_with(CURRENT), current.version_with(PREVIOUS)
    if previous is None or now is None:
        return Step(
            name,
            Action.SKIP,
            "no previous version to roll back to (one version only, or AWSPREVIOUS was deprecated)",
            desired,
            current,
        )
    if current.tags.get(ROLLED_BACK_TAG) == previous:
        return Step(
            name,
            Action.SKIP,
            f"already rolled back from version {previous}; rolling back again would restore "
            "it. A sync writes GitHub's value",
            desired,
            current,
        )
    return Step(
        name,
        Action.ROLLBACK,
        f"version {previous} becomes current again, replacing {now}",
        desired,
        current,
        target_version=previous,
    )


def roll_back(
    client: SecretsManagerClient, step: Step, audit_tags: tuple[tuple[str, str], ...]
) -> str:
    """Move the labels; returns the version now current. Our label moves first and AWSCURRENT
    last, so that a failure part-way leaves the secret as it was, as far as a rerun can tell."""
    assert step.current is not None
    assert step.arn is not None
    assert step.target_version is not None
    current, arn, target = step.current, step.arn, step.target_version
    now, labelled = current.version_with(CURRENT), current.version_with(LABEL)
    if labelled != target:
        # The version made current again is the one secrets-sync stands behind now: with our
        # label on it, drift detection stays quiet about the rollback and catches what follows.
        label_move = {"MoveToVersionId": target}
        if labelled is not None:
            label_move["RemoveFromVersionId"] = labelled
        client.update_secret_version_stage(SecretId=arn, VersionStage=LABEL, **label_move)
    tags = [*audit_tags, (ROLLED_BACK_TAG, now or "")]
    client.tag_resource(SecretId=arn, Tags=[{"Key": k, "Value": v} for k, v in tags])
    client.update_secret_version_stage(
        SecretId=arn, VersionStage=CURRENT, MoveToVersionId=target, RemoveFromVersionId=now or ""
    )
    return target
