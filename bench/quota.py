"""`python bench/quota.py`: a mixed run (N creates and N updates) against AWS's quotas.

moto has no quota, so a run against it shows how fast the action could go, not how fast AWS
lets it. Here the tests' recording proxy in front of moto enforces each quota group of the
Secrets Manager quotas page as a token bucket of its own (tests/support/proxy.py, AWS_QUOTAS:
50 calls a second for PutSecretValue/UpdateSecret/UpdateSecretVersionStage and the replication
calls together, 50 for TagResource/UntagResource, 50 for CreateSecret, 100 for
BatchGetSecretValue, 100 for ListSecrets, 10,000 for GetSecretValue/DescribeSecret, ...), each
holding `--burst` seconds of its rate and starting full, and adds `--latency` to every call.

The mixed run: N secrets exist (made by the action, then the listing has caught up), and one
run of the entrypoint, as the runner runs it, creates N more and changes the value of the N.
Its floor is what the quotas imply for one write call per change: the creates and the value
writes count against different groups, so they can go side by side, and the floor is the
slower group's (N - burst) / rate. "floor (calls made)" is the same for the calls the run
actually made (a second write per change doubles it). The ratio compares the run's time after
its first request (start-up is no AWS call) with the one-write floor; the target is 1.2x.

The baseline, from the same state against the same buckets, is bench/baseline.py: the
sequential boto3 loop of bench/bench.py (GetSecretValue, then CreateSecret or PutSecretValue,
per secret).

Calls per change: small runs of K secrets each (a create, a value update, a tag-only change, a
description-only change), counted at the proxy: write calls per change, and all calls per
change (the reads included).
"""

# ruff: noqa: RUF001 - the table prints ratios with a multiplication sign
from __future__ import annotations

import argparse
import json
import sys
import tempfile
from collections import Counter
from collections.abc import Sequence
from dataclasses import dataclass
from pathlib import Path

import harness
from harness import AwsProxy, Child

sys.path.insert(0, str(harness.ROOT))
from tests.support.action import WRITES
from tests.support.proxy import AWS_QUOTAS, Faults, quota_buckets

PREFIX = "quota/"


def entry(name: str, source: str, *, tag: str | None = None, description: str | None = None) -> str:
    """One mapping line: the secret's JSON holds one key, `source`, as `name: SOURCE` gives."""
    extra = f", tags: {{Team: {tag}}}" if tag else ""
    extra += f", description: {description}" if description else ""
    return f"{name}: {{keys: [{source}]{extra}}}"


def value_of(source: str, generation: str) -> str:
    return f"{generation}-quota-{source.lower()}"


@dataclass
class Workload:
    """A mapping of names to sources, and the values the run gets."""

    lines: list[str]
    env: dict[str, str]

    @property
    def mapping(self) -> str:
        return "\n".join(self.lines)


def workload(
    names: Sequence[str], generation: str, *, tag: str | None = None, description: str | None = None
) -> Workload:
    lines, env = [], {}
    for name in names:
        source = name.upper()
        lines.append(entry(name, source, tag=tag, description=description))
        env[source] = value_of(source, generation)
    return Workload(lines, env)


def old(n: int) -> list[str]:
    return [f"u{i:04d}" for i in range(n)]


def new(n: int) -> list[str]:
    return [f"c{i:04d}" for i in range(n)]


def group_of(operation: str) -> tuple[float, frozenset[str]] | None:
    return next((g for g in AWS_QUOTAS if operation in g[1]), None)


def floor(calls: Counter[str], burst: float) -> float:
    """The least time a token bucket per quota group, starting full, lets these calls through:
    the slowest group's (calls - burst) / rate."""
    per_group: Counter[tuple[float, frozenset[str]]] = Counter()
    for operation, count in calls.items():
        group = group_of(operation)
        if group is not None:
            per_group[group] += count
    return max(
        (max(0.0, count - max(1.0, rate * burst)) / rate for (rate, _), count in per_group.items()),
        default=0.0,
    )


def landed(child: Child) -> Counter[str]:
    """Calls that reached moto, by operation: what the quotas let through."""
    return Counter(
        c.operation for c in child.calls if c.service == "secretsmanager" and c.forwarded
    )


def throttled(child: Child) -> int:
    return sum(c.service == "secretsmanager" and c.status == 400 for c in child.calls)


class Bench:
    def __init__(self, moto_url: str, proxy: AwsProxy, work: Path, args: argparse.Namespace):
        self.moto_url = moto_url
        self.proxy = proxy
        self.work = work
        self.args = args
        self.runs = 0

    def _dir(self) -> Path:
        self.runs += 1
        path = self.work / f"run{self.runs}"
        path.mkdir(parents=True)
        return path

    def quotas(self, on: bool) -> None:
        buckets = quota_buckets(self.args.burst) if on else ()
        self.proxy.faults = Faults(buckets=buckets, latency=self.args.latency / 1000)

    def ours(self, load: Workload, *, concurrency: int | None = None) -> Child:
        inputs = {
            "secrets": load.mapping,
            "name-prefix": PREFIX,
            "max-concurrency": str(concurrency or self.args.max_concurrency),
        }
        command = self.args.runtime.command()
        return harness.run_action(command, self.proxy, self._dir(), inputs, load.env)

    def fresh(self, n: int) -> None:
        """A fresh moto holding the N secrets to update, made by the action without quotas."""
        harness.reset_moto(self.moto_url)
        self.quotas(on=False)
        self.ours(workload(old(n), "old"), concurrency=16)
        self.quotas(on=True)

    def mixed(self, n: int) -> tuple[Child, Workload]:
        self.fresh(n)
        load = workload(old(n) + new(n), "new")
        child = self.ours(load)
        outputs = child.outputs
        if len(json.loads(outputs["created"])) != n or len(json.loads(outputs["updated"])) != n:
            raise SystemExit(f"the mixed run went wrong:\n{child.stdout}\n{child.stderr}")
        return child, load

    def baseline(self, n: int) -> Child:
        self.fresh(n)
        work = self._dir()
        desired = {
            f"{PREFIX}{name}": json.dumps({name.upper(): value_of(name.upper(), "new")})
            for name in old(n) + new(n)
        }
        (work / "desired.json").write_text(json.dumps(desired))
        env = harness.base_env(self.proxy.url, work, work)
        env.update(AWS_REGION=harness.REGION, AWS_DEFAULT_REGION=harness.REGION)
        script = str(Path(__file__).with_name("baseline.py"))
        child = harness.run_child(
            [self.args.runtime.python, script, "desired.json"], env, self.proxy, cwd=work
        )
        counts = json.loads(child.stdout or "{}") if child.returncode == 0 else {}
        if counts.get("created") != n or counts.get("updated") != n:
            raise SystemExit(f"the baseline went wrong:\n{child.stdout}\n{child.stderr}")
        return child

    def per_change(self, k: int) -> dict[str, Child]:
        """One run per kind of change, on K secrets each, from the state the one before left."""
        self.quotas(on=True)
        harness.reset_moto(self.moto_url)
        names = [f"k{i:03d}" for i in range(k)]
        out = {"create": self.ours(workload(names, "one"))}
        out["update"] = self.ours(workload(names, "two"))
        out["tag-only"] = self.ours(workload(names, "two", tag="core"))
        out["description-only"] = self.ours(
            workload(names, "two", tag="core", description="measured")
        )
        for kind, child in out.items():
            done = json.loads(child.outputs["created" if kind == "create" else "updated"])
            if len(done) != k:
                raise SystemExit(f"{kind} of {k} went wrong:\n{child.stdout}\n{child.stderr}")
        return out


def after_start(child: Child) -> float:
    return child.wall - (child.startup or 0.0)


def report(
    n: int, k: int, args: argparse.Namespace, ours: Child, base: Child, kinds: dict[str, Child]
) -> tuple[str, list[str]]:
    ideal = floor(Counter({"CreateSecret": n, "PutSecretValue": n}), args.burst)
    lines = [
        f"Mixed run: {n} creates and {n} updates, quotas as buckets (burst {args.burst} s), "
        f"{args.latency} ms a call, max-concurrency {args.max_concurrency}.",
        "",
        "| run | wall s | after 1st request s | floor (one write a change) s | ratio "
        "| floor (calls made) s | calls | throttled | writes by operation |",
        "|---|---:|---:|---:|---:|---:|---:|---:|---|",
    ]
    verdicts = []
    for label, child in (("ours", ours), ("sequential loop", base)):
        made = landed(child)
        writes = ", ".join(f"{op} {made[op]}" for op in sorted(made) if op in WRITES)
        ratio = after_start(child) / ideal if ideal else float("inf")
        lines.append(
            f"| {label} | {child.wall:.2f} | {after_start(child):.2f} | {ideal:.2f} "
            f"| {ratio:.2f}× | {floor(made, args.burst):.2f} | {sum(made.values())} "
            f"| {throttled(child)} | {writes} |"
        )
        if label == "ours":
            verdict = "PASS" if ratio <= 1.2 else "MISS"
            verdicts.append(
                f"{verdict}: the mixed run of {n} + {n} took {ratio:.2f}× the floor of one write "
                f"a change ({ideal:.2f} s; target 1.2×); the loop {after_start(base) / ideal:.1f}×"
            )
    lines += [
        "",
        f"Calls per change, counted at the proxy ({k} secrets a run):",
        "",
        "| change | write calls per change | all calls per change | writes by operation |",
        "|---|---:|---:|---|",
    ]
    for kind, child in kinds.items():
        made = landed(child)
        writes = {op: c for op, c in made.items() if op in WRITES}
        lines.append(
            f"| {kind} | {sum(writes.values()) / k:.2f} | {sum(made.values()) / k:.2f} "
            f"| {', '.join(f'{op} {c}' for op, c in sorted(writes.items()))} |"
        )
    return "\n".join(lines) + "\n", verdicts


def parse_args(argv: Sequence[str] | None) -> argparse.Namespace:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--n", type=int, default=250, help="creates, and updates (default 250)")
    parser.add_argument("--k", type=int, default=20, help="secrets per calls-per-change run")
    parser.add_argument("--latency", type=int, default=50, help="ms added to a call (50)")
    parser.add_argument(
        "--burst", type=float, default=0.2, help="seconds of calls a bucket holds (default 0.2)"
    )
    parser.add_argument("--max-concurrency", type=int, default=8)
    parser.add_argument(
        "--python",
        default=sys.executable,
        help="interpreter running the checkout's entrypoint and the loop (default: this one)",
    )
    parser.add_argument("--markdown", type=Path, help="also write the tables to this file")
    return parser.parse_args(argv)


def main(argv: Sequence[str] | None = None) -> int:
    args = parse_args(argv)
    args.runtime = harness.Runtime.given(args.python)
    measured = harness.Measured(
        "python bench/quota.py " + " ".join(sys.argv[1:] if argv is None else argv)
    )
    with (
        harness.moto_server() as moto_url,
        AwsProxy(moto_url) as proxy,
        tempfile.TemporaryDirectory(prefix="secrets-sync-quota-") as tmp,
    ):
        bench = Bench(moto_url, proxy, Path(tmp), args)
        print(f"… mixed run of {args.n} + {args.n}", file=sys.stderr, flush=True)
        ours, _ = bench.mixed(args.n)
        print("… the sequential loop", file=sys.stderr, flush=True)
        base = bench.baseline(args.n)
        print(f"… calls per change, {args.k} secrets a run", file=sys.stderr, flush=True)
        kinds = bench.per_change(args.k)
    text, verdicts = report(args.n, args.k, args, ours, base, kinds)
    measured.print(text, verdicts, args.markdown)
    return 0


if __name__ == "__main__":
    sys.exit(main())
