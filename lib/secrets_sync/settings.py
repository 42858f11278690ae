"""Inputs and environment, read once into a frozen Settings; nothing below reads os.environ."""

from __future__ import annotations

import re
from collections.abc import Mapping
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any, Literal

from .errors import InputError
from .inputs import INPUTS, bad_input, raw_inputs

# Besides the inputs, two environment settings that action.yml does not offer, each read here
# alone: SECRETS_SYNC_TIMEOUT (seconds per AWS call) and SECRETS_SYNC_RETRY_MODE (for
# bench/throttle.py only).
_REPOSITORY = re.compile(r"^[A-Za-z0-9_.-]+/[A-Za-z0-9_.-]+$")
_RUN_NUMBER = re.compile(r"^[0-9]{1,20}$")
_TAG_VALUE = re.compile(r"^[A-Za-z0-9 _.:/=+\-@]*$")


@dataclass(frozen=True)
class Settings:
    mapping_text: str
    mapping_origin: str  # "input `secrets`" or the file path: where mapping errors point
    values: Mapping[str, str] = field(repr=False)
    region: str
    role_to_assume: str | None
    role_session_name: str
    role_duration_seconds: int
    audience: str
    name_prefix: str
    default_tags_text: str
    kms_key_id: str | None
    missing: Literal["fail", "skip"]
    adopt_existing: bool
    update_policy: str | None  # None: not given (replace, adopting safely)
    prune: bool
    recovery_window_days: int
    max_deletions: int
    dry_run: bool
    max_concurrency: int
    eso_manifests: Path | None
    eso_secret_store: str
    eso_secret_store_kind: str
    eso_refresh_interval: str
    repository: str
    workspace: Path
    endpoints: Mapping[str, str]
    timeout_seconds: float
    # How Secrets Manager calls are paced and retried: "paced" (limiter.py). botocore's own
    # "standard" and "adaptive" modes exist only for bench/throttle.py to measure against.
    retry_mode: Literal["paced", "standard", "adaptive"] = "paced"
    only: tuple[str, ...] = ()  # `only` patterns; empty: every secret of the mapping
    on_drift: Literal["overwrite", "skip", "fail"] = "overwrite"
    rollback: bool = False
    allowed_account_ids: tuple[str, ...] = ()  # empty: any account
    ca_bundle: Path | None = None  # a PEM file checked by load_settings
    # The audit trail: the run's URL (with its attempt) and commit, tagged on every write.
    run_url: str | None = None
    commit: str | None = None
    # GITHUB_RUN_ID and GITHUB_RUN_ATTEMPT (digits, or None): in every version token (versions.py).
    run_id: str | None = None
    run_attempt: str | None = None


def _workspace_path(name: str, text: str, workspace: Path) -> Path:
    try:
        path = (workspace / text.strip()).resolve()
    except (ValueError, OSError) as exc:  # a NUL byte, or a link loop
        raise bad_input(
            name, f"{text.strip()!r} is not a usable path ({type(exc).__name__}).", "fix the path."
        ) from None
    if not path.is_relative_to(workspace.resolve()):
        raise bad_input(
            name,
            f"{text.strip()!r} points outside the workspace.",
            "give a path inside the repository checkout.",
        )
    return path


def load_settings(env: Mapping[str, str], overrides: Mapping[str, str] | None = None) -> Settings:
    """Validate every input and the environment facts the run needs. Makes no network call."""
    raw = raw_inputs(env, overrides)
    workspace = Path(env.get("GITHUB_WORKSPACE") or ".").resolve()
    mapping_text, origin = _mapping_text(raw["secrets"], raw["secrets-file"].strip(), workspace)
    # Defaults from the environment, filled in before the checks so that they are checked too.
    raw["aws-region"] = (
        raw["aws-region"].strip()
        or env.get("AWS_REGION", "").strip()
        or env.get("AWS_DEFAULT_REGION", "").strip()
    )
    raw["role-session-name"] = raw["role-session-name"].strip() or default_session_name(env)
    fields: dict[str, Any] = {
        spec.settings_field: spec.parse(spec.name, raw[spec.name])
        for spec in INPUTS
        if spec.field != ""
    }
    if fields["eso_manifests"] is not None:
        fields["eso_manifests"] = _workspace_path(
            "eso-manifests", fields["eso_manifests"], workspace
        )
    if fields["ca_bundle"] is not None:
        fields["ca_bundle"] = _ca_bundle(fields["ca_bundle"], workspace)
    if fields["only"] and fields["prune"]:
        raise bad_input(
            "only",
            "limits the run to some secrets, and `prune: true` would then delete the rest.",
            "prune in a run without `only`, or drop `prune: true` from this one.",
        )
    if fields["rollback"] and fields["prune"]:
        raise bad_input(
            "rollback",
            "a rollback writes no value and deletes nothing; `prune: true` cannot go with it.",
            "drop `prune: true` from the rollback run.",
        )
    if fields["rollback"] and not fields["only"]:
        # A rollback undoes the last write of each secret it takes: it must be asked for by
        # name, never fall on the whole mapping because `only` was left empty.
        raise bad_input(
            "rollback",
            "a rollback needs an explicit selection, and `only` is empty.",
            "set `only` to the secrets to roll back (mapping keys or full names), or "
            '`only: "*"` to roll back every secret of the mapping.',
        )
    repository = env.get("GITHUB_REPOSITORY", "").strip()
    if not _REPOSITORY.fullmatch(repository):
        raise InputError(
            "GITHUB_REPOSITORY",
            f"{repository!r} is not OWNER/REPO.",
            "run inside GitHub Actions, or set GITHUB_REPOSITORY=owner/repo.",
        )
    return Settings(
        mapping_text=mapping_text,
        mapping_origin=origin,
        **fields,
        repository=repository,
        workspace=workspace,
        endpoints=endpoint_urls(env),
        timeout_seconds=_timeout(env),
        retry_mode=_retry_mode(env),
        run_url=run_url(env, repository),
        commit=_commit(env),
        run_id=_run_ids(env)[0],
        run_attempt=_run_ids(env)[1],
    )


def _ca_bundle(text: str, workspace: Path) -> Path:
    """The `ca-bundle` file: in the workspace, readable, and PEM certificates that OpenSSL loads
    (checked here, so that a bad file is an input error and not a failed connection)."""
    import ssl

    path = _workspace_path("ca-bundle", text, workspace)
    fix = "give the workspace path of a PEM file of CA certificates (-----BEGIN CERTIFICATE-----)."
    try:
        pem = path.read_text(encoding="ascii")
    except FileNotFoundError:
        raise bad_input(
            "ca-bundle",
            f"{text!r} does not exist in the workspace.",
            "check the path, and that the job checks out the repository (actions/checkout) "
            "or writes the file before this step.",
        ) from None
    except (OSError, UnicodeDecodeError) as exc:
        raise bad_input(
            "ca-bundle", f"{text!r} cannot be read ({type(exc).__name__}).", fix
        ) from None
    if "-----BEGIN CERTIFICATE-----" not in pem:
        raise bad_input("ca-bundle", f"{text!r} holds no PEM certificate.", fix)
    try:
        ssl.SSLContext(ssl.PROTOCOL_TLS_CLIENT).load_verify_locations(cadata=pem)
    except (ssl.SSLError, ValueError) as exc:
        reason = getattr(exc, "reason", None) or type(exc).__name__
        raise bad_input(
            "ca-bundle", f"{text!r} is not a readable PEM bundle ({reason}).", fix
        ) from None
    return path


def _mapping_text(inline: str, file_text: str, workspace: Path) -> tuple[str, str]:
    """The mapping's text and where its errors point: `secrets`, or the file `secrets-file`."""
    if inline.strip() and file_text:
        raise bad_input(
            "secrets", "both `secrets` and `secrets-file` are set.", "give only one of them."
        )
    if inline.strip():
        return inline, "secrets"
    if not file_text:
        raise bad_input(
            "secrets",
            "no mapping was given.",
            "set `secrets:` to the mapping, or `secrets-file:` to a file holding it.",
        )
    path = _workspace_path("secrets-file", file_text, workspace)
    try:
        return path.read_text(encoding="utf-8"), file_text
    except FileNotFoundError:
        raise bad_input(
            "secrets-file",
            f"{file_text!r} does not exist in the workspace.",
            "check the path, and that the job checks out the repository "
            "(actions/checkout) before this step.",
        ) from None
    except (OSError, UnicodeDecodeError) as exc:
        raise bad_input(
            "secrets-file",
            f"{file_text!r} cannot be read ({type(exc).__name__}).",
            "give a UTF-8 YAML or JSON file.",
        ) from None


def _timeout(env: Mapping[str, str]) -> float:
    """SECRETS_SYNC_TIMEOUT: seconds per AWS call (environment only, not an input)."""
    text = env.get("SECRETS_SYNC_TIMEOUT", "").strip() or "30"
    try:
        timeout = float(text)
    except ValueError:
        timeout = -1.0
    if not 0 < timeout <= 600:
        raise InputError(
            "SECRETS_SYNC_TIMEOUT",
            f"{text!r} is not a number of seconds.",
            "use a number from 1 to 600, or unset it.",
        )
    return timeout


_RETRY_MODES: dict[str, Literal["paced", "standard", "adaptive"]] = {
    "paced": "paced",
    "standard": "standard",
    "adaptive": "adaptive",
}


def _retry_mode(env: Mapping[str, str]) -> Literal["paced", "standard", "adaptive"]:
    """SECRETS_SYNC_RETRY_MODE: environment only, for bench/throttle.py to compare modes."""
    text = env.get("SECRETS_SYNC_RETRY_MODE", "").strip() or "paced"
    mode = _RETRY_MODES.get(text)
    if mode is None:
        raise InputError(
            "SECRETS_SYNC_RETRY_MODE",
            f"{text!r} is not a retry mode.",
            "unset it (it is for bench/throttle.py), or use paced, standard or adaptive.",
        )
    return mode


def default_session_name(env: Mapping[str, str]) -> str:
    """`secrets-sync-<run id>-<attempt>`: CloudTrail records it as the caller's session, so one
    query lists every call of one run. Both ids are digits, well within the 64 characters."""
    run_id, attempt = _run_ids(env)
    if run_id is None:
        return "secrets-sync"
    return f"secrets-sync-{run_id}" + (f"-{attempt}" if attempt else "")


def _run_ids(env: Mapping[str, str]) -> tuple[str | None, str | None]:
    """GITHUB_RUN_ID and GITHUB_RUN_ATTEMPT when they are what the runner sets (digits)."""
    run_id, attempt = (env.get(k, "").strip() for k in ("GITHUB_RUN_ID", "GITHUB_RUN_ATTEMPT"))
    return (
        run_id if _RUN_NUMBER.fullmatch(run_id) else None,
        attempt if _RUN_NUMBER.fullmatch(attempt) else None,
    )


def run_url(env: Mapping[str, str], repository: str) -> str | None:
    """The run's URL with its attempt, for the `secrets-sync:run` tag; None outside Actions."""
    run_id, attempt = _run_ids(env)
    if run_id is None:
        return None
    server = env.get("GITHUB_SERVER_URL", "").strip().rstrip("/") or "https://github.com"
    url = f"{server}/{repository}/actions/runs/{run_id}"
    if attempt:
        url += f"/attempts/{attempt}"
    # A URL that does not fit (an unusual server name) is left out rather than cut into a
    # wrong link.
    return url if fits_tag_value(url) else None


def fits_tag_value(text: str) -> bool:
    """AWS's rule for a tag value (API_Tag): at most 256 characters, of letters, digits,
    spaces and `_ . : / = + - @`."""
    return len(text) <= 256 and _TAG_VALUE.fullmatch(text) is not None


def _commit(env: Mapping[str, str]) -> str | None:
    sha = env.get("GITHUB_SHA", "").strip()
    return sha if re.fullmatch(r"[0-9a-f]{40}|[0-9a-f]{64}", sha) else None


def endpoint_urls(env: Mapping[str, str]) -> dict[str, str]:
    """The standard AWS_ENDPOINT_URL variables, resolved per service as the SDKs do."""
    if env.get("AWS_IGNORE_CONFIGURED_ENDPOINT_URLS", "").lower() == "true":
        return {}
    out: dict[str, str] = {}
    for service, suffix in (("secretsmanager", "SECRETS_MANAGER"), ("sts", "STS")):
        url = env.get(f"AWS_ENDPOINT_URL_{suffix}") or env.get("AWS_ENDPOINT_URL")
        if url:
            out[service] = url
    return out
