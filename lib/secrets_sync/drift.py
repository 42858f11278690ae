"""Drift: a secret of this repository whose current value was changed by something other than
secrets-sync, in what the mapping owns, since secrets-sync last wrote it.

A run already reads each secret's AWSCURRENT version fresh (BatchGetSecretValue: its VersionId
and labels), and versions.is_ours tells from those alone whether secrets-sync wrote it: our
token as its VersionId, or v1.1's label on that very version. Never from a label left on an
older version (AWS is not recorded keeping one), never from ListSecrets being current. When the
current version is ours, or the plan writes nothing, there is no drift and no call is made.

Only when the plan would write the value over a current version written outside (GitHub's value
differs from it in what the mapping owns) does the run look further, with two reads of its own
(ListSecretVersionIds, then GetSecretValue of one version): the reference is the newest version
secrets-sync wrote, or the baseline (below) if that is newer. The secret has drifted when the
current value differs from the reference in what the mapping owns: the whole value under
`replace`, the keys the mapping names under `merge` (never under `if-not-exists`, which writes
no value). So a key changed outside that the mapping does not own is no drift, then or at any
later rotation; nor is a value written outside that equals what secrets-sync last wrote. A
value outside that equals GitHub's is no drift either: nothing is written.

The baseline is the tag mapping.BASELINE_TAG, `<VersionId>@<ms since epoch, hex>`: the version
secrets-sync took over as it was, without writing one (an adoption with GitHub's value, or a
tag change on a secret whose current value it did not write but holds GitHub's), set only with
the TagResource that happens anyway. A secret with no version of ours and no baseline (from
v1.0 or v1.1, or adopted before this) has nothing to compare with, so it is never called
drifted: it is watched from its first write or tag change by this version.

A prune candidate has no value of the mapping: it has drifted when its current version was
written outside and a reference exists (any change at all counts). The plan decides it where
the listing shows a version written outside (the versions then read fresh), and the delete
again from its DescribeSecret, which may be fresher than the listing."""

from __future__ import annotations

import json
import time
from concurrent.futures import ThreadPoolExecutor
from dataclasses import replace
from typing import TYPE_CHECKING, Any, Literal

from botocore.exceptions import BotoCoreError, ClientError

from . import versions
from .mapping import BASELINE_TAG
from .plan import Action, Step, owned_by
from .settings import fits_tag_value
from .state import Current, describe_error

if TYPE_CHECKING:
    from mypy_boto3_secretsmanager import SecretsManagerClient

    from .sources import Desired

Policy = Literal["overwrite", "skip", "fail"]
_WHAT = "its current value was changed outside secrets-sync since secrets-sync last wrote it"


def baseline_tag(version_id: str | None, *, now: float | None = None) -> tuple[str, str] | None:
    """The baseline tag for a version taken over as it is now, or None if its VersionId cannot
    be a tag value (AWS's own are UUIDs; another writer's token could hold anything)."""
    if not version_id:
        return None
    ms = int((time.time() if now is None else now) * 1000)
    value = f"{version_id}@{ms:x}"  # read back with rpartition: an "@" in the id is kept
    return (BASELINE_TAG, value) if fits_tag_value(value) else None


def baseline_for(current: Current | None, *, written: bool) -> tuple[tuple[str, str], ...]:
    """The baseline tag to set, if any, with a TagResource that happens anyway and writes no
    value, over a current version secrets-sync did not write: that version is taken over as it
    is (its value is GitHub's, or under `merge` its owned keys are), so it is not drift."""
    if written or current is None or current.version_id is None:
        return ()
    if versions.is_ours(current.version_id, current.version_stages):
        return ()
    tag = baseline_tag(current.version_id)
    return (tag,) if tag else ()


def baseline(current: Current) -> tuple[str, int] | None:
    """The baseline version and when it was taken (ms), from the secret's tag, or None."""
    version, _, ms = current.tags.get(BASELINE_TAG, "").rpartition("@")
    try:
        return (version, int(ms, 16)) if version else None
    except ValueError:
        return None


def current_version(current: Current) -> tuple[str | None, tuple[str, ...]]:
    """The AWSCURRENT version and its labels: from the value read when there was one, else
    from the secret's version map (DescribeSecret's, or the listing's for a plan)."""
    if current.version_id is not None:
        return current.version_id, current.version_stages
    version = current.version_with(versions.CURRENT)
    return version, current.stages.get(version or "", ())


def written_outside(current: Current) -> bool:
    """AWSCURRENT of a secret of ours is neither ours nor its baseline."""
    if current.deleted or owned_by(current) is None:
        return False
    version, stages = current_version(current)
    if version is None or versions.is_ours(version, stages):
        return False
    taken = baseline(current)
    return taken is None or version != taken[0]


def suspect(step: Step) -> bool:
    """A write (or a prune) planned over a current version written outside: worth a look."""
    if step.current is None or step.error:
        return False
    if step.action is Action.DELETE:
        return written_outside(step.current)
    return step.action is Action.UPDATE and step.write_value and written_outside(step.current)


def find_reference(
    listed: list[tuple[str, tuple[str, ...]]], current: Current
) -> tuple[str, bool] | None:
    """Which version is the reference, from ListSecretVersionIds' (VersionId, stages), and
    whether it is the baseline; None if there is none. Only tokens count as ours here: v1.1's
    label on an older version may or may not be there, whatever happened (AWS is not recorded
    either way), so it is never relied on."""
    ours = [(w, v) for v, _ in listed if (w := versions.written_by(v)) is not None]
    newest = max(ours, default=None)
    taken = baseline(current)
    present = {v for v, _ in listed}
    if taken is not None and taken[0] in present and (newest is None or newest[0].at_ms < taken[1]):
        return taken[0], True
    return (newest[1], False) if newest else None


def list_versions(
    client: SecretsManagerClient, current: Current
) -> list[tuple[str, tuple[str, ...]]]:
    """Every version of the secret and its labels, fresh (ListSecretVersionIds), deprecated ones
    too: ours loses its labels after two writes outside, and stays readable."""
    kwargs: dict[str, Any] = {"SecretId": current.arn, "IncludeDeprecated": True, "MaxResults": 100}
    listed: list[tuple[str, tuple[str, ...]]] = []
    while True:
        page = client.list_secret_version_ids(**kwargs)
        listed += [(v["VersionId"], tuple(v.get("VersionStages", ()))) for v in page["Versions"]]
        if not page.get("NextToken"):
            return listed
        kwargs["NextToken"] = page["NextToken"]


def owned_part(desired: Desired | None, string: str | None, binary: bytes | None) -> object:
    """What the mapping owns of a value, comparable: the whole value (JSON as JSON), or under
    `merge` the values of the keys it names (a key absent is its own value)."""
    if binary is not None or desired is None:
        return ("binary", binary) if binary is not None else ("string", string)
    spec = desired.spec
    try:
        data = json.loads(string) if string is not None and spec.is_json else None
    except ValueError:
        data = None
    if spec.update_policy == "merge":
        obj = data if isinstance(data, dict) else {}
        return {k: obj.get(k, _ABSENT) for k in spec.key_names}
    return ("json", data) if data is not None else ("string", string)


_ABSENT = object()


def judge(client: SecretsManagerClient, step: Step, policy: Policy) -> Step:
    """The step as `on-drift` wants it, after a fresh look at a suspect one (at most two reads:
    the versions, and the reference's value)."""
    if not suspect(step):
        return step
    try:
        return _judge(client, step, policy)
    except (ClientError, BotoCoreError) as exc:
        if policy == "overwrite":
            return step  # GitHub's value goes in either way; only the warning is unknown
        # Leave it as on-drift promises, rather than write over what may be a change by hand.
        action = Action.SKIP if policy == "skip" else Action.CONFLICT
        why = (
            f"may have drifted: its current value was written outside secrets-sync, and what "
            f"changed could not be read ({describe_error(exc)}; the role needs "
            f"secretsmanager:ListSecretVersionIds and GetSecretValue); on-drift is {policy}, so "
            "it is left as it is"
        )
        return Step(step.name, action, why, step.desired, step.current, drift=True)


def _judge(client: SecretsManagerClient, step: Step, policy: Policy) -> Step:
    current = step.current
    assert current is not None
    listed = list_versions(client, current)
    if step.action is Action.DELETE:
        # The versions just read are fresher than the listing the prune was planned from.
        stages = dict(listed)
        fresh = replace(current, stages={v: s for v, s in stages.items() if s})
        step = replace(step, current=fresh)
        if not suspect(step):
            return step
        return verdict(step, policy) if find_reference(listed, current) else step
    found = find_reference(listed, current)
    if found is None:
        return step  # nothing of ours to compare with: not tracked yet
    got = client.get_secret_value(SecretId=current.arn, VersionId=found[0])
    then = owned_part(step.desired, got.get("SecretString"), got.get("SecretBinary"))
    if owned_part(step.desired, current.secret_string, current.secret_binary) == then:
        return step  # changed outside only where the mapping does not look, or changed back
    return verdict(step, policy)


def judge_all(
    client: SecretsManagerClient,
    steps: tuple[Step, ...],
    policy: Policy,
    executor: ThreadPoolExecutor,
) -> tuple[Step, ...]:
    """Every step judged; only suspect ones cost calls, in parallel (the others stay here)."""
    out = list(steps)
    suspects = [i for i, step in enumerate(steps) if suspect(step)]
    for i, judged in zip(
        suspects, executor.map(lambda i: judge(client, steps[i], policy), suspects), strict=True
    ):
        out[i] = judged
    return tuple(out)


def verdict(step: Step, policy: Policy) -> Step:
    """A drifted step as `on-drift` wants it."""
    what = "no longer in the mapping, and " if step.action is Action.DELETE else ""
    if policy != "overwrite":
        action = Action.SKIP if policy == "skip" else Action.CONFLICT
        why = f"drifted: {what}{_WHAT}; on-drift is {policy}, so it is left as it is"
        return Step(step.name, action, why, step.desired, step.current, drift=True)
    done = "deleted all the same" if step.action is Action.DELETE else "GitHub's value written"
    reason = f"drifted: {what}{_WHAT}; on-drift is overwrite: {done}"
    return replace(step, drift=True, reason=reason)
