"""AWS misbehaving: throttling, 5xx, a secret whose writes always fail, slow answers, writes that
land but answer 5xx, and two runs at once. Nothing is lost, and a rerun converges."""

from __future__ import annotations

import json
import subprocess
import sys

from tests.support.action import assert_run_clean, run_action
from tests.support.proxy import Faults

WRITES = {"CreateSecret", "UpdateSecret", "TagResource", "PutSecretValue"}
N = 12
VALUES = {f"S{i:02}": f"fault-canary-{i:02}-value" for i in range(N)}
MAPPING = "\n".join(f"s{i:02}: S{i:02}" for i in range(N))


def secret(sm, name):
    return json.loads(sm.get_secret_value(SecretId=name)["SecretString"])


def test_throttling_and_5xx_are_survived_with_every_secret_right(action, proxy, sm):
    proxy.faults = Faults(throttle_rate=0.3, error_rate=0.2, seed=11)
    run = action({"secrets": MAPPING, "name-prefix": "f/"}, env=VALUES)
    assert run.returncode == 0, run.stdout
    throttled = [c for c in proxy.calls if c.status == 400]
    failed = [c for c in proxy.calls if c.status == 503]
    assert throttled
    assert failed  # the faults really happened
    assert sorted(run.json("created")) == [f"f/s{i:02}" for i in range(N)]
    for i in range(N):
        assert secret(sm, f"f/s{i:02}") == {f"S{i:02}": VALUES[f"S{i:02}"]}
        versions = sm.list_secret_version_ids(SecretId=f"f/s{i:02}", IncludeDeprecated=True)
        assert len(versions["Versions"]) == 1  # retries minted no extra version
    assert_run_clean(run, VALUES.values())


def test_a_secret_whose_writes_always_fail_is_reported_and_a_rerun_converges(action, proxy, sm):
    proxy.faults = Faults(
        rule=lambda c: 500 if c.operation in WRITES and c.secret_id == "f/s03" else None
    )
    run = action({"secrets": MAPPING, "name-prefix": "f/"}, env=VALUES)
    assert run.returncode == 1
    assert run.json("failed") == ["f/s03"]
    assert len(run.json("created")) == N - 1
    assert any("f/s03" in line for line in run.errors)
    assert "InternalServiceError" in run.results()["f/s03"]["error"]
    assert_run_clean(run, VALUES.values())

    proxy.faults = Faults()
    proxy.reset()
    again = action({"secrets": MAPPING, "name-prefix": "f/"}, env=VALUES)
    assert again.returncode == 0, again.stdout
    assert again.json("created") == ["f/s03"]
    assert [c.operation for c in proxy.calls if c.operation in WRITES] == ["CreateSecret"]
    assert secret(sm, "f/s03") == {"S03": VALUES["S03"]}


def test_a_write_that_lands_but_answers_5xx_mints_no_second_version(action, proxy, sm):
    sm.create_secret(
        Name="f/key",
        SecretString='{"K":"old-landing-canary"}',
        Tags=[
            {"Key": "ManagedBy", "Value": "secrets-sync"},
            {"Key": "secrets-sync:repository", "Value": "lornu-ai/app"},
        ],
    )
    seen = []

    def once(call):
        if call.operation == "UpdateSecret" and not seen:
            seen.append(call)
            return 503  # moto applied the update; the client sees a failure and retries
        return None

    proxy.faults = Faults(after=once)
    run = action({"secrets": "key: K", "name-prefix": "f/"}, env={"K": "new-landing-canary"})
    assert run.returncode == 0, run.stdout
    updates = [c for c in proxy.calls if c.operation == "UpdateSecret"]
    assert len(updates) == 2
    tokens = {c.body["ClientRequestToken"] for c in updates}
    assert len(tokens) == 1  # the SDK retried with the same idempotency token
    versions = sm.list_secret_version_ids(SecretId="f/key", IncludeDeprecated=True)["Versions"]
    assert len(versions) == 2  # the original and exactly one update
    assert secret(sm, "f/key") == {"K": "new-landing-canary"}
    assert_run_clean(run, ["new-landing-canary", "old-landing-canary"])


def test_slow_answers_hit_a_timeout_instead_of_hanging(action, proxy):
    proxy.faults = Faults(hang_for=lambda c: 30.0 if c.operation == "CreateSecret" else None)
    run = action(
        {"secrets": "slow: SLOW"},
        env={"SLOW": "slow-canary-value", "SECRETS_SYNC_TIMEOUT": "1"},
        timeout=90,
    )
    assert run.returncode == 1
    assert run.json("failed") == ["slow"]
    assert "Timeout" in run.results()["slow"]["error"]
    assert_run_clean(run, ["slow-canary-value"])


def test_two_runs_at_once_both_succeed_with_at_most_one_extra_version(proxy, sm, tmp_path):
    env = {**VALUES}
    inputs = {"secrets": MAPPING, "name-prefix": "r/", "aws-region": "us-east-1"}
    code = (
        "import sys, json; from pathlib import Path; sys.path.insert(0, sys.argv[1]);"
        "from tests.support.action import run_action;"
        "r = run_action(json.loads(sys.argv[2]), endpoint=sys.argv[3], workspace=Path(sys.argv[4]),"
        " env=json.loads(sys.argv[5])); print(r.returncode); print(r.stdout, file=sys.stderr)"
    )
    root = str(__import__("pathlib").Path(__file__).resolve().parents[1])
    procs = [
        subprocess.Popen(
            [
                sys.executable,
                "-c",
                code,
                root,
                json.dumps(inputs),
                proxy.url,
                str(tmp_path / f"racer{i}" / "ws"),
                json.dumps(env),
            ],
            stdout=subprocess.PIPE,
            stderr=subprocess.PIPE,
            text=True,
        )
        for i in range(2)
    ]
    outs = [p.communicate(timeout=120) for p in procs]
    assert [o[0].strip() for o in outs] == ["0", "0"], outs
    for i in range(N):
        name = f"r/s{i:02}"
        assert secret(sm, name) == {f"S{i:02}": VALUES[f"S{i:02}"]}
        versions = sm.list_secret_version_ids(SecretId=name, IncludeDeprecated=True)["Versions"]
        assert len(versions) <= 2
    # And a third run afterwards writes nothing.
    proxy.reset()
    third = run_action(inputs, endpoint=proxy.url, workspace=tmp_path / "third" / "ws", env=env)
    assert third.returncode == 0
    assert not WRITES & set(proxy.ops())
