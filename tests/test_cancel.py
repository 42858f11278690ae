"""A cancelled workflow: the runner signals the action's process mid-run (SIGINT, then SIGTERM
7.5 s later, then a kill; in the container the action is PID 1, where an unhandled SIGTERM is
ignored). The real entrypoint runs behind a slow endpoint and is signalled mid-apply: it must
start no write after the signal, let the writes in flight finish (within a bound), report what
it did in the outputs and the step summary, exit non-zero, and a rerun must converge."""

from __future__ import annotations

import signal
import threading
import time
from concurrent.futures import ThreadPoolExecutor
from typing import Any

import pytest

from secrets_sync.apply import Applier, Result
from secrets_sync.plan import Step, plan
from secrets_sync.schedule import CANCEL_GRACE_SECONDS, NOT_STARTED, apply_all
from tests.support.action import WRITES, assert_run_clean
from tests.support.proxy import AwsProxy, Call
from tests.test_units import desired

NAMES = [f"svc/key-{i:02d}" for i in range(12)]
MAPPING = "\n".join(f"key-{i:02d}: KEY_{i:02d}" for i in range(12))
CANARIES = {f"KEY_{i:02d}": f"cancel-canary-{i:02d}-5b2e9f" for i in range(12)}
INPUTS = {"secrets": MAPPING, "name-prefix": "svc/", "max-concurrency": "2"}


def slow_creates(seconds: float) -> Any:
    def hang(call: Call) -> float | None:
        return seconds if call.operation == "CreateSecret" else None

    return hang


def signal_mid_apply(started: Any, proxy: AwsProxy, signum: int) -> float:
    """Wait until writes are in flight (arrived, not answered), then signal; the signal's time
    on the proxy's clock (time.monotonic, one clock for the machine)."""
    deadline = time.monotonic() + 30
    while proxy.peak("CreateSecret") < 2:
        assert started.proc.poll() is None, "the run ended before its writes started"
        assert time.monotonic() < deadline, "no write arrived"
        time.sleep(0.02)
    time.sleep(0.2)  # both workers are now inside a write, none between check and send
    sent = time.monotonic()
    started.proc.send_signal(signum)
    return sent


def versions(sm: Any, name: str) -> list[dict[str, Any]]:
    return sm.list_secret_version_ids(SecretId=name, IncludeDeprecated=True)["Versions"]


@pytest.mark.parametrize("signum", [signal.SIGTERM, signal.SIGINT])
def test_a_cancelled_run_stops_writing_reports_and_a_rerun_converges(action, proxy, sm, signum):
    proxy.faults.hang_for = slow_creates(1.0)
    started = action.start(INPUTS, env=CANARIES)
    sent = signal_mid_apply(started, proxy, signum)
    run = started.finish(timeout=60)

    assert run.returncode == 1, run.stdout + run.stderr
    writes = [c for c in proxy.calls if c.operation in WRITES]
    assert writes, "nothing was written before the signal"
    # A secret whose write was in flight may finish it (its create is one call);
    # no other secret's write may start.
    begun = {c.secret_id for c in writes if c.received < sent}
    late = [
        c.secret_id
        for c in writes
        if c.received >= sent and not any(b and b in (c.secret_id or "") for b in begun)
    ]
    assert late == [], f"writes started after the signal: {late}"
    # The two in flight were let finish (1 s each, well within the grace) and are reported
    # done; every other secret is reported failed, cancelled, and was not written at all.
    landed = sorted(
        c.secret_id
        for c in writes
        if c.operation == "CreateSecret" and c.forwarded and c.status == 200
    )
    assert len(landed) >= 2
    assert sorted(run.json("created")) == landed
    results = run.results()
    assert sorted(results) == NAMES
    not_done = sorted(set(NAMES) - set(landed))
    assert sorted(run.json("failed")) == not_done
    for name in not_done:
        assert results[name]["error"].startswith("cancelled: "), results[name]
        assert results[name]["arn"] is None
    assert sorted(s["Name"] for s in sm.list_secrets()["SecretList"]) == landed
    arns = run.json("arns")
    assert sorted(arns) == landed
    # One clear line in the log, and the step summary says it and lists every secret.
    name = signal.Signals(signum).name
    [error] = run.errors
    assert f"Cancelled ({name}): {len(landed)} secrets written before the run stopped" in error
    assert f"{len(not_done)} left unwritten" in error
    assert "### secrets-sync cancelled" in run.summary
    for secret in NAMES:
        assert f"| `{secret}` |" in run.summary
    assert "cancelled: the run was stopped before this write started" in run.summary
    assert "Traceback" not in run.stderr
    assert_run_clean(run, CANARIES.values())

    # The rerun finishes the job: the rest created, the landed ones untouched, one version each.
    proxy.faults.hang_for = None
    proxy.reset()
    again = action(INPUTS, env=CANARIES)
    assert again.returncode == 0, again.stdout + again.stderr
    assert sorted(again.json("created")) == not_done
    assert sorted(again.json("unchanged")) == landed
    assert sorted(c.secret_id for c in proxy.calls if c.operation == "CreateSecret") == not_done
    # One write a secret: the create (whose token marks its version as ours).
    assert {c.operation for c in proxy.calls if c.operation in WRITES} == {"CreateSecret"}
    for secret in NAMES:
        assert len(versions(sm, secret)) == 1, secret
    assert_run_clean(again, CANARIES.values())


def test_a_write_that_outlasts_the_grace_period_is_not_waited_for(action, proxy, sm):
    """A write in flight is waited for, but only so long: the runner kills the container 10 s
    after its first signal, and the report must be written before that."""
    proxy.faults.hang_for = slow_creates(CANCEL_GRACE_SECONDS + 20)
    started = action.start(INPUTS, env=CANARIES)
    sent = signal_mid_apply(started, proxy, signal.SIGTERM)
    run = started.finish(timeout=CANCEL_GRACE_SECONDS + 10)

    assert run.returncode == 1, run.stdout + run.stderr
    assert [c for c in proxy.calls if c.operation in WRITES and c.received >= sent] == []
    results = run.results()
    in_flight = [n for n, r in results.items() if "still in flight" in (r["error"] or "")]
    assert len(in_flight) == 2
    assert run.json("created") == []
    assert sorted(run.json("failed")) == NAMES
    assert "may have landed" in run.summary
    assert_run_clean(run, CANARIES.values())


# The retry round, in-process ------------------------------------------------------------------


class Throttled(Applier):
    """An applier whose every write fails as throttled after the SDK's retries (the case the
    retry round is for), and that cancels the run while the first round is on. A real subclass:
    apply_all sees the interface it is given in production; no client is ever called."""

    def __init__(self, stop: threading.Event) -> None:
        super().__init__(client=None, repository="o/r", adopt=True, recovery_window_days=7)
        object.__setattr__(self, "stop", stop)
        object.__setattr__(self, "retried", [])

    def run(self, step: Step) -> Result:
        self.stop.set()
        return Result(step, step.action, None, error="create failed: Throttling", transient=True)

    def retry(self, failed: Result) -> Result:
        self.retried.append(failed.name)
        return failed


def test_no_retry_round_once_the_run_is_cancelled():
    stop = threading.Event()
    applier = Throttled(stop)
    steps = plan((desired("a: A"), desired("b: B")), {}, repository="o/r", adopt=True)
    with ThreadPoolExecutor(max_workers=1) as pool:
        results = apply_all(applier, steps, pool, pause=0.0, stop=stop)
    assert applier.retried == []
    # The first secret's write was started (and failed); the second was never started.
    assert [r.error for r in results] == ["create failed: Throttling", NOT_STARTED]


def test_the_retry_round_runs_when_not_cancelled():
    """The control: the same applier, never cancelled, gets its retry round."""

    class Unstopped(Throttled):
        def run(self, step: Step) -> Result:
            return Result(
                step, step.action, None, error="create failed: Throttling", transient=True
            )

    applier = Unstopped(threading.Event())
    steps = plan((desired("a: A"), desired("b: B")), {}, repository="o/r", adopt=True)
    with ThreadPoolExecutor(max_workers=1) as pool:
        apply_all(applier, steps, pool, pause=0.0)
    assert sorted(applier.retried) == ["a", "b"]


# Cancelled while reading ----------------------------------------------------------------------

READS = frozenset({"ListSecrets", "BatchGetSecretValue", "GetSecretValue", "DescribeSecret"})


@pytest.mark.parametrize("signum", [signal.SIGTERM, signal.SIGINT])
def test_a_signal_during_the_state_read_stops_the_reads_at_once(action, proxy, sm, signum):
    """The reads behind a slow endpoint: the signal ends the run at once, with no read started
    after it and none waited for (each could take the whole timeout, and its retries)."""
    arrived: list[tuple[str, float]] = []

    def slow_reads(call: Call) -> float | None:
        if call.operation not in READS:
            return None
        arrived.append((call.operation, time.monotonic()))
        return 30.0

    proxy.faults.hang_for = slow_reads
    started = action.start(INPUTS, env=CANARIES)
    deadline = time.monotonic() + 30
    while not arrived:
        assert started.proc.poll() is None, "the run ended before it read anything"
        assert time.monotonic() < deadline, "no read arrived"
        time.sleep(0.02)
    time.sleep(0.2)
    sent = time.monotonic()
    started.proc.send_signal(signum)
    run = started.finish(timeout=8)  # far less than one slow read (or the read timeout, 10 s)

    assert run.returncode == 1, run.stdout + run.stderr
    assert [op for op, at in arrived if at >= sent] == [], "a read started after the signal"
    assert not [c for c in proxy.calls if c.operation in WRITES]
    [error] = run.errors
    name = signal.Signals(signum).name
    assert f"Cancelled ({name}) while reading the current state: nothing was written" in error
    assert "### secrets-sync cancelled" in run.summary
    assert "Traceback" not in run.stdout + run.stderr
    assert sm.list_secrets()["SecretList"] == []
    assert_run_clean(run, CANARIES.values())
