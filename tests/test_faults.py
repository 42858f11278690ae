"""AWS misbehaving, through the fault-injecting proxy: every secret must end right, a failure
must be reported and not hidden, and a slow answer must not hang the job.

Throttling with 5xx on creates, creates against a token bucket (AWS's quota), 5xx across
reads, updates and tag changes at scale, throttling of updates, the SDK's attempts running out
so that the action's own retry round is what saves the secret, writes that land while every
answer is lost, a secret whose writes always fail (500 or 403) and its rerun, and hangs that
end in a timeout, a retry or one clear error.
tests/test_races.py has two runs at once and the SDK's retries of a landed write."""

from __future__ import annotations

import json
import threading
from typing import Any

import pytest

from secrets_sync.credentials import MAX_ATTEMPTS
from tests.support.action import OURS, REPOSITORY, WRITES, assert_run_clean
from tests.support.proxy import AWS_QUOTAS, Call, Faults, TokenBucket, quota_buckets

READS = {"ListSecrets", "BatchGetSecretValue", "GetSecretValue", "DescribeSecret"}


def value(sm: Any, name: str) -> Any:
    return json.loads(sm.get_secret_value(SecretId=name)["SecretString"])


def versions(sm: Any, name: str) -> list[dict[str, Any]]:
    return sm.list_secret_version_ids(SecretId=name, IncludeDeprecated=True)["Versions"]


def tags(sm: Any, name: str) -> dict[str, str]:
    return {t["Key"]: t["Value"] for t in sm.describe_secret(SecretId=name).get("Tags", [])}


def first_of_each(operations: set[str], status: int) -> Any:
    """A rule failing the first call of each named operation: the fault surely happens."""
    seen: set[str] = set()
    lock = threading.Lock()

    def rule(call: Call) -> int | None:
        with lock:
            if call.operation in operations and call.operation not in seen:
                seen.add(call.operation)
                return status
        return None

    return rule


def both(first: Any, second: Faults) -> Faults:
    """Faults whose rule is `first`, and the random rates of `second` after it."""
    second.rule = first
    return second


def mixed_workload(sm: Any, n: int) -> tuple[str, dict[str, str], dict[str, str]]:
    """n secrets to create, n to update and n whose value is right but whose tag is missing.
    Returns the mapping, the values, and each name's expected action."""
    lines, env, expected = [], {}, {}
    for i in range(n):
        for kind in ("new", "upd", "tag"):
            source = f"{kind.upper()}_{i:02}"
            env[source] = f"{kind}-fault-canary-{i:02}"
            lines.append(f"{kind}{i:02}: {{keys: [{source}], tags: {{Team: core}}}}")
            name = f"f/{kind}{i:02}"
            expected[name] = {"new": "create", "upd": "update", "tag": "tag"}[kind]
            if kind == "upd":
                sm.create_secret(Name=name, SecretString=json.dumps({source: "old"}), Tags=[*OURS])
            elif kind == "tag":
                sm.create_secret(
                    Name=name, SecretString=json.dumps({source: env[source]}), Tags=[*OURS]
                )
    return "\n".join(lines), env, expected


def assert_workload_right(sm: Any, run: Any, env: dict[str, str], expected: dict[str, str]) -> None:
    assert {n: r["action"] for n, r in run.results().items()} == expected
    assert not run.json("failed")
    for name, action in expected.items():
        source = name.removeprefix("f/").upper()
        source = source[:3] + "_" + source[3:]
        assert value(sm, name) == {source: env[source]}
        assert tags(sm, name)["Team"] == "core"
        assert tags(sm, name)["secrets-sync:repository"] == REPOSITORY
        # A create is one version, an update one more, a tag change none: no retry minted one.
        assert len(versions(sm, name)) == {"create": 1, "update": 2, "tag": 1}[action]


N = 12
CREATES = {f"S{i:02}": f"fault-canary-{i:02}-value" for i in range(N)}
CREATE_MAPPING = "\n".join(f"s{i:02}: S{i:02}" for i in range(N))


def test_throttling_and_5xx_on_creates_are_survived_with_every_secret_right(action, proxy, sm):
    proxy.faults = Faults(throttle_rate=0.3, error_rate=0.2, seed=11)
    run = action({"secrets": CREATE_MAPPING, "name-prefix": "f/"}, env=CREATES)
    assert run.returncode == 0, run.stdout
    assert [c for c in proxy.calls if c.status == 400]
    assert [c for c in proxy.calls if c.status == 503]  # the faults really happened
    assert sorted(run.json("created")) == [f"f/s{i:02}" for i in range(N)]
    for i in range(N):
        assert value(sm, f"f/s{i:02}") == {f"S{i:02}": CREATES[f"S{i:02}"]}
        assert len(versions(sm, f"f/s{i:02}")) == 1  # retries minted no extra version
    assert_run_clean(run, CREATES.values())


def test_creates_against_a_token_bucket_all_land_once(action, proxy, sm):
    # AWS's quota as a bucket far below the limiter's starting rate and burst: many calls are
    # refused, none may be lost or land twice. (bench/throttle.py measures how fast.)
    n = 40
    env = {f"B{i:02}": f"bucket-canary-{i:02}-value" for i in range(n)}
    mapping = "\n".join(f"b{i:02}: B{i:02}" for i in range(n))
    proxy.faults = Faults(bucket=TokenBucket(20, 2, frozenset({"CreateSecret"})))
    run = action({"secrets": mapping, "name-prefix": "f/", "max-concurrency": "16"}, env=env)
    assert run.returncode == 0, run.stdout
    creates = [c for c in proxy.calls if c.operation == "CreateSecret"]
    assert [c for c in creates if c.status == 400]  # the bucket did run dry
    assert sorted(c.secret_id for c in creates if c.forwarded) == sorted(run.json("created"))
    assert len(run.json("created")) == n
    for i in range(n):
        assert value(sm, f"f/b{i:02}") == {f"B{i:02}": env[f"B{i:02}"]}
        assert len(versions(sm, f"f/b{i:02}")) == 1
    assert run.errors == []
    assert_run_clean(run, env.values())


def test_creates_updates_and_tags_against_every_quota_group_all_land_once(action, proxy, sm):
    # Each of AWS's quota groups its own bucket (bench/quota.py measures the same at full
    # rate), here at a tenth of the rate, so that creates, value writes and tag writes each run
    # their bucket dry: each kind must be paced on its own, and none lost or written twice.
    mapping, env, expected = mixed_workload(sm, 12)
    proxy.faults = Faults(buckets=quota_buckets(0.05, scale=0.1))
    run = action({"secrets": mapping, "name-prefix": "f/", "max-concurrency": "16"}, env=env)
    assert run.returncode == 0, run.stdout
    refused = {c.operation for c in proxy.calls if c.status == 400}
    groups = [ops for _, ops in AWS_QUOTAS if ops & refused]
    assert len(groups) >= 2, refused  # more than one bucket ran dry, each on its own calls
    assert_workload_right(sm, run, env, expected)
    assert run.errors == []
    assert_run_clean(run, env.values())


def test_a_secret_whose_writes_always_fail_is_reported_and_a_rerun_converges(action, proxy, sm):
    proxy.faults = Faults(
        rule=lambda c: 500 if c.operation in WRITES and c.secret_id == "f/s03" else None
    )
    run = action({"secrets": CREATE_MAPPING, "name-prefix": "f/"}, env=CREATES)
    assert run.returncode == 1
    assert run.json("failed") == ["f/s03"]
    assert len(run.json("created")) == N - 1
    assert any("f/s03" in line for line in run.errors)
    assert "InternalServiceError" in run.results()["f/s03"]["error"]
    assert_run_clean(run, CREATES.values())

    proxy.faults = Faults()
    proxy.reset()
    again = action({"secrets": CREATE_MAPPING, "name-prefix": "f/"}, env=CREATES)
    assert again.returncode == 0, again.stdout
    assert again.json("created") == ["f/s03"]
    assert [c.operation for c in proxy.calls if c.operation in WRITES] == ["CreateSecret"]
    assert value(sm, "f/s03") == {"S03": CREATES["S03"]}


def test_5xx_on_a_fifth_of_calls_across_reads_updates_and_tags(action, proxy, sm):
    mapping, env, expected = mixed_workload(sm, 10)
    proxy.faults = both(first_of_each(READS | WRITES, 503), Faults(error_rate=0.2, seed=5))
    run = action({"secrets": mapping, "name-prefix": "f/"}, env=env)
    assert run.returncode == 0, run.stdout
    hit = {c.operation for c in proxy.calls if c.status == 503}
    assert {"ListSecrets", "CreateSecret", "PutSecretValue", "TagResource"} <= hit
    assert sum(c.status == 503 for c in proxy.calls) > 5
    assert_workload_right(sm, run, env, expected)
    assert_run_clean(run, env.values())


def test_throttling_of_a_third_of_calls_on_updates(action, proxy, sm):
    mapping, env, expected = mixed_workload(sm, 1)
    proxy.faults = both(
        first_of_each({"ListSecrets", "PutSecretValue"}, 400), Faults(throttle_rate=0.3, seed=9)
    )
    run = action({"secrets": mapping, "name-prefix": "f/"}, env=env)
    assert run.returncode == 0, run.stdout
    assert {"ListSecrets", "PutSecretValue"} <= {
        c.operation for c in proxy.calls if c.status == 400
    }
    assert_workload_right(sm, run, env, expected)


def test_when_the_sdk_gives_up_the_retry_round_writes_it(action, proxy, sm):
    # Every SDK attempt of one secret's create fails (before reaching AWS); the action's own
    # round re-reads it and creates it then.
    count = {"n": 0}

    def rule(call: Call) -> int | None:
        if call.operation == "CreateSecret" and call.secret_id == "f/stubborn":
            count["n"] += 1
            return 503 if count["n"] <= MAX_ATTEMPTS else None
        return None

    proxy.faults = Faults(rule=rule)
    env = {"STUBBORN": "stubborn-canary-1", "EASY": "easy-canary-1"}
    run = action({"secrets": "stubborn: STUBBORN\neasy: EASY", "name-prefix": "f/"}, env=env)
    assert run.returncode == 0, run.stdout
    assert sorted(run.json("created")) == ["f/easy", "f/stubborn"]
    mine = [c for c in proxy.calls if c.secret_id == "f/stubborn"]
    creates = [c for c in mine if c.operation == "CreateSecret"]
    assert [c.status for c in creates] == [503] * MAX_ATTEMPTS + [200]
    assert "DescribeSecret" in [c.operation for c in mine]  # re-read before writing again
    assert value(sm, "f/stubborn") == {"STUBBORN": "stubborn-canary-1"}
    assert len(versions(sm, "f/stubborn")) == 1
    assert run.errors == []


@pytest.mark.parametrize("operation", ["CreateSecret", "PutSecretValue"])
def test_a_write_that_lands_while_every_answer_is_lost(action, proxy, sm, operation):
    """Each attempt reaches AWS but the client sees 503 (a dropped connection after commit).
    The SDK retries with one token, so no second version; the retry round re-reads, finds the
    value in place, and the run must still report the write, or `changed` would lie."""
    if operation == "PutSecretValue":
        sm.create_secret(Name="f/lost", SecretString='{"LOST":"old"}', Tags=OURS)
    proxy.faults = Faults(
        after=lambda c: 503 if c.operation == operation and "f/lost" in str(c.secret_id) else None
    )
    run = action({"secrets": "lost: LOST", "name-prefix": "f/"}, env={"LOST": "lost-canary-1"})
    assert run.returncode == 0, run.stdout
    writes = [c for c in proxy.calls if c.operation == operation]
    assert len(writes) == MAX_ATTEMPTS
    assert all(c.forwarded and c.status == 503 for c in writes)
    tokens = {c.body["ClientRequestToken"] for c in writes}
    assert len(tokens) == 1  # one idempotency token for all the SDK's attempts
    assert len(versions(sm, "f/lost")) == (1 if operation == "CreateSecret" else 2)
    assert value(sm, "f/lost") == {"LOST": "lost-canary-1"}
    assert sm.get_secret_value(SecretId="f/lost")["VersionId"] == tokens.pop()
    expected = "create" if operation == "CreateSecret" else "update"
    assert run.results()["f/lost"]["action"] == expected
    assert run.outputs["changed"] == "true"


def test_a_denied_secret_is_reported_and_a_rerun_converges_with_one_write(action, proxy, sm):
    mapping, env, expected = mixed_workload(sm, 2)
    denied = "f/new01"
    proxy.faults = Faults(
        rule=lambda c: 403 if c.operation in WRITES and denied in str(c.secret_id) else None
    )
    run = action({"secrets": mapping, "name-prefix": "f/"}, env=env)
    assert run.returncode == 1
    assert run.json("failed") == [denied]
    assert "AccessDeniedException" in run.results()[denied]["error"]
    assert [line for line in run.errors if denied in line]
    assert f"`{denied}`" in run.summary.split("Needs attention", 1)[1]
    # Not transient: asked once, not again in the retry round.
    writes = [c.operation for c in proxy.calls if c.operation in WRITES and c.secret_id == denied]
    assert writes == ["CreateSecret"]
    assert denied not in [s["Name"] for s in sm.list_secrets()["SecretList"]]
    others = {n: a for n, a in expected.items() if n != denied}
    assert {n: run.results()[n]["action"] for n in others} == others

    proxy.faults = Faults()
    proxy.reset()
    again = action({"secrets": mapping, "name-prefix": "f/"}, env=env)
    assert again.returncode == 0, again.stdout
    assert [
        (c.operation, denied in str(c.secret_id)) for c in proxy.calls if c.operation in WRITES
    ] == [("CreateSecret", True)]  # one write: value, tags and all
    assert again.json("created") == [denied]
    assert sorted(again.json("unchanged")) == sorted(n for n in expected if n != denied)
    assert value(sm, denied) == {"NEW_01": "new-fault-canary-01"}


class Hang:
    """Hangs calls of the given operations (only the first of each, with `first`), and counts
    arrivals: a hung call is recorded by the proxy only once answered, which may be never."""

    def __init__(self, operations: set[str], seconds: float, *, first: bool = False) -> None:
        self.operations, self.seconds, self.first = operations, seconds, first
        self.arrived: list[str] = []
        self.lock = threading.Lock()

    def __call__(self, call: Call) -> float | None:
        with self.lock:
            self.arrived.append(call.operation)
            if call.operation in self.operations and not (
                self.first and self.arrived.count(call.operation) > 1
            ):
                return self.seconds
        return None


def test_a_write_that_always_hangs_fails_that_secret_on_a_timeout(action, proxy):
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


def test_a_hung_answer_times_out_and_the_retry_succeeds(action, proxy, sm):
    # Each first ListSecrets and CreateSecret would hang far longer than the whole run may take.
    hang = Hang({"ListSecrets", "CreateSecret"}, 300, first=True)
    proxy.faults = Faults(hang_for=hang)
    run = action(
        {"secrets": "slow: SLOW", "name-prefix": "f/"},
        env={"SLOW": "slow-canary-value-1", "SECRETS_SYNC_TIMEOUT": "1"},
        timeout=60,
    )
    assert run.returncode == 0, run.stdout
    assert run.json("created") == ["f/slow"]
    assert value(sm, "f/slow") == {"SLOW": "slow-canary-value-1"}
    assert hang.arrived.count("ListSecrets") == 2
    assert hang.arrived.count("CreateSecret") == 2
    assert len(versions(sm, "f/slow")) == 1


def test_reads_that_always_hang_end_in_one_clear_error(action, proxy):
    hang = Hang({"ListSecrets"}, 300)
    proxy.faults = Faults(hang_for=hang)
    run = action(
        {"secrets": "slow: SLOW", "name-prefix": "f/"},
        env={"SLOW": "slow-canary-value-2", "SECRETS_SYNC_TIMEOUT": "1"},
        timeout=90,
    )
    out = run.stdout + run.stderr
    assert run.returncode == 1, out
    assert "Traceback" not in out
    (error,) = run.errors
    assert "ListSecrets" in error
    assert "timeout" in error.lower()
    assert "Fix:" in error
    assert not WRITES & set(proxy.ops())
    assert run.summary.startswith("### secrets-sync failed")
    assert hang.arrived.count("ListSecrets") == MAX_ATTEMPTS  # retried, then given up
    assert_run_clean(run, ["slow-canary-value-2"])
