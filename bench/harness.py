"""What the bench scripts share: moto in server mode on a loopback port, and child processes run
the way the runner runs the action, measured from launch to exit with their own peak RSS."""

from __future__ import annotations

import os
import subprocess
import sys
import time
import urllib.request
from collections import Counter
from collections.abc import Iterator, Mapping, Sequence
from contextlib import contextmanager
from dataclasses import dataclass, field
from pathlib import Path

ROOT = Path(__file__).resolve().parents[1]
if str(ROOT) not in sys.path:
    sys.path.insert(0, str(ROOT))

from tests.support.action import ENTRYPOINT, base_env, parse_outputs  # noqa: E402
from tests.support.image import build as build_image  # noqa: E402
from tests.support.proxy import AwsProxy, Call  # noqa: E402

REGION = "us-east-1"
__all__ = [
    "ENTRYPOINT",
    "REGION",
    "ROOT",
    "AwsProxy",
    "Child",
    "Runtime",
    "action_env",
    "moto_server",
    "run_action",
]


# The server's own process: the realaws layer's moto, serving until its stdin closes.
_MOTO = """\
import sys
from tests.support import realaws
with realaws.moto_server() as url:
    print(url, flush=True)
    sys.stdin.read()
"""


@contextmanager
def moto_server() -> Iterator[str]:
    """moto held to AWS's rules, as the tests run it (tests/support/realaws/), in a process of its
    own. In this one it would take turns with the recording proxy for one interpreter lock, which
    no remote service does: a no-op of 1,000 secrets spent a tenth of its time from first request
    waiting on that (docs/performance.md, Reads at N = 1,000)."""
    server = subprocess.Popen(
        [sys.executable, "-c", _MOTO],
        cwd=ROOT,
        stdin=subprocess.PIPE,
        stdout=subprocess.PIPE,
        text=True,
    )
    assert server.stdin is not None
    assert server.stdout is not None
    try:
        url = server.stdout.readline().strip()
        if not url:
            raise SystemExit("moto did not start (its error is above)")
        yield url
    finally:
        server.stdin.close()
        server.wait(timeout=30)


def reset_moto(url: str) -> None:
    request = urllib.request.Request(f"{url}/moto-api/reset", method="POST")  # noqa: S310
    with urllib.request.urlopen(request, timeout=30):  # noqa: S310 - loopback only
        pass


@dataclass
class Child:
    """One child process as measured: wall time from launch to exit, when its first request
    reached the proxy, the calls it made, its CPU time and its peak RSS.

    The peak RSS is the child's VmHWM (the high-water mark of its address space since exec),
    read from /proc while it runs. wait4's ru_maxrss cannot be used: Linux folds into it the
    RSS of the image the child replaced at exec, which is a copy of this (much larger) process.
    """

    returncode: int
    wall: float
    startup: float | None  # launch to first request at the proxy
    calls: list[Call]
    peak_rss_kib: int
    cpu: float  # user + system seconds: steadier than wall time on a busy machine
    stdout: str
    stderr: str
    outputs: dict[str, str] = field(default_factory=dict)

    @property
    def kinds(self) -> Counter[str]:
        return Counter("sts" if c.service == "sts" else c.operation for c in self.calls)


def run_child(
    argv: Sequence[str],
    env: Mapping[str, str],
    proxy: AwsProxy,
    *,
    cwd: Path,
    output_file: Path | None = None,
    timeout: float = 900,
) -> Child:
    proxy.reset()
    out_path, err_path = cwd / "child.stdout", cwd / "child.stderr"
    with out_path.open("w") as out, err_path.open("w") as err:
        launched = time.monotonic()
        proc = subprocess.Popen(argv, env=dict(env), cwd=cwd, stdout=out, stderr=err)
        deadline = launched + timeout
        peak_kib = 0
        while True:
            peak_kib = max(peak_kib, _hwm_kib(proc.pid))
            pid, status, usage = os.wait4(proc.pid, os.WNOHANG)
            if pid:
                break
            if time.monotonic() > deadline:
                proc.kill()
                raise TimeoutError(f"{argv[:2]} ran over {timeout} s")
            time.sleep(0.002)
        ended = time.monotonic()
    proc.returncode = os.waitstatus_to_exitcode(status)
    calls = list(proxy.calls)
    first = min((c.received for c in calls), default=None)
    child = Child(
        returncode=proc.returncode,
        wall=ended - launched,
        startup=None if first is None else first - launched,
        calls=calls,
        peak_rss_kib=peak_kib,
        cpu=usage.ru_utime + usage.ru_stime,
        stdout=out_path.read_text(),
        stderr=err_path.read_text(),
    )
    if output_file is not None:
        child.outputs = parse_outputs(output_file.read_text())
    return child


def cpu_reference() -> float:
    """Seconds a fixed pure-Python loop takes here: this machine's CPU speed drifted by a third
    from one hour to the next (a shared host), so figures are printed beside it."""
    started = time.perf_counter()
    total = 0
    for i in range(5_000_000):
        total += i
    return time.perf_counter() - started


class Measured:
    """What a benchmark prints around its table: its command, how long it took, and the
    machine's load and CPU speed before and after, beside which its figures are read."""

    def __init__(self, command: str) -> None:
        self.command = command
        self.load = os.getloadavg()
        self.reference = cpu_reference()
        self.started = time.monotonic()

    def print(self, text: str, verdicts: Sequence[str], markdown: Path | None) -> None:
        after = cpu_reference()
        notes = [
            *verdicts,
            f"load average before: {self.load[0]:.1f} {self.load[1]:.1f} {self.load[2]:.1f}; "
            "after: " + " ".join(f"{x:.1f}" for x in os.getloadavg()),
            "CPU reference (a fixed Python loop; lower is faster): "
            f"{self.reference:.2f} s before, {after:.2f} s after",
        ]
        took = time.monotonic() - self.started
        print(f"\n`{self.command.strip()}` ({took:.0f} s in all)\n")
        print(text)
        print("\n".join(notes))
        if markdown:
            markdown.write_text(text + "\n" + "\n".join(notes) + "\n")


def _hwm_kib(pid: int) -> int:
    try:
        with open(f"/proc/{pid}/status") as status:
            for line in status:
                if line.startswith("VmHWM:"):
                    return int(line.split()[1])
    except OSError:
        pass
    return 0  # not yet exec'd, or already a zombie: its address space is gone


@dataclass(frozen=True)
class Runtime:
    """An interpreter, and the command that runs the action with it."""

    python: str
    action: tuple[str, ...]

    def command(self, *options: str) -> list[str]:
        """The action's command, with interpreter options added before the script."""
        return [*self.action[:-1], *options, self.action[-1]]

    @classmethod
    def image(cls, where: Path) -> Runtime:
        """The image, as tests/test_image.py builds it from the Dockerfile: the lock installed
        into a fresh virtual environment, the unused SDK models deleted, our code compiled, and
        the ENTRYPOINT's command. bench/baseline.py's boto3 loop runs there too: the lock
        installs boto3, the action's SDK."""
        built = build_image(where)
        return cls(str(built.python), tuple(built.command()))

    @classmethod
    def given(cls, python: str) -> Runtime:
        """Another interpreter (a development environment, say) running the checkout's code.
        Made absolute, not resolved (a virtual environment's interpreter is a link): the runs
        start in directories of their own."""
        python = str(Path(python).absolute())
        return cls(python, (python, str(ENTRYPOINT)))


def action_env(
    endpoint: str,
    work: Path,
    inputs: Mapping[str, str],
    values: Mapping[str, str],
) -> tuple[dict[str, str], Path]:
    """The environment the runner gives a Docker action (INPUT_* with hyphens kept, real
    GITHUB_OUTPUT and GITHUB_STEP_SUMMARY files), and the output file's path."""
    workspace, home = work / "workspace", work / "home"
    workspace.mkdir(parents=True, exist_ok=True)
    home.mkdir(exist_ok=True)
    output_file, summary_file = work / "github_output", work / "step_summary"
    output_file.write_text("")
    summary_file.write_text("")
    env = base_env(endpoint, workspace, home)
    env.update(GITHUB_OUTPUT=str(output_file), GITHUB_STEP_SUMMARY=str(summary_file))
    env.update({"INPUT_" + k.upper(): v for k, v in {"aws-region": REGION, **inputs}.items()})
    env.update(values)
    return env, output_file


def run_action(
    command: Sequence[str],
    proxy: AwsProxy,
    work: Path,
    inputs: Mapping[str, str],
    values: Mapping[str, str],
    *,
    env: Mapping[str, str] | None = None,
) -> Child:
    """The action run with command as the runner runs it (action_env in work), measured; the
    bench stops if the run fails."""
    environ, output = action_env(proxy.url, work, inputs, values)
    environ.update(env or {})
    child = run_child(command, environ, proxy, cwd=work / "workspace", output_file=output)
    if child.returncode != 0:
        raise SystemExit(f"the run in {work} failed:\n{child.stdout}\n{child.stderr}")
    return child
