"""`python bench/throttle.py`: creates under throttling, our pacing against botocore's modes.

Moto runs in server mode behind the tests' recording proxy, which throttles in two ways: at
random (a share of all calls answered ThrottlingException, as when other workloads drain the
account's quota) or as a token bucket on CreateSecret (a hard ceiling, as AWS enforces its 50
calls a second; the bucket holds `--burst` seconds of calls and starts full). Each scenario
starts from a fresh moto and runs the real entrypoint as the runner runs it (harness.py), with
`max-concurrency: 16`, once per retry mode, chosen by the hidden SECRETS_SYNC_RETRY_MODE that
only this bench sets: `paced` (ours, limiter.py), botocore's `standard` and `adaptive` (what
the action used before). Every run must end with every secret created.

Ratios: a random-throttling run against the same mode's no-fault run (and, in brackets, against
the fastest no-fault run of the table); a bucket run against the bucket's floor, N / rate.
"calls" counts every Secrets Manager call, "throttled" those answered ThrottlingException.
"""

# ruff: noqa: RUF001 - the table prints ratios with a multiplication sign
from __future__ import annotations

import argparse
import json
import sys
import tempfile
from collections.abc import Sequence
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import harness
from harness import AwsProxy, Child

sys.path.insert(0, str(harness.ROOT))
from tests.support.proxy import Faults, TokenBucket

MODES = ("paced", "standard", "adaptive")
PREFIX = "bench/"


@dataclass(frozen=True)
class Scenario:
    name: str
    n: int
    throttle_rate: float = 0.0
    bucket_tps: float | None = None
    goal: float | None = None  # the ratio not to exceed

    def faults(self, burst_seconds: float) -> Faults:
        bucket = None
        if self.bucket_tps is not None:
            burst = max(1.0, self.bucket_tps * burst_seconds)
            bucket = TokenBucket(self.bucket_tps, burst, frozenset({"CreateSecret"}))
        return Faults(throttle_rate=self.throttle_rate, bucket=bucket, seed=len(self.name))

    @property
    def floor(self) -> float | None:
        return None if self.bucket_tps is None else self.n / self.bucket_tps


SCENARIOS = (
    Scenario("no faults", 100),
    Scenario("10% throttled", 100, throttle_rate=0.1, goal=2.5),
    Scenario("30% throttled", 100, throttle_rate=0.3, goal=6.0),
    Scenario("50 TPS bucket", 300, bucket_tps=50, goal=1.5),
    Scenario("20 TPS bucket", 300, bucket_tps=20, goal=1.3),
)


@dataclass
class Run:
    scenario: Scenario
    mode: str
    child: Child

    @property
    def calls(self) -> int:
        return sum(c.service == "secretsmanager" for c in self.child.calls)

    @property
    def throttled(self) -> int:
        return sum(c.service == "secretsmanager" and c.status == 400 for c in self.child.calls)


def run_one(
    moto_url: str, proxy: AwsProxy, work: Path, scenario: Scenario, mode: str, args: Any
) -> Run:
    harness.reset_moto(moto_url)
    proxy.faults = scenario.faults(args.burst)
    mapping = "\n".join(f"s{i:04d}: V{i:04d}" for i in range(scenario.n))
    values = {f"V{i:04d}": f"throttle-bench-{i:04d}" for i in range(scenario.n)}
    inputs = {"secrets": mapping, "name-prefix": PREFIX, "max-concurrency": str(args.concurrency)}
    work.mkdir(parents=True)
    child = harness.run_action(
        args.runtime.command(),
        proxy,
        work,
        inputs,
        values,
        env={"SECRETS_SYNC_RETRY_MODE": mode},
    )
    created = json.loads(child.outputs.get("created", "[]"))
    if len(created) != scenario.n:
        raise SystemExit(f"{mode} {scenario.name}: {len(created)} of {scenario.n} created")
    return Run(scenario, mode, child)


def table(runs: Sequence[Run]) -> tuple[str, list[str]]:
    no_fault = {r.mode: r.child.wall for r in runs if r.scenario.name == "no faults"}
    fastest = min(no_fault.values(), default=0.0)
    lines = [
        "| scenario | N | mode | wall s | ratio | goal | calls | throttled |",
        "|---|---:|---|---:|---:|---:|---:|---:|",
    ]
    verdicts = []
    for r in runs:
        s, wall = r.scenario, r.child.wall
        if s.floor is not None:
            ratio, against = wall / s.floor, f"{wall / s.floor:.2f}× floor {s.floor:.1f} s"
        elif s.goal is not None and r.mode in no_fault:
            ratio = wall / no_fault[r.mode]
            against = f"{ratio:.1f}× ({wall / fastest:.1f}×)"
        else:
            ratio, against = 0.0, "-"
        goal = "-" if s.goal is None else f"≤ {s.goal}×"
        lines.append(
            f"| {s.name} | {s.n} | {r.mode} | {wall:.2f} | {against} | {goal} "
            f"| {r.calls} | {r.throttled} |"
        )
        if s.goal is not None and r.mode == "paced":
            verdict = "PASS" if ratio <= s.goal else "MISS"
            verdicts.append(f"{verdict}: {s.name} of {s.n}, paced: {ratio:.2f}× (goal {goal})")
    return "\n".join(lines) + "\n", verdicts


def parse_args(argv: Sequence[str] | None) -> argparse.Namespace:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--modes", default=",".join(MODES), help="default: %(default)s")
    parser.add_argument(
        "--scenarios",
        default="all",
        help="comma-separated names as printed, e.g. '20 TPS bucket' (default: all)",
    )
    parser.add_argument("--concurrency", type=int, default=16, help="max-concurrency")
    parser.add_argument(
        "--burst", type=float, default=0.2, help="seconds of calls a bucket holds (default 0.2)"
    )
    parser.add_argument(
        "--python",
        default=sys.executable,
        help="interpreter running the checkout's entrypoint (default: this one)",
    )
    parser.add_argument("--markdown", type=Path, help="also write the table to this file")
    return parser.parse_args(argv)


def main(argv: Sequence[str] | None = None) -> int:
    args = parse_args(argv)
    args.runtime = harness.Runtime.given(args.python)
    modes = [m for m in args.modes.split(",") if m]
    wanted = {s.strip() for s in args.scenarios.split(",")}
    scenarios = [s for s in SCENARIOS if "all" in wanted or s.name in wanted]
    measured = harness.Measured(
        "python bench/throttle.py " + " ".join(sys.argv[1:] if argv is None else argv)
    )
    runs: list[Run] = []
    with (
        harness.moto_server() as moto_url,
        AwsProxy(moto_url) as proxy,
        tempfile.TemporaryDirectory(prefix="secrets-sync-throttle-") as tmp,
    ):
        for scenario in scenarios:
            for mode in modes:
                print(f"… {scenario.name}, {mode}", file=sys.stderr, flush=True)
                work = Path(tmp) / f"run{len(runs)}"
                runs.append(run_one(moto_url, proxy, work, scenario, mode, args))
    text, verdicts = table(runs)
    measured.print(text, verdicts, args.markdown)
    return 0


if __name__ == "__main__":
    sys.exit(main())
