"""Where moto is kinder (or stranger) than Secrets Manager with staging labels, the AWS rule,
installed into the moto server that runs in this process (tests and `make demo`).

AWS (PutSecretValue, UpdateSecretVersionStage and "Staging labels" in the Secrets Manager user
guide): a staging label is attached to one version of a secret at a time, so attaching it to a
new version removes it from the old one; when AWSCURRENT moves, AWSPREVIOUS moves to the version
it left, and that version keeps its other labels. moto 5 instead replaces the old current
version's labels with ["AWSPREVIOUS"] (dropping a custom label such as ours, which would hide
every drift), and leaves a custom label given to PutSecretValue on the old version as well.
UpdateSecretVersionStage: moto moves AWSCURRENT but GetSecretValue still answers the old
current version; AWS requires RemoveFromVersionId when the label is on another version ("If the
staging label is already attached to a different version of the secret, then you must also
specify the RemoveFromVersionId parameter"), where moto puts the label on both."""

from __future__ import annotations

from typing import Any

from moto.secretsmanager.exceptions import InvalidParameterException
from moto.secretsmanager.models import FakeSecret, SecretsManagerBackend

_CURRENT, _PREVIOUS = "AWSCURRENT", "AWSPREVIOUS"


def _reset_default_version(self: Any, secret_version: dict[str, Any], version_id: str) -> None:
    moving = set(secret_version["version_stages"])
    for vid, version in self.versions.items():
        if vid != version_id:
            version["version_stages"] = [
                s for s in version["version_stages"] if s not in moving and s != _PREVIOUS
            ]
    old = self.default_version_id
    if old and old != version_id and old in self.versions:
        self.versions[old]["version_stages"].append(_PREVIOUS)
    self.versions[version_id] = secret_version
    self.default_version_id = version_id


def _remove_version_stages_from_old_versions(self: Any, version_stages: list[str]) -> None:
    for version in self.versions.values():
        version["version_stages"] = [
            s for s in version["version_stages"] if s not in version_stages
        ]


_moto_update_secret_version_stage = SecretsManagerBackend.update_secret_version_stage


def _update_secret_version_stage(
    self: Any,
    secret_id: str,
    version_stage: str,
    remove_from_version_id: str,
    move_to_version_id: str,
) -> tuple[str, str]:
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


def install() -> None:
    """Idempotent: the same functions every time."""
    SecretsManagerBackend.update_secret_version_stage = (  # type: ignore[method-assign]
        _update_secret_version_stage
    )
    FakeSecret.reset_default_version = _reset_default_version  # type: ignore[method-assign]
    FakeSecret.remove_version_stages_from_old_versions = (  # type: ignore[method-assign]
        _remove_version_stages_from_old_versions
    )
