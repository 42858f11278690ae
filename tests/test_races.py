"""Races: two runs of one mapping at once, and SDK retries of writes that already landed.

A barrier in the proxy holds every write until both runs have listed, so both surely plan from
the same stale state: both try each create, both each update. And the SDK's retries of a write
whose answer was lost are checked token by token against the versions moto holds."""

from __future__ import annotations

import json
import subprocess
import sys
import threading
import time
from pathlib import Path
from typing import Any

import pytest

from tests.conftest import REGION
from tests.support.action import ENTRYPOINT, REPOSITORY, base_env, parse_outputs
from tests.support.proxy import AwsProxy, Call, Faults

OURS = [
    {"Key": "ManagedBy", "Value": "secrets-sync"},
    {"Key": "secrets-sync:repository", "Value": REPOSITORY},
]
WRITES = {
    "CreateSecret",
    "UpdateSecret",
    "TagResource",
    "PutSecretValue",
    "RestoreSecret",
    "UpdateSecretVersionStage",
}
NEW = [f"new{i}" for i in range(4)]
OLD = [f"old{i}" for i in range(4)]
MAPPING = "\n".join(f"{name}: {name.upper()}" for name in NEW + OLD)
VALUES = {name.upper(): f"{name}-race-canary-value" for name in NEW + OLD}


def versions(sm: Any, name: str) -> list[dict[str, Any]]:
    return sm.list_secret_version_ids(SecretId=name, IncludeDeprecated=True)["Versions"]


def value(sm: Any, name: str) -> Any:
    return json.loads(sm.get_secret_value(SecretId=name)["SecretString"])


class Barrier:
    """Holds each write until `parties` runs have had their state read answered: as many
    ListSecrets and BatchGetSecretValue calls (a run of these eight names makes one of each, side
    by side), or a bound. Counting the listings alone let one run's create land between the
    other's listing and its batch read, which then found the secret: no race."""

    def __init__(self, proxy: AwsProxy, parties: int) -> None:
        self.proxy, self.parties = proxy, parties
        self.held = 0
        self.lock = threading.Lock()

    def __call__(self, call: Call) -> float | None:
        if call.operation not in WRITES:
            return None
        with self.lock:
            self.held += 1
        deadline = time.monotonic() + 30
        while time.monotonic() < deadline:
            calls = list(self.proxy.calls)
            listed = [c for c in calls if c.operation == "ListSecrets" and c.status == 200]
            batched = [c for c in calls if c.operation == "BatchGetSecretValue"]
            if min(len(listed), len(batched)) >= self.parties:
                return None
            time.sleep(0.02)
        return None


def start(proxy: AwsProxy, workspace: Path) -> tuple[subprocess.Popen[str], Path]:
    """The entrypoint as run_action runs it, but started, not waited for."""
    workspace.mkdir(parents=True)
    home = workspace.parent / "home"
    home.mkdir()
    output = workspace.parent / "github_output"
    output.write_text("")
    (workspace.parent / "step_summary").write_text("")
    env = base_env(proxy.url, workspace, home)
    env.update(
        GITHUB_OUTPUT=str(output),
        GITHUB_STEP_SUMMARY=str(workspace.parent / "step_summary"),
        **{"INPUT_SECRETS": MAPPING, "INPUT_NAME-PREFIX": "r/", "INPUT_AWS-REGION": REGION},
        **VALUES,
    )
    proc = subprocess.Popen(
        [sys.executable, str(ENTRYPOINT)],
        env=env,
        cwd=workspace,
        stdout=subprocess.PIPE,
        stderr=subprocess.PIPE,
        text=True,
    )
    return proc, output


def test_two_runs_planning_from_the_same_state_both_succeed(proxy, sm, tmp_path):
    for name in OLD:
        sm.create_secret(Name=f"r/{name}", SecretString='{"X":"stale"}', Tags=OURS)
    barrier = Barrier(proxy, parties=2)
    proxy.faults = Faults(hang_for=barrier)
    runs = [start(proxy, tmp_path / f"run{i}" / "workspace") for i in range(2)]
    results = []
    for proc, output in runs:
        stdout, stderr = proc.communicate(timeout=120)
        assert proc.returncode == 0, stdout + stderr
        assert "Traceback" not in stdout + stderr
        results.append(parse_outputs(output.read_text()))
    # The race really happened: both runs planned every create, and both wrote.
    creates = [c for c in proxy.calls if c.operation == "CreateSecret"]
    assert sorted(c.secret_id for c in creates) == sorted(f"r/{n}" for n in NEW * 2)
    assert sum(c.status != 200 for c in creates) == len(NEW)  # one loser for each
    for name in NEW:
        assert value(sm, f"r/{name}") == {name.upper(): VALUES[name.upper()]}
        assert len(versions(sm, f"r/{name}")) == 1  # the loser re-read it and wrote nothing
    for name in OLD:
        assert value(sm, f"r/{name}") == {name.upper(): VALUES[name.upper()]}
        assert len(versions(sm, f"r/{name}")) <= 3  # the original, and one per run at most
    arns = [json.loads(r["arns"]) for r in results]
    assert arns[0] == arns[1]
    assert sorted(arns[0]) == sorted(f"r/{n}" for n in NEW + OLD)
    created = [set(json.loads(r["created"])) for r in results]
    assert created[0] | created[1] == {f"r/{n}" for n in NEW}
    assert all(json.loads(r["failed"]) == [] for r in results)

    proxy.faults = Faults()
    proxy.reset()
    proc, output = start(proxy, tmp_path / "third" / "workspace")
    proc.communicate(timeout=60)
    assert proc.returncode == 0
    assert not WRITES & set(proxy.ops())
    assert json.loads(parse_outputs(output.read_text())["changed"]) is False


def lose_answers(operation: str, times: int) -> Any:
    seen: list[Call] = []
    lock = threading.Lock()

    def after(call: Call) -> int | None:
        with lock:
            if call.operation == operation and len(seen) < times:
                seen.append(call)
                return 500
        return None

    return after


@pytest.mark.parametrize("operation", ["CreateSecret", "PutSecretValue"])
def test_sdk_retries_of_a_landed_write_mint_no_second_version(action, proxy, sm, operation):
    if operation == "PutSecretValue":
        sm.create_secret(Name="r/key", SecretString='{"K":"before-race-canary"}', Tags=OURS)
    proxy.faults = Faults(after=lose_answers(operation, 2))
    run = action({"secrets": "key: K", "name-prefix": "r/"}, env={"K": "after-race-canary"})
    assert run.returncode == 0, run.stdout
    writes = [c for c in proxy.calls if c.operation == operation]
    assert [c.status for c in writes] == [500, 500, 200]
    assert all(c.forwarded for c in writes)  # each attempt reached moto
    tokens = {c.body["ClientRequestToken"] for c in writes}
    assert len(tokens) == 1  # the SDK reuses the idempotency token across its retries
    held = versions(sm, "r/key")
    ours = [v for v in held if v["VersionId"] in tokens]
    assert len(ours) == 1
    assert "AWSCURRENT" in ours[0]["VersionStages"]
    assert len(held) == (1 if operation == "CreateSecret" else 2)
    assert value(sm, "r/key") == {"K": "after-race-canary"}
    assert run.results()["r/key"]["version_id"] == ours[0]["VersionId"]
    expected = "create" if operation == "CreateSecret" else "update"
    assert run.results()["r/key"]["action"] == expected
