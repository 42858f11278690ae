"""Inputs and environment, read once into a frozen Settings; nothing below reads os.environ."""

from __future__ import annotations

import json
import re
from collections.abc import Mapping
from dataclasses import dataclass, field
from pathlib import Path
from typing import Literal

from .errors import InputError


@dataclass(frozen=True)
class Input:
    """One action input: action.yml, the CLI flag, the README row and the default come from here."""

    name: str
    default: str | None
    description: str

    @property
    def env_name(self) -> str:
        # The runner keeps hyphens: input `name-prefix` arrives as INPUT_NAME-PREFIX.
        return "INPUT_" + self.name.replace(" ", "_").upper()


INPUTS: tuple[Input, ...] = (
    Input(
        "secrets",
        None,
        "The mapping of secret names to source names, inline YAML or JSON. "
        "One of `secrets` or `secrets-file` is required.",
    ),
    Input(
        "secrets-file",
        None,
        "Path, relative to the workspace, of a YAML or JSON file holding the mapping.",
    ),
    Input(
        "values",
        "{}",
        "JSON object of source values, e.g. another step's output. A source "
        "name not in it is looked up in the step's `env:`.",
    ),
    Input("aws-region", None, "AWS region. Defaults to `AWS_REGION`, then `AWS_DEFAULT_REGION`."),
    Input(
        "role-to-assume",
        None,
        "ARN of the IAM role to assume with GitHub's OIDC token (or "
        "with ambient credentials when no OIDC token is available).",
    ),
    Input(
        "role-session-name",
        "",
        "Session name of the assumed role. Empty: `secrets-sync-<run id>-<attempt>` "
        "(`secrets-sync` outside Actions), so CloudTrail ties every call to its run.",
    ),
    Input("role-duration-seconds", "900", "Lifetime of the role session, 900 to 43200 seconds."),
    Input("audience", "sts.amazonaws.com", "Audience of the OIDC token."),
    Input("name-prefix", "", "Prepended to every mapping key to form the secret name."),
    Input(
        "default-tags",
        "{}",
        "YAML or JSON mapping of tags for every secret; per-secret `tags` win.",
    ),
    Input(
        "kms-key-id",
        None,
        "KMS key for new secrets (per-secret `kms-key-id` wins). "
        "Defaults to the account's `aws/secretsmanager` key.",
    ),
    Input(
        "missing",
        "fail",
        "A source value that is absent or empty: `fail` (nothing is "
        "written) or `skip` (that secret is left untouched and reported).",
    ),
    Input(
        "adopt-existing",
        "true",
        "Take over an existing secret that lacks the secrets-sync "
        "tags (tag it, update its value). `false`: report it as a conflict.",
    ),
    Input(
        "update-policy",
        "",
        "How an existing secret's value is changed, for secrets without their own "
        "`update-policy`: `replace`, `if-not-exists` or `merge`. Empty (the default): `replace`, "
        "but a secret not yet managed whose JSON holds keys the mapping does not name is a "
        "conflict; `replace` given explicitly drops those keys.",
    ),
    Input(
        "prune",
        "false",
        "Delete secrets under `name-prefix` that this repository's syncs "
        "manage and that are no longer in the mapping.",
    ),
    Input("recovery-window-days", "7", "Recovery window of pruned secrets, 7 to 30 days."),
    Input(
        "max-deletions",
        "10",
        "A prune that would delete more secrets than this fails without deleting any.",
    ),
    Input("dry-run", "false", "Compute and report the plan; make no write call."),
    Input("max-concurrency", "8", "Parallel AWS calls, 1 to 64."),
    Input(
        "eso-manifests",
        None,
        "Workspace path of a file to write External Secrets Operator "
        "manifests to, for secrets with `k8s` in the mapping.",
    ),
    Input(
        "eso-secret-store",
        "aws-secrets-manager",
        "Name of the ESO secret store the manifests refer to.",
    ),
    Input("eso-secret-store-kind", "ClusterSecretStore", "`ClusterSecretStore` or `SecretStore`."),
    Input("eso-refresh-interval", "1h", "`refreshInterval` of the ExternalSecrets."),
    Input(
        "only",
        "",
        "Limit the run (sync or rollback) to these secrets: mapping keys or full names, "
        "separated by newlines or commas, `*` globs. Not with `prune: true`.",
    ),
    Input(
        "on-drift",
        "overwrite",
        "A secret written outside secrets-sync since its last sync: `overwrite` (write "
        "GitHub's value, warn), `skip` (leave it, report it skipped) or `fail` (leave it, "
        "report it failed).",
    ),
    Input(
        "rollback",
        "false",
        "Instead of syncing, make the previous version (AWSPREVIOUS) current again for each "
        "selected secret this repository manages. Writes no value.",
    ),
)
INPUT_BY_NAME = {i.name: i for i in INPUTS}

_BOOL = {"true": True, "True": True, "TRUE": True, "false": False, "False": False, "FALSE": False}
# ASCII: without it \d and \w also match other scripts' digits and letters, which AWS refuses.
_REGION = re.compile(r"^[a-z]{2}(-[a-z]+)+-\d{1,2}$", re.ASCII)
_ROLE_ARN = re.compile(r"^arn:aws[a-z-]*:iam::\d{12}:role/[\w+=,.@/-]{1,512}$", re.ASCII)
_SESSION_NAME = re.compile(r"^[\w+=,.@-]{2,64}$", re.ASCII)
_PREFIX = re.compile(r"^[A-Za-z0-9/_+=.@-]*$")
_REPOSITORY = re.compile(r"^[A-Za-z0-9_.-]+/[A-Za-z0-9_.-]+$")
_K8S_NAME = re.compile(r"^[a-z0-9]([-a-z0-9.]{0,251}[a-z0-9])?$")
_RUN_NUMBER = re.compile(r"^[0-9]{1,20}$")
_TAG_VALUE = re.compile(r"^[A-Za-z0-9 _.:/=+\-@]*$")
_DURATION = re.compile(r"^(0|(\d+(\.\d+)?(ns|us|µs|ms|s|m|h))+)$", re.ASCII)


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
    # The audit trail: the run's URL (with its attempt) and commit, tagged on every write.
    run_url: str | None = None
    commit: str | None = None


def raw_inputs(
    env: Mapping[str, str], overrides: Mapping[str, str] | None = None
) -> dict[str, str]:
    """Each input's text: a CLI flag wins over INPUT_*, and an empty value means the default."""
    out: dict[str, str] = {}
    for spec in INPUTS:
        value = (overrides or {}).get(spec.name)
        if value is None:
            value = env.get(spec.env_name, "")
        if value.strip() == "" and spec.default is not None:
            value = spec.default
        out[spec.name] = value
    return out


def _bad(name: str, problem: str, fix: str) -> InputError:
    return InputError(f"input `{name}`", problem, fix)


def parse_bool(name: str, text: str) -> bool:
    try:
        return _BOOL[text.strip()]
    except KeyError:
        raise _bad(name, f"{text.strip()!r} is not a boolean.", "use `true` or `false`.") from None


def parse_int(name: str, text: str, low: int, high: int) -> int:
    stripped = text.strip()
    if not re.fullmatch(r"[0-9]+", stripped):
        raise _bad(
            name, f"{stripped!r} is not a whole number.", f"use a number from {low} to {high}."
        )
    number = int(stripped)
    if not low <= number <= high:
        raise _bad(name, f"{number} is out of range.", f"use a number from {low} to {high}.")
    return number


def _optional(text: str) -> str | None:
    return text.strip() or None


def parse_values(text: str) -> dict[str, str]:
    """The `values` input: a JSON object of strings. Errors name keys, never values."""

    def no_duplicates(pairs: list[tuple[str, object]]) -> dict[str, object]:
        seen: dict[str, object] = {}
        for key, value in pairs:
            if key in seen:
                raise _bad("values", f"key {key!r} appears twice.", "give each source once.")
            seen[key] = value
        return seen

    fix = "pass a JSON object, e.g. `${{ toJSON(secrets) }}` or a step's JSON output."
    try:
        data = json.loads(text or "{}", object_pairs_hook=no_duplicates)
    except json.JSONDecodeError as exc:
        # The message of JSONDecodeError quotes no input, only the position.
        raise _bad(
            "values", f"not valid JSON (line {exc.lineno}, column {exc.colno}: {exc.msg}).", fix
        ) from None
    except (ValueError, RecursionError) as exc:
        # A number too long to convert, or nesting too deep: said by kind, never quoted.
        raise _bad("values", f"not valid JSON ({type(exc).__name__}).", fix) from None
    if not isinstance(data, dict):
        raise _bad(
            "values",
            f"is a JSON {type(data).__name__}, not an object.",
            'pass a JSON object such as {"NAME": "value"}.',
        )
    for key, value in data.items():
        if not isinstance(value, str):
            raise _bad(
                "values",
                f"the value of {key!r} is not a string.",
                "give every source value as a JSON string.",
            )
        if not is_text(value):
            raise _bad(
                "values",
                f"the value of {key!r} is not valid Unicode text (a lone surrogate escape).",
                "give text; base64-encode binary data first.",
            )
    return data


def is_text(value: str) -> bool:
    """Whether a value can be sent as UTF-8: JSON escapes and undecodable environment bytes
    both yield lone surrogates, which no AWS call, log line or mask can carry."""
    try:
        value.encode("utf-8")
    except UnicodeEncodeError:
        return False
    return True


def _workspace_path(name: str, text: str, workspace: Path) -> Path:
    try:
        path = (workspace / text.strip()).resolve()
    except (ValueError, OSError) as exc:  # a NUL byte, or a link loop
        raise _bad(
            name, f"{text.strip()!r} is not a usable path ({type(exc).__name__}).", "fix the path."
        ) from None
    if not path.is_relative_to(workspace.resolve()):
        raise _bad(
            name,
            f"{text.strip()!r} points outside the workspace.",
            "give a path inside the repository checkout.",
        )
    return path


def load_settings(env: Mapping[str, str], overrides: Mapping[str, str] | None = None) -> Settings:
    """Validate every input and the environment facts the run needs. Makes no network call."""
    raw = raw_inputs(env, overrides)
    workspace = Path(env.get("GITHUB_WORKSPACE") or ".").resolve()

    inline, file_text = raw["secrets"], raw["secrets-file"].strip()
    if inline.strip() and file_text:
        raise _bad(
            "secrets", "both `secrets` and `secrets-file` are set.", "give only one of them."
        )
    if inline.strip():
        mapping_text, origin = inline, "secrets"
    elif file_text:
        path = _workspace_path("secrets-file", file_text, workspace)
        try:
            mapping_text = path.read_text(encoding="utf-8")
        except FileNotFoundError:
            raise _bad(
                "secrets-file",
                f"{file_text!r} does not exist in the workspace.",
                "check the path, and that the job checks out the repository "
                "(actions/checkout) before this step.",
            ) from None
        except (OSError, UnicodeDecodeError) as exc:
            raise _bad(
                "secrets-file",
                f"{file_text!r} cannot be read ({type(exc).__name__}).",
                "give a UTF-8 YAML or JSON file.",
            ) from None
        origin = file_text
    else:
        raise _bad(
            "secrets",
            "no mapping was given.",
            "set `secrets:` to the mapping, or `secrets-file:` to a file holding it.",
        )

    region = (
        raw["aws-region"].strip()
        or env.get("AWS_REGION", "").strip()
        or env.get("AWS_DEFAULT_REGION", "").strip()
    )
    if not region:
        raise _bad(
            "aws-region",
            "no region is set.",
            "add `aws-region: us-east-1` (your region) under `with:`, or set AWS_REGION.",
        )
    if not _REGION.fullmatch(region):
        raise _bad(
            "aws-region",
            f"{region!r} is not an AWS region name.",
            "use a region code such as `us-east-1`.",
        )

    role = _optional(raw["role-to-assume"])
    if role is not None and not _ROLE_ARN.fullmatch(role):
        raise _bad(
            "role-to-assume",
            f"{role!r} is not an IAM role ARN.",
            "use the form arn:aws:iam::123456789012:role/NAME.",
        )
    session_name = raw["role-session-name"].strip() or default_session_name(env)
    if not _SESSION_NAME.fullmatch(session_name):
        raise _bad(
            "role-session-name",
            f"{session_name!r} is not a valid session name.",
            "use 2 to 64 characters of letters, digits and _+=,.@-.",
        )
    audience = raw["audience"].strip()
    if not audience:
        raise _bad("audience", "is empty.", "leave it out to use sts.amazonaws.com.")

    prefix = raw["name-prefix"].strip()
    if not _PREFIX.fullmatch(prefix) or len(prefix) > 511:
        raise _bad(
            "name-prefix",
            f"{prefix!r} is not a valid secret name prefix.",
            "use at most 511 characters of A-Z a-z 0-9 / _ + = . @ -.",
        )

    missing = raw["missing"].strip()
    if missing not in ("fail", "skip"):
        raise _bad("missing", f"{missing!r} is not a choice.", "use `fail` or `skip`.")

    policy = raw["update-policy"].strip()
    if policy and policy not in ("replace", "if-not-exists", "merge"):
        raise _bad(
            "update-policy",
            f"{policy!r} is not a policy.",
            "use `replace`, `if-not-exists` or `merge` (or leave it empty).",
        )

    kind = raw["eso-secret-store-kind"].strip()
    if kind not in ("ClusterSecretStore", "SecretStore"):
        raise _bad(
            "eso-secret-store-kind",
            f"{kind!r} is not a store kind.",
            "use `ClusterSecretStore` or `SecretStore`.",
        )
    store = raw["eso-secret-store"].strip()
    if not _K8S_NAME.fullmatch(store):
        raise _bad(
            "eso-secret-store",
            f"{store!r} is not a Kubernetes object name.",
            "use lower-case letters, digits, '-' and '.'.",
        )
    interval = raw["eso-refresh-interval"].strip()
    if not _DURATION.fullmatch(interval):
        raise _bad(
            "eso-refresh-interval",
            f"{interval!r} is not a duration.",
            "use a Go duration such as `1h`, `15m` or `30s`.",
        )
    eso_text = raw["eso-manifests"].strip()
    eso_path = _workspace_path("eso-manifests", eso_text, workspace) if eso_text else None

    repository = env.get("GITHUB_REPOSITORY", "").strip()
    if not _REPOSITORY.fullmatch(repository):
        raise InputError(
            "GITHUB_REPOSITORY",
            f"{repository!r} is not OWNER/REPO.",
            "run inside GitHub Actions, or set GITHUB_REPOSITORY=owner/repo.",
        )

    on_drift = raw["on-drift"].strip()
    if on_drift not in ("overwrite", "skip", "fail"):
        raise _bad(
            "on-drift", f"{on_drift!r} is not a choice.", "use `overwrite`, `skip` or `fail`."
        )
    from .selection import parse_only  # here, so that a bad pattern fails before any AWS call

    only = parse_only(raw["only"])
    rollback = parse_bool("rollback", raw["rollback"])
    prune = parse_bool("prune", raw["prune"])
    if only and prune:
        raise _bad(
            "only",
            "limits the run to some secrets, and `prune: true` would then delete the rest.",
            "prune in a run without `only`, or drop `prune: true` from this one.",
        )
    if rollback and prune:
        raise _bad(
            "rollback",
            "a rollback writes no value and deletes nothing; `prune: true` cannot go with it.",
            "drop `prune: true` from the rollback run.",
        )

    timeout_text = env.get("SECRETS_SYNC_TIMEOUT", "").strip() or "30"
    try:
        timeout = float(timeout_text)
    except ValueError:
        timeout = -1.0
    if not 0 < timeout <= 600:
        raise InputError(
            "SECRETS_SYNC_TIMEOUT",
            f"{timeout_text!r} is not a number of seconds.",
            "use a number from 1 to 600, or unset it.",
        )

    mode_text = env.get("SECRETS_SYNC_RETRY_MODE", "").strip() or "paced"
    retry_mode = _RETRY_MODES.get(mode_text)
    if retry_mode is None:
        raise InputError(
            "SECRETS_SYNC_RETRY_MODE",
            f"{mode_text!r} is not a retry mode.",
            "unset it (it is for bench/throttle.py), or use paced, standard or adaptive.",
        )

    return Settings(
        mapping_text=mapping_text,
        mapping_origin=origin,
        values=parse_values(raw["values"]),
        region=region,
        role_to_assume=role,
        role_session_name=session_name,
        role_duration_seconds=parse_int(
            "role-duration-seconds", raw["role-duration-seconds"], 900, 43200
        ),
        audience=audience,
        name_prefix=prefix,
        default_tags_text=raw["default-tags"],
        kms_key_id=_optional(raw["kms-key-id"]),
        missing="fail" if missing == "fail" else "skip",
        adopt_existing=parse_bool("adopt-existing", raw["adopt-existing"]),
        update_policy=policy or None,
        prune=prune,
        recovery_window_days=parse_int("recovery-window-days", raw["recovery-window-days"], 7, 30),
        max_deletions=parse_int("max-deletions", raw["max-deletions"], 0, 100000),
        dry_run=parse_bool("dry-run", raw["dry-run"]),
        max_concurrency=parse_int("max-concurrency", raw["max-concurrency"], 1, 64),
        eso_manifests=eso_path,
        eso_secret_store=store,
        eso_secret_store_kind=kind,
        eso_refresh_interval=interval,
        repository=repository,
        workspace=workspace,
        endpoints=endpoint_urls(env),
        timeout_seconds=timeout,
        retry_mode=retry_mode,
        only=only,
        on_drift="fail" if on_drift == "fail" else "skip" if on_drift == "skip" else "overwrite",
        rollback=rollback,
        run_url=run_url(env, repository),
        commit=_commit(env),
    )


_RETRY_MODES: dict[str, Literal["paced", "standard", "adaptive"]] = {
    "paced": "paced",
    "standard": "standard",
    "adaptive": "adaptive",
}


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
    # A tag value holds at most 256 characters of a limited set; a URL that does not fit
    # (an unusual server name) is left out rather than cut into a wrong link.
    return url if len(url) <= 256 and _TAG_VALUE.fullmatch(url) else None


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
