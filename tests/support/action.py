"""Run the action's entrypoint as the runner runs a Docker action, and read what it wrote.

INPUT_* variables keep their hyphens, GITHUB_OUTPUT and GITHUB_STEP_SUMMARY are real files,
and the process gets a minimal environment, so nothing leaks in from the test process."""

from __future__ import annotations

import base64
import hashlib
import json
import os
import re
import subprocess
import sys
from collections.abc import Iterable, Mapping, Sequence
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

ROOT = Path(__file__).resolve().parents[2]
ENTRYPOINT = ROOT / "entrypoint.py"
REPOSITORY = "lornu-ai/app"
# The scope tags the action puts on a secret it owns: to seed moto with secrets "of ours".
OURS = [
    {"Key": "ManagedBy", "Value": "secrets-sync"},
    {"Key": "secrets-sync:repository", "Value": REPOSITORY},
]
# Every Secrets Manager call that changes a secret.
WRITES = frozenset(
    {
        "CreateSecret",
        "UpdateSecret",
        "PutSecretValue",
        "TagResource",
        "UntagResource",
        "DeleteSecret",
        "RestoreSecret",
        "ReplicateSecretToRegions",
        "UpdateSecretVersionStage",
    }
)
_OUTPUT = re.compile(
    r"^(?P<name>[^\n<]+)<<(?P<delim>ghadelimiter_[0-9a-f-]+)\n(?P<value>.*?)\n"
    r"(?P=delim)\n",
    re.S | re.M,
)


@dataclass
class ActionRun:
    returncode: int
    stdout: str
    stderr: str
    output_text: str
    summary: str
    workspace: Path
    outputs: dict[str, str] = field(default_factory=dict)

    def json(self, name: str) -> Any:
        return json.loads(self.outputs[name])

    @property
    def log_lines(self) -> list[str]:
        # Split as the runner splits: on line feeds only (a form feed does not end a line).
        return self.stdout.removesuffix("\n").split("\n") if self.stdout else []

    @property
    def errors(self) -> list[str]:
        return [line for line in self.log_lines if line.startswith("::error")]

    def results(self) -> dict[str, dict[str, Any]]:
        return {r["name"]: r for r in self.json("results")}


def parse_outputs(text: str) -> dict[str, str]:
    found = {m["name"]: m["value"] for m in _OUTPUT.finditer(text)}
    # Every byte must belong to a well-formed entry: nothing stray in the file.
    assert _OUTPUT.sub("", text) == "", f"stray text in GITHUB_OUTPUT: {text!r}"
    return found


def base_env(endpoint: str, workspace: Path, home: Path) -> dict[str, str]:
    return {
        "PATH": os.environ.get("PATH", "/usr/bin:/bin"),
        "HOME": str(home),
        "LANG": "C.UTF-8",
        "GITHUB_ACTIONS": "true",
        "GITHUB_REPOSITORY": REPOSITORY,
        "GITHUB_WORKSPACE": str(workspace),
        "AWS_ENDPOINT_URL": endpoint,
        "AWS_ACCESS_KEY_ID": "testing",
        "AWS_SECRET_ACCESS_KEY": "testing",
        "AWS_EC2_METADATA_DISABLED": "true",
        "SECRETS_SYNC_TIMEOUT": "10",
    }


def run_action(inputs: Mapping[str, str], *, timeout: float = 120, **how: Any) -> ActionRun:
    """Run entrypoint.py with inputs given as INPUT_<NAME> (hyphens kept), as the runner does,
    and wait for it: start_action's keywords (endpoint, workspace, env, ...), then finish()."""
    return start_action(inputs, **how).finish(timeout)


@dataclass
class Started:
    """An entrypoint started and not yet waited for: to signal it mid-run, as the runner does
    when a workflow is cancelled."""

    proc: subprocess.Popen[str]
    workspace: Path
    output_file: Path
    summary_file: Path

    def finish(self, timeout: float = 120) -> ActionRun:
        try:
            stdout, stderr = self.proc.communicate(timeout=timeout)
        except subprocess.TimeoutExpired:
            self.proc.kill()
            self.proc.communicate()
            raise
        text = self.output_file.read_text()
        run = ActionRun(
            self.proc.returncode,
            stdout,
            stderr,
            text,
            self.summary_file.read_text(),
            self.workspace,
        )
        run.outputs = parse_outputs(text)
        return run


def start_action(
    inputs: Mapping[str, str],
    *,
    endpoint: str,
    workspace: Path,
    env: Mapping[str, str] | None = None,
    drop: Iterable[str] = (),
    argv: Iterable[str] = (),
    files: Mapping[str, str] | None = None,
    command: Sequence[str] | None = None,
) -> Started:
    """Start entrypoint.py and leave it running (run_action waits for it). `command` replaces
    `python entrypoint.py` (tests/test_image.py runs the image's ENTRYPOINT); `argv` is appended
    to either."""
    workspace.mkdir(parents=True, exist_ok=True)
    for rel, content in (files or {}).items():
        (workspace / rel).parent.mkdir(parents=True, exist_ok=True)
        (workspace / rel).write_text(content)
    home = workspace.parent / "home"
    home.mkdir(exist_ok=True)
    output_file = workspace.parent / "github_output"
    summary_file = workspace.parent / "step_summary"
    output_file.write_text("")
    summary_file.write_text("")
    full = base_env(endpoint, workspace, home)
    full["GITHUB_OUTPUT"] = str(output_file)
    full["GITHUB_STEP_SUMMARY"] = str(summary_file)
    full.update({"INPUT_" + name.upper(): value for name, value in inputs.items()})
    full.update(env or {})
    for name in drop:
        full.pop(name, None)
    proc = subprocess.Popen(
        [*(command or (sys.executable, str(ENTRYPOINT))), *argv],
        env=full,
        cwd=workspace,
        stdout=subprocess.PIPE,
        stderr=subprocess.PIPE,
        text=True,
    )
    return Started(proc, workspace, output_file, summary_file)


# Leak checks ----------------------------------------------------------------------------------


def forms(value: str) -> set[str]:
    """Every form in which a value could escape: raw, each line, JSON-escaped, base64, digests."""
    raw = value.encode()
    out = {
        value,
        json.dumps(value)[1:-1],
        json.dumps(value, ensure_ascii=False)[1:-1],
        base64.b64encode(raw).decode(),
        base64.urlsafe_b64encode(raw).decode(),
    }
    out |= {line.strip() for line in value.splitlines() if len(line.strip()) >= 6}
    for algo in ("md5", "sha1", "sha256", "sha512"):
        digest = hashlib.new(algo, raw)
        out |= {digest.hexdigest(), base64.b64encode(digest.digest()).decode()}
    return {f for f in out if len(f) >= 6}


def assert_no_leak(texts: Mapping[str, str], values: Iterable[str]) -> None:
    """No form of any value in any of the named texts."""
    for value in values:
        for form in forms(value):
            for where, text in texts.items():
                assert form not in text, f"a form of a canary value leaked into {where}"


def assert_run_clean(run: ActionRun, values: Iterable[str]) -> None:
    """The whole of a run's visible surface: log, stderr, outputs, summary and every file in the
    workspace. A value may stand only in `::add-mask::` lines, and those come before any other
    line (credentials minted later may be masked later)."""
    values = list(values)
    lines = run.log_lines
    first_other = next(
        (i for i, line in enumerate(lines) if not line.startswith("::add-mask::")), len(lines)
    )
    rest = [line for line in lines if not line.startswith("::add-mask::")]
    late_masks = "\n".join(lines[first_other:])
    texts = {
        "stdout": "\n".join(rest),
        "stderr": run.stderr,
        "GITHUB_OUTPUT": run.output_text,
        "step summary": run.summary,
        "late mask lines": late_masks,
    }
    for path in run.workspace.rglob("*"):
        if path.is_file():
            texts[str(path)] = path.read_text(errors="replace")
    assert_no_leak(texts, values)
