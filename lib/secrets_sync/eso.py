"""External Secrets Operator manifests for secrets with `k8s` in the mapping.

One `external-secrets.io/v1` ExternalSecret per target Kubernetes Secret (namespace + name), fed
by every AWS secret that names it: JSON secrets through `dataFrom[].extract`, plain-string and
binary secrets through `data[].remoteRef` under their source name (a template's or a generated
one's: the last part of its mapping key). The manifests are a pure function of the mapping and
the eso-* inputs: they hold names only, never a value, and do not depend on what the run found
in AWS, so a dry run writes the same file as a real one."""

from __future__ import annotations

import os
import re
import tempfile
from collections.abc import Callable, Iterable, Sequence
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import yaml

from . import ownership
from .errors import InputError, SecretsSyncError
from .mapping import K8sTarget, SecretSpec
from .settings import Settings

API_VERSION = "external-secrets.io/v1"
KIND = "ExternalSecret"
MANAGED_BY_LABEL = ("app.kubernetes.io/managed-by", "secrets-sync")
REPOSITORY_ANNOTATION = "secrets-sync/repository"

# The ExternalSecret CRD's pattern for target.name (a DNS-1123 subdomain), stricter than the
# mapping schema's (which lets "a..b" through), and the Kubernetes rule for Secret data keys.
_DNS_SUBDOMAIN = re.compile(r"^[a-z0-9]([-a-z0-9]*[a-z0-9])?(\.[a-z0-9]([-a-z0-9]*[a-z0-9])?)*$")
_SECRET_KEY = re.compile(r"^[-._a-zA-Z0-9]{1,253}$")
_CONTROL = re.compile(r"[\x00-\x1f\x7f]")


@dataclass(frozen=True)
class _Feed:
    """One AWS secret feeding a Kubernetes Secret, and the keys it brings there."""

    spec: SecretSpec
    keys: tuple[str, ...]


def _keys(spec: SecretSpec) -> tuple[str, ...]:
    """The keys an AWS secret brings into its Kubernetes Secret."""
    if not spec.is_json:
        return (_single(spec),)
    return spec.key_names


def _single(spec: SecretSpec) -> str:
    """The Kubernetes key of a plain-string or binary secret: its source's name; a template's or
    a generated one's, which no source names, is the end of its mapping key (`app/db-url`:
    db-url)."""
    if spec.template is not None or spec.generate is not None:
        return spec.key.rsplit("/", 1)[-1]
    source = spec.value_source or spec.binary_source
    assert source is not None
    return source


def _targets(specs: Iterable[SecretSpec]) -> dict[K8sTarget, list[SecretSpec]]:
    """Target -> the specs that feed it, targets sorted by (namespace, name), feeds by name."""
    found: dict[K8sTarget, list[SecretSpec]] = {}
    for spec in specs:
        if spec.k8s is not None:
            found.setdefault(spec.k8s, []).append(spec)
    return {
        target: sorted(found[target], key=lambda s: s.name)
        for target in sorted(found, key=lambda t: (t.namespace, t.secret))
    }


def _place(settings: Settings, spec: SecretSpec, *rest: str) -> str:
    return ".".join((settings.mapping_origin, spec.key, *rest))


def check(settings: Settings, specs: Sequence[SecretSpec]) -> None:
    """Before any AWS call: everything that would make the manifests wrong or unusable.

    Two AWS secrets that would put the same key into one Kubernetes Secret are an error here:
    ESO would merge them and silently keep only one value, so the cluster would not hold what
    the mapping says."""
    targets = _targets(specs)
    if not targets:
        return
    if settings.eso_manifests is None:
        raise InputError(
            "input `eso-manifests`",
            "the mapping asks for `k8s` manifests but no file is given for them.",
            "set `eso-manifests: k8s/external-secrets.yaml`.",
        )
    if settings.eso_manifests.is_dir():
        raise InputError(
            "input `eso-manifests`",
            "names a directory, not a file.",
            "give a file path such as `k8s/external-secrets.yaml`.",
        )
    if not _DNS_SUBDOMAIN.fullmatch(settings.eso_secret_store):
        raise InputError(
            "input `eso-secret-store`",
            f"{settings.eso_secret_store!r} is not a name ESO accepts for a secret store.",
            "use lower-case letters, digits and '-', with '.' only between two of those.",
        )
    # Found now, not after the secrets are written: a file where a directory must go.
    blocked = next((p for p in settings.eso_manifests.parents if p.is_file()), None)
    if blocked is not None:
        raise InputError(
            "input `eso-manifests`",
            f"cannot go below {blocked.name!r}, which is a file.",
            "give a path whose directories are directories (or do not exist yet).",
        )
    for target, feeds in targets.items():
        where = f"{target.namespace}/{target.secret}"
        if not _DNS_SUBDOMAIN.fullmatch(target.secret):
            raise InputError(
                _place(settings, feeds[0], "k8s", "secret"),
                f"{target.secret!r} is not a Kubernetes Secret name.",
                "use lower-case letters, digits and '-', with '.' only between two of those.",
            )
        owner: dict[str, SecretSpec] = {}
        for spec in feeds:
            for key in _keys(spec):
                named = spec.template is not None or spec.generate is not None
                if named and not _SECRET_KEY.fullmatch(key):
                    field = "template" if spec.template is not None else "generate"
                    raise InputError(
                        _place(settings, spec, "k8s"),
                        f"{key!r}, the end of this secret's name, cannot be a key of the "
                        f"Kubernetes Secret {where}.",
                        "name the secret with letters, digits, '-', '_' and '.' after its "
                        f"last '/', or use `keys: {{KEY: {{{field}: ...}}}}` to choose the key.",
                    )
                if spec.is_json and not _SECRET_KEY.fullmatch(key):
                    raise InputError(
                        _place(settings, spec, "keys", key),
                        f"{key!r} cannot be a key of the Kubernetes Secret {where}.",
                        "use 1 to 253 characters of letters, digits, '-', '_' and '.'; "
                        "rename it with `keys: {NEW_KEY: SOURCE}`.",
                    )
                first = owner.setdefault(key, spec)
                if first is not spec:
                    raise InputError(
                        _place(settings, spec, "k8s"),
                        f"the Kubernetes Secret {where} would get the key {key!r} from both "
                        f"{first.name!r} and {spec.name!r}; External Secrets Operator would "
                        "keep only one of them.",
                        "rename the key in one of them (`keys: {NEW_KEY: SOURCE}`), or send "
                        "one to another Kubernetes Secret.",
                    )


def manifests(
    specs: Iterable[SecretSpec],
    *,
    store: str,
    store_kind: str,
    refresh_interval: str,
    repository: str,
) -> list[dict[str, Any]]:
    """The ExternalSecret objects, in a stable order. Names only: no value ever reaches here."""
    out: list[dict[str, Any]] = []
    for target, feeds in _targets(specs).items():
        spec: dict[str, Any] = {
            "refreshInterval": refresh_interval,
            "secretStoreRef": {"name": store, "kind": store_kind},
            "target": {"name": target.secret, "creationPolicy": "Owner"},
        }
        # No `property`: ESO then brings the whole value, a SecretBinary's bytes as they are.
        data = [
            {"secretKey": _single(s), "remoteRef": {"key": s.name}} for s in feeds if not s.is_json
        ]
        data_from = [{"extract": {"key": s.name}} for s in feeds if s.is_json]
        if data:
            spec["data"] = data
        if data_from:
            spec["dataFrom"] = data_from
        out.append(
            {
                "apiVersion": API_VERSION,
                "kind": KIND,
                "metadata": {
                    "name": target.secret,
                    "namespace": target.namespace,
                    "labels": {MANAGED_BY_LABEL[0]: MANAGED_BY_LABEL[1]},
                    "annotations": {REPOSITORY_ANNOTATION: repository},
                },
                "spec": spec,
            }
        )
    return out


class _Dumper(yaml.SafeDumper):
    """Safe YAML with lists indented under their key, as kubectl and most linters write it."""

    def increase_indent(self, flow: bool = False, indentless: bool = False) -> None:
        super().increase_indent(flow, False)


def render(docs: Sequence[dict[str, Any]], origin: str) -> str:
    """Multi-document YAML under a header that says where it came from."""
    source = "the `secrets` input" if origin == "secrets" else f"`{_CONTROL.sub('?', origin)}`"
    header = (
        f"# Generated by secrets-sync from {source}.\n"
        "# Each run rewrites this file: change the mapping, not this file. These ExternalSecrets\n"
        "# (External Secrets Operator) hold names only, never a secret value.\n"
    )
    body = yaml.dump_all(
        docs,
        Dumper=_Dumper,
        explicit_start=True,
        sort_keys=False,
        default_flow_style=False,
        allow_unicode=False,
        width=4096,
    )
    return header + body


def write(
    settings: Settings, specs: Sequence[SecretSpec], warn: Callable[[str], None]
) -> Path | None:
    """Write the manifests; return their path relative to the workspace (the same for later
    steps on the runner as inside the action's container), or None when no secret has `k8s`.
    The file and the directories made for it go to the workspace's owner (ownership.py); a
    path that cannot is a warning, through `warn`."""
    docs = manifests(
        specs,
        store=settings.eso_secret_store,
        store_kind=settings.eso_secret_store_kind,
        refresh_interval=settings.eso_refresh_interval,
        repository=settings.repository,
    )
    if not docs:
        return None
    check(settings, specs)
    path = settings.eso_manifests
    assert path is not None  # check() made sure
    text = render(docs, settings.mapping_origin)
    created = ownership.missing_dirs(path.parent, settings.workspace)
    try:
        path.parent.mkdir(parents=True, exist_ok=True)
        # Write beside the target and rename over it: a reader never sees half a file.
        fd, tmp = tempfile.mkstemp(prefix=f".{path.name}.", suffix=".tmp", dir=path.parent)
        try:
            with os.fdopen(fd, "w", encoding="utf-8", newline="\n") as handle:
                handle.write(text)
            os.chmod(tmp, 0o644)
            os.replace(tmp, path)
        except BaseException:
            Path(tmp).unlink(missing_ok=True)
            raise
    except OSError as exc:
        raise SecretsSyncError(
            "input `eso-manifests`",
            f"cannot write the manifests ({type(exc).__name__}: {exc.strerror or 'error'}).",
            "give a writable path inside the workspace.",
        ) from None
    workspace = settings.workspace
    owner = ownership.Owner.of(workspace)
    given = ownership.to_hand_over(
        [*created, path], workspace=workspace, owner=owner, euid=os.geteuid()
    )
    for warning in ownership.hand_over(
        given, owner, name=lambda p: p.relative_to(workspace).as_posix()
    ):
        warn(warning)
    try:
        return path.relative_to(settings.workspace)
    except ValueError:
        return path
