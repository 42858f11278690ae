"""Canary values through every path a run can take, searched for in every form (raw, each line,
JSON-escaped, base64, digests) wherever a run leaves text: the log outside its mask lines,
stderr, outputs, the step summary, files in the workspace, the tags and descriptions in AWS, the
request tokens sent to AWS, and our exception messages.

The paths: create, update, adopt, restore, a no-op rerun, dry runs, debug logging, throttling,
AWS error messages that echo the request, malformed answers, values from `values` and from env,
`missing: skip`, ESO manifests, drift under each `on-drift`, rollback (which never looks a
value up, so masks none: nothing of one may appear at all), bad input and bad mappings, values
pasted into the mapping, oversize values, the CLI outside Actions, and the built secret strings
(whose JSON escaping doubles inside outputs) and template results as canaries of their own."""

from __future__ import annotations

import base64
import json
import traceback
import uuid
from collections.abc import Callable, Iterable, Mapping
from dataclasses import dataclass, field
from typing import Any

import pytest
from actions_toolkit.command import escape_data

from secrets_sync import limiter
from secrets_sync.errors import SecretsSyncError
from secrets_sync.inputs import parse_values
from secrets_sync.mapping import load_mapping
from secrets_sync.sources import Desired, lookup, resolve
from secrets_sync.state import Current
from secrets_sync.versions import new_token, written_by
from tests.conftest import REGION
from tests.support.action import (
    OURS,
    WRITES,
    ActionRun,
    assert_no_leak,
    assert_run_clean,
    forms,
)
from tests.support.action import run_action as run_action_directly
from tests.support.proxy import AwsProxy, Call, Faults

PEM = (
    "-----BEGIN OPENSSH PRIVATE KEY-----\r\n"
    "b3BlbnNzaC1rZXktdjEAAAAABG5vbmUAAAAEbm9uZQAAAAAAAAABcanaryPEMline1\r\n"
    "QyNTUxOQAAACDcanaryPEMline2c2VjcmV0cy1zeW5jLWxlYWstc3VpdGU=\r\n"
    "-----END OPENSSH PRIVATE KEY-----\r\n"
)
CANARIES = {
    "PEM_KEY": PEM,
    "JSON_CHARS": 'js"on\\back/sl\bbs\fff\nnl\rcr\ttab-canary-value',
    "UNICODE": "ünï-çødé-🗝️-مفتاح-秘密-canary-e\u0301-\u2028-sep",
    "COMMANDS": "%25%0D%0A::warning::100%-canary,title=x::add-mask::\r\n::error::gotcha",
    "PADDED": "  padded-canary-value\t",
    "JSONISH": '{"nested": "json-canary-value", "n": [1, 2]}',
}
OLD = {name: f"old-{name.lower()}-canary-value" for name in CANARIES}
DRIFT = {name: f"console-{name.lower()}-canary-value" for name in CANARIES}  # written outside
MAPPING = """
pem: {value: PEM_KEY, description: SSH deploy key, tags: {Team: infra}}
mixed: [JSON_CHARS, UNICODE]
cmd: {keys: {c: COMMANDS, p: PADDED}}
nested: {value: JSONISH}
url: {template: "https://${PADDED}:${JSON_CHARS}@host/$$x"}
conn: {keys: {pem: PEM_KEY, dsn: {template: "dsn=${UNICODE};$COMMANDS"}}}
"""
NAMES = ["app/pem", "app/mixed", "app/cmd", "app/nested", "app/url", "app/conn"]


def secret_strings(values: Mapping[str, str]) -> list[str]:
    """The secret strings a run builds from these values, as the action builds them."""
    specs = load_mapping(MAPPING, "secrets", name_prefix="app/").specs
    return [d.secret_string for d in resolve(specs, values, missing="skip") if d.secret_string]


def built_strings(values: Mapping[str, str]) -> list[str]:
    """The strings built from `keys:` templates, which stand in a secret string JSON-escaped."""
    specs = load_mapping(MAPPING, "secrets", name_prefix="app/").specs
    return [text for d in resolve(specs, values, missing="skip") for text in d.built]


def arrange_existing(sm: Any, values: Mapping[str, str], tags: list[dict[str, str]]) -> None:
    for text, name in zip(secret_strings(values), NAMES, strict=True):
        sm.create_secret(Name=name, SecretString=text, Tags=tags)


def existing_old_with_our_tags(sm: Any) -> None:
    arrange_existing(sm, OLD, OURS)


def existing_old_untagged(sm: Any) -> None:
    arrange_existing(sm, OLD, [])


def scheduled_for_deletion(sm: Any) -> None:
    arrange_existing(sm, OLD, OURS)
    for name in NAMES:
        sm.delete_secret(SecretId=name, RecoveryWindowInDays=7)


def drifted_by_console(sm: Any) -> None:
    """Ours, synced (a version with our token), then edited in the console."""
    arrange_existing(sm, OLD, OURS)
    for text, name in zip(secret_strings(DRIFT), NAMES, strict=True):
        synced = sm.get_secret_value(SecretId=name)["SecretString"]
        sm.put_secret_value(
            SecretId=name, SecretString=synced, ClientRequestToken=new_token("1", "1")
        )
        sm.put_secret_value(SecretId=name, SecretString=text)


def echo_the_request(call: Call) -> str:
    """An AWS error message that repeats what it was sent, as validation errors can."""
    return f"1 validation error: Value '{call.body.get('SecretString')}' at 'secretString' failed"


def first_writes(status: int, count: int) -> Callable[[Call], int | None]:
    seen: list[Call] = []

    def rule(call: Call) -> int | None:
        if call.operation in WRITES and len(seen) < count:
            seen.append(call)
            return status
        return None

    return rule


def malformed_create(call: Call) -> int | None:
    # A 200 whose body lacks the ARN: botocore hands it over as a "success".
    return 200 if call.operation == "CreateSecret" and call.secret_id == "app/pem" else None


@dataclass(frozen=True)
class Scenario:
    inputs: Mapping[str, str] = field(default_factory=dict)
    env: Mapping[str, str] = field(default_factory=dict)
    arrange: Callable[[Any], None] | None = None
    faults: Callable[[], Faults] | None = None
    code: int = 0
    masked: bool = True  # the run got as far as registering masks
    from_env: bool = True  # the canaries come through the step's env
    traceback_ok: bool = False  # debug logging of an internal error prints one, by design
    values_read: bool = True  # False: a rollback, which looks no value up and masks none


SCENARIOS = [
    pytest.param(Scenario(), id="create"),
    pytest.param(Scenario(arrange=existing_old_with_our_tags), id="update"),
    pytest.param(Scenario(arrange=existing_old_untagged), id="adopt"),
    pytest.param(Scenario(arrange=scheduled_for_deletion), id="restore"),
    pytest.param(
        Scenario({"dry-run": "true", "prune": "true"}, arrange=existing_old_with_our_tags),
        id="dry-run",
    ),
    pytest.param(Scenario(env={"RUNNER_DEBUG": "1"}), id="debug"),
    pytest.param(Scenario(arrange=drifted_by_console), id="drift-overwrite"),
    pytest.param(Scenario({"on-drift": "skip"}, arrange=drifted_by_console), id="drift-skip"),
    pytest.param(
        Scenario({"on-drift": "fail", "dry-run": "true"}, arrange=drifted_by_console, code=1),
        id="drift-alarm",
    ),
    pytest.param(
        Scenario({"rollback": "true", "only": "*"}, arrange=drifted_by_console, values_read=False),
        id="rollback",
    ),
    pytest.param(
        Scenario(
            {"rollback": "true", "dry-run": "true", "only": "*"},
            arrange=existing_old_untagged,
            values_read=False,
        ),
        id="rollback-not-ours",
    ),
    pytest.param(
        Scenario(
            env={"RUNNER_DEBUG": "1"},
            faults=lambda: Faults(rule=malformed_create),
            code=1,
            traceback_ok=True,
        ),
        id="debug-malformed-answer",
    ),
    pytest.param(
        Scenario(
            faults=lambda: Faults(
                rule=lambda c: 403 if c.operation in WRITES else None, message=echo_the_request
            ),
            code=1,
        ),
        id="aws-403-echoes-value",
    ),
    pytest.param(
        Scenario(
            arrange=existing_old_with_our_tags,
            faults=lambda: Faults(
                rule=lambda c: (
                    500 if "app/cmd" in str(c.secret_id) and c.operation in WRITES else None
                ),
                message=echo_the_request,
            ),
            code=1,
        ),
        id="aws-500-echoes-value",
    ),
    pytest.param(
        Scenario(faults=lambda: Faults(after=first_writes(503, 2), message=echo_the_request)),
        id="aws-5xx-after-landing",
    ),
    pytest.param(
        Scenario(faults=lambda: Faults(rule=first_writes(400, 3), message=echo_the_request)),
        id="throttled",
    ),
    pytest.param(Scenario({"values": json.dumps(CANARIES)}, from_env=False), id="values-input"),
    pytest.param(
        Scenario(
            {"values": json.dumps({"PEM_KEY": PEM, "UNUSED_CANARY": "unused-canary-value-1"})},
            env={k: v for k, v in CANARIES.items() if k != "PEM_KEY"},
        ),
        id="values-input-and-env",
    ),
    pytest.param(Scenario({"missing": "skip"}, env={"UNICODE": ""}), id="missing-skip"),
    pytest.param(
        Scenario(
            {
                "secrets": MAPPING + "k8s-fed: {keys: [PADDED], k8s: {secret: app-secrets}}\n",
                "eso-manifests": "k8s/external-secrets.yaml",
            }
        ),
        id="eso-manifests-file",
    ),
    pytest.param(
        Scenario(
            {"secrets": MAPPING + "oops: {keys: [PADDED], colour: red}\n"}, code=1, masked=False
        ),
        id="bad-mapping",
    ),
    pytest.param(
        Scenario(
            {"secrets": MAPPING, "values": json.dumps(CANARIES), "prune": "perhaps"},
            code=1,
            masked=False,
        ),
        id="bad-input-with-values",
    ),
    pytest.param(
        Scenario(
            {"secrets": f"pasted: {json.dumps(CANARIES['JSON_CHARS'])}\n"}, code=1, masked=False
        ),
        id="value-pasted-into-mapping",
    ),
    pytest.param(
        Scenario(
            {"secrets": "pasted: {value: " + json.dumps(CANARIES["UNICODE"]) + "}\n"},
            code=1,
            masked=False,
        ),
        id="value-pasted-as-plain-source",
    ),
    pytest.param(
        Scenario(
            {"secrets": "big: {value: PEM_KEY}\nmixed: [JSON_CHARS, UNICODE]"},
            env={"PEM_KEY": PEM * 400},
            code=1,
        ),
        id="oversize",
    ),
]


def request_tokens(proxy: AwsProxy) -> list[tuple[str, str]]:
    return [
        (c.operation, str(c.body["ClientRequestToken"]))
        for c in proxy.calls
        if "ClientRequestToken" in c.body
    ]


def aws_text(sm: Any) -> str:
    listed = sm.list_secrets(IncludePlannedDeletion=True)["SecretList"]
    return json.dumps(
        [{"name": s["Name"], "d": s.get("Description"), "t": s.get("Tags")} for s in listed],
        ensure_ascii=False,
    )


def mask_pieces(value: str) -> set[str]:
    """What the runner must be told to mask for one value: itself and each line."""
    return {value} | {line.strip() for line in value.splitlines() if line.strip()}


def assert_masked_first(run: ActionRun, values: Iterable[str]) -> None:
    lines = run.log_lines
    first_other = next(
        (i for i, line in enumerate(lines) if not line.startswith("::add-mask::")), len(lines)
    )
    early = set(lines[:first_other])
    for value in values:
        for piece in mask_pieces(value):
            assert f"::add-mask::{escape_data(piece)}" in early, "a piece was not masked first"


@pytest.mark.parametrize("scenario", SCENARIOS)
def test_no_form_of_a_value_escapes(
    scenario: Scenario, action: Any, proxy: AwsProxy, sm: Any
) -> None:
    if scenario.arrange is not None:
        scenario.arrange(sm)
    if scenario.faults is not None:
        proxy.faults = scenario.faults()
    env = {**(CANARIES if scenario.from_env else {}), **scenario.env}
    inputs = {"secrets": MAPPING, "name-prefix": "app/", **scenario.inputs}
    run = action(inputs, env=env)
    out = run.stdout + run.stderr
    assert run.returncode == scenario.code, out
    if not scenario.traceback_ok:
        assert "Traceback" not in out
    # The canaries, the old values, and the secret strings built from either (inside outputs
    # a JSON secret string is escaped once more, which no form of a lone value catches).
    canaries = [*CANARIES.values(), *OLD.values(), *DRIFT.values(), "unused-canary-value-1"]
    canaries += [PEM * 400, *secret_strings(CANARIES), *secret_strings(OLD)]
    canaries += secret_strings(DRIFT)
    canaries += built_strings(CANARIES) + built_strings(OLD)
    assert_run_clean(run, canaries)
    assert_no_leak({"AWS tags and descriptions": aws_text(sm)}, canaries)
    tokens = request_tokens(proxy)
    assert_no_leak({"request tokens": "\n".join(t for _, t in tokens)}, canaries)
    for operation, token in tokens:  # nothing derived from a value
        if operation in ("CreateSecret", "PutSecretValue"):
            assert written_by(token) is not None, token  # ours: run ids, time, random hex
        else:
            assert uuid.UUID(token).version == 4  # botocore's (UpdateSecret: no version made)
    if not scenario.values_read:
        masks = [line for line in run.log_lines if line.startswith("::add-mask::")]
        assert_no_leak({"mask lines": "\n".join(masks)}, canaries)
    elif scenario.masked:
        given = json.loads(scenario.inputs.get("values", "{}"))
        used = [given.get(k) or env.get(k) for k in CANARIES if k in inputs["secrets"]]
        assert_masked_first(run, [v for v in used if v])
    else:
        # Refused before any value was looked up: nothing to mask, and nothing printed.
        assert not any(line.startswith("::add-mask::") for line in run.log_lines)


def test_a_no_op_rerun_is_clean_too(action: Any, proxy: AwsProxy, sm: Any) -> None:
    inputs = {"secrets": MAPPING, "name-prefix": "app/"}
    assert action(inputs, env=CANARIES).returncode == 0
    run = action(inputs, env=CANARIES)
    assert run.returncode == 0
    assert run.outputs["changed"] == "false"
    canaries = [*CANARIES.values(), *secret_strings(CANARIES), *built_strings(CANARIES)]
    assert_run_clean(run, canaries)
    assert_masked_first(run, CANARIES.values())
    # The template results too: the plain one is a secret string, the keyed one is built.
    templated = [s for s in secret_strings(CANARIES) if s.startswith("https://")]
    assert len(templated) == 1
    assert_masked_first(run, [*templated, *built_strings(CANARIES)])


def test_the_paths_are_really_taken(action: Any, proxy: AwsProxy, sm: Any) -> None:
    """The control for the table above: an echoing AWS error does carry the value to us, and
    our own redaction is what keeps it out of the log, outputs and summary."""
    proxy.faults = Faults(
        rule=lambda c: 403 if c.operation == "CreateSecret" else None, message=echo_the_request
    )
    run = action({"secrets": MAPPING, "name-prefix": "app/"}, env=CANARIES)
    assert run.returncode == 1
    creates = [c for c in proxy.calls if c.operation == "CreateSecret"]
    assert {c.body["SecretString"] for c in creates} == set(secret_strings(CANARIES))
    assert sorted(run.json("failed")) == sorted(NAMES)
    assert all("***" in run.results()[name]["error"] for name in NAMES)


def test_malformed_answer_fails_only_its_secret(action: Any, proxy: AwsProxy, sm: Any) -> None:
    proxy.faults = Faults(rule=malformed_create)
    run = action({"secrets": MAPPING, "name-prefix": "app/"}, env=CANARIES)
    assert run.returncode == 1
    assert run.json("failed") == ["app/pem"]
    assert sorted(run.json("created")) == sorted(n for n in NAMES if n != "app/pem")
    assert_run_clean(run, [*CANARIES.values(), *secret_strings(CANARIES)])


def test_outside_actions_nothing_is_masked_so_nothing_may_appear(proxy: AwsProxy, tmp_path):
    proxy.faults = Faults(
        rule=lambda c: 403 if "app/cmd" in str(c.secret_id) and c.operation in WRITES else None,
        message=echo_the_request,
    )
    run = run_action_directly(
        {"secrets": MAPPING, "name-prefix": "app/", "aws-region": REGION},
        endpoint=proxy.url,
        workspace=tmp_path / "ws",
        env={**CANARIES, "RUNNER_DEBUG": "1"},
        drop=["GITHUB_ACTIONS", "GITHUB_OUTPUT", "GITHUB_STEP_SUMMARY"],
    )
    assert run.returncode == 1, run.stderr
    assert json.loads(run.stdout)["failed"] == ["app/cmd"]
    assert "::" not in run.stderr.replace("::error::gotcha", "")  # no workflow commands
    assert_no_leak(
        {"stdout": run.stdout, "stderr": run.stderr},
        [*CANARIES.values(), *secret_strings(CANARIES)],
    )


# Exception messages and reprs, in-process ----------------------------------------------------


def raises(fn: Callable[[], Any]) -> SecretsSyncError:
    with pytest.raises(SecretsSyncError) as caught:
        fn()
    return caught.value


@pytest.mark.parametrize(
    "fn",
    [
        pytest.param(
            lambda v: parse_values(json.dumps({"A": v}) + json.dumps({"A": v})), id="values-json"
        ),
        pytest.param(lambda v: parse_values('{"A": [' + json.dumps(v) + "]}"), id="values-list"),
        pytest.param(
            lambda v: parse_values('{"A": ' + json.dumps(v) + ', "A": "x"}'), id="values-dup"
        ),
        pytest.param(
            lambda v: parse_values('{"B": ' + json.dumps(v) + ', "A": 1}'), id="values-type"
        ),
        pytest.param(lambda v: load_mapping("a: " + json.dumps(v), "secrets"), id="as-source"),
        pytest.param(
            lambda v: load_mapping("a: {keys: {k: " + json.dumps(v) + "}}", "secrets"),
            id="as-keyed-source",
        ),
        pytest.param(
            lambda v: load_mapping("a: {value: " + json.dumps(v) + "}", "secrets"), id="as-value"
        ),
        pytest.param(
            lambda v: load_mapping("a: [A, " + json.dumps(v) + "]", "secrets"), id="in-list"
        ),
        pytest.param(
            lambda v: load_mapping("a: {template: " + json.dumps(v) + "}", "secrets"),
            id="as-template",
        ),
        pytest.param(
            lambda v: load_mapping("a: {template: " + json.dumps(v + "$ ${A}") + "}", "secrets"),
            id="in-bad-template",
        ),
        pytest.param(
            lambda v: load_mapping(
                "a: {keys: {k: {template: " + json.dumps("${A}" + v + "$") + "}}}", "secrets"
            ),
            id="in-bad-key-template",
        ),
        pytest.param(
            lambda v: resolve(
                load_mapping("a: {value: A}", "s").specs, {"A": v * 9000}, missing="fail"
            ),
            id="oversize",
        ),
        pytest.param(
            lambda v: resolve(load_mapping("a: [A, B]", "s").specs, {"A": v}, missing="fail"),
            id="missing-other",
        ),
        pytest.param(
            lambda v: lookup(load_mapping("a: A", "s").specs, {}, {"A": v + "\udcff"}),
            id="not-utf8",
        ),
    ],
)
@pytest.mark.parametrize("value", list(CANARIES.values()), ids=list(CANARIES))
def test_exception_messages_carry_no_value(fn: Callable[[str], Any], value: str) -> None:
    exc = raises(lambda: fn(value))
    text = {
        "message": exc.message,
        "str": str(exc),
        "repr": repr(exc),
        "traceback": "".join(traceback.format_exception(exc)),
    }
    assert_no_leak(text, [value])


def test_reprs_of_what_holds_values_show_none() -> None:
    spec = load_mapping("a: [A]", "secrets").specs[0]
    for value in CANARIES.values():
        desired = Desired(spec, json.dumps({"A": value}))
        current = Current("a", "arn:aws:secretsmanager:us-east-1:1:secret:a", secret_string=value)
        assert_no_leak({"Desired": repr(desired), "Current": repr(current)}, [value])
        assert_no_leak({"Desired": repr(desired)}, [desired.secret_string or ""])
    assert all(len(f) >= 6 for v in CANARIES.values() for f in forms(v))
    for value in CANARIES.values():
        text = json.dumps(value.replace("$", "$$") + "${A}")
        spec = load_mapping(
            f"a: {{template: {text}}}\nb: {{keys: {{k: {{template: {text}}}}}}}", "s"
        )
        assert_no_leak({"SecretSpec": repr(spec)}, [value])


# Secret shapes: a binary's base64 forms and a merge's JSON ---------------------------------

BINARY = b"\x00\xff-binary-canary-bytes-\xfe\x80"
BINARY_B64 = base64.b64encode(BINARY).decode()
THEIRS = {"host": "merge-host-canary-value", "password": "merge-old-canary-value"}
SHAPES = (
    "keystore: {binary: KEYSTORE_B64}\n"
    "db: {keys: {password: DB_PASSWORD}, update-policy: merge}\n"
    "seed: {value: SEED, update-policy: if-not-exists}\n"
)
SHAPE_ENV = {
    "KEYSTORE_B64": BINARY_B64,
    "DB_PASSWORD": "merge-new-canary-value",
    "SEED": "seed-canary-value-1",
}
# The JSON the merge writes: the keys it does not own kept, as the action builds it.
MERGED = json.dumps(
    {**THEIRS, "password": SHAPE_ENV["DB_PASSWORD"]}, separators=(",", ":"), ensure_ascii=False
)
SHAPE_CANARIES = [
    *SHAPE_ENV.values(),
    *THEIRS.values(),
    MERGED,
    BINARY_B64.rstrip("="),
    base64.urlsafe_b64encode(BINARY).decode(),
    "-binary-canary-bytes-",
    "seed-old-canary-value",
]


def echo_any_value(call: Call) -> str:
    value = call.body.get("SecretString") or call.body.get("SecretBinary")
    return f"1 validation error: Value '{value}' at 'secretValue' failed"


def shapes_existing(sm: Any) -> None:
    sm.create_secret(Name="app/db", SecretString=json.dumps(THEIRS))
    sm.create_secret(Name="app/seed", SecretString="seed-old-canary-value", Tags=OURS)


@pytest.mark.parametrize(
    ("inputs", "env", "faults", "code"),
    [
        pytest.param({}, {}, None, 0, id="write"),
        pytest.param({"dry-run": "true"}, {"RUNNER_DEBUG": "1"}, None, 0, id="dry-run-debug"),
        pytest.param(
            {},
            {},
            lambda: Faults(
                rule=lambda c: 403 if c.operation in WRITES - {"TagResource"} else None,
                message=echo_any_value,
            ),
            1,
            id="aws-403-echoes-value",
        ),
    ],
)
def test_shapes_leave_no_form_of_a_value(action, proxy, sm, inputs, env, faults, code):
    shapes_existing(sm)
    if faults is not None:
        proxy.faults = faults()
    run = action({"secrets": SHAPES, "name-prefix": "app/", **inputs}, env={**SHAPE_ENV, **env})
    assert run.returncode == code, run.stdout + run.stderr
    assert run.results()["app/db"]["merged_keys"] == ["password"]
    assert_run_clean(run, SHAPE_CANARIES)
    assert_no_leak({"AWS tags and descriptions": aws_text(sm)}, SHAPE_CANARIES)
    sent = {
        str(c.body.get("SecretString") or c.body.get("SecretBinary"))
        for c in proxy.calls
        if c.operation in ("CreateSecret", "PutSecretValue")
    }
    if not inputs:
        # The paths are really taken: the merge and the binary reached AWS as expected.
        assert sent == {MERGED, BINARY_B64}
    if faults is not None:
        assert "***" in run.results()["app/db"]["error"]
        assert "***" in run.results()["app/keystore"]["error"]
    assert_masked_first(run, SHAPE_ENV.values())


# A merge built at apply time: after a restore, on the retry round, after a lost race ---------

RIVAL = {"host": "rival-host-canary-value", "password": "rival-old-canary-value"}
MERGE_MAPPING = "db: {keys: {password: DB_PASSWORD}, update-policy: merge}"
MERGE_CANARIES = [SHAPE_ENV["DB_PASSWORD"], *THEIRS.values(), *RIVAL.values()]


def merge_restored(sm: Any, proxy: AwsProxy) -> Callable[[Call], int | None]:
    """Ours, scheduled for deletion: the value is read only after RestoreSecret."""
    sm.create_secret(Name="app/db", SecretString=json.dumps(THEIRS), Tags=OURS)
    sm.delete_secret(SecretId="app/db", RecoveryWindowInDays=7)
    return lambda c: 403 if c.operation == "PutSecretValue" else None


def merge_retried(sm: Any, proxy: AwsProxy) -> Callable[[Call], int | None]:
    """The first write is throttled past the SDK's retries; another writer lands meanwhile, and
    the retry round merges onto its value."""
    sm.create_secret(Name="app/db", SecretString=json.dumps(THEIRS), Tags=OURS)
    puts: list[Call] = []

    def rule(call: Call) -> int | None:
        if call.operation != "PutSecretValue":
            return None
        puts.append(call)
        if len(puts) == 1:
            sm.put_secret_value(SecretId="app/db", SecretString=json.dumps(RIVAL))
        return 400 if len(puts) <= limiter.THROTTLE_ATTEMPTS else 403

    return rule


def merge_lost_race(sm: Any, proxy: AwsProxy) -> Callable[[Call], int | None]:
    """Absent at the plan's read; another writer creates it just before our CreateSecret."""

    def rule(call: Call) -> int | None:
        if call.operation == "CreateSecret":
            sm.create_secret(Name="app/db", SecretString=json.dumps(RIVAL))
        return 403 if call.operation == "PutSecretValue" else None

    return rule


@pytest.mark.parametrize("arrange", [merge_restored, merge_retried, merge_lost_race])
def test_a_merge_built_at_apply_time_is_redacted(action, proxy, sm, arrange):
    proxy.faults = Faults(rule=arrange(sm, proxy), message=echo_any_value)
    run = action(
        {"secrets": MERGE_MAPPING, "name-prefix": "app/"},
        env={"DB_PASSWORD": SHAPE_ENV["DB_PASSWORD"]},
    )
    assert run.returncode == 1, run.stdout + run.stderr
    # The path is really taken: the merge AWS echoed held a value read from AWS at apply time.
    [sent] = [c for c in proxy.calls if c.operation == "PutSecretValue" and c.status == 403]
    merged = str(sent.body["SecretString"])
    assert json.loads(merged)["password"] == SHAPE_ENV["DB_PASSWORD"]
    assert "host" in json.loads(merged)
    assert run.json("failed") == ["app/db"]
    assert "***" in run.results()["app/db"]["error"]
    assert_run_clean(run, [*MERGE_CANARIES, merged])


def test_the_hook_registers_every_value_sent_and_every_password_made(moto: str) -> None:
    """outgoing.install on a real client against moto: a value is known to our redaction before
    the call leaves, whatever the call's outcome; a generated password the moment it arrives,
    and the runner is told to mask it too."""
    import io

    import boto3
    from botocore.exceptions import ClientError

    from secrets_sync import outgoing
    from secrets_sync.runner import Runner

    log = io.StringIO()
    runner = Runner(log, in_actions=True)
    client = boto3.client(
        "secretsmanager",
        region_name=REGION,
        endpoint_url=moto,
        aws_access_key_id="testing",
        aws_secret_access_key="testing",
    )
    outgoing.install(client, runner)
    text = json.dumps({"a": "hook-string-canary", "n": 1e3})
    client.create_secret(Name="hooked", SecretString=text)
    with pytest.raises(ClientError):  # refused (no such secret): registered all the same
        client.put_secret_value(SecretId="nowhere", SecretBinary=BINARY)
    assert runner.redact(f"x {text} y") == "x *** y"
    assert runner.redact("echo hook-string-canary") == "echo ***"
    assert runner.redact(BINARY_B64) == "***"
    assert log.getvalue() == ""  # values read from AWS: no `::add-mask::` line
    password = client.get_random_password(PasswordLength=32)["RandomPassword"]
    assert runner.redact(password) == "***"
    assert f"::add-mask::{escape_data(password)}" in log.getvalue()
