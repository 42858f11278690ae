"""Rollback: make the previous version (AWSPREVIOUS) of each selected secret current again.

Only AWSCURRENT moves (one UpdateSecretVersionStage), so no value is written and none is needed
from GitHub, which can never give an old one back. Each secret's versions are read afresh with
DescribeSecret (VersionIdsToStages), never from the listing, which may lag by minutes.

A rollback only moves a version secrets-sync wrote back over a version secrets-sync wrote, and
only backwards in time: AWSPREVIOUS must be older than AWSCURRENT (versions.older: the token's
time, then run id and attempt). Moving AWSCURRENT makes the version it left AWSPREVIOUS, so that
order refuses a second rollback, and the runbook's rollback after one made by hand in the
console: either would bring the bad value back. A current version written by hand (a hotfix) is
left as it is; so is a secret under `update-policy: if-not-exists`, whose value is not ours
after its creation. Whatever is refused is skipped with the reason, which points to the incident
runbook (docs/operations.md)."""

from __future__ import annotations

from collections.abc import Iterable
from concurrent.futures import ThreadPoolExecutor
from typing import TYPE_CHECKING

from botocore.exceptions import BotoCoreError, ClientError

from . import versions
from .plan import Action, Step, owned_by
from .sources import Desired
from .state import Current, describe, describe_error

if TYPE_CHECKING:
    from mypy_boto3_secretsmanager import SecretsManagerClient

RUNBOOK = "see the incident runbook (docs/operations.md#rollback)"


def read_versions(
    client: SecretsManagerClient, names: Iterable[str], executor: ThreadPoolExecutor
) -> dict[str, Current | str]:
    """Each named secret as DescribeSecret has it now (tags, version map), in parallel; a name
    that does not exist is left out, one that cannot be read maps to why."""

    def one(name: str) -> Current | str | None:
        try:
            return describe(client, name)
        except (ClientError, BotoCoreError) as exc:
            return f"cannot read its versions with DescribeSecret ({describe_error(exc)})"

    names = list(names)
    found = dict(zip(names, executor.map(one, names), strict=True))
    return {name: got for name, got in found.items() if got is not None}


def _writer(version: str) -> str:
    writer = versions.written_by(version)
    return f"written by {writer}" if writer else "written by secrets-sync v1.1"


def plan_rollback(desired: Desired, current: Current | str | None, *, repository: str) -> Step:
    name = desired.name
    if isinstance(current, str):
        return Step(name, Action.ROLLBACK, "", desired, error=f"{current}; nothing was changed")
    if current is None:
        return Step(name, Action.SKIP, "does not exist; nothing to roll back", desired)
    owner = owned_by(current)
    if owner != repository:
        whose = f"the secrets-sync of {owner}" if owner else "no secrets-sync (no tags of ours)"
        return Step(name, Action.CONFLICT, f"managed by {whose}; left alone", desired, current)

    def skip(why: str) -> Step:
        return Step(name, Action.SKIP, why, desired, current)

    if current.deleted:
        return skip("scheduled for deletion; a sync restores it")
    if desired.spec.update_policy == "if-not-exists":
        return skip(
            "update-policy is if-not-exists: its value is not secrets-sync's after its "
            f"creation, so secrets-sync does not roll it back; {RUNBOOK}"
        )
    now, previous = current.version_with(versions.CURRENT), current.version_with(versions.PREVIOUS)
    if previous is None or now is None:
        return skip(
            "no previous version to roll back to (one version only, or AWSPREVIOUS was "
            f"deprecated); {RUNBOOK}"
        )
    now_stages, previous_stages = current.stages[now], current.stages[previous]
    if not versions.is_ours(now, now_stages):
        return skip(
            f"its current version {now} was not written by secrets-sync (a fix made by hand?): "
            f"a rollback would undo it; left as it is, {RUNBOOK}"
        )
    if not versions.is_ours(previous, previous_stages):
        return skip(
            f"its previous version {previous} was not written by secrets-sync; rolling back "
            f"would make a value nobody synced current; left as it is, {RUNBOOK}"
        )
    if not versions.older((previous, previous_stages), (now, now_stages)):
        return skip(
            f"its previous version {previous} ({_writer(previous)}) is newer than the current "
            f"one {now} ({_writer(now)}): it was rolled back already (here or in the console), "
            f"and rolling back again would bring the newer value back; {RUNBOOK}"
        )
    return Step(
        name,
        Action.ROLLBACK,
        f"version {previous} ({_writer(previous)}) becomes current again, replacing {now} "
        f"({_writer(now)})",
        desired,
        current,
        target_version=previous,
    )


def roll_back(client: SecretsManagerClient, step: Step) -> str:
    """One call: AWSCURRENT moves to the target (AWS moves AWSPREVIOUS to the version it left).
    It succeeds whole or not at all, so there is no half-done rollback to report."""
    assert step.current is not None
    assert step.arn is not None
    assert step.target_version is not None
    now = step.current.version_with(versions.CURRENT) or ""
    client.update_secret_version_stage(
        SecretId=step.arn,
        VersionStage=versions.CURRENT,
        MoveToVersionId=step.target_version,
        RemoveFromVersionId=now,
    )
    return step.target_version
