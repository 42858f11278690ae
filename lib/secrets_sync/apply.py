"""Applying a plan: bounded parallel writes, one secret's failure never stopping the others."""

from __future__ import annotations

import time
from concurrent.futures import ThreadPoolExecutor
from dataclasses import dataclass, field, replace
from typing import TYPE_CHECKING, Any, Literal

from botocore.exceptions import (
    BotoCoreError,
    ClientError,
    ConnectionError,
    HTTPClientError,
    ParamValidationError,
)

from .drift import CURRENT, LABEL, WRITTEN_STAGES, on_drift
from .plan import Action, Step, plan_secret, same_value
from .state import describe_error, error_code, read_one, read_value

if TYPE_CHECKING:
    from mypy_boto3_secretsmanager import SecretsManagerClient

_TRANSIENT_CODES = frozenset(
    {
        "ThrottlingException",
        "Throttling",
        "TooManyRequestsException",
        "RequestLimitExceeded",
        "InternalServiceError",
        "InternalFailure",
        "ServiceUnavailable",
        "RequestTimeout",
    }
)
RETRY_PAUSE_SECONDS = 1.0


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
    # `secrets-sync:run` and `secrets-sync:commit`: set with every write, never on their own, so
    # a run with nothing to do still writes nothing.
    audit_tags: tuple[tuple[str, str], ...] = ()
    on_drift: Literal["overwrite", "skip", "fail"] = "overwrite"  # for a re-plan (resync)

    def run(self, step: Step) -> Result:
        if step.error:
            return Result(step, step.action, step.arn, error=step.error)
        try:
            return self._run(step)
        except (ClientError, BotoCoreError) as exc:
            problem, transient = _describe(exc), is_transient(exc)
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
                client.delete_secret(SecretId=arn, RecoveryWindowInDays=self.recovery_window_days)
                return Result(step, step.action, arn)
            case Action.CREATE:
                return self._create(step)
            case Action.ROLLBACK:
                from .rollback import roll_back

                return Result(step, step.action, arn, roll_back(client, step, self.audit_tags))
        assert arn is not None
        assert step.desired is not None
        assert step.current is not None
        version = step.current.version_id
        write_value = step.write_value
        if step.action is Action.RESTORE:
            client.restore_secret(SecretId=arn)
            fresh = read_value(client, replace(step.current, deleted=False))
            version = fresh.version_id
            write_value = not same_value(
                fresh.secret_string, step.desired.secret_string or "", step.desired.spec.is_json
            )
        if write_value:
            version = self._put_value(arn, step) or version
        if step.description is not None:
            client.update_secret(SecretId=arn, Description=step.description)
        tags = (*step.tags, *self.audit_tags)
        if tags:
            client.tag_resource(SecretId=arn, Tags=[{"Key": k, "Value": v} for k, v in tags])
        if step.relabel:
            # The current version holds GitHub's value already: it becomes the one we wrote.
            # After the tags, so that labels only ever move on a secret tagged ours (IAM).
            label: dict[str, str] = {"MoveToVersionId": step.current.version_with(CURRENT) or ""}
            if step.current.version_with(LABEL):
                label["RemoveFromVersionId"] = step.current.version_with(LABEL) or ""
            client.update_secret_version_stage(SecretId=arn, VersionStage=LABEL, **label)
        if step.replica_regions:
            client.replicate_secret_to_regions(
                SecretId=arn, AddReplicaRegions=[{"Region": r} for r in step.replica_regions]
            )
        return Result(step, step.action, arn, version)

    def _create(self, step: Step) -> Result:
        assert step.desired is not None
        spec = step.desired.spec
        kwargs: dict[str, Any] = {
            "Name": step.name,
            "SecretString": step.desired.secret_string,
            "Tags": [{"Key": k, "Value": v} for k, v in (*step.tags, *self.audit_tags)],
        }
        if spec.description is not None:
            kwargs["Description"] = spec.description
        if spec.kms_key_id:
            kwargs["KmsKeyId"] = spec.kms_key_id
        if spec.replica_regions:
            kwargs["AddReplicaRegions"] = [{"Region": r} for r in spec.replica_regions]
        try:
            answer = self.client.create_secret(**kwargs)
        except ClientError as exc:
            if error_code(exc) != "ResourceExistsException":
                raise
            # Another run (or ListSecrets' lag) got there first: read it and carry on from there.
            return self.resync(step, lost_race=True)
        version = answer.get("VersionId")
        try:
            # CreateSecret takes no staging labels: the first version gets ours in a second
            # call. The value and its tags land together in the first, as IAM's condition on
            # the request tags wants; a failure here loses nothing but drift detection for this
            # secret until its next write, and is said so.
            self.client.update_secret_version_stage(
                SecretId=answer["ARN"], VersionStage=LABEL, MoveToVersionId=version or ""
            )
        except (ClientError, BotoCoreError) as exc:
            problem = (
                f"created, but its drift label could not be set ({_describe(exc)}); drift "
                "is detected from its next write"
            )
            return Result(step, Action.CREATE, answer["ARN"], version, problem)
        return Result(step, Action.CREATE, answer["ARN"], version)

    def _put_value(self, arn: str, step: Step) -> str | None:
        """Write the value as a new version carrying AWSCURRENT and our label (drift.py)."""
        assert step.desired is not None
        answer = self.client.put_secret_value(
            SecretId=arn,
            SecretString=step.desired.secret_string or "",
            VersionStages=list(WRITTEN_STAGES),
        )
        return answer.get("VersionId")

    def resync(self, step: Step, *, lost_race: bool = False) -> Result:
        """Re-read one secret and apply a fresh plan for it; never writes blind."""
        current = read_one(self.client, step.name)
        if step.desired is None:  # a delete: done if it is already scheduled or gone
            if current is None or current.deleted:
                return Result(step, step.action, step.arn)
            return self.run(step)
        fresh = plan_secret(step.desired, current, repository=self.repository, adopt=self.adopt)
        fresh = on_drift(fresh, self.on_drift)  # as the first plan was made
        if fresh.action is Action.CREATE and lost_race:
            return Result(
                step, step.action, None, error="create failed: the name exists but cannot be read"
            )
        result = self.run(fresh)
        return replace(result, step=step)

    def retry(self, failed: Result) -> Result:
        try:
            result = self.resync(failed.step)
        except (ClientError, BotoCoreError) as exc:
            return replace(failed, error=f"{failed.step.action} failed: {_describe(exc)}")
        if result.ok and result.action is Action.UNCHANGED and failed.step.action in _LANDING:
            # The first write landed though its answer was lost (or a concurrent run wrote the
            # same): the secret changed in this run, and `changed` and the lists must say so.
            return replace(result, action=failed.step.action)
        return result


_LANDING = frozenset({Action.CREATE, Action.UPDATE, Action.TAG, Action.RESTORE})


def _describe(exc: BaseException) -> str:
    # botocore's parameter errors quote the parameter, which may be the value: name them only.
    if isinstance(exc, ParamValidationError):
        return type(exc).__name__
    return describe_error(exc)


def apply_all(
    applier: Applier,
    steps: tuple[Step, ...],
    executor: ThreadPoolExecutor,
    *,
    pause: float = RETRY_PAUSE_SECONDS,
) -> list[Result]:
    """Run every step; secrets that failed transiently (after the SDK's own retries) get one
    more try from a fresh read, so a throttled burst does not leave them behind."""
    results = list(executor.map(applier.run, steps))
    again = [i for i, r in enumerate(results) if r.transient]
    if again:
        time.sleep(pause)
        retried = executor.map(applier.retry, [results[i] for i in again])
        for i, result in zip(again, retried, strict=True):
            results[i] = result
    return results


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
