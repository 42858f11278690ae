"""Applying one step of a plan: the calls its action makes, and a failure of one secret turned
into its result, never raised to stop the others (schedule.py runs the steps in parallel)."""

from __future__ import annotations

from dataclasses import dataclass, field, replace
from typing import TYPE_CHECKING, Any, Literal

from botocore.exceptions import (
    BotoCoreError,
    ClientError,
    ConnectionError,
    HTTPClientError,
    ParamValidationError,
)

from . import drift, limiter, versions
from .plan import Action, Step, owned_by, plan_secret, value_change
from .sources import with_generated
from .state import Current, _from_entry, describe_error, error_code, read_one, read_value

if TYPE_CHECKING:
    from mypy_boto3_secretsmanager import SecretsManagerClient
    from mypy_boto3_secretsmanager.type_defs import ReplicaRegionTypeTypeDef

    from .sources import Desired

# What the retry round from a fresh read takes on: the answers limiter.py retries too.
_TRANSIENT_CODES = limiter.THROTTLING | limiter.TRANSIENT


@dataclass(frozen=True)
class Result:
    step: Step
    action: Action  # what was done; a re-read may turn a planned create into an update
    arn: str | None
    version_id: str | None = None
    error: str | None = None
    transient: bool = field(default=False, compare=False)

    @property
    def name(self) -> str:
        return self.step.name

    @property
    def ok(self) -> bool:
        return self.error is None


def is_transient(exc: BaseException) -> bool:
    if isinstance(exc, ClientError):
        status = exc.response.get("ResponseMetadata", {}).get("HTTPStatusCode", 0)
        return error_code(exc) in _TRANSIENT_CODES or status >= 500
    return isinstance(exc, ConnectionError | HTTPClientError)


@dataclass(frozen=True)
class Applier:
    client: SecretsManagerClient
    repository: str
    adopt: bool
    recovery_window_days: int
    # `secrets-sync:run` and `secrets-sync:commit`: only in a CreateSecret or a TagResource that
    # happens anyway, never a call of their own, so a change costs one write call.
    audit_tags: tuple[tuple[str, str], ...] = ()
    on_drift: Literal["overwrite", "skip", "fail"] = "overwrite"  # for a re-plan, and prune
    # GITHUB_RUN_ID and GITHUB_RUN_ATTEMPT, for the version tokens (versions.py).
    run_ids: tuple[str | None, str | None] = (None, None)

    def token(self) -> str:
        """A ClientRequestToken for one write request: botocore's retries resend it as is."""
        return versions.new_token(*self.run_ids)

    def run(self, step: Step) -> Result:
        if step.error:
            return Result(step, step.action, step.arn, error=step.error)
        try:
            return self._run(step)
        except (ClientError, BotoCoreError) as exc:
            problem, transient = _describe(exc), is_transient(exc)
            if error_code(exc) == limiter.QUOTA:
                problem += (
                    " (a Secrets Manager quota, not a rate: not retried. See the quotas page "
                    "of the Secrets Manager user guide; free room, or ask AWS for more.)"
                )
        except (KeyError, TypeError) as exc:
            # An answer without what the API promises (e.g. no ARN): this secret failed, and
            # the others, and the outputs of those done, still stand.
            problem, transient = f"a malformed answer from AWS ({type(exc).__name__}).", False
        error = f"{step.action} failed: {problem}"
        return Result(step, step.action, step.arn, error=error, transient=transient)

    def _run(self, step: Step) -> Result:
        client, arn = self.client, step.arn
        match step.action:
            case Action.UNCHANGED | Action.SKIP:
                version = step.current.version_id if step.current else None
                return Result(step, step.action, arn, version)
            case Action.CONFLICT:
                return Result(step, step.action, arn, error=step.reason)
            case Action.DELETE:
                assert arn is not None
                # AWS refuses to delete a primary that still has replicas: they go first (and
                # at once: a replica has no recovery window; a restored primary that is in the
                # mapping again gets them back from the next sync). The same fresh answer
                # says who wrote its current value: `on-drift` decides a drifted one.
                described = client.describe_secret(SecretId=arn)
                fresh = _from_entry(described, client.meta.region_name)
                now = replace(step, current=fresh)
                planned = drift.current_version(step.current)[0] if step.current else None
                if drift.suspect(now) and drift.current_version(fresh)[0] != planned:
                    step = drift.judge(client, now, self.on_drift)  # not the version planned on
                if step.action is not Action.DELETE:
                    error = step.reason if step.action is Action.CONFLICT else None
                    return Result(step, step.action, arn, error=error)
                replicas = described.get("ReplicationStatus", [])
                if replicas:
                    client.remove_regions_from_replication(
                        SecretId=arn, RemoveReplicaRegions=[r["Region"] for r in replicas]
                    )
                client.delete_secret(SecretId=arn, RecoveryWindowInDays=self.recovery_window_days)
                return Result(step, step.action, arn)
            case Action.CREATE:
                return self._create(step)
            case Action.ROLLBACK:
                from .rollback import roll_back

                return Result(step, step.action, arn, roll_back(client, step))
        assert arn is not None
        assert step.desired is not None
        assert step.current is not None
        version = step.current.version_id
        write_value = step.write_value
        if step.action is Action.RESTORE:
            client.restore_secret(SecretId=arn)
            fresh = read_value(client, replace(step.current, deleted=False))
            if fresh.read_error:
                # Without the value, neither the string/binary guard nor a merge can decide:
                # nothing more is written. The secret is this repository's and live again; the
                # next run reads it like any other.
                return Result(
                    step,
                    step.action,
                    arn,
                    error=f"restored, but {fresh.read_error}; nothing was written to it. "
                    "Rerun to sync it.",
                )
            version = fresh.version_id
            change = value_change(step.desired, fresh, adopting=owned_by(fresh) is None)
            if change.conflict:
                return Result(
                    step, step.action, arn, version, error=f"restored, but {change.conflict}"
                )
            write_value = change.write
            step = replace(step, merged_keys=change.merged_keys, merged=change.merged)
            step = replace(step, current=fresh)
        if write_value and step.merged is not None:
            refused = self._changed_since_read(step)
            if refused:
                return Result(step, step.action, arn, version, error=refused)
        if write_value:
            version = self._put_value(arn, step) or version
        metadata: dict[str, Any] = {}
        if step.description is not None:
            metadata["Description"] = step.description
        if step.kms_key_id:
            # AWS re-encrypts AWSCURRENT, AWSPENDING and AWSPREVIOUS with it (docs/operations.md).
            metadata["KmsKeyId"] = step.kms_key_id
        if metadata:
            client.update_secret(SecretId=arn, **metadata)
        if step.tags_to_remove:
            # Before TagResource: the removed tags make room under AWS's 50 (plan.py counts so).
            client.untag_resource(SecretId=arn, TagKeys=list(step.tags_to_remove))
        if step.tags:
            # Last, so that a baseline names a version that exists (this write's, if any).
            tags = (
                *step.tags,
                *self.audit_tags,
                *drift.baseline_for(step.current, written=write_value),
            )
            client.tag_resource(SecretId=arn, Tags=[{"Key": k, "Value": v} for k, v in tags])
        return self._replicate(step, Result(step, step.action, arn, version))

    def _replicate(self, step: Step, done: Result) -> Result:
        """Remove the replicas in regions the mapping dropped; add the missing replicas, and
        again those AWS reports as failed or whose KMS key changed (they must be removed first:
        a region is replicated once, and a replica's key is set when it is made). A failed one
        stays failed, with AWS's reason, until AWS answers it is in sync; the next run retries
        it."""
        assert step.desired is not None
        failed = dict(step.failed_replicas)
        regions = (*failed, *step.rekey_replicas, *step.replica_regions)
        removed = (*step.regions_to_remove, *failed, *step.rekey_replicas)
        if removed:
            self.client.remove_regions_from_replication(
                SecretId=step.arn or "", RemoveReplicaRegions=list(removed)
            )
        if not regions:
            return done
        answer = self.client.replicate_secret_to_regions(
            SecretId=step.arn or "", AddReplicaRegions=_replica_regions(step.desired, regions)
        )
        return _replica_outcome(done, answer.get("ReplicationStatus", []), regions, failed)

    def _create(self, step: Step) -> Result:
        assert step.desired is not None
        spec = step.desired.spec
        tags = (*step.tags, *self.audit_tags)
        kwargs: dict[str, Any] = {
            "Name": step.name,
            "ClientRequestToken": self.token(),  # the first version's VersionId
            **(self._generated(step.desired) if step.desired.generates else _value_args(step)),
            "Tags": [{"Key": k, "Value": v} for k, v in tags],
        }
        if spec.description is not None:
            kwargs["Description"] = spec.description
        if spec.kms_key_id:
            kwargs["KmsKeyId"] = spec.kms_key_id
        if spec.replica_regions:
            kwargs["AddReplicaRegions"] = _replica_regions(step.desired, spec.replica_regions)
        try:
            answer = self.client.create_secret(**kwargs)
        except ClientError as exc:
            code = error_code(exc)
            if code == "InvalidRequestException":
                # AWS's answer when the name is scheduled for deletion (ListSecrets may not have
                # shown it yet): restore it and write, as for a lost race. Any other cause of
                # this code is no race, and stands.
                current = read_one(self.client, step.name)
                if current is None or not current.deleted:
                    raise
                return self._replan(step, current, lost_race=True)
            if code != "ResourceExistsException":
                raise
            # Another run (or ListSecrets' lag) got there first: read it and carry on from there.
            return self.resync(step, lost_race=True)
        return _replica_outcome(
            Result(step, Action.CREATE, answer["ARN"], answer.get("VersionId")),
            answer.get("ReplicationStatus", []),
            spec.replica_regions,
            {},
        )

    def _generated(self, desired: Desired) -> dict[str, str]:
        """The value of a generated secret, asked of GetRandomPassword just before the create
        (never in a dry run, never for a secret that exists). outgoing.py masks it the moment
        the answer arrives, and registers the CreateSecret's whole JSON with our redaction
        before it leaves. It is never asked for again: the secret keeps it (`if-not-exists`)."""
        spec = desired.spec
        wanted = [(None, spec.generate)] if spec.generate is not None else list(spec.generated)
        made: dict[str | None, str] = {}
        for key, options in wanted:
            assert options is not None
            params: dict[str, Any] = dict(options.params)
            made[key] = self.client.get_random_password(**params)["RandomPassword"]
        return {"SecretString": with_generated(desired, made)}

    def _put_value(self, arn: str, step: Step) -> str | None:
        """Write the value as a new version, AWSCURRENT (AWS's default), whose VersionId is our
        token: what tells a later run that this version is ours (versions.py)."""
        answer = self.client.put_secret_value(
            SecretId=arn, ClientRequestToken=self.token(), **_value_args(step)
        )
        return answer.get("VersionId")

    def _changed_since_read(self, step: Step) -> str | None:
        """A merge writes the keys it does not own back as it read them: re-read just before
        the write, and refuse if another writer's version landed since the plan's read."""
        assert step.current is not None
        try:
            now = self.client.get_secret_value(SecretId=step.current.arn).get("VersionId")
        except ClientError as exc:
            if error_code(exc) != "ResourceNotFoundException":
                raise
            # No version holds AWSCURRENT: a secret created without a value, read so by the
            # plan too (state.read_value), whose first value is then the owned keys alone.
            now = None
        if now == step.current.version_id:
            return None
        return (
            "merge refused: the secret changed since it was read (another writer); nothing "
            "was written. Rerun to merge onto its new value."
        )

    def resync(self, step: Step, *, lost_race: bool = False) -> Result:
        """Re-read one secret and apply a fresh plan for it; never writes blind."""
        return self._replan(step, read_one(self.client, step.name), lost_race=lost_race)

    def _replan(self, step: Step, current: Current | None, *, lost_race: bool = False) -> Result:
        if step.desired is None:  # a delete: done if it is already scheduled or gone
            if current is None or current.deleted:
                return Result(step, step.action, step.arn)
            return self.run(step)
        fresh = plan_secret(step.desired, current, repository=self.repository, adopt=self.adopt)
        fresh = drift.judge(self.client, fresh, self.on_drift)  # as the first plan was made
        if fresh.action is Action.CREATE and lost_race:
            return Result(
                step, step.action, None, error="create failed: the name exists but cannot be read"
            )
        result = self.run(fresh)
        # Reported under the first plan's step, with the keys the fresh plan merged (those are
        # the keys this run wrote) and the fresh read's verdict on drift: that read is the newer.
        reason = fresh.reason if fresh.drift else step.reason
        return replace(
            result,
            step=replace(
                step, merged_keys=result.step.merged_keys, drift=fresh.drift, reason=reason
            ),
        )

    def retry(self, failed: Result) -> Result:
        try:
            result = self.resync(failed.step)
        except (ClientError, BotoCoreError) as exc:
            return replace(failed, error=f"{failed.step.action} failed: {_describe(exc)}")
        if result.ok and result.action is Action.UNCHANGED and failed.step.action in _LANDING:
            # The first write landed though its answer was lost (or a concurrent run wrote the
            # same): the secret changed in this run, and `changed` and the lists must say so,
            # and a merge's keys are the ones that first write carried.
            return replace(result, action=failed.step.action, step=failed.step)
        return result


def _value_args(step: Step) -> dict[str, Any]:
    """The value to send: a merge's JSON, a binary's bytes, or the mapping's string."""
    assert step.desired is not None
    if step.merged is not None:
        return {"SecretString": step.merged}
    if step.desired.secret_binary is not None:
        return {"SecretBinary": step.desired.secret_binary}
    return {"SecretString": step.desired.secret_string}


_LANDING = frozenset({Action.CREATE, Action.UPDATE, Action.TAG, Action.RESTORE})


def _replica_regions(desired: Desired, regions: tuple[str, ...]) -> list[ReplicaRegionTypeTypeDef]:
    """AddReplicaRegions for these regions, each with the mapping's KMS key for it, if any:
    without one AWS encrypts the replica with that region's aws/secretsmanager key."""
    keys = dict(desired.spec.replica_kms_keys)
    return [{"Region": r, "KmsKeyId": keys[r]} if r in keys else {"Region": r} for r in regions]


def _replica_outcome(
    done: Result, statuses: Any, regions: tuple[str, ...], was_failed: dict[str, str]
) -> Result:
    """The write stands; a replica AWS reports as failed (or that failed before and is not yet
    in sync again) makes the secret fail, with AWS's reason, so that it is not hidden."""
    status = {s["Region"]: s for s in statuses}
    problems = []
    for region in regions:
        got = status.get(region, {})
        if got.get("Status") == "Failed":
            reason = got.get("StatusMessage") or "no reason given"
            problems.append(f"the replica in {region} failed: {reason}")
        elif region in was_failed and got.get("Status") != "InSync":
            reason = was_failed[region]
            problems.append(f"the replica in {region} failed: {reason} (replication restarted)")
    if not problems:
        return done
    return replace(done, error="; ".join(problems))


def _describe(exc: BaseException) -> str:
    # botocore's parameter errors quote the parameter, which may be the value: name them only.
    if isinstance(exc, ParamValidationError):
        return type(exc).__name__
    return describe_error(exc)


def dry_run(steps: tuple[Step, ...]) -> list[Result]:
    """The results a run would have, with no call at all."""
    return [
        Result(
            s,
            s.action,
            s.arn,
            s.current.version_id if s.current else None,
            error=s.error or (s.reason if s.action is Action.CONFLICT else None),
        )
        for s in steps
    ]
