"""What a run tells its user: the plan lines, the step outputs and the step summary.

Everything here is built from names, actions, ARNs and key names; no value reaches it."""

from __future__ import annotations

import json
from collections.abc import Sequence
from pathlib import Path

from .apply import Result
from .plan import WRITES, Action
from .versions import CURRENT

OUTPUTS: tuple[tuple[str, str], ...] = (
    (
        "arns",
        "JSON object: full secret name to ARN, for every secret of the mapping that exists "
        "after the run.",
    ),
    ("created", "JSON array of the names of created secrets."),
    (
        "updated",
        "JSON array of the names of secrets whose value, tags, description, KMS key or "
        "replicas were updated, or that were restored.",
    ),
    ("unchanged", "JSON array of the names of secrets that needed no write."),
    ("deleted", "JSON array of the names of pruned secrets (scheduled for deletion)."),
    (
        "skipped",
        "JSON array of the names of secrets left untouched: a missing source (`missing: skip`), "
        "a drift under `on-drift: skip`, or nothing to roll back.",
    ),
    ("failed", "JSON array of the names of secrets that failed or are in conflict."),
    ("changed", "`true` if anything was written (in a dry run: would be written)."),
    (
        "results",
        "JSON array of `{name, action, arn, version_id, error, drift, update_policy, "
        "merged_keys, removed_tags, removed_replicas, kms_key_id}`, one per secret: `drift` "
        "whether its value was written outside secrets-sync since its last sync, "
        "`update_policy` the policy that applied (null for a prune or rollback), `merged_keys` "
        "the names of the keys a merge wrote, `removed_tags` the tag keys and "
        "`removed_replicas` the replica regions removed because the mapping no longer has them, "
        "`kms_key_id` the KMS key the secret was moved to (null if none; each as planned, in a "
        "dry run: would be).",
    ),
    ("manifests", "Path of the written External Secrets Operator manifests, when `k8s` is used."),
    (
        "drifted",
        "JSON array of the names of secrets whose current version was written outside "
        "secrets-sync since its last sync.",
    ),
    (
        "rolled-back",
        "JSON array of the names of secrets whose previous version was made current again "
        "(`rollback: true`).",
    ),
    (
        "versions",
        "JSON object: full secret name to the VersionId that is AWSCURRENT after the run, for "
        "every secret of the mapping that exists (changed or not; for a failed one, the version "
        "the run last knew; in a dry run, the current ones), so that a later step can roll "
        "exactly the workloads whose secrets changed.",
    ),
)

_BUCKETS = {
    Action.CREATE: "created",
    Action.UPDATE: "updated",
    Action.TAG: "updated",
    Action.RESTORE: "updated",
    Action.UNCHANGED: "unchanged",
    Action.DELETE: "deleted",
    Action.SKIP: "skipped",
    Action.ROLLBACK: "rolled-back",
}


def bucket(result: Result) -> str:
    return "failed" if result.error or result.action is Action.CONFLICT else _BUCKETS[result.action]


def changed(results: Sequence[Result]) -> bool:
    return any(r.action in WRITES and r.ok for r in results)


def outputs(results: Sequence[Result], manifests: Path | None = None) -> dict[str, str]:
    names: dict[str, list[str]] = {
        b: []
        for b in ("created", "updated", "unchanged", "deleted", "skipped", "failed", "rolled-back")
    }
    for r in results:
        names[bucket(r)].append(r.name)
    arns = {
        r.name: r.arn
        for r in results
        if r.arn and r.action is not Action.DELETE and r.step.desired is not None
    }
    out = {"arns": json.dumps(arns, sort_keys=True)}
    out.update({k: json.dumps(v) for k, v in names.items()})
    out["changed"] = "true" if changed(results) else "false"
    out["results"] = json.dumps(
        [
            {
                "name": r.name,
                "action": str(r.action),
                "arn": r.arn,
                "version_id": r.version_id,
                "error": r.error,
                "drift": r.step.drift,
                "update_policy": r.step.policy,
                "merged_keys": list(r.step.merged_keys),
                "removed_tags": list(r.step.removed_tags),
                "removed_replicas": list(r.step.regions_to_remove),
                "kms_key_id": r.step.kms_key_id,
            }
            for r in results
        ]
    )
    if manifests is not None:
        out["manifests"] = str(manifests)
    out["drifted"] = json.dumps([r.name for r in results if r.step.drift])
    out["versions"] = json.dumps(versions(results), sort_keys=True)
    return out


def versions(results: Sequence[Result]) -> dict[str, str]:
    """Each mapped secret's AWSCURRENT version after the run, as far as the run knows: the one
    it wrote or made current, else the one it read. A secret that failed after a write landed
    shows the version read before it; a secret scheduled for deletion has none to roll to."""
    out: dict[str, str] = {}
    for r in results:
        if r.step.desired is None or r.action is Action.DELETE:
            continue  # a prune: no longer of the mapping
        now = r.step.current
        known = r.version_id or (
            now.version_id or now.version_with(CURRENT) if now and not now.deleted else None
        )
        if known:
            out[r.name] = known
    return out


def as_json(outs: dict[str, str]) -> str:
    """The outputs as one JSON document, for the CLI outside Actions."""
    return json.dumps(
        {k: v if k == "manifests" else json.loads(v) for k, v in outs.items()}, indent=2
    )


def counts(results: Sequence[Result]) -> str:
    tally: dict[str, int] = {}
    for r in results:
        tally[bucket(r)] = tally.get(bucket(r), 0) + 1
    order = ("created", "updated", "rolled-back", "deleted", "unchanged", "skipped", "failed")
    return ", ".join(f"{tally[b]} {b}" for b in order if b in tally) or "nothing to do"


def _keys(result: Result) -> str:
    spec = result.step.desired.spec if result.step.desired else None
    if spec is None:
        return ""
    if spec.binary_source is not None:
        return "(binary)"
    if spec.generate is not None:
        return "(plain string, generated)"
    if not spec.is_json:
        return "(plain string)"
    generated = {k for k, _ in spec.generated}
    return ", ".join(f"`{k}`" + " (generated)" * (k in generated) for k in spec.key_names)


def _policy(result: Result, *, dry_run: bool) -> str:
    """The policy that applied, and for a merge the keys it wrote: names only."""
    policy = result.step.policy or ""
    if result.step.merged_keys and not result.error:
        verb = "would write" if dry_run else "wrote"
        policy += f" ({verb} {', '.join(f'`{k}`' for k in result.step.merged_keys)})"
    return policy


def _cell(text: str) -> str:
    return text.replace("|", "\\|").replace("\n", " ")


def _with_changes(result: Result) -> str:
    """The plan's reason, and what the write changes besides the value (plan.Step.changes)."""
    changes = result.step.changes if result.action in _CHANGING else ""
    return f"{result.step.reason}: {changes}" if changes else result.step.reason


_CHANGING = frozenset({Action.CREATE, Action.UPDATE, Action.TAG, Action.RESTORE})


def plan_lines(results: Sequence[Result]) -> list[str]:
    width = max((len(r.name) for r in results), default=0)
    lines = []
    for r in results:
        note = r.error or _with_changes(r)
        spec = r.step.desired.spec if r.step.desired else None
        if spec is not None and spec.policy_given:
            note = f"{note} [update-policy: {spec.update_policy}]".lstrip()
        lines.append(f"{r.action!s:<9}  {r.name:<{width}}  {note}".rstrip())
    return lines


def markdown(results: Sequence[Result], *, dry_run: bool, region: str, repository: str) -> str:
    title = "secrets-sync plan (dry run, nothing written)" if dry_run else "secrets-sync"
    would = "would be " if dry_run else ""
    lines = [
        f"### {title}",
        "",
        f"{len(results)} secrets in `{region}` for `{repository}`: {counts(results)}"
        + (f" ({would}written: {sum(r.action in WRITES for r in results)})" if dry_run else "")
        + ".",
        "",
        "| Secret | Action | ARN | Keys | Policy |",
        "| --- | --- | --- | --- | --- |",
    ]
    for r in results:
        action = (
            f"{r.action} (failed)" if r.error and r.action is not Action.CONFLICT else str(r.action)
        )
        if r.step.drift:
            action += " (**drifted**)"
        if r.action in _CHANGING and r.step.changes:
            action += f": {_cell(r.step.changes)}"
        arn = f"`{r.arn}`" if r.arn else ""
        policy = _cell(_policy(r, dry_run=dry_run))
        lines.append(f"| `{_cell(r.name)}` | {action} | {arn} | {_cell(_keys(r))} | {policy} |")
    problems = [r for r in results if r.error]
    if problems:
        lines += ["", "**Needs attention**", ""]
        lines += [f"- `{_cell(r.name)}`: {_cell(r.error or '')}" for r in problems]
    return "\n".join(lines) + "\n\n"
