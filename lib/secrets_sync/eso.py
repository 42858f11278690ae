"""External Secrets Operator manifests for secrets with `k8s` in the mapping."""

from __future__ import annotations

from pathlib import Path

from .errors import InputError
from .mapping import SecretSpec
from .settings import Settings


def check(settings: Settings, specs: tuple[SecretSpec, ...]) -> None:
    """Before any AWS call: `k8s` in the mapping needs a place to write the manifests."""
    if any(s.k8s for s in specs) and settings.eso_manifests is None:
        raise InputError(
            "input `eso-manifests`",
            "the mapping asks for `k8s` manifests but no file is given for them.",
            "set `eso-manifests: k8s/external-secrets.yaml`.",
        )


def write(settings: Settings, specs: tuple[SecretSpec, ...]) -> Path | None:
    if not any(s.k8s for s in specs):
        return None
    raise NotImplementedError("being built for issue 6")
