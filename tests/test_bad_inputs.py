"""A corpus of bad inputs: each one must be refused before any AWS call or token request, with
exactly one error that names the place and the fix, and no traceback.

Every case runs the real entrypoint in a subprocess, with GitHub's OIDC request variables
pointed at the recording proxy and a role to assume, so a token request would be recorded."""

from __future__ import annotations

import json
from collections.abc import Mapping
from concurrent.futures import ThreadPoolExecutor
from dataclasses import dataclass, field
from pathlib import Path

import pytest

from tests.conftest import REGION
from tests.support.action import ActionRun, run_action
from tests.support.proxy import AwsProxy, Call

ROLE = "arn:aws:iam::123456789012:role/github-secrets-sync"
OIDC_TOKEN = "canary-oidc-request-token"  # the runner's bearer token for the OIDC endpoint
BIG = "x" * 65_600  # over the 65,536 bytes AWS allows in a SecretString
WIDE = "é" * 33_000  # 33,000 characters but 66,000 bytes in UTF-8


@dataclass(frozen=True)
class Case:
    inputs: Mapping[str, str]
    place: str  # the error message starts with this place
    env: Mapping[str, str] = field(default_factory=dict)
    files: Mapping[str, str | bytes] = field(default_factory=dict)
    links: Mapping[str, str] = field(default_factory=dict)  # workspace path -> target
    drop: tuple[str, ...] = ()
    mentions: str = ""  # the message also says this


def m(mapping: str, place: str, mentions: str = "", **inputs: str) -> Case:
    """A case with an inline mapping and otherwise good inputs (sources A..C have values)."""
    return Case(
        {"secrets": mapping, **inputs},
        place,
        env={"A": "a-canary-value", "B": "b-canary-value", "C": "c-canary-value"},
        mentions=mentions,
    )


def i(place_input: str, value: str, mentions: str = "") -> Case:
    """A case with a good mapping and one bad input."""
    return m("a: A", f"input `{place_input}`", mentions, **{place_input: value})


TAGS_49 = "{" + ", ".join(f"T{n}: v" for n in range(49)) + "}"
# 45 of the user's and the 6 of secrets-sync (mapping.RESERVED_TAGS) are one over 50.
TAGS_45 = "{" + ", ".join(f"T{n}: v" for n in range(45)) + "}"
TAGS_51 = "{" + ", ".join(f"T{n}: v" for n in range(51)) + "}"
DEEP = "a: " + "[" * 5000 + "]" * 5000
LAUGHS = "\n".join(
    ["l0: &l0 [A, A, A, A, A, A, A, A, A, A]"]
    + [f"l{n}: &l{n} [{', '.join([f'*l{n - 1}'] * 10)}]" for n in range(1, 9)]
)

CASES = [
    # Malformed YAML and JSON
    pytest.param(m("a: [A, B", "secrets", "line"), id="yaml-unclosed-flow"),
    pytest.param(m("a: A\n  b: B", "secrets", "line 2"), id="yaml-bad-indent"),
    pytest.param(m("\ta: A", "secrets", "line 1"), id="yaml-tab-indent"),
    pytest.param(m('a: "A', "secrets", "line"), id="yaml-unclosed-quote"),
    pytest.param(m('{"a": "A"', "secrets", "line"), id="json-unclosed-object"),
    pytest.param(m('{"a": "A"}}', "secrets", "line"), id="json-extra-brace"),
    pytest.param(m('{"a" "A"}', "secrets", "line"), id="json-missing-colon"),
    pytest.param(m("a: !!python/object/apply:os.system [id]", "secrets"), id="yaml-python-tag"),
    pytest.param(m("a: !!int zero", "secrets"), id="yaml-bad-int-tag"),
    pytest.param(m("a: !!timestamp 2024-13-45", "secrets"), id="yaml-bad-timestamp-tag"),
    pytest.param(m("a: !!int " + "9" * 5000, "secrets"), id="yaml-huge-int-tag"),
    pytest.param(m("a: !custom A", "secrets"), id="yaml-unknown-tag"),
    pytest.param(m(DEEP, "secrets"), id="yaml-deep-nesting"),
    pytest.param(m(LAUGHS, "secrets"), id="yaml-billion-laughs"),
    # Wrong shapes and unknown fields
    pytest.param(m("[a, b]", "secrets", "not a mapping"), id="mapping-is-a-list"),
    pytest.param(m("just-a-name", "secrets", "not a mapping"), id="mapping-is-a-scalar"),
    pytest.param(m("{}", "secrets", "no secrets"), id="mapping-empty-object"),
    pytest.param(m("# only a comment", "secrets", "empty"), id="mapping-only-comment"),
    pytest.param(m("a: {keys: [A], colour: red}", "secrets.a", "'colour'"), id="unknown-field"),
    pytest.param(
        m(
            "a: {keys: [A], k8s: {secret: app, cluster: x}}",
            "secrets.a.k8s",
            "'cluster'. Fix: use only secret, namespace",
        ),
        id="unknown-k8s-field",
    ),
    pytest.param(
        m("a: {keys: [A], value: B}", "secrets.a", "both `keys` and `value`"), id="keys-and-value"
    ),
    pytest.param(
        m(
            "a: {description: D}",
            "secrets.a",
            "none of `keys`, `value`, `template`, `binary` or `generate`",
        ),
        id="neither-keys-nor-value",
    ),
    pytest.param(m("a: {value: [A]}", "secrets.a.value"), id="value-is-a-list"),
    pytest.param(m("a: [[A]]", "secrets.a[0]"), id="nested-source-list"),
    pytest.param(
        m('{"a": {"value": "A", "description": "\\ud800"}}', "secrets", "surrogate"),
        id="json-lone-surrogate-escape",
    ),
    pytest.param(m("base: &b {keys: [A]}\nx: {<<: *b}", "secrets.x", "'<<'"), id="merge-key"),
    # Duplicate keys
    pytest.param(m("a: A\nb: B\na: C", "secrets", "line 3"), id="yaml-duplicate-name"),
    pytest.param(m('{"a": "A", "a": "B"}', "secrets", "'a' appears twice"), id="json-duplicate"),
    pytest.param(
        m("a: {keys: {k: A, k: B}}", "secrets", "'k' appears twice"), id="duplicate-json-key"
    ),
    pytest.param(m("? [a]\n: A", "secrets", "key"), id="yaml-complex-key"),
    # Names and JSON keys
    pytest.param(m("'bad name': A", "secrets", "'bad name'"), id="name-with-space"),
    pytest.param(m('"a\\n": A', "secrets"), id="name-trailing-newline"),
    pytest.param(m("n" * 513 + ": A", "secrets", "512"), id="name-too-long"),
    pytest.param(
        m("x" * 20 + ": A", "secrets." + "x" * 20, "prefix", **{"name-prefix": "p" * 500}),
        id="name-too-long-with-prefix",
    ),
    pytest.param(m("'': A", "secrets", "not a valid secret name"), id="name-empty"),
    pytest.param(m("a: {keys: {'': A}}", "secrets.a.keys", "JSON key"), id="json-key-empty"),
    pytest.param(
        m("a:\n  keys:\n    ? " + "k" * 1025 + "\n    : A", "secrets.a.keys", "1024"),
        id="json-key-too-long",
    ),
    # Sources
    pytest.param(m("a: ''", "secrets.a", "no source name"), id="source-empty-name"),
    pytest.param(m("a: 'not a name'", "secrets.a", "not a source name"), id="source-not-a-name"),
    pytest.param(m('a: "A\\n"', "secrets.a", "not a source name"), id="source-trailing-newline"),
    pytest.param(m("a: []", "secrets.a", "empty list"), id="source-list-empty"),
    pytest.param(m("a: [A, A]", "secrets.a", "twice"), id="source-list-duplicate"),
    pytest.param(
        m("stripe: {keys: {api_key: 'sk live'}}", "secrets.stripe.keys.api_key"),
        id="json-key-source-not-a-name",
    ),
    pytest.param(m("a: MISSING_ONE", "sources", "MISSING_ONE"), id="source-missing"),
    # Templates: the text is never quoted (a value may have been pasted into it by mistake)
    pytest.param(
        m('a: {template: "db://${A}:${NO_SUCH}@h"}', "sources", "NO_SUCH"),
        id="template-unknown-placeholder",
    ),
    pytest.param(
        m('a: {keys: {k: B, url: {template: "$NO_SUCH"}}}', "sources", "NO_SUCH"),
        id="key-template-unknown-placeholder",
    ),
    pytest.param(
        m('a: {template: "fee: $5 for ${A}"}', "secrets.a.template", "`$$` for a literal dollar"),
        id="template-lone-dollar",
    ),
    pytest.param(m('a: {template: "${A"}', "secrets.a.template", "$$"), id="template-unclosed"),
    pytest.param(
        m('a: {keys: {url: {template: "${A}$"}}}', "secrets.a.keys.url.template", "character 5"),
        id="key-template-trailing-dollar",
    ),
    pytest.param(
        m('a: {template: "${A}", value: B}', "secrets.a", "both `value` and `template`"),
        id="template-and-value",
    ),
    pytest.param(
        m('a: {template: "${A}", keys: [B]}', "secrets.a", "both `keys` and `template`"),
        id="template-and-keys",
    ),
    pytest.param(m('a: {template: ""}', "secrets.a.template", "empty"), id="template-empty"),
    pytest.param(
        m('a: {keys: {url: {template: ""}}}', "secrets.a.keys.url.template", "empty"),
        id="key-template-empty",
    ),
    pytest.param(
        m("a: {template: no-placeholder}", "secrets.a.template", "no placeholder"),
        id="template-without-placeholder",
    ),
    pytest.param(
        m('a: {keys: {url: {text: "${A}"}}}', "secrets.a.keys.url", "'text'"),
        id="key-template-unknown-field",
    ),
    pytest.param(
        Case({"secrets": "a: A"}, "sources", env={"A": ""}, mentions="A"), id="source-empty"
    ),
    pytest.param(
        Case({"secrets": "a: A"}, "env `A`", env={"A": "not-utf8-\udcff-canary"}),
        id="source-not-utf8",
    ),
    # Secret shapes and update policies
    pytest.param(
        Case({"secrets": "k: {binary: K}"}, "source `K`", env={"K": "not base64!"}),
        id="binary-not-base64",
    ),
    pytest.param(
        Case({"secrets": "k: {binary: K}"}, "source `K`", env={"K": "QR=="}, mentions="base64"),
        id="binary-base64-not-canonical",
    ),
    pytest.param(
        Case({"secrets": "k: {binary: K}"}, "source `K`", env={"K": "QUJD-_8"}),
        id="binary-base64-urlsafe-unpadded",
    ),
    pytest.param(
        Case({"secrets": "k: {binary: K}"}, "k", env={"K": "QUJD" * 22_000}, mentions="65536"),
        id="binary-oversize",
    ),
    pytest.param(m("a: {binary: A, keys: [B]}", "secrets.a", "`binary`"), id="binary-with-keys"),
    pytest.param(m("a: {binary: A, value: B}", "secrets.a", "`binary`"), id="binary-with-value"),
    pytest.param(
        m("a: {value: A, update-policy: merge}", "secrets.a.update-policy", "merge"),
        id="merge-on-plain-string",
    ),
    pytest.param(
        m("a: {binary: A, update-policy: merge}", "secrets.a.update-policy", "binary"),
        id="merge-on-binary",
    ),
    pytest.param(
        m(
            "a: [A]\nb: {value: B}",
            "input `update-policy`",
            "secrets.b",
            **{"update-policy": "merge"},
        ),
        id="merge-input-with-a-plain-string",
    ),
    pytest.param(
        m("a: {keys: [A], update-policy: overwrite}", "secrets.a.update-policy", "'overwrite'"),
        id="update-policy-unknown",
    ),
    pytest.param(i("update-policy", "Merge", "'Merge'"), id="update-policy-input-unknown"),
    # Generated values
    pytest.param(
        m("a: {generate: {}, value: A}", "secrets.a", "both `value` and `generate`"),
        id="generate-with-value",
    ),
    pytest.param(
        m("a: {generate: {}, keys: [A]}", "secrets.a", "both `keys` and `generate`"),
        id="generate-with-keys",
    ),
    pytest.param(
        m("a: {keys: {k: {generate: {}, template: '${A}'}}}", "secrets.a.keys.k", "both"),
        id="key-generate-with-template",
    ),
    pytest.param(
        m("a: {generate: {length: 0}}", "secrets.a.generate.length", "1 to 4096"),
        id="generate-length-zero",
    ),
    pytest.param(
        m("a: {generate: {length: 4097}}", "secrets.a.generate.length", "1 to 4096"),
        id="generate-length-4097",
    ),
    pytest.param(
        m("a: {keys: {k: {generate: {length: 3.5}}}}", "secrets.a.keys.k.generate.length"),
        id="generate-length-not-whole",
    ),
    pytest.param(
        m("a: {generate: {length: thirty}}", "secrets.a.generate.length", "whole number"),
        id="generate-length-word",
    ),
    pytest.param(
        m("a: {generate: {size: 32}}", "secrets.a.generate", "'size'"), id="generate-unknown"
    ),
    pytest.param(
        m("a: {generate: {exclude-numbers: yes}}", "secrets.a.generate.exclude-numbers"),
        id="generate-switch-not-boolean",
    ),
    pytest.param(
        m("a: {generate: {exclude-characters: [a]}}", "secrets.a.generate.exclude-characters"),
        id="generate-exclude-characters-list",
    ),
    pytest.param(
        m("a: {generate: '32'}", "secrets.a.generate", "GetRandomPassword"),
        id="generate-not-a-mapping",
    ),
    pytest.param(
        m(
            "a: {generate: {exclude-numbers: true, exclude-punctuation: true, "
            "exclude-uppercase: true, exclude-lowercase: true}}",
            "secrets.a.generate",
            "no character",
        ),
        id="generate-excludes-everything",
    ),
    pytest.param(
        m("a: {generate: {}, update-policy: replace}", "secrets.a.update-policy", "`replace`"),
        id="generate-with-replace",
    ),
    pytest.param(
        m("a: {keys: {k: {generate: {}}}, update-policy: merge}", "secrets.a.update-policy"),
        id="generate-key-with-merge",
    ),
    pytest.param(
        m(
            "a: [A]\nb: {generate: {}}",
            "input `update-policy`",
            "secrets.b",
            **{"update-policy": "replace"},
        ),
        id="generate-with-the-replace-input",
    ),
    pytest.param(
        Case(
            {"secrets": "a: {keys: {big: B, pw: {generate: {length: 4096}}}}"},
            "a",
            env={"B": "x" * 62_000},
            mentions="generated keys",
        ),
        id="generate-oversize-at-worst",
    ),
    # The `values` input
    pytest.param(i("values", "not json"), id="values-not-json"),
    pytest.param(i("values", '["A"]', "not an object"), id="values-array"),
    pytest.param(i("values", '"A"', "not an object"), id="values-string"),
    pytest.param(i("values", '{"A": 1}', "'A'"), id="values-number-value"),
    pytest.param(i("values", '{"A": {"x": "y"}}', "'A'"), id="values-object-value"),
    pytest.param(i("values", '{"A": "x", "A": "y"}', "twice"), id="values-duplicate-key"),
    pytest.param(i("values", '{"A": "\\ud800-canary"}', "'A'"), id="values-lone-surrogate"),
    pytest.param(i("values", '{"A": ' + "1" * 5000 + "}"), id="values-huge-number"),
    pytest.param(i("values", "[" * 50_000 + "]" * 50_000), id="values-deep-nesting"),
    # Booleans and numbers
    pytest.param(i("dry-run", "yes", "boolean"), id="bool-yes"),
    pytest.param(i("prune", "1", "boolean"), id="bool-one"),
    pytest.param(i("adopt-existing", "on", "boolean"), id="bool-on"),
    pytest.param(i("max-concurrency", "eight", "whole number"), id="int-word"),
    pytest.param(i("max-concurrency", "0", "out of range"), id="int-zero"),
    pytest.param(i("max-concurrency", "65", "out of range"), id="int-too-big"),
    pytest.param(i("max-concurrency", "-1", "whole number"), id="int-negative"),
    pytest.param(i("max-concurrency", "1e3", "whole number"), id="int-exponent"),
    pytest.param(i("max-concurrency", "\uff18", "whole number"), id="int-fullwidth-digit"),
    pytest.param(i("max-deletions", "-1", "whole number"), id="max-deletions-negative"),
    pytest.param(i("role-duration-seconds", "899", "out of range"), id="duration-too-short"),
    pytest.param(i("role-duration-seconds", "43201", "out of range"), id="duration-too-long"),
    pytest.param(i("recovery-window-days", "6", "out of range"), id="recovery-too-short"),
    pytest.param(i("recovery-window-days", "31", "out of range"), id="recovery-too-long"),
    pytest.param(i("missing", "ignore", "'ignore'"), id="missing-not-a-choice"),
    # Roles and regions
    pytest.param(i("role-to-assume", "my-role", "not an IAM role ARN"), id="role-bare-name"),
    pytest.param(
        i("role-to-assume", "arn:aws:iam::12345:role/x", "not an IAM role ARN"),
        id="role-short-account",
    ),
    pytest.param(
        i("role-to-assume", "arn:aws:iam::123456789012:user/x", "not an IAM role ARN"),
        id="role-is-a-user",
    ),
    pytest.param(
        i(
            "role-to-assume",
            "arn:aws:iam::\u0661\u0662\u0663\u0664\u0665\u0666"
            "\u0667\u0668\u0669\u0660\u0661\u0662:role/x",
            "not an IAM role ARN",
        ),
        id="role-unicode-digits",
    ),
    pytest.param(i("role-session-name", "x", "session name"), id="session-name-short"),
    # v1.1: selection, drift and rollback
    pytest.param(i("on-drift", "ignore", "overwrite"), id="on-drift-unknown"),
    pytest.param(i("rollback", "yes", "boolean"), id="rollback-not-boolean"),
    pytest.param(i("only", "nope", "'nope'"), id="only-matches-nothing"),
    pytest.param(m("a: A\nb: B", "input `only`", "'b*x'", only="a, b*x"), id="only-one-unmatched"),
    pytest.param(i("only", "a?", "'a?'"), id="only-question-mark"),
    pytest.param(i("only", "a;b", "'a;b'"), id="only-bad-characters"),
    pytest.param(m("a: A", "input `only`", "prune", only="a", prune="true"), id="only-with-prune"),
    pytest.param(
        m("a: A", "input `rollback`", "prune", rollback="true", prune="true"),
        id="rollback-with-prune",
    ),
    pytest.param(
        m("a: {keys: [A], tags: {'secrets-sync:run': x}}", "secrets.a.tags.secrets-sync:run"),
        id="tag-reserved-run",
    ),
    pytest.param(
        m("a: {keys: [A], tags: {'secrets-sync:commit': x}}", "secrets.a.tags.secrets-sync:commit"),
        id="tag-reserved-commit",
    ),
    pytest.param(i("aws-region", "US-EAST-1", "region"), id="region-upper-case"),
    pytest.param(i("aws-region", "us_east_1", "region"), id="region-underscores"),
    pytest.param(i("aws-region", "us-east-\u0661", "region"), id="region-unicode-digit"),
    pytest.param(
        Case(
            {"secrets": "a: A", "aws-region": ""},
            "input `aws-region`",
            env={"A": "a-value"},
            mentions="no region",
        ),
        id="region-none-at-all",
    ),
    # Tags
    pytest.param(m("a: {keys: [A], tags: {'aws:x': y}}", "secrets.a.tags", "aws:"), id="tag-aws"),
    pytest.param(m("a: {keys: [A], tags: {'AWS:x': y}}", "secrets.a.tags", "aws:"), id="tag-AWS"),
    pytest.param(
        m("a: {keys: [A], tags: {Team: 'aws:x'}}", "secrets.a.tags.Team", "aws:"),
        id="tag-value-aws",
    ),
    pytest.param(
        Case(
            {"secrets": "a: A", "default-tags": "Team: 'AWS:core'"},
            "input `default-tags`.Team",
            env={"A": "a-value"},
            mentions="aws:",
        ),
        id="default-tags-value-aws",
    ),
    pytest.param(m(f"a: {{keys: [A], tags: {TAGS_51}}}", "secrets.a.tags", "50"), id="tags-51"),
    pytest.param(
        m(f"a: {{keys: [A], tags: {TAGS_49}}}", "secrets.a.tags", "50"), id="tags-49-plus-ours"
    ),
    pytest.param(
        m(f"a: {{keys: [A], tags: {TAGS_45}}}", "secrets.a.tags", "6 of secrets-sync"),
        id="tags-45-plus-ours-the-audit-trail-and-the-record",
    ),
    pytest.param(
        m("a: {keys: [A], tags: {" + "K" * 129 + ": v}}", "secrets.a.tags", "128"),
        id="tag-key-too-long",
    ),
    pytest.param(
        m("a: {keys: [A], tags: {K: " + "v" * 257 + "}}", "secrets.a.tags.K", "256"),
        id="tag-value-too-long",
    ),
    pytest.param(
        m("a: {keys: [A], tags: {ManagedBy: me}}", "secrets.a.tags.ManagedBy"), id="tag-reserved"
    ),
    pytest.param(m("a: {keys: [A], tags: {K: 'a*b'}}", "secrets.a.tags.K"), id="tag-bad-char"),
    pytest.param(m('a: {keys: [A], tags: {K: "a\\tb"}}', "secrets.a.tags.K"), id="tag-tab"),
    pytest.param(m('a: {keys: [A], tags: {K: "a\\nb"}}', "secrets.a.tags.K"), id="tag-newline"),
    pytest.param(i("default-tags", "'aws:team': x", "aws:"), id="default-tags-aws"),
    pytest.param(i("default-tags", "[a, b]", "tag"), id="default-tags-list"),
    pytest.param(i("default-tags", "{a: [b]", "line"), id="default-tags-bad-yaml"),
    pytest.param(
        Case(
            {"secrets": "a: A", "default-tags": "{" + "K" * 129 + ": v}"},
            "input `default-tags`",
            env={"A": "a-value"},
            mentions="128",
        ),
        id="default-tag-key-too-long",
    ),
    # Other mapping fields
    pytest.param(
        m("a: {keys: [A], description: " + "d" * 2049 + "}", "secrets.a.description", "2048"),
        id="description-too-long",
    ),
    pytest.param(m("a: {keys: [A], kms-key-id: ''}", "secrets.a.kms-key-id"), id="kms-key-empty"),
    pytest.param(
        m("a: {keys: [A], replica-regions: [mars-1]}", "secrets.a.replica-regions[0]", "region"),
        id="replica-region-bad",
    ),
    pytest.param(
        m(
            "a: {keys: [A], replica-regions: [{region: mars-1}]}",
            "secrets.a.replica-regions[0].region",
            "region",
        ),
        id="replica-region-bad-in-object",
    ),
    pytest.param(
        m("a: {keys: [A], replica-regions: [{kms-key-id: k}]}", "secrets.a.replica-regions[0]"),
        id="replica-without-region",
    ),
    pytest.param(
        m(
            "a: {keys: [A], replica-regions: [{region: eu-west-1, kms: k}]}",
            "secrets.a.replica-regions[0]",
            "kms-key-id",
        ),
        id="replica-unknown-field",
    ),
    pytest.param(
        m(
            "a: {keys: [A], replica-regions: [eu-west-1, {region: eu-west-1, kms-key-id: k}]}",
            "secrets.a.replica-regions[1]",
            "twice",
        ),
        id="replica-region-twice",
    ),
    pytest.param(
        m(
            f"a: {{keys: [A], replica-regions: [eu-west-1, {REGION}]}}",
            "secrets.a.replica-regions[1]",
            "own region",
        ),
        id="replica-region-is-the-runs-own",
    ),
    pytest.param(
        m("a: {keys: [A], k8s: {secret: Bad_Name}}", "secrets.a.k8s.secret", "Kubernetes"),
        id="k8s-bad-name",
    ),
    pytest.param(
        m("a: {keys: [A], k8s: {secret: app}}", "input `eso-manifests`"), id="k8s-without-file"
    ),
    # Oversize secrets
    pytest.param(Case({"secrets": "big: {value: B}"}, "big", env={"B": BIG}), id="oversize"),
    pytest.param(Case({"secrets": "big: B"}, "big", env={"B": WIDE}), id="oversize-utf8"),
    # Files, prefixes and the rest of the inputs
    pytest.param(
        Case({"secrets-file": "nope.yml"}, "input `secrets-file`", mentions="does not exist"),
        id="secrets-file-missing",
    ),
    pytest.param(
        Case({"secrets-file": "../outside.yml"}, "input `secrets-file`", mentions="outside"),
        id="secrets-file-dotdot",
    ),
    pytest.param(
        Case({"secrets-file": "/etc/hostname"}, "input `secrets-file`", mentions="outside"),
        id="secrets-file-absolute",
    ),
    pytest.param(
        Case(
            {"secrets-file": "link.yml"},
            "input `secrets-file`",
            mentions="outside",
            links={"link.yml": "../outside.yml"},
        ),
        id="secrets-file-symlink-out",
    ),
    pytest.param(
        Case({"secrets-file": ".github"}, "input `secrets-file`", files={".github/x": "a: A"}),
        id="secrets-file-is-a-directory",
    ),
    pytest.param(
        Case({"secrets-file": "m.yml"}, "input `secrets-file`", files={"m.yml": b"a: \xff\xfe"}),
        id="secrets-file-not-utf8",
    ),
    pytest.param(
        Case({"secrets-file": "m.yml"}, "m.yml.a", files={"m.yml": "a: 'bad source'"}),
        id="secrets-file-bad-content",
    ),
    pytest.param(
        Case(
            {"secrets": "a: A", "secrets-file": "m.yml"},
            "input `secrets`",
            files={"m.yml": "a: A"},
            mentions="both",
        ),
        id="secrets-and-file",
    ),
    pytest.param(Case({}, "input `secrets`", mentions="no mapping"), id="no-mapping"),
    pytest.param(Case({"secrets": "  \n "}, "input `secrets`"), id="blank-mapping"),
    pytest.param(i("name-prefix", "has space/", "prefix"), id="prefix-space"),
    pytest.param(i("name-prefix", "p" * 512, "511"), id="prefix-too-long"),
    pytest.param(i("name-prefix", "app/\u00e9", "prefix"), id="prefix-non-ascii"),
    pytest.param(i("eso-secret-store-kind", "Store", "store kind"), id="eso-kind"),
    pytest.param(i("eso-refresh-interval", "1 hour", "duration"), id="eso-interval"),
    pytest.param(i("eso-manifests", "../k8s.yaml", "outside"), id="eso-manifests-outside"),
    pytest.param(
        Case(
            {"secrets": "a: A"},
            "GITHUB_REPOSITORY",
            env={"A": "a-value"},
            drop=("GITHUB_REPOSITORY",),
        ),
        id="repository-missing",
    ),
    pytest.param(
        Case(
            {"secrets": "a: A"},
            "GITHUB_REPOSITORY",
            env={"A": "a-value", "GITHUB_REPOSITORY": "no-slash"},
        ),
        id="repository-malformed",
    ),
    pytest.param(
        Case(
            {"secrets": "a: A"},
            "SECRETS_SYNC_TIMEOUT",
            env={"A": "a-value", "SECRETS_SYNC_TIMEOUT": "nan"},
        ),
        id="timeout-nan",
    ),
    pytest.param(
        Case(
            {"secrets": "a: A"},
            "SECRETS_SYNC_TIMEOUT",
            env={"A": "a-value", "SECRETS_SYNC_TIMEOUT": "0"},
        ),
        id="timeout-zero",
    ),
    pytest.param(
        Case(
            {"secrets": "a: A"},
            "SECRETS_SYNC_RETRY_MODE",
            env={"A": "a-value", "SECRETS_SYNC_RETRY_MODE": "legacy"},
        ),
        id="retry-mode-unknown",
    ),
]


def run_case(case: Case, proxy: AwsProxy, tmp_path: Path) -> ActionRun:
    workspace = tmp_path / "workspace"
    workspace.mkdir(parents=True)
    (tmp_path / "outside.yml").write_text("a: A\n")
    for rel, content in case.files.items():
        path = workspace / rel
        path.parent.mkdir(parents=True, exist_ok=True)
        if isinstance(content, bytes):
            path.write_bytes(content)
        else:
            path.write_text(content)
    for rel, target in case.links.items():
        (workspace / rel).symlink_to(target)
    env = {
        # Where the runner would hand out OIDC tokens: the proxy, so a request is recorded.
        "ACTIONS_ID_TOKEN_REQUEST_URL": f"{proxy.url}/token?x=1",
        "ACTIONS_ID_TOKEN_REQUEST_TOKEN": OIDC_TOKEN,
        **case.env,
    }
    inputs = {"aws-region": REGION, "role-to-assume": ROLE, **case.inputs}
    return run_action(inputs, endpoint=proxy.url, workspace=workspace, env=env, drop=case.drop)


# The corpus below runs every case of the session at once, so under `make test`'s parallel
# workers (pytest-xdist, --dist loadgroup) this module stays on one worker and runs it once.
pytestmark = pytest.mark.xdist_group("bad_inputs")


@pytest.fixture(scope="module")
def corpus(
    request: pytest.FixtureRequest, moto_url: str, tmp_path_factory: pytest.TempPathFactory
) -> dict[int, tuple[ActionRun, list[Call]]]:
    """Every selected case, run a few at a time (each a subprocess with a proxy of its own),
    so the corpus costs seconds rather than a minute."""
    selected = [
        item.callspec.params["case"]
        for item in request.session.items
        if isinstance(item, pytest.Function)
        and item.originalname == "test_bad_input_is_refused_before_aws"
    ]

    # Made here, not in the threads: pytest creates its base temporary directory lazily and
    # not thread-safely, so concurrent first calls could each make a different one.
    places = {id(case): tmp_path_factory.mktemp("case") for case in selected}

    def one(case: Case) -> tuple[int, tuple[ActionRun, list[Call]]]:
        with AwsProxy(moto_url) as proxy:
            run = run_case(case, proxy, places[id(case)])
            return id(case), (run, list(proxy.calls))

    with ThreadPoolExecutor(max_workers=4) as pool:
        return dict(pool.map(one, selected))


@pytest.mark.parametrize("case", CASES)
def test_bad_input_is_refused_before_aws(
    case: Case, corpus: dict[int, tuple[ActionRun, list[Call]]]
) -> None:
    run, calls = corpus[id(case)]
    out = run.stdout + run.stderr
    assert run.returncode == 1, out
    assert "Traceback" not in out
    assert len(run.errors) == 1, out
    assert "internal error" not in run.errors[0], out
    message = run.errors[0].split("::", 2)[2]
    assert message.startswith(case.place + ":"), message
    assert " Fix: " in message, message
    assert case.mentions in message, message
    assert calls == [], "an AWS call or an OIDC token request was made"
    assert run.summary.startswith("### secrets-sync failed")
    assert case.place in run.summary
    assert run.outputs == {}
    # The one error line is the only line besides masks: no plan, no partial results.
    others = [line for line in run.log_lines if not line.startswith("::add-mask::")]
    assert others == run.errors


def test_bad_input_corpus_is_large_enough() -> None:
    assert len(CASES) >= 40
    assert len({p.id for p in CASES}) == len(CASES)


def test_good_input_with_the_same_setup_does_reach_the_network(
    proxy: AwsProxy, tmp_path: Path
) -> None:
    # The control: the same harness with a good mapping asks the proxy for an OIDC token (which
    # it cannot give, so the run fails there), so the `calls == []` above can fail.
    run = run_case(m("a: A", "unused"), proxy, tmp_path)
    assert [c.service for c in proxy.calls] == ["other"], run.stdout + run.stderr
    assert run.returncode == 1
    assert "OIDC" in run.errors[0]


@pytest.mark.parametrize(
    "argv",
    [
        pytest.param(["--no-such-flag"], id="unknown-flag"),
        pytest.param(["--max-concurrency"], id="flag-without-value"),
        pytest.param(["positional"], id="stray-positional"),
        pytest.param(["--secrets"], id="mapping-flag-without-value"),
    ],
)
def test_command_line_misuse_exits_2(argv: list[str], proxy: AwsProxy, tmp_path: Path) -> None:
    run = run_action(
        {"secrets": "a: A", "aws-region": REGION},
        endpoint=proxy.url,
        workspace=tmp_path / "ws",
        env={"A": "a-canary-value"},
        argv=argv,
    )
    assert run.returncode == 2, run.stdout + run.stderr
    assert "usage:" in run.stderr
    assert "Traceback" not in run.stdout + run.stderr
    assert proxy.calls == []


def test_values_input_errors_name_keys_never_values(proxy: AwsProxy, tmp_path: Path) -> None:
    values = json.dumps({"GOOD": "good-canary-value", "BAD": 42})
    run = run_case(
        Case({"secrets": "a: GOOD", "values": values}, "input `values`"), proxy, tmp_path
    )
    assert run.returncode == 1
    assert "'BAD'" in run.errors[0]
    assert "good-canary-value" not in run.stdout.replace("::add-mask::good-canary-value", "")
