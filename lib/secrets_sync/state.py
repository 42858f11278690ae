"""Reading what Secrets Manager holds now, with as few calls as the API allows."""

from __future__ import annotations

from collections.abc import Collection, Iterable, Iterator, Mapping, Sequence
from concurrent.futures import ThreadPoolExecutor
from dataclasses import dataclass, field, replace
from typing import TYPE_CHECKING, Any, TypeVar

from botocore.exceptions import BotoCoreError, ClientError

from .errors import AwsError

if TYPE_CHECKING:
    from mypy_boto3_secretsmanager import SecretsManagerClient

T = TypeVar("T")
BATCH_SIZE = 20  # BatchGetSecretValue takes at most 20 ids a call
PAGE_SIZE = 100  # ListSecrets returns at most 100 a page


@dataclass(frozen=True)
class Replica:
    """One replica region of a secret, as DescribeSecret reports it."""

    region: str
    kms_key_id: str | None = None
    status: str | None = None  # InSync, InProgress or Failed
    message: str | None = None  # AWS's StatusMessage: why it failed

    @property
    def failed(self) -> bool:
        return self.status == "Failed"


@dataclass(frozen=True)
class Current:
    """A secret as Secrets Manager has it. The value is kept out of repr."""

    name: str
    arn: str
    description: str | None = None
    tags: dict[str, str] = field(default_factory=dict)
    deleted: bool = False
    rotation_enabled: bool = False
    replicas: tuple[Replica, ...] | None = None  # None: not read
    version_id: str | None = None
    secret_string: str | None = field(default=None, repr=False)
    secret_binary: bytes | None = field(default=None, repr=False)
    read_error: str | None = None  # what could not be read, and why
    # The primary's region when this is a replica of a secret kept there: Secrets Manager keeps
    # it in step with its primary, tags included, and refuses writes to it here.
    replica_of: str | None = None
    # Staging labels of each labelled version, as ListSecrets gives them (SecretVersionsToStages):
    # where AWSCURRENT, AWSPREVIOUS and our own label (drift.LABEL) are, without another call.
    stages: dict[str, tuple[str, ...]] = field(default_factory=dict)
    # The KMS key as AWS reports it; None: AWS's own aws/secretsmanager (API_ListSecrets and
    # API_DescribeSecret omit KmsKeyId for that key).
    kms_key_id: str | None = None
    # ListSecrets names a PrimaryRegion only for a secret replicated to other regions (the AWS
    # CLI reference's list-secrets and describe-secret examples): one to read the replicas of.
    replicated: bool = False

    @property
    def replica_regions(self) -> tuple[str, ...] | None:
        return None if self.replicas is None else tuple(r.region for r in self.replicas)

    def version_with(self, label: str) -> str | None:
        """The version carrying a staging label; a label is on one version at a time."""
        return next((v for v, labels in self.stages.items() if label in labels), None)


def error_code(exc: BaseException) -> str:
    if isinstance(exc, ClientError):
        return str(exc.response.get("Error", {}).get("Code", "ClientError"))
    return type(exc).__name__


def describe_error(exc: BaseException) -> str:
    """An AWS error as a short line: code and AWS's message, which never holds a value."""
    if isinstance(exc, ClientError):
        message = exc.response.get("Error", {}).get("Message", "")
        return f"{error_code(exc)}: {message}".rstrip(": ")
    return type(exc).__name__ + (f": {exc}" if str(exc) else "")


def read_fix(exc: BaseException, permission: str) -> str:
    if isinstance(exc, ClientError) and "AccessDenied" in error_code(exc):
        return f"grant {permission} to the role (see `secrets-sync iam-policy`)."
    return "check the network and the endpoint (AWS_ENDPOINT_URL*, region), then rerun."


def _replicas(statuses: Any) -> tuple[Replica, ...]:
    return tuple(
        Replica(r["Region"], r.get("KmsKeyId"), r.get("Status"), r.get("StatusMessage"))
        for r in statuses
    )


def _from_entry(entry: Any, region: str | None) -> Current:
    primary = entry.get("PrimaryRegion")
    return Current(
        name=entry["Name"],
        arn=entry["ARN"],
        description=entry.get("Description"),
        tags={t["Key"]: t["Value"] for t in entry.get("Tags", [])},
        deleted=entry.get("DeletedDate") is not None,
        rotation_enabled=bool(entry.get("RotationEnabled")),
        # ListSecrets has no ReplicationStatus (DescribeSecret has): None means "not read".
        replicas=_replicas(entry["ReplicationStatus"]) if "ReplicationStatus" in entry else None,
        replica_of=primary if primary and region and primary != region else None,
        kms_key_id=entry.get("KmsKeyId"),
        replicated=bool(primary) and primary == region,
        stages={
            version: tuple(labels)
            # ListSecrets and DescribeSecret name the same map differently.
            for version, labels in (
                entry.get("SecretVersionsToStages") or entry.get("VersionIdsToStages") or {}
            ).items()
            if labels
        },
    )


def list_under(client: SecretsManagerClient, prefix: str) -> dict[str, Current]:
    """Every secret whose name starts with prefix, planned deletions included.

    ListSecrets' name filter is a case-sensitive prefix match (the API reference's Filter);
    names are matched exactly here all the same, whatever an endpoint's filter lets through. A
    listed secret whose primary is in another region is marked as that primary's replica."""
    region = client.meta.region_name
    kwargs: dict[str, Any] = {"IncludePlannedDeletion": True, "MaxResults": PAGE_SIZE}
    if prefix:
        kwargs["Filters"] = [{"Key": "name", "Values": [prefix]}]
    found: dict[str, Current] = {}
    try:
        while True:
            page = client.list_secrets(**kwargs)
            for entry in page.get("SecretList", []):
                if entry["Name"].startswith(prefix):
                    found[entry["Name"]] = _from_entry(entry, region)
            token = page.get("NextToken")
            if not token:
                return found
            kwargs["NextToken"] = token
    except (ClientError, BotoCoreError) as exc:
        raise AwsError(
            "ListSecrets",
            f"cannot list the secrets under {prefix!r} ({describe_error(exc)}).",
            read_fix(exc, "secretsmanager:ListSecrets"),
        ) from None


def _chunks(items: Sequence[T], size: int) -> Iterator[Sequence[T]]:
    for start in range(0, len(items), size):
        yield items[start : start + size]


def _with_value(current: Current, got: Any) -> Current:
    """A BatchGetSecretValue or GetSecretValue answer's version and value on the listed secret.
    A binary value is carried too: without it the secret would look "different" from any
    string and be overwritten as one."""
    return replace(
        current,
        version_id=got.get("VersionId"),
        secret_string=got.get("SecretString"),
        secret_binary=got.get("SecretBinary"),
    )


def _batch(client: SecretsManagerClient, chunk: Sequence[Current]) -> list[Current]:
    """Values of up to 20 secrets in one call; per-secret errors fall back to GetSecretValue."""
    try:
        answer = client.batch_get_secret_value(SecretIdList=[c.arn for c in chunk])
    except ClientError as exc:
        if error_code(exc) not in ("AccessDeniedException", "AccessDenied"):
            raise
        # Denied for the batch call: the role may still hold GetSecretValue.
        return [read_value(client, c) for c in chunk]
    by_arn = {v["ARN"]: v for v in answer.get("SecretValues", [])}
    out = []
    for current in chunk:
        got = by_arn.get(current.arn)
        out.append(read_value(client, current) if got is None else _with_value(current, got))
    return out


def read_value(client: SecretsManagerClient, current: Current) -> Current:
    try:
        got = client.get_secret_value(SecretId=current.arn)
    except ClientError as exc:
        if error_code(exc) == "ResourceNotFoundException":
            # Created, but no version yet (or gone since ListSecrets): nothing to compare with.
            return current
        return replace(current, read_error=f"cannot read the current value ({describe_error(exc)})")
    return _with_value(current, got)


def prefetch_values(
    client: SecretsManagerClient, names: Sequence[str], executor: ThreadPoolExecutor
) -> dict[str, Any]:
    """BatchGetSecretValue by name, run while ListSecrets pages come in: a run whose secrets
    exist then reads in the listing's round trip, not one after it. Best effort: a name that
    does not exist, is scheduled for deletion, is denied or whose call failed is simply not in
    the answer, and read_values reads what the listing shows by ARN."""

    def chunk_values(chunk: Sequence[str]) -> list[Any]:
        try:
            answer = client.batch_get_secret_value(SecretIdList=list(chunk))
        except (ClientError, BotoCoreError):
            return []
        return list(answer.get("SecretValues", []))

    found: dict[str, Any] = {}
    for entries in executor.map(chunk_values, _chunks(names, BATCH_SIZE)):
        found.update((entry["Name"], entry) for entry in entries)
    return found


def read_values(
    client: SecretsManagerClient,
    currents: Iterable[Current],
    executor: ThreadPoolExecutor,
    prefetched: Mapping[str, Any] | None = None,
) -> dict[str, Current]:
    """The values of the given live secrets: from `prefetched` where it holds the same secret
    (same ARN), the rest in BatchGetSecretValue chunks run in parallel."""
    out: dict[str, Current] = {}
    live = []
    for current in currents:
        if current.deleted:
            continue
        got = (prefetched or {}).get(current.name)
        if got is not None and got.get("ARN") == current.arn:
            out[current.name] = _with_value(current, got)
        else:
            live.append(current)
    try:
        for result in executor.map(lambda chunk: _batch(client, chunk), _chunks(live, BATCH_SIZE)):
            out.update((c.name, c) for c in result)
    except (ClientError, BotoCoreError) as exc:
        raise AwsError(
            "BatchGetSecretValue",
            f"cannot read the current values ({describe_error(exc)}).",
            read_fix(exc, "secretsmanager:BatchGetSecretValue and GetSecretValue"),
        ) from None
    return out


def read_replicas(client: SecretsManagerClient, current: Current) -> Current:
    """ListSecrets does not say where a secret is replicated; DescribeSecret does."""
    try:
        answer = client.describe_secret(SecretId=current.arn)
    except ClientError as exc:
        return replace(
            current,
            read_error=f"cannot read its replicas with DescribeSecret ({describe_error(exc)})",
        )
    return replace(current, replicas=_replicas(answer.get("ReplicationStatus", [])))


def read_unlisted(
    client: SecretsManagerClient,
    prefetched: Mapping[str, Any],
    names: Iterable[str],
    executor: ThreadPoolExecutor,
) -> dict[str, Current]:
    """Secrets ListSecrets left out, as the listing lags behind new secrets by minutes: those
    BatchGetSecretValue found by name (with their values), and any other name given (without).
    DescribeSecret says what the listing would have (tags, replicas, labels), so a rerun soon
    after a create neither tries to create it again nor misses it."""

    def one(name: str) -> Current | None:
        try:
            entry = client.describe_secret(SecretId=name)
        except (ClientError, BotoCoreError):
            return None  # planned as a create, whose answer then says what is there
        got = prefetched.get(name)
        current = _from_entry(entry, client.meta.region_name)
        return _with_value(current, got) if got and got.get("ARN") == current.arn else current

    found = executor.map(one, names)
    return {c.name: c for c in found if c is not None}


def read_one(client: SecretsManagerClient, name: str) -> Current | None:
    """One secret afresh, for a create that lost a race or a retry after a transient failure."""
    try:
        entry = client.describe_secret(SecretId=name)
    except ClientError as exc:
        if error_code(exc) == "ResourceNotFoundException":
            return None
        raise
    current = _from_entry(entry, client.meta.region_name)
    return current if current.deleted else read_value(client, current)


def read_current(
    client: SecretsManagerClient,
    executor: ThreadPoolExecutor,
    *,
    prefix: str,
    valued: Sequence[str],
    unvalued: Sequence[str] = (),
    replicated: Collection[str] = (),
) -> dict[str, Current]:
    """What Secrets Manager holds under `prefix`: the values of the `valued` names, only the
    metadata of the `unvalued` ones (a rollback's, which reads no value), and the replicas of
    the `replicated` ones. Values are asked for by name while the listing runs, so that reading
    costs no round trip of its own; the listing then decides which of them are ours to use, and
    a name it lags behind is described."""
    listing = executor.submit(list_under, client, prefix)
    prefetched = prefetch_values(client, valued, executor)
    current = listing.result()
    unlisted = [n for n in valued if n not in current and n in prefetched]
    unlisted += [n for n in unvalued if n not in current]
    current.update(read_unlisted(client, prefetched, unlisted, executor))
    to_read = [current[n] for n in valued if n in current]
    current.update(read_values(client, to_read, executor, prefetched))
    # And those the listing shows replicated, so that a region the mapping dropped is seen.
    replicated = {*replicated, *(n for n in valued if n in current and current[n].replicated)}
    with_replicas = [
        current[n]
        for n in sorted(replicated)
        if n in current and not current[n].deleted and current[n].replicas is None
    ]
    current.update(
        (c.name, c) for c in executor.map(lambda c: read_replicas(client, c), with_replicas)
    )
    return current
