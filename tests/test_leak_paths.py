"""Canary values through every path, in every form: nothing but the mask lines may carry them."""

from __future__ import annotations

import json

import pytest

from tests.support.action import assert_no_leak, assert_run_clean, forms
from tests.support.proxy import Faults

PEM = (
    "-----BEGIN PRIVATE KEY-----\nMIIEvQIBADANBgkqhkiG9w0BAQEFAASCBKcwggSjAgEAAoIBAQC7canary\n"
    "aGVsbG8gY2FuYXJ5IHdvcmxkIGxpbmUgdHdvIG9mIHRoZSBrZXk=\n-----END PRIVATE KEY-----\n"
)
CANARIES = {
    "PEM_KEY": PEM,
    "JSONISH": 'q"uo\\te/slash\b\f\t{"x": [1]}-canary',
    "UNICODE": "pässwörd-ключ-秘密-🔑-canary",
    "COMMANDY": "%0A::error::50%-canary::add-mask::x",
}
MAPPING = "pem: {value: PEM_KEY}\njson: [JSONISH, UNICODE]\ncmd: {keys: {c: COMMANDY}}"
OURS = [
    {"Key": "ManagedBy", "Value": "secrets-sync"},
    {"Key": "secrets-sync:repository", "Value": "lornu-ai/app"},
]


def aws_surface(sm) -> dict[str, str]:
    """Tags and descriptions of every secret, as text to search."""
    listed = sm.list_secrets(IncludePlannedDeletion=True)["SecretList"]
    return {
        "tags and descriptions": json.dumps(
            [{"d": s.get("Description"), "t": s.get("Tags")} for s in listed]
        )
    }


def request_tokens(proxy) -> dict[str, str]:
    return {
        "request tokens": " ".join(str(c.body.get("ClientRequestToken", "")) for c in proxy.calls)
    }


@pytest.mark.parametrize(
    ("name", "inputs", "env", "faults", "code"),
    [
        ("create", {}, {}, None, 0),
        ("debug logging", {}, {"RUNNER_DEBUG": "1"}, None, 0),
        ("dry run", {"dry-run": "true"}, {}, None, 0),
        ("values input", {"values": json.dumps(CANARIES)}, {"_FROM": "values"}, None, 0),
        ("missing skip", {"missing": "skip"}, {"UNICODE": ""}, None, 0),
        (
            "aws refuses writes",
            {},
            {"RUNNER_DEBUG": "1"},
            Faults(rule=lambda c: 403 if c.operation == "CreateSecret" else None),
            1,
        ),
        ("throttling", {}, {}, Faults(throttle_rate=0.4, seed=3), 0),
        ("bad input", {"dry-run": "maybe"}, {"RUNNER_DEBUG": "1"}, None, 1),
        ("bad mapping", {"secrets": MAPPING + "\npem: X"}, {}, None, 1),
        ("oversize", {"secrets": "big: {value: BIG}"}, {"BIG": PEM * 400}, None, 1),
    ],
)
def test_no_value_escapes(action, proxy, sm, name, inputs, env, faults, code):
    if faults is not None:
        proxy.faults = faults
    values = {} if env.get("_FROM") == "values" else dict(CANARIES)
    run = action({"secrets": MAPPING, **inputs}, env={**values, **env})
    assert run.returncode == code, run.stdout + run.stderr
    assert "Traceback" not in run.stdout + run.stderr
    assert_run_clean(run, CANARIES.values())
    assert_no_leak({**aws_surface(sm), **request_tokens(proxy)}, CANARIES.values())


def test_every_line_of_a_value_is_masked_before_anything_else(action):
    run = action({"secrets": MAPPING}, env=CANARIES)
    assert run.returncode == 0
    lines = run.log_lines
    first_other = next(i for i, line in enumerate(lines) if not line.startswith("::add-mask::"))
    masked = {line.removeprefix("::add-mask::") for line in lines[:first_other]}
    for line in PEM.splitlines():
        assert line in masked
    assert "pässwörd-ключ-秘密-🔑-canary" in masked
    assert "%250A::error::50%25-canary::add-mask::x" in masked  # escaped as a command's data


def test_a_second_no_op_run_is_clean_too(action, proxy, sm):
    assert action({"secrets": MAPPING}, env=CANARIES).returncode == 0
    run = action({"secrets": MAPPING}, env=CANARIES)
    assert run.returncode == 0
    assert run.outputs["changed"] == "false"
    assert_run_clean(run, CANARIES.values())
    assert all(len(f) >= 6 for v in CANARIES.values() for f in forms(v))
