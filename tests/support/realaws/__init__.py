"""Secrets Manager as AWS runs it where moto is kinder: the one test layer every suite, and
`make demo`, runs against. Two halves side by side, one index (DEVIATIONS, below):

- proxy_rules.py: rules the recording proxy (tests/support/proxy.py) consults through RealAws,
  its model: a call AWS refuses is refused before it reaches moto, and an answer AWS gives
  otherwise is changed after, or given where moto fails a call AWS answers (the `realaws` and
  `proxy` fixtures of tests/conftest.py).
- moto_patches.py: moto's staging-label handling, patched in the moto server that runs in this
  process, where a rule in front of moto cannot see what moto does inside.

moto_server() is the one way in: it installs the patches before it starts moto, so no moto of
the tests, `make demo`, `make image-test` or bench/ runs without them. Each deviation is
documented beside its code with the words of the doc it follows; the index names the doc, and
tests/test_real_aws.py holds the index to the code (every rule and patch in it, nothing else)."""

from __future__ import annotations

import logging
from collections.abc import Callable, Iterator
from contextlib import contextmanager
from dataclasses import dataclass
from typing import Any

from moto.server import ThreadedMotoServer

from tests.support.realaws import moto_patches, proxy_rules
from tests.support.realaws.proxy_rules import RealAws

__all__ = ["DEVIATIONS", "Deviation", "RealAws", "moto_server"]


@dataclass(frozen=True)
class Deviation:
    rule: Callable[..., Any]  # the proxy rule or the moto patch that models it
    doc: str  # the AWS documentation (or, where it is silent, the evidence) it follows


_LABELS = "API_UpdateSecretVersionStage; the user guide's Staging labels"
DEVIATIONS: tuple[Deviation, ...] = (
    # In the proxy: refused before moto.
    Deviation(
        proxy_rules.writes_to_a_planned_deletion,
        "API_PutSecretValue, API_UpdateSecret, API_TagResource, API_UntagResource, "
        "API_ReplicateSecretToRegions: Errors, InvalidRequestException",
    ),
    Deviation(
        proxy_rules.create_over_a_planned_deletion,
        "API_CreateSecret: Errors, InvalidRequestException (AWS's words: "
        "redpanda-data/console#1835)",
    ),
    Deviation(
        proxy_rules.delete_of_a_replicated_primary,
        "API_DeleteSecret (AWS's words: rebuy-de/aws-nuke#1127)",
    ),
    Deviation(proxy_rules.too_many_tags, "API_TagResource; the user guide's quotas: 50 tags"),
    Deviation(
        proxy_rules.too_long_a_description,
        "API_CreateSecret, API_UpdateSecret: Description, maximum length of 2048",
    ),
    Deviation(
        proxy_rules.RealAws.secrets_over_the_quota,
        "API_CreateSecret: Errors, LimitExceededException; the user guide's quotas: secrets "
        "per Region",
    ),
    # In the proxy: moto's answer changed.
    Deviation(
        proxy_rules.RealAws.lagging_listing,
        "API_ListSecrets: eventually consistent, may not reflect the last five minutes; "
        "SecretListEntry has no ReplicationStatus, and a PrimaryRegion only when replicated "
        "(AWS CLI reference: describe-secret and list-secrets examples)",
    ),
    Deviation(
        proxy_rules.RealAws.batch_reads_fail_per_secret,
        "API_BatchGetSecretValue: Errors; API_APIErrorType (a secret without a value: "
        "LocalStack's test_secret_version_not_found, validated 2024-06-13; moto's contrary "
        "test_batch_get_secret_value_missing_value is not verified against AWS, and "
        "batch_errors_per_secret=False models it)",
    ),
    # In moto itself.
    Deviation(
        moto_patches.a_replica_keeps_its_kms_key,
        "API_ReplicationStatusType: KmsKeyId; API_ReplicaRegionType; AWS CLI reference: "
        "describe-secret example",
    ),
    Deviation(
        moto_patches.labels_move_with_a_new_version,
        f"{_LABELS}. The other labels of the version AWSCURRENT leaves: kept (the docs; "
        "LocalStack's recordings of UpdateSecretVersionStage, custom_stages_1 and _2) or dropped "
        "(LocalStack's recording of a plain PutSecretValue, test_update_secret_version_stages_"
        "current_pending, validated 2024-03-15): both modelled, moto_patches.OLD_VERSION_LABELS",
    ),
    Deviation(moto_patches.labels_leave_the_old_versions, _LABELS),
    Deviation(
        moto_patches.a_moved_label_leaves_its_holder,
        "API_UpdateSecretVersionStage: RemoveFromVersionId",
    ),
)


@contextmanager
def moto_server() -> Iterator[str]:
    """moto in server mode on a free loopback port (port 0: the kernel picks one as the server
    binds, so parallel workers cannot race for it), with the patches installed; its URL."""
    logging.getLogger("werkzeug").setLevel(logging.ERROR)  # moto logs a line per request
    moto_patches.install()
    server = ThreadedMotoServer(ip_address="127.0.0.1", port=0, verbose=False)
    server.start()
    _, port = server.get_host_and_port()
    try:
        yield f"http://127.0.0.1:{port}"
    finally:
        server.stop()
