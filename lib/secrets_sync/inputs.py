"""The action's inputs, declared once: action.yml, the CLI flags, the README table and the checks
of load_settings come from (or are tested against) INPUTS."""

from __future__ import annotations

import json
import re
from collections.abc import Callable, Mapping
from dataclasses import dataclass
from typing import Any

from .errors import InputError
from .selection import parse_only

# A check reads one input's text (its default already applied) and returns the typed value, or
# raises InputError naming the input: (input name, text) -> value.
Parse = Callable[[str, str], Any]


def bad_input(name: str, problem: str, fix: str) -> InputError:
    return InputError(f"input `{name}`", problem, fix)


def as_is(name: str, text: str) -> str:
    """Text read later (the mapping, the default tags), where its own errors are given."""
    return text


def optional(name: str, text: str) -> str | None:
    return text.strip() or None


_BOOL = {"true": True, "True": True, "TRUE": True, "false": False, "False": False, "FALSE": False}


def boolean(name: str, text: str) -> bool:
    """`true` or `false` (the spellings YAML 1.2 knows); the CLI takes these as bare flags."""
    word = text.strip()
    if word not in _BOOL:
        raise bad_input(name, f"{word!r} is not a boolean.", "use `true` or `false`.")
    return _BOOL[word]


def whole(low: int, high: int) -> Parse:
    """A whole number from `low` to `high`."""

    def parse(name: str, text: str) -> int:
        digits, fix = text.strip(), f"use a number from {low} to {high}."
        if not re.fullmatch(r"[0-9]+", digits):
            raise bad_input(name, f"{digits!r} is not a whole number.", fix)
        if not low <= int(digits) <= high:
            raise bad_input(name, f"{int(digits)} is out of range.", fix)
        return int(digits)

    return parse


@dataclass(frozen=True)
class Choice:
    """One of a few words; with `empty_ok`, empty text means "not given" (None)."""

    options: tuple[str, ...]
    what: str = "a choice"
    empty_ok: bool = False

    def __call__(self, name: str, text: str) -> str | None:
        word = text.strip()
        if self.empty_ok and not word:
            return None
        if word not in self.options:
            *rest, last = (f"`{o}`" for o in self.options)
            fix = f"use {', '.join(rest)} or {last}" + (
                " (or leave it empty)." if self.empty_ok else "."
            )
            raise bad_input(name, f"{word!r} is not {self.what}.", fix)
        return word


def matching(
    pattern: str,
    what: str,
    fix: str,
    *,
    max_length: int | None = None,
    empty: tuple[str, str] | None = None,
    empty_is_none: bool = False,
) -> Parse:
    """Text that matches a pattern (ASCII: \\d and \\w must not match other scripts' digits and
    letters, which AWS refuses). `empty` is the (problem, fix) of empty text, when that is an
    error of its own; `empty_is_none` makes empty text mean "not given"."""
    regex = re.compile(pattern, re.ASCII)

    def parse(name: str, text: str) -> str | None:
        word = text.strip()
        if not word and empty is not None:
            raise bad_input(name, *empty)
        if not word and empty_is_none:
            return None
        if not regex.fullmatch(word) or (max_length is not None and len(word) > max_length):
            raise bad_input(name, f"{word!r} is not {what}.", fix)
        return word

    return parse


def _audience(name: str, text: str) -> str:
    if not text.strip():
        raise bad_input(name, "is empty.", "leave it out to use sts.amazonaws.com.")
    return text.strip()


def account_ids(name: str, text: str) -> tuple[str, ...]:
    """AWS account IDs, separated by commas or newlines; empty: no guard."""
    words = [w.strip() for w in re.split(r"[,\n]", text) if w.strip()]
    for word in words:
        if not re.fullmatch(r"[0-9]{12}", word, re.ASCII):
            raise bad_input(
                name,
                f"{word!r} is not an AWS account ID.",
                "give 12-digit account IDs, separated by commas or newlines.",
            )
    return tuple(dict.fromkeys(words))


def parse_values(text: str) -> dict[str, str]:
    """The `values` input: a JSON object of strings. Errors name keys, never values."""

    def no_duplicates(pairs: list[tuple[str, object]]) -> dict[str, object]:
        seen: dict[str, object] = {}
        for key, value in pairs:
            if key in seen:
                raise bad_input("values", f"key {key!r} appears twice.", "give each source once.")
            seen[key] = value
        return seen

    fix = "pass a JSON object, e.g. `${{ toJSON(secrets) }}` or a step's JSON output."
    try:
        data = json.loads(text or "{}", object_pairs_hook=no_duplicates)
    except json.JSONDecodeError as exc:
        # The message of JSONDecodeError quotes no input, only the position.
        raise bad_input(
            "values", f"not valid JSON (line {exc.lineno}, column {exc.colno}: {exc.msg}).", fix
        ) from None
    except (ValueError, RecursionError) as exc:
        # A number too long to convert, or nesting too deep: said by kind, never quoted.
        raise bad_input("values", f"not valid JSON ({type(exc).__name__}).", fix) from None
    if not isinstance(data, dict):
        raise bad_input(
            "values",
            f"is a JSON {type(data).__name__}, not an object.",
            'pass a JSON object such as {"NAME": "value"}.',
        )
    for key, value in data.items():
        if not isinstance(value, str):
            raise bad_input(
                "values",
                f"the value of {key!r} is not a string.",
                "give every source value as a JSON string.",
            )
        if not is_text(value):
            raise bad_input(
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


@dataclass(frozen=True)
class Input:
    """One action input: its action.yml entry, CLI flag and README row, and its check."""

    name: str
    default: str | None
    description: str
    parse: Parse = as_is
    # The Settings field it fills; "" for the inputs load_settings reads together (`secrets`
    # and `secrets-file`: one mapping from either).
    field: str | None = None

    @property
    def env_name(self) -> str:
        # The runner keeps hyphens: input `name-prefix` arrives as INPUT_NAME-PREFIX.
        return "INPUT_" + self.name.replace(" ", "_").upper()

    @property
    def settings_field(self) -> str:
        return self.name.replace("-", "_") if self.field is None else self.field

    @property
    def is_boolean(self) -> bool:
        """A boolean input is a bare flag on the command line (`--dry-run`)."""
        return self.parse is boolean


INPUTS: tuple[Input, ...] = (
    Input(
        "secrets",
        None,
        "The mapping of secret names to source names, inline YAML or JSON. "
        "One of `secrets` or `secrets-file` is required.",
        field="",
    ),
    Input(
        "secrets-file",
        None,
        "Path, relative to the workspace, of a YAML or JSON file holding the mapping.",
        field="",
    ),
    Input(
        "values",
        "{}",
        "JSON object of source values, e.g. another step's output. A source "
        "name not in it is looked up in the step's `env:`.",
        lambda name, text: parse_values(text),
    ),
    Input(
        "aws-region",
        None,
        "AWS region. Defaults to `AWS_REGION`, then `AWS_DEFAULT_REGION`.",
        # load_settings fills in the environment's region before this check.
        matching(
            r"[a-z]{2}(-[a-z]+)+-\d{1,2}",
            "an AWS region name",
            "use a region code such as `us-east-1`.",
            empty=(
                "no region is set.",
                "add `aws-region: us-east-1` (your region) under `with:`, or set AWS_REGION.",
            ),
        ),
        field="region",
    ),
    Input(
        "role-to-assume",
        None,
        "ARN of the IAM role to assume with GitHub's OIDC token (or "
        "with ambient credentials when no OIDC token is available).",
        matching(
            r"arn:aws[a-z-]*:iam::\d{12}:role/[\w+=,.@/-]{1,512}",
            "an IAM role ARN",
            "use the form arn:aws:iam::123456789012:role/NAME.",
            empty_is_none=True,
        ),
    ),
    Input(
        "role-session-name",
        "",
        "Session name of the assumed role. Empty: `secrets-sync-<run id>-<attempt>` "
        "(`secrets-sync` outside Actions), so CloudTrail ties every call to its run.",
        # load_settings fills in the run's name before this check.
        matching(
            r"[\w+=,.@-]{2,64}",
            "a valid session name",
            "use 2 to 64 characters of letters, digits and _+=,.@-.",
        ),
    ),
    Input(
        "role-duration-seconds",
        "900",
        "Lifetime of the role session, 900 to 43200 seconds.",
        whole(900, 43200),
    ),
    Input(
        "audience",
        "sts.amazonaws.com",
        "Audience of the OIDC token.",
        _audience,
    ),
    Input(
        "allowed-account-ids",
        "",
        "AWS account IDs (comma- or newline-separated) the credentials must belong to; the run "
        "stops before any Secrets Manager call when they belong to another. Empty: any account.",
        account_ids,
    ),
    Input(
        "ca-bundle",
        "",
        "Workspace path of a PEM file of CA certificates to trust besides the public roots, "
        "for GitHub's token service and AWS (a TLS-inspecting proxy, a private endpoint).",
        optional,  # load_settings resolves it inside the workspace and reads it
    ),
    Input(
        "name-prefix",
        "",
        "Prepended to every mapping key to form the secret name.",
        matching(
            r"[A-Za-z0-9/_+=.@-]*",
            "a valid secret name prefix",
            "use at most 511 characters of A-Z a-z 0-9 / _ + = . @ -.",
            max_length=511,
        ),
    ),
    Input(
        "default-tags",
        "{}",
        "YAML or JSON mapping of tags for every secret; per-secret `tags` win.",
        field="default_tags_text",  # read with the mapping, by its YAML loader
    ),
    Input(
        "kms-key-id",
        None,
        "KMS key of every secret: used at create, and applied to an existing secret whose key "
        "differs (per-secret `kms-key-id` wins). Unset: new secrets get the account's "
        "`aws/secretsmanager` key and existing ones keep theirs.",
        optional,
    ),
    Input(
        "missing",
        "fail",
        "A source value that is absent or empty: `fail` (nothing is "
        "written) or `skip` (that secret is left untouched and reported).",
        Choice(("fail", "skip")),
    ),
    Input(
        "adopt-existing",
        "true",
        "Take over an existing secret that lacks the secrets-sync "
        "tags (tag it, update its value). `false`: report it as a conflict.",
        boolean,
    ),
    Input(
        "update-policy",
        "",
        "How an existing secret's value is changed, for secrets without their own "
        "`update-policy`: `replace`, `if-not-exists` or `merge`. Empty (the default): `replace`, "
        "but a secret not yet managed whose JSON holds keys the mapping does not name is a "
        "conflict; `replace` given explicitly drops those keys.",
        Choice(("replace", "if-not-exists", "merge"), "a policy", empty_ok=True),
    ),
    Input(
        "prune",
        "false",
        "Delete secrets under `name-prefix` that this repository's syncs "
        "manage and that are no longer in the mapping.",
        boolean,
    ),
    Input(
        "recovery-window-days",
        "7",
        "Recovery window of pruned secrets, 7 to 30 days.",
        whole(7, 30),
    ),
    Input(
        "max-deletions",
        "10",
        "A prune that would delete more secrets than this fails without deleting any.",
        whole(0, 100000),
    ),
    Input("dry-run", "false", "Compute and report the plan; make no write call.", boolean),
    Input("max-concurrency", "8", "Parallel AWS calls, 1 to 64.", whole(1, 64)),
    Input(
        "eso-manifests",
        None,
        "Workspace path of a file to write External Secrets Operator "
        "manifests to, for secrets with `k8s` in the mapping.",
        optional,  # load_settings resolves it inside the workspace
    ),
    Input(
        "eso-secret-store",
        "aws-secrets-manager",
        "Name of the ESO secret store the manifests refer to.",
        matching(
            r"[a-z0-9]([-a-z0-9.]{0,251}[a-z0-9])?",
            "a Kubernetes object name",
            "use lower-case letters, digits, '-' and '.'.",
        ),
    ),
    Input(
        "eso-secret-store-kind",
        "ClusterSecretStore",
        "`ClusterSecretStore` or `SecretStore`.",
        Choice(("ClusterSecretStore", "SecretStore"), "a store kind"),
    ),
    Input(
        "eso-refresh-interval",
        "1h",
        "`refreshInterval` of the ExternalSecrets.",
        matching(
            r"0|(\d+(\.\d+)?(ns|us|µs|ms|s|m|h))+",
            "a duration",
            "use a Go duration such as `1h`, `15m` or `30s`.",
        ),
    ),
    Input(
        "only",
        "",
        "Limit the run (sync or rollback) to these secrets: mapping keys or full names, "
        "separated by newlines or commas, `*` globs (`*` alone: every secret). A rollback "
        "needs it. Not with `prune: true`.",
        lambda name, text: parse_only(text),
    ),
    Input(
        "on-drift",
        "overwrite",
        "A secret of this repository whose current value was written outside secrets-sync and "
        "differs from GitHub's in what the mapping owns (also a prune candidate written "
        "outside): `overwrite` (write GitHub's value, or prune it, and warn), `skip` (leave "
        "it, report it skipped) or `fail` (leave it, report it failed).",
        Choice(("overwrite", "skip", "fail")),
    ),
    Input(
        "rollback",
        "false",
        "Instead of syncing, make the previous version (AWSPREVIOUS) current again for each "
        "secret selected by `only` (required; `*` for all), when secrets-sync wrote both it "
        "and the current one and it is the older. Writes no value.",
        boolean,
    ),
)


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
