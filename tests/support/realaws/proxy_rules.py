"""The proxy's half of the layer (the index is in __init__.py): Secrets Manager as AWS runs it,
where moto is kinder, as a model the recording proxy (tests/support/proxy.py) consults.

Each rule is a small function naming the part of the Secrets Manager API Reference (or the
evidence) it follows. A rule refuses a call before it reaches moto, with the error code AWS
documents for that operation, or changes what moto answered. moto is only ever asked
(DescribeSecret, ListSecrets, straight to it, never through the proxy) what a rule needs to know.
The messages are AWS's where it is known what AWS says; otherwise they say the same thing in
the code the operation's "Errors" section gives."""

from __future__ import annotations

import base64
import json
import threading
import time
from collections.abc import Callable
from typing import Any

import boto3
from botocore.exceptions import ClientError

from tests.support.proxy import Call

Refusal = tuple[int, str, str]  # status, error code, message
Secret = dict[str, Any] | None  # moto's DescribeSecret of the call's secret, None if none

# API_ListSecrets: "All Secrets Manager operations are eventually consistent. ListSecrets might
# not reflect changes from the last five minutes. You can get more recent information for a
# specific secret by calling DescribeSecret."
LISTING_LAG_SECONDS = 300.0
# API_TagResource, and the user guide's quotas page: at most 50 tags on a secret.
MAX_TAGS = 50
# API_CreateSecret / API_UpdateSecret: Description, "Maximum length of 2048".
MAX_DESCRIPTION = 2048
# The user guide's quotas page: 500,000 secrets per Region.
SECRETS_PER_REGION = 500_000

# Every call that changes one existing secret, named by SecretId.
_WRITES_TO_A_SECRET = frozenset(
    {
        "PutSecretValue",
        "UpdateSecret",
        "TagResource",
        "UntagResource",
        "ReplicateSecretToRegions",
        "RemoveRegionsFromReplication",
        "UpdateSecretVersionStage",
        "RotateSecret",
    }
)


def writes_to_a_planned_deletion(call: Call, secret: Secret) -> Refusal | None:
    """API_PutSecretValue, API_UpdateSecret, API_TagResource, API_UntagResource,
    API_ReplicateSecretToRegions ("Errors": InvalidRequestException, "The secret is scheduled
    for deletion."). moto refuses only UpdateSecret; the rest it takes."""
    if call.operation in _WRITES_TO_A_SECRET and secret and "DeletedDate" in secret:
        return (
            400,
            "InvalidRequestException",
            "You can't perform this operation on the secret because it was marked for deletion.",
        )
    return None


def create_over_a_planned_deletion(call: Call, secret: Secret) -> Refusal | None:
    """API_CreateSecret ("Errors": InvalidRequestException, "The secret is scheduled for
    deletion."), in AWS's words as seen in the wild (redpanda-data/console#1835). moto answers
    ResourceExistsException, as for a live secret."""
    if call.operation == "CreateSecret" and secret and "DeletedDate" in secret:
        return (
            400,
            "InvalidRequestException",
            "You can't create this secret because a secret with this name is already scheduled "
            "for deletion.",
        )
    return None


def delete_of_a_replicated_primary(call: Call, secret: Secret) -> Refusal | None:
    """API_DeleteSecret: "You can't delete a primary secret that is replicated to other Regions.
    You must first delete the replicas using RemoveRegionsFromReplication". AWS answers
    InvalidParameterException in these words (rebuy-de/aws-nuke#1127, from CloudTrail). moto 5
    refuses too; the rule keeps the suites honest whatever moto does."""
    if call.operation != "DeleteSecret" or not secret or not secret.get("ReplicationStatus"):
        return None
    regions = ", ".join(r["Region"] for r in secret["ReplicationStatus"])
    return (
        400,
        "InvalidParameterException",
        f"You can't delete secret {secret['ARN']} that still has replica regions [{regions}].",
    )


def too_many_tags(call: Call, secret: Secret) -> Refusal | None:
    """API_TagResource adds to the tags a secret has: the 50-tag limit counts them all
    ("Errors": InvalidParameterException). moto takes any number."""
    if call.operation == "TagResource":
        keys = {t["Key"] for t in (secret or {}).get("Tags", [])}
    elif call.operation == "CreateSecret":
        keys = set()
    else:
        return None
    keys |= {t["Key"] for t in call.body.get("Tags", [])}
    if len(keys) <= MAX_TAGS:
        return None
    return (
        400,
        "InvalidParameterException",
        f"A secret can have at most {MAX_TAGS} tags; this request would give it {len(keys)}.",
    )


def too_long_a_description(call: Call, secret: Secret) -> Refusal | None:
    """API_CreateSecret / API_UpdateSecret: Description is at most 2048 characters. botocore
    checks no maximum; AWS answers a ValidationException in its usual words. moto takes any."""
    if call.operation not in ("CreateSecret", "UpdateSecret"):
        return None
    if len(call.body.get("Description") or "") <= MAX_DESCRIPTION:
        return None
    return (
        400,
        "ValidationException",
        "1 validation error detected: Value at 'description' failed to satisfy constraint: "
        f"Member must have length less than or equal to {MAX_DESCRIPTION}",
    )


RULES: tuple[Callable[[Call, Secret], Refusal | None], ...] = (
    writes_to_a_planned_deletion,
    create_over_a_planned_deletion,
    delete_of_a_replicated_primary,
    too_many_tags,
    too_long_a_description,
)
_NEEDS_THE_SECRET = _WRITES_TO_A_SECRET | {"CreateSecret", "DeleteSecret"}


class RealAws:
    """The proxy's model (tests/support/proxy.py, Model). `lag` is how long a secret created
    through the proxy stays out of ListSecrets; `settle()` ends it, as five minutes would.
    `secrets_quota` stands in for the per-Region quota of secrets, to reach it in a test."""

    def __init__(self, moto_url: str, region: str, *, lag: float = LISTING_LAG_SECONDS) -> None:
        self.sm = boto3.client(
            "secretsmanager",
            region_name=region,
            endpoint_url=moto_url,
            aws_access_key_id="testing",
            aws_secret_access_key="testing",
        )
        self.lag = lag
        self.secrets_quota = SECRETS_PER_REGION
        # How BatchGetSecretValue answers a list naming a secret without a current value: AWS
        # documents a per-secret entry in Errors (True); moto fails the whole call (False). The
        # reads must hold under both, so the tests of a secret without a value run each.
        self.batch_errors_per_secret = True
        self._created: dict[str, float] = {}
        self._lock = threading.Lock()

    def settle(self) -> None:
        """The listing has caught up with every secret made so far."""
        with self._lock:
            self._created.clear()

    def refuse(self, call: Call) -> Refusal | None:
        if call.service != "secretsmanager" or call.operation not in _NEEDS_THE_SECRET:
            return None
        secret = self._describe(call.secret_id)
        for rule in RULES:
            refusal = rule(call, secret)
            if refusal is not None:
                return refusal
        return self.secrets_over_the_quota(call, secret)

    def answered(self, call: Call, payload: bytes) -> bytes:
        if call.service != "secretsmanager":
            return payload
        if call.operation == "CreateSecret":
            with self._lock:
                self._created[str(call.body["Name"])] = time.monotonic()
        if call.operation == "ListSecrets":
            return self.lagging_listing(payload)
        return payload

    def failed(self, call: Call, status: int, payload: bytes) -> tuple[int, bytes] | None:
        if call.service != "secretsmanager":
            return None
        return self.batch_reads_fail_per_secret(call, status, payload)

    def batch_reads_fail_per_secret(
        self, call: Call, status: int, payload: bytes
    ) -> tuple[int, bytes] | None:
        """API_BatchGetSecretValue: "Errors: A list of errors Secrets Manager encountered while
        attempting to retrieve individual secrets" (API_APIErrorType: SecretId, ErrorCode such
        as ResourceNotFoundException, Message), beside the SecretValues it could read. moto
        fails the whole call with ResourceNotFoundException when one named secret has no
        AWSCURRENT version (a secret created without a value); here each name is read on its
        own and the one without a value gets its entry in Errors, with the message AWS gives
        GetSecretValue for it (LocalStack's test_secret_version_not_found, validated against
        AWS 2024-06-13: "Secrets Manager can't find the specified secret value for staging
        label: AWSCURRENT"). Off (batch_errors_per_secret False), moto's reading stands."""
        if (
            not self.batch_errors_per_secret
            or call.operation != "BatchGetSecretValue"
            or not call.body.get("SecretIdList")
            or status < 400
            or json.loads(payload or b"{}").get("__type") != "ResourceNotFoundException"
        ):
            return None
        values: list[dict[str, Any]] = []
        errors: list[dict[str, str]] = []
        for secret_id in call.body["SecretIdList"]:
            try:
                got = self.sm.get_secret_value(SecretId=secret_id)
            except ClientError as exc:
                error = exc.response.get("Error", {})
                errors.append(
                    {
                        "SecretId": secret_id,
                        "ErrorCode": str(error.get("Code")),
                        "Message": str(error.get("Message")),
                    }
                )
                continue
            entry: dict[str, Any] = {
                k: got[k] for k in ("ARN", "Name", "VersionId", "VersionStages") if k in got
            }
            if "SecretString" in got:
                entry["SecretString"] = got["SecretString"]
            if "SecretBinary" in got:
                entry["SecretBinary"] = base64.b64encode(got["SecretBinary"]).decode()
            entry["CreatedDate"] = got["CreatedDate"].timestamp()
            values.append(entry)
        return 200, json.dumps({"SecretValues": values, "Errors": errors}).encode()

    def secrets_over_the_quota(self, call: Call, secret: Secret) -> Refusal | None:
        """API_CreateSecret ("Errors": LimitExceededException, "The request failed because it
        would exceed one of the Secrets Manager quotas"); the quotas page: secrets per Region."""
        if call.operation != "CreateSecret" or secret or self.secrets_quota >= SECRETS_PER_REGION:
            return None
        count = sum(len(p["SecretList"]) for p in self.sm.get_paginator("list_secrets").paginate())
        if count < self.secrets_quota:
            return None
        return (
            400,
            "LimitExceededException",
            "You have exceeded the maximum number of secrets allowed in this Region.",
        )

    def lagging_listing(self, payload: bytes) -> bytes:
        """API_ListSecrets lags (LISTING_LAG_SECONDS), and its SecretListEntry has no
        ReplicationStatus (only DescribeSecret has), where moto lists both at once. A replicated
        primary's entry names its PrimaryRegion (SecretListEntry: "The Region where Secrets
        Manager originated the secret"; the AWS CLI reference's describe-secret example shows it
        beside ReplicationStatus, its list-secrets examples leave it out of secrets not
        replicated), where moto names it only on a replica."""
        page = json.loads(payload)
        now = time.monotonic()
        with self._lock:
            recent = {n for n, at in self._created.items() if now - at < self.lag}
        region = self.sm.meta.region_name
        page["SecretList"] = [
            {
                **{k: v for k, v in entry.items() if k != "ReplicationStatus"},
                **({"PrimaryRegion": region} if entry.get("ReplicationStatus") else {}),
                **({"PrimaryRegion": entry["PrimaryRegion"]} if "PrimaryRegion" in entry else {}),
            }
            for entry in page.get("SecretList", [])
            if entry["Name"] not in recent
        ]
        return json.dumps(page).encode()

    def _describe(self, secret_id: str | None) -> Secret:
        if secret_id is None:
            return None
        try:
            found: dict[str, Any] = self.sm.describe_secret(SecretId=secret_id)
        except self.sm.exceptions.ResourceNotFoundException:
            return None
        return found
