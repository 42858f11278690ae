"""Reading what Secrets Manager holds now, with as few calls as the API allows."""

from __future__ import annotations

from collections.abc import Callable, Collection, Iterable, Iterator, Mapping, Sequence
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
    # The staging labels of that version (AWSCURRENT), as the value read gave them: fresh, for
    # versions.is_ours (a v1.1 version carries our old label here).
    version_stages: tuple[str, ...] = ()
    secret_string: str | None = field(default=None, repr=False)
    secret_binary: bytes | None = field(default=None, repr=False)
    read_error: str | None = None  # what could not be read, and why
    # The primary's region when this is a replica of a secret kept there: Secrets Manager keeps
    # it in step with its primary, tags included, and refuses writes to it here.
    replica_of: str | None = None
    # Staging labels of each labelled version: DescribeSecret's VersionIdsToStages (fresh; what
    # rollback.py reads), or ListSecrets' SecretVersionsToStages (which may lag: never trusted).
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


def listing_prefixes(prefix: str, names: Collection[str]) -> list[str]:
    """Name prefixes, each starting with `prefix`, whose listings together show every one of
    `names`: a page's worth of names (or fewer) under each where the names allow it, so that
    the listing's pages, which follow each other's NextToken, run side by side instead.

    A group of more than a page of names is split by the character after its shared prefix
    only where that does not cost more than twice the pages it needs (ten groups of a hundred,
    not a hundred groups of ten); where a name is itself the prefix of others, or the names
    spread too thin, the group is listed as one. Names not given but under one of the prefixes
    are listed too, and matter to nobody: only a prune needs everything under `prefix`, and
    lists it whole."""
    wanted = sorted({n for n in names if n.startswith(prefix)})
    out: list[str] = []

    def cover(stem: str, group: list[str]) -> None:
        while len(group) > PAGE_SIZE and stem not in group:
            children: dict[str, list[str]] = {}
            for name in group:
                children.setdefault(name[: len(stem) + 1], []).append(name)
            if len(children) == 1:
                stem = next(iter(children))  # one shared character more: no split yet
                continue
            if len(children) > 2 * -(-len(group) // PAGE_SIZE):
                break
            for child, members in children.items():
                cover(child, members)
            return
        out.append(stem)

    if wanted:
        cover(prefix, wanted)
    return out or [prefix]


def list_names(
    client: SecretsManagerClient,
    prefix: str,
    names: Collection[str] | None,
    executor: ThreadPoolExecutor,
) -> Callable[[], dict[str, Current]]:
    """Start listing: everything under `prefix` (names None), or enough of it to show each of
    `names` (listing_prefixes, their chains of pages run side by side on the executor). The
    result: a call that waits for every chain and merges what they found."""
    shards = [prefix] if names is None else listing_prefixes(prefix, names)
    chains = [executor.submit(list_under, client, shard) for shard in shards]

    def merged() -> dict[str, Current]:
        found: dict[str, Current] = {}
        for chain in chains:
            found.update(chain.result())
        return found

    return merged


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
        version_stages=tuple(got.get("VersionStages") or ()),
        secret_string=got.get("SecretString"),
        secret_binary=got.get("SecretBinary"),
    )


def _batch(client: SecretsManagerClient, chunk: Sequence[Current]) -> list[Current]:
    """Values of up to 20 secrets in one call. A secret the answer leaves out, or names in
    Errors, and every secret of a call that failed outright, is read on its own with
    GetSecretValue: a secret without a value fails the whole call on some endpoints (moto) and
    only its own entry on others (AWS documents Errors), and either way the others are read."""
    try:
        answer = client.batch_get_secret_value(SecretIdList=[c.arn for c in chunk])
    except ClientError:
        # Denied for the batch call (the role may still hold GetSecretValue), or a secret of
        # the chunk has no value: one by one, each secret's own answer says which.
        return [read_value(client, c) for c in chunk]
    by_arn = {v["ARN"]: v for v in answer.get("SecretValues", [])}
    out = []
    for current in chunk:
        got = by_arn.get(current.arn)
        out.append(read_value(client, current) if got is None else _with_value(current, got))
    return out


def read_value(client: SecretsManagerClient, current: Current) -> Current:
    """One secret's current value. A secret with no AWSCURRENT version (created without a
    value, as Terraform's aws_secretsmanager_secret is, or a create that lost its value) is
    ResourceNotFoundException to GetSecretValue: it exists and holds no value, which the plan
    then fills like any value that differs."""
    try:
        got = client.get_secret_value(SecretId=current.arn)
    except ClientError as exc:
        if error_code(exc) == "ResourceNotFoundException":
            # No version yet (or gone since ListSecrets): nothing to compare with.
            return current
        return replace(current, read_error=f"cannot read the current value ({describe_error(exc)})")
    return _with_value(current, got)


@dataclass
class Prefetched:
    """BatchGetSecretValue's answers by name: the values found, and the names it could not
    answer for (an entry in Errors, or a call that failed outright)."""

    values: dict[str, Any] = field(default_factory=dict)
    unanswered: set[str] = field(default_factory=set)


def prefetch_values(
    client: SecretsManagerClient, names: Sequence[str], executor: ThreadPoolExecutor
) -> Callable[[], Prefetched]:
    """Start BatchGetSecretValue by name, 20 names a call, the calls side by side with the
    listing's: a run whose secrets exist then reads in the listing's round trip, not one after
    it. The result: a call that waits for the answers. Best effort: a name that does not exist,
    is scheduled for deletion, is denied or whose call failed is not among the values, and
    read_values reads what the listing shows by ARN, the unanswered ones one by one."""

    def chunk_values(chunk: Sequence[str]) -> tuple[list[Any], set[str]]:
        try:
            answer = client.batch_get_secret_value(SecretIdList=list(chunk))
        except (ClientError, BotoCoreError):
            return [], set(chunk)
        failed = {str(e.get("SecretId")) for e in answer.get("Errors", [])}
        return list(answer.get("SecretValues", [])), failed

    chunks = [executor.submit(chunk_values, chunk) for chunk in _chunks(names, BATCH_SIZE)]

    def gathered() -> Prefetched:
        out = Prefetched()
        for chunk in chunks:
            entries, failed = chunk.result()
            out.values.update((entry["Name"], entry) for entry in entries)
            out.unanswered |= failed
        return out

    return gathered


def read_values(
    client: SecretsManagerClient,
    currents: Iterable[Current],
    executor: ThreadPoolExecutor,
    prefetched: Prefetched | None = None,
) -> dict[str, Current]:
    """The values of the given live secrets: from `prefetched` where it holds the same secret
    (same ARN); where the read by name could not answer for a secret, GetSecretValue; the rest
    in BatchGetSecretValue chunks by ARN. All of them run in parallel."""
    prefetched = prefetched or Prefetched()
    out: dict[str, Current] = {}
    alone, live = [], []
    for current in currents:
        if current.deleted:
            continue
        got = prefetched.values.get(current.name)
        if got is not None and got.get("ARN") == current.arn:
            out[current.name] = _with_value(current, got)
        elif current.name in prefetched.unanswered:
            alone.append(current)
        else:
            live.append(current)

    def alone_read(chunk: Sequence[Current]) -> list[Current]:
        return [read_value(client, chunk[0])]

    def batch_read(chunk: Sequence[Current]) -> list[Current]:
        return _batch(client, chunk)

    jobs: list[tuple[Callable[[Sequence[Current]], list[Current]], Sequence[Current]]] = [
        (alone_read, [c]) for c in alone
    ]
    jobs += [(batch_read, chunk) for chunk in _chunks(live, BATCH_SIZE)]
    try:
        for result in executor.map(lambda job: job[0](job[1]), jobs):
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


def describe(client: SecretsManagerClient, secret_id: str) -> Current | None:
    """One secret as DescribeSecret has it now (tags, version map, replicas), without its value;
    None if it does not exist. Any other failure is raised."""
    try:
        entry = client.describe_secret(SecretId=secret_id)
    except ClientError as exc:
        if error_code(exc) == "ResourceNotFoundException":
            return None
        raise
    return _from_entry(entry, client.meta.region_name)


def read_one(client: SecretsManagerClient, name: str) -> Current | None:
    """One secret afresh, for a create that lost a race or a retry after a transient failure."""
    current = describe(client, name)
    return current if current is None or current.deleted else read_value(client, current)


def read_current(
    client: SecretsManagerClient,
    executor: ThreadPoolExecutor,
    *,
    prefix: str,
    valued: Sequence[str],
    replicated: Collection[str] = (),
    only: Collection[str] | None = None,
) -> dict[str, Current]:
    """What Secrets Manager holds under `prefix`: the values of the `valued` names, and the
    replicas of the `replicated` ones. Everything under `prefix` is listed, or, given `only`,
    enough to show those names (list_names). The listing's chains of pages and the reads of the
    values by name go out together, none waiting for another; the listing then decides which
    answers are ours to use, and a name it lags behind is described."""
    listing = list_names(client, prefix, only, executor)
    prefetch = prefetch_values(client, valued, executor)
    current = listing()
    prefetched = prefetch()
    unlisted = [n for n in valued if n not in current and n in prefetched.values]
    current.update(read_unlisted(client, prefetched.values, unlisted, executor))
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
