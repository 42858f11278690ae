"""moto's half of the layer (the index is in __init__.py): where moto is kinder (or stranger)
than Secrets Manager with staging labels (and in one batch read), the AWS rule, patched into the
moto server that runs in this process (tests/conftest.py and `make demo`, both through
realaws.moto_server()); and, at the end, two of moto's costs that AWS does not have, for speed.

AWS (PutSecretValue, UpdateSecretVersionStage and "Staging labels" in the Secrets Manager user
guide): a staging label is attached to one version of a secret at a time, so attaching it to a
new version removes it from the old one; when AWSCURRENT moves, AWSPREVIOUS moves to the version
it left, and that version keeps its other labels."""

from __future__ import annotations

from collections.abc import Callable, Iterator
from contextlib import contextmanager
from typing import Any, Literal

from moto import backends
from moto.secretsmanager.exceptions import InvalidParameterException
from moto.secretsmanager.models import FakeSecret, SecretsManagerBackend, SecretsStore

_CURRENT, _PREVIOUS = "AWSCURRENT", "AWSPREVIOUS"

# What becomes of the other labels of the version AWSCURRENT leaves when a new version (a plain
# PutSecretValue, or UpdateSecret with a value) is made current. The evidence conflicts, so both
# readings are modelled and the tests that depend on it run under each (tests/conftest.py,
# the `label_reading` fixture):
# - "kept": the user guide's Staging labels and API_UpdateSecretVersionStage say only that
#   AWSPREVIOUS moves to the version AWSCURRENT left; LocalStack's recordings against AWS of
#   UpdateSecretVersionStage moving AWSCURRENT (test_update_secret_version_stages_current_pending_
#   cycle_custom_stages_1 and _2, validated 2024-03-15) show that version keeping its custom labels
#   (["AWSPREVIOUS", "PUT0"]).
# - "dropped": the only recording of a plain PutSecretValue moving AWSCURRENT (LocalStack's
#   test_update_secret_version_stages_current_pending, validated 2024-03-15,
#   tests/aws/services/secretsmanager/test_secretsmanager.snapshot.json, list_secret_version_ids_
#   res_2) shows the version it left with ["AWSPREVIOUS"] alone: its AWSPENDING was dropped. moto
#   5 does the same to every label.
Reading = Literal["kept", "dropped"]
OLD_VERSION_LABELS: Reading = "kept"


@contextmanager
def reading(which: Reading) -> Iterator[None]:
    """Run the moto of this process under one reading of the labels of a left version."""
    global OLD_VERSION_LABELS
    before, OLD_VERSION_LABELS = OLD_VERSION_LABELS, which
    try:
        yield
    finally:
        OLD_VERSION_LABELS = before


def labels_move_with_a_new_version(
    self: Any, secret_version: dict[str, Any], version_id: str
) -> None:
    """API_UpdateSecretVersionStage ("Each staging label can be attached to only one version at
    a time"; "Whenever you move AWSCURRENT, Secrets Manager automatically moves the label
    AWSPREVIOUS to the version that AWSCURRENT was removed from"), as PutSecretValue applies it
    to a new version's VersionStages. The version AWSCURRENT left keeps its other labels, or
    keeps AWSPREVIOUS alone, as OLD_VERSION_LABELS says (both readings: see above). moto 5 always
    drops them, and leaves a custom label given to PutSecretValue on the old version as well.
    Replaces FakeSecret.reset_default_version."""
    moving = set(secret_version["version_stages"])
    for vid, version in self.versions.items():
        if vid != version_id:
            version["version_stages"] = [
                s for s in version["version_stages"] if s not in moving and s != _PREVIOUS
            ]
    old = self.default_version_id
    if old and old != version_id and old in self.versions:
        if OLD_VERSION_LABELS == "dropped":
            self.versions[old]["version_stages"] = []
        self.versions[old]["version_stages"].append(_PREVIOUS)
    self.versions[version_id] = secret_version
    self.default_version_id = version_id


def labels_leave_the_old_versions(self: Any, version_stages: list[str]) -> None:
    """The same rule where moto takes the labels off the other versions: only those given, and
    every one of them. Replaces FakeSecret.remove_version_stages_from_old_versions."""
    for version in self.versions.values():
        version["version_stages"] = [
            s for s in version["version_stages"] if s not in version_stages
        ]


_moto_create_replicas = FakeSecret.create_replicas


def a_replica_keeps_its_kms_key(
    self: Any, replica_regions: list[dict[str, str]], force_overwrite: bool
) -> list[Any]:
    """API_ReplicationStatusType: KmsKeyId, "Can be an ARN, Key ID, or Alias" of the replica's
    key, the one AddReplicaRegions gave it (API_ReplicaRegionType; without one, aws/secretsmanager,
    which the AWS CLI reference's describe-secret example shows as `alias/aws/secretsmanager`).
    moto reports `alias/aws/secretsmanager` for every replica, whatever key it was given.
    Replaces FakeSecret.create_replicas (and calls it)."""
    replicas = _moto_create_replicas(self, replica_regions, force_overwrite=force_overwrite)
    keys = {r["Region"]: r.get("KmsKeyId") for r in replica_regions or []}
    for replica in replicas:
        if keys.get(replica.region):
            replica.config["KmsKeyId"] = keys[replica.region]
    return list(replicas)


_moto_update_secret_version_stage = SecretsManagerBackend.update_secret_version_stage


def a_moved_label_leaves_its_holder(
    self: Any,
    secret_id: str,
    version_stage: str,
    remove_from_version_id: str,
    move_to_version_id: str,
) -> tuple[str, str]:
    """API_UpdateSecretVersionStage: "If the staging label is already attached to a different
    version of the secret, then you must also specify the RemoveFromVersionId parameter"
    (InvalidParameterException otherwise), where moto puts the label on both; and a moved
    AWSCURRENT is what GetSecretValue answers, where moto still answers the old current version.
    Replaces SecretsManagerBackend.update_secret_version_stage (and calls it)."""
    secret = self.secrets.get(secret_id)  # by name or ARN, as moto resolves them
    if secret is not None and move_to_version_id:
        holder = next(
            (v for v, ver in secret.versions.items() if version_stage in ver["version_stages"]),
            None,
        )
        if holder not in (None, move_to_version_id) and remove_from_version_id != holder:
            raise InvalidParameterException(
                f"The staging label {version_stage} is attached to version {holder}; "
                "specify it in RemoveFromVersionId."
            )
    answer = _moto_update_secret_version_stage(
        self, secret_id, version_stage, remove_from_version_id, move_to_version_id
    )
    if secret is not None and version_stage == _CURRENT and move_to_version_id:
        secret.default_version_id = move_to_version_id
    return answer


# Speed, not behaviour -------------------------------------------------------------------------
# Two costs of moto's own, with nothing like them in AWS (whose time per call bench/ models as a
# fixed latency), that made the double's CPU, not the action's, the measure of a no-op of 1,000
# secrets (docs/performance.md, "Reads at N = 1,000"). Both give the same answers as before.

_MODULES = tuple(backends.list_of_moto_modules())


def moto_modules_listed_once() -> tuple[str, ...]:
    """moto's server lists its own package directory (a stat of each of some 180 entries) for
    every request, to tell a service's name from a host name; the list cannot change while the
    server runs. Replaces moto.backends.list_of_moto_modules."""
    return _MODULES


_moto_store_get = SecretsStore.get
_moto_store_getitem = SecretsStore.__getitem__
_moto_store_contains = SecretsStore.__contains__


def _under_its_name(store: SecretsStore, key: str) -> Any:
    """The secret kept under `key` as its name: moto keys a region's secrets by name (a replica by
    its ARN), and finds one by scanning all of them, for every id of every call, so that a batch
    read of 20 among 1,000 secrets made 40,000 comparisons. A name is unique in a region and is
    never an ARN (no colon), so the secret kept under it is the one the scan would find."""
    secret = dict.get(store, key)
    return secret if secret is not None and secret.name == key else None


def store_get(self: SecretsStore, key: str) -> Any:
    found = _under_its_name(self, key)
    return found if found is not None else _moto_store_get(self, key)


def store_getitem(self: SecretsStore, key: str) -> Any:
    found = _under_its_name(self, key)
    return found if found is not None else _moto_store_getitem(self, key)


def store_contains(self: SecretsStore, key: str) -> bool:
    return _under_its_name(self, key) is not None or _moto_store_contains(self, key)


# What install() sets: (moto's class or module, its attribute, ours). PATCHES are the layer's
# rules (each in the index, __init__.py); SPEED changes no answer.
PATCHES: tuple[tuple[object, str, Callable[..., Any]], ...] = (
    (FakeSecret, "create_replicas", a_replica_keeps_its_kms_key),
    (FakeSecret, "reset_default_version", labels_move_with_a_new_version),
    (FakeSecret, "remove_version_stages_from_old_versions", labels_leave_the_old_versions),
    (SecretsManagerBackend, "update_secret_version_stage", a_moved_label_leaves_its_holder),
)
SPEED: tuple[tuple[object, str, Callable[..., Any]], ...] = (
    (backends, "list_of_moto_modules", moto_modules_listed_once),
    (SecretsStore, "get", store_get),
    (SecretsStore, "__getitem__", store_getitem),
    (SecretsStore, "__contains__", store_contains),
)


def install() -> None:
    """Idempotent: the same functions every time."""
    for owner, attribute, ours in PATCHES + SPEED:
        setattr(owner, attribute, ours)
