"""Start-up: from process launch to the first AWS request, and where the time goes.

Runs the entrypoint (a no-op sync of N secrets, as the runner runs it) against a local moto
behind the recording proxy --runs times for each N of --n, and reports the time from launch to
the first request reaching the proxy, and its ratio to the smallest N's (start-up should not
grow with the mapping: at most 1.25x from 4 to 1,000 secrets). Runs of the sizes alternate, so
a machine that slows down mid-run slows both. Then once more under `python -X importtime`,
whose self times it sums per top-level package (the standard library as one) to show what the
imports cost.

Usage: python bench/startup.py [--runs 15] [--n 4,1000] [--python PATH]
"""

from __future__ import annotations

import argparse
import re
import statistics
import sys
import tempfile
from collections import Counter
from collections.abc import Sequence
from pathlib import Path

import harness
from harness import AwsProxy, Child, Runtime

_IMPORT_LINE = re.compile(r"import time:\s+(\d+) \|\s+(\d+) \|( *)(\S+)")


def run(runtime: Runtime, proxy: AwsProxy, work: Path, n: int, flags: Sequence[str] = ()) -> Child:
    mapping = "\n".join(f"s{i:04d}: V{i:04d}" for i in range(n))
    values = {f"V{i:04d}": f"startup-value-{i:04d}" for i in range(n)}
    inputs = {"secrets": mapping, "name-prefix": "startup/"}
    return harness.run_action(runtime.command(*flags), proxy, work, inputs, values)


def import_costs(stderr: str) -> tuple[Counter[str], int]:
    """Import time per top-level package in microseconds, and the total. A standard-library
    module counts for the package that imported it first (jsonschema's `urllib`, botocore's
    `http.client`): that is what the dependency costs. What no package pulls in counts as
    "python (site, ...)"; our own modules as secrets_sync, less what they pull in."""
    rows = []
    for line in stderr.splitlines():
        m = _IMPORT_LINE.match(line)
        if m:
            rows.append((int(m.group(1)), len(m.group(3)), m.group(4)))

    def owner(name: str) -> str | None:
        top = name.split(".")[0]
        return None if top in sys.stdlib_module_names or top.startswith("_") else top

    per: Counter[str] = Counter()
    # -X importtime prints a module after everything it imported, one level deeper: so the
    # importer of a row is the next row below it with a smaller depth.
    for i, (micros, depth, name) in enumerate(rows):
        who, level = owner(name), depth
        for _, later_depth, later_name in rows[i + 1 :]:
            if who is not None:
                break
            if later_depth < level:
                who, level = owner(later_name), later_depth
        per[who or "python (site, ...)"] += micros
    return per, sum(per.values())


def main(argv: Sequence[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--runs", type=int, default=15)
    parser.add_argument(
        "--n",
        type=lambda text: sorted({int(n) for n in text.split(",")}),
        default=[4, 1000],
        help="secrets in the mapping: one number, or several separated by commas",
    )
    parser.add_argument(
        "--python",
        help="interpreter running the checkout's entrypoint (default: the image's environment, "
        "built from the Dockerfile)",
    )
    args = parser.parse_args(argv)
    with (
        harness.moto_server() as moto_url,
        AwsProxy(moto_url) as proxy,
        tempfile.TemporaryDirectory(prefix="secrets-sync-startup-") as tmp,
    ):
        runtime = Runtime.given(args.python) if args.python else Runtime.image(Path(tmp) / "image")
        work = Path(tmp)
        # The secrets are created first: every measured run is a no-op. The largest mapping
        # holds the smaller ones' names, so one seed serves all.
        run(runtime, proxy, work / "seed", max(args.n))
        starts: dict[int, list[float]] = {n: [] for n in args.n}
        cpus: dict[int, list[float]] = {n: [] for n in args.n}
        for i in range(args.runs):
            for n in args.n:
                child = run(runtime, proxy, work / f"run{i}-{n}", n)
                assert child.startup is not None
                starts[n].append(child.startup)
                cpus[n].append(child.cpu)
        traced = run(runtime, proxy, work / "importtime", max(args.n), ["-X", "importtime"])
    per, total = import_costs(traced.stderr)
    print(f"CPU reference (a fixed Python loop; lower is faster): {harness.cpu_reference():.2f} s")
    base = statistics.median(starts[args.n[0]])
    base_min = min(starts[args.n[0]])
    for n in args.n:
        median = statistics.median(starts[n])
        print(
            f"launch to first AWS request, no-op of {n}, {args.runs} runs: median "
            f"{median:.3f} s, min {min(starts[n]):.3f} s, max {max(starts[n]):.3f} s "
            f"(whole run's CPU: median {statistics.median(cpus[n]):.3f} s)"
        )
    for n in args.n[1:]:
        # The minimum is the run least disturbed by other work on the machine.
        print(
            f"ratio {n} : {args.n[0]} secrets: {statistics.median(starts[n]) / base:.2f}x by "
            f"medians, {min(starts[n]) / base_min:.2f}x by minimums (the goal: at most 1.25x)"
        )
    print(
        f"\nimports under -X importtime (one run of {max(args.n)}; the tracing itself adds to "
        f"it): {total / 1000:.0f} ms in all\n"
    )
    print("| package (with the standard library it pulls in) | ms |\n|---|---:|")
    for name, micros in per.most_common(15):
        print(f"| {name} | {micros / 1000:.1f} |")
    return 0


if __name__ == "__main__":
    sys.exit(main())
