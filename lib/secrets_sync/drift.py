"""Drift: a secret whose current version was written by something other than secrets-sync.

Every value secrets-sync writes carries a staging label of its own, LABEL, beside AWSCURRENT
(PutSecretValue with VersionStages; a label is on one version at a time, so it leaves the
version written before). ListSecrets returns every version's labels (SecretVersionsToStages), so
a run knows with no call of its own whether AWSCURRENT is still on the version it wrote: when
our label is on another version, someone wrote since. A secret without the label anywhere (written
before v1.1, or by Terraform and just adopted) has no drift: there is nothing to compare with."""

from __future__ import annotations

from dataclasses import replace
from typing import Literal

from .plan import Action, Step
from .state import Current

LABEL = "secrets-sync"  # staging labels: 1-256 characters, at most 20 on a version
CURRENT = "AWSCURRENT"
PREVIOUS = "AWSPREVIOUS"
WRITTEN_STAGES = (CURRENT, LABEL)  # PutSecretValue must name AWSCURRENT too, or it is not current
_WHAT = "written outside secrets-sync since its last sync"


def drifted(current: Current) -> bool:
    if current.deleted:
        return False  # a restore writes it anyway, and its labels are not the point then
    ours, now = current.version_with(LABEL), current.version_with(CURRENT)
    return ours is not None and now is not None and ours != now


def on_drift(step: Step, policy: Literal["overwrite", "skip", "fail"]) -> Step:
    """The planned step, changed as `on-drift` says when its secret drifted."""
    if step.current is None:
        return step
    if not drifted(step.current):
        if step.action is Action.TAG and step.current.version_with(LABEL) is None:
            # A write happens anyway (adoption, or a secret from before drift detection) and
            # the value is GitHub's: label it now, or its drift would go unseen until the
            # value next changes.
            return replace(step, relabel=step.current.version_with(CURRENT) is not None)
        return step
    if step.action not in (Action.UPDATE, Action.TAG, Action.UNCHANGED) or step.error:
        return replace(step, drift=True)  # a conflict, skip or unreadable value stays what it is
    kept = step.desired.spec.update_policy if step.desired else "replace"
    if kept == "if-not-exists" or (kept == "merge" and step.action is not Action.UPDATE):
        # Writes from outside are what these policies leave room for: `if-not-exists` never
        # owns the value again, and a merge owns only its keys, which still hold its values.
        return step
    if policy != "overwrite":
        action = Action.SKIP if policy == "skip" else Action.CONFLICT
        why = f"drifted: {_WHAT}; on-drift is {policy}"
        return Step(step.name, action, why, step.desired, step.current, drift=True)
    if step.action is Action.UPDATE:
        return replace(step, drift=True, reason=f"drifted: {_WHAT}; on-drift is overwrite")
    # The value outside equals GitHub's: no new version; our label moves to the current one so
    # that the next run does not report the same drift again.
    return replace(
        step,
        action=Action.TAG,
        reason=f"drifted: {_WHAT}, with the same value; on-drift is overwrite (label only)",
        drift=True,
        relabel=True,
    )
