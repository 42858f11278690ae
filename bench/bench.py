"""`make bench`: our entrypoint against a sequential boto3 loop, on the same endpoint.

Moto runs in server mode on 127.0.0.1, in a process of its own (harness.moto_server), behind
the tests' recording proxy, which adds a fixed latency to every request (0 and 50 ms by default:
50 ms is a plausible round trip from a GitHub-hosted runner to a Secrets Manager region). For
each N and latency, three scenarios run against a fresh moto: create (N new secrets),
update-all (every value changed) and no-op (nothing changed), first by our entrypoint, then by
bench/baseline.py. Both use the same static credentials (no STS call on either side).

Fairness: both sides are child processes of the same interpreter, launched the same way, and
timed from launch to exit, so both pay interpreter start-up and their imports; both talk to the
same endpoint through the same proxy with the same latency, and both start from the same
state. "1st request" is launch to the first request reaching the proxy. Our side also
validates the mapping, registers masks and writes outputs and a step summary, which the loop
does not. Unless --python names another interpreter, both run in the image's environment, built
from the Dockerfile as tests/test_image.py builds it (a fresh virtual environment with the
lock, the unused SDK models deleted, our code compiled; a development environment has extras
that jsonschema imports at start-up), whose boto3 the loop uses too; ours runs the image's
ENTRYPOINT command.
Peak RSS is our process's high-water mark (VmHWM).

Where N <= 100 our side runs each scenario --repeat times (default 3), and the no-op so at every
N, and the run of median wall time is shown: such a run lasts about half a second, so one busy
moment on the machine would swing it by a third. The loop runs once: it lasts 10 to 100 times
longer, so the same moment moves it by a few per cent. "speed-up" is the loop's wall time over
ours, both launch to exit; "after start-up" compares them from each one's first request to its
exit.
"""

# ruff: noqa: RUF001 - the table prints speed-ups with a multiplication sign
from __future__ import annotations

import argparse
import json
import math
import statistics
import sys
import tempfile
import time
from collections.abc import Callable, Sequence
from dataclasses import dataclass
from pathlib import Path

import harness
from harness import AwsProxy, Child

Side = Callable[[int, str, str], Child]  # (N, scenario, value generation) -> the measured run

SCENARIOS = ("create", "update-all", "no-op")
EXPECT = {"create": "created", "update-all": "updated", "no-op": "unchanged"}
PREFIX = "bench/"


def names(n: int) -> list[str]:
    return [f"s{i:04d}" for i in range(n)]


def values(n: int, generation: str) -> dict[str, str]:
    return {f"V{i:04d}": f"{generation}-value-{i:04d}" for i in range(n)}


def noop_budget(n: int) -> int:
    return 1 + max(1, math.ceil(n / 100)) + math.ceil(n / 20)


@dataclass
class Row:
    n: int
    latency_ms: int
    scenario: str
    ours: Child
    base: Child
    base_sample: int | None = None  # the baseline ran on this many secrets and was scaled

    @property
    def base_wall(self) -> float:
        if self.base_sample is None:
            return self.base.wall
        startup = self.base.startup or 0.0
        return startup + (self.base.wall - startup) * self.n / self.base_sample

    @property
    def base_calls(self) -> int:
        calls = len(self.base.calls)
        return calls if self.base_sample is None else round(calls * self.n / self.base_sample)

    @property
    def ratio(self) -> float:
        return self.base_wall / self.ours.wall

    @property
    def ratio_after_startup(self) -> float:
        return (self.base_wall - (self.base.startup or 0.0)) / (
            self.ours.wall - (self.ours.startup or 0.0)
        )


class Bench:
    def __init__(self, moto_url: str, proxy: AwsProxy, work: Path, args: argparse.Namespace):
        self.moto_url = moto_url
        self.proxy = proxy
        self.work = work
        self.runtime: harness.Runtime = args.runtime
        self.max_concurrency = args.max_concurrency
        self.runs = 0
        self.compared: list[str] = []  # --against's rows

    def _dir(self) -> Path:
        self.runs += 1
        path = self.work / f"run{self.runs}"
        path.mkdir(parents=True)
        return path

    def ours(
        self, n: int, scenario: str, generation: str, command: Sequence[str] | None = None
    ) -> Child:
        work = self._dir()
        mapping = "\n".join(f"{name}: V{name[1:]}" for name in names(n))
        inputs = {
            "secrets": mapping,
            "name-prefix": PREFIX,
            "max-concurrency": str(self.max_concurrency),
        }
        child = harness.run_action(
            command or self.runtime.command(), self.proxy, work, inputs, values(n, generation)
        )
        done = json.loads(child.outputs.get(EXPECT[scenario], "[]"))
        if len(done) != n:
            raise SystemExit(f"our {scenario} of {n} went wrong:\n{child.stdout}\n{child.stderr}")
        return child

    def against(self, n: int, latency_ms: int, generation: str, args: argparse.Namespace) -> str:
        """The no-op by this checkout and by --against's, alternately, `repeat` times each, in
        the same state: a busy machine slows both alike. Their medians from first request."""
        other = [self.runtime.python, str(Path(args.against).absolute() / "entrypoint.py")]
        ours: list[float] = []
        theirs: list[float] = []
        for _ in range(args.repeat):
            for command, into in ((None, ours), (other, theirs)):
                child = self.ours(n, "no-op", generation, command)
                into.append(child.wall - (child.startup or 0.0))
        return (
            f"| {n} | {latency_ms} ms | {statistics.median(ours):.2f} "
            f"| {statistics.median(theirs):.2f} | {args.repeat} |"
        )

    def baseline(self, n: int, scenario: str, generation: str) -> Child:
        work = self._dir()
        desired = {
            f"{PREFIX}{name}": json.dumps({source: value})
            for name, (source, value) in zip(names(n), values(n, generation).items(), strict=True)
        }
        (work / "desired.json").write_text(json.dumps(desired))
        env = harness.base_env(self.proxy.url, work, work)
        env.update(AWS_REGION=harness.REGION, AWS_DEFAULT_REGION=harness.REGION)
        child = harness.run_child(
            [self.runtime.python, str(Path(__file__).with_name("baseline.py")), "desired.json"],
            env,
            self.proxy,
            cwd=work,
        )
        counts = json.loads(child.stdout or "{}") if child.returncode == 0 else {}
        if counts.get(EXPECT[scenario]) != n:
            raise SystemExit(f"baseline {scenario} of {n} went wrong:\n{child.stderr}")
        return child

    def series(self, side: Side, n: int, repeat: int, noops: int | None = None) -> dict[str, Child]:
        """Each scenario `repeat` times (the no-op `noops` times) from the state it needs; the
        run of median wall time."""
        runs: dict[str, list[Child]] = {s: [] for s in SCENARIOS}
        for _ in range(repeat):
            harness.reset_moto(self.moto_url)
            runs["create"].append(side(n, "create", "c"))
        for k in range(repeat):
            runs["update-all"].append(side(n, "update-all", f"u{k}"))
        for _ in range(repeat if noops is None else noops):
            runs["no-op"].append(side(n, "no-op", f"u{repeat - 1}"))
        return {s: sorted(r, key=lambda c: c.wall)[(len(r) - 1) // 2] for s, r in runs.items()}

    def configuration(self, n: int, latency_ms: int, args: argparse.Namespace) -> list[Row]:
        self.proxy.faults.latency = latency_ms / 1000
        # A no-op lasts about a second at any N: it runs `repeat` times at every N.
        repeat = args.repeat if n <= 100 else 1
        ours = self.series(self.ours, n, repeat, noops=args.repeat)
        if args.against:
            self.compared.append(self.against(n, latency_ms, f"u{repeat - 1}", args))
        sample = args.baseline_sample
        base_n = n if sample is None or n <= sample else sample
        base = self.series(self.baseline, base_n, 1)
        scaled = base_n if base_n != n else None
        return [Row(n, latency_ms, s, ours[s], base[s], scaled) for s in SCENARIOS]


def seconds(value: float | None) -> str:
    return "-" if value is None else f"{value:.2f}"


def table(rows: Sequence[Row]) -> str:
    head = (
        "| N | latency | scenario | ours: calls | ours: wall s | ours: 1st request s "
        "| ours: CPU s | ours: peak RSS MiB | loop: calls | loop: wall s | loop: 1st request s "
        "| speed-up | after start-up |\n"
        "|---:|---:|---|---:|---:|---:|---:|---:|---:|---:|---:|---:|---:|\n"
    )
    lines = []
    for r in rows:
        mark = "≈" if r.base_sample else ""
        lines.append(
            f"| {r.n} | {r.latency_ms} ms | {r.scenario} | {len(r.ours.calls)} "
            f"| {r.ours.wall:.2f} | {seconds(r.ours.startup)} | {r.ours.cpu:.2f} "
            f"| {r.ours.peak_rss_kib / 1024:.0f} "
            f"| {mark}{r.base_calls} | {mark}{r.base_wall:.2f} | {seconds(r.base.startup)} "
            f"| {mark}{r.ratio:.1f}× | {mark}{r.ratio_after_startup:.0f}× |"
        )
    return head + "\n".join(lines) + "\n"


def verdicts(rows: Sequence[Row]) -> list[str]:
    out = []
    for r in rows:
        if r.scenario == "no-op":
            budget = noop_budget(r.n)
            ok = len(r.ours.calls) <= budget and set(r.ours.kinds) <= {
                "sts",
                "ListSecrets",
                "BatchGetSecretValue",
            }
            out.append(
                f"{'PASS' if ok else 'MISS'}: no-op of {r.n} at {r.latency_ms} ms made "
                f"{len(r.ours.calls)} calls ({dict(r.ours.kinds)}), budget {budget}"
            )
        if r.n == 100 and r.latency_ms == 50:
            want = 10 if r.scenario == "no-op" else 5
            ok = r.ratio >= want
            out.append(
                f"{'PASS' if ok else 'MISS'}: {r.scenario} of 100 at 50 ms is {r.ratio:.1f}× "
                f"the loop (target {want}×)"
            )
    starts = [r.ours.startup for r in rows if r.ours.startup is not None]
    if starts:
        out.append(
            f"start-up (launch to first AWS request), ours: median {statistics.median(starts):.3f}"
            f" s, max {max(starts):.3f} s over {len(starts)} runs (target 0.5 s)"
        )
    return out


def parse_args(argv: Sequence[str] | None) -> argparse.Namespace:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--n", default="10,100,1000", help="secret counts (default: %(default)s)")
    parser.add_argument(
        "--latency", default="0,50", help="added latency per call, ms (default: %(default)s)"
    )
    parser.add_argument(
        "--quick", action="store_true", help="N=10,100 only: under a minute on 2 cores"
    )
    parser.add_argument(
        "--baseline-sample",
        type=int,
        metavar="K",
        help="run the loop on K secrets where N > K and scale its time linearly (marked ≈)",
    )
    parser.add_argument(
        "--repeat",
        type=int,
        default=3,
        help="runs of ours per scenario where N <= 100, median taken (default: %(default)s)",
    )
    parser.add_argument("--max-concurrency", type=int, default=8)
    parser.add_argument(
        "--python",
        help="interpreter for both sides, with boto3; ours runs the checkout's entrypoint "
        "(default: the image's environment, built from the Dockerfile)",
    )
    parser.add_argument(
        "--against",
        metavar="DIR",
        help="another checkout (e.g. `git archive main`): its no-op alternates with ours, "
        "--repeat times each, and both medians from first request are printed",
    )
    parser.add_argument("--markdown", type=Path, help="also write the table to this file")
    args = parser.parse_args(argv)
    if args.quick:
        args.n = "10,100"
    return args


def main(argv: Sequence[str] | None = None) -> int:
    args = parse_args(argv)
    counts = [int(x) for x in args.n.split(",")]
    latencies = [int(x) for x in args.latency.split(",")]
    command = "python bench/bench.py " + " ".join(sys.argv[1:] if argv is None else argv)
    reference = [harness.cpu_reference()]
    started = time.monotonic()
    rows: list[Row] = []
    with (
        harness.moto_server() as moto_url,
        AwsProxy(moto_url) as proxy,
        tempfile.TemporaryDirectory(prefix="secrets-sync-bench-") as tmp,
    ):
        if args.python is None:
            print("… building the image's environment from the Dockerfile", file=sys.stderr)
            args.runtime = harness.Runtime.image(Path(tmp) / "image")
        else:
            args.runtime = harness.Runtime.given(args.python)
        bench = Bench(moto_url, proxy, Path(tmp) / "runs", args)
        for latency_ms in latencies:
            for n in counts:
                print(f"… N={n}, latency {latency_ms} ms", file=sys.stderr, flush=True)
                rows += bench.configuration(n, latency_ms, args)
    reference.append(harness.cpu_reference())
    text = table(rows)
    if bench.compared:
        text += (
            f"\nNo-op, from first request to exit, median s: this checkout and {args.against}, "
            "run alternately\n\n| N | latency | ours | against | runs each |\n"
            "|---:|---:|---:|---:|---:|\n" + "\n".join(bench.compared) + "\n"
        )
    notes = verdicts(rows)
    notes.append(
        "CPU reference (a fixed Python loop; lower is faster): "
        f"{reference[0]:.2f} s before, {reference[1]:.2f} s after"
    )
    print(f"\n`{command.strip()}` ({time.monotonic() - started:.0f} s in all)\n")
    print(text)
    print("\n".join(notes))
    if any(r.base_sample for r in rows):
        print(
            "≈: the loop ran on a sample of secrets; its time after start-up and its calls are "
            "scaled linearly to N."
        )
    if args.markdown:
        args.markdown.write_text(text + "\n" + "\n".join(notes) + "\n")
    return 0


if __name__ == "__main__":
    sys.exit(main())
