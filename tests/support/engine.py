"""A real Docker engine for `make image-test` (scripts/image_test.py): the engine started when
none answers, the stand-in base made when missing, the Dockerfile built on it, and a container
run exactly as the runner runs a Docker action."""

from __future__ import annotations

import functools
import os
import shutil
import subprocess
import tempfile
import time
import uuid
from collections.abc import Iterator, Mapping
from contextlib import contextmanager
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import yaml

from tests.support.action import REPOSITORY, ActionRun, parse_outputs

ROOT = Path(__file__).resolve().parents[2]
BASE_TAG = "secrets-sync-standin-base:bookworm"
IMAGE_TAG = "secrets-sync:image-test"
BUILT_LABEL = "secrets-sync.image-test=1"  # on every image this test builds
# What the stand-in base needs from Debian: the Python the Dockerfile's RUN lines call, its pip,
# and the CA bundle (package indexes are reached through a TLS proxy here).
BASE_PACKAGES = "python3,python3-pip,ca-certificates"
LOCAL_CAS = Path("/usr/local/share/ca-certificates")


class Skip(Exception):
    """No engine can be had here; the message says why."""


def log(line: str) -> None:
    print(line, flush=True)


@functools.cache
def cli() -> str:
    """A docker command that builds with BuildKit, which skips the Dockerfile's pinned-base stage
    when BASE names the stand-in (the classic builder would try to pull it): one with the buildx
    plugin, or one older than 23.0 that has BuildKit built in (Debian's docker.io)."""
    found = [shutil.which("docker"), shutil.which("docker", path="/usr/bin")]
    for candidate in dict.fromkeys(c for c in found if c):
        run = functools.partial(subprocess.run, capture_output=True, text=True, check=False)
        if run([candidate, "buildx", "version"]).returncode == 0:
            return candidate
        version = run([candidate, "version", "--format", "{{.Client.Version}}"]).stdout
        if version.split(".")[0].isdigit() and int(version.split(".")[0]) < 23:
            return candidate
    raise Skip("no docker command that builds with BuildKit (apt-get install docker.io)")


def docker(*args: str, **kwargs: Any) -> subprocess.CompletedProcess[str]:
    kwargs.setdefault("capture_output", True)
    kwargs.setdefault("check", True)
    return subprocess.run([cli(), *args], text=True, **kwargs)


def _answers() -> bool:
    try:
        return docker("info", check=False, timeout=20).returncode == 0
    except (OSError, subprocess.TimeoutExpired):
        return False


# The engine and the base ------------------------------------------------------------------------


@contextmanager
def engine() -> Iterator[None]:
    """A Docker engine that answers: the running one, or dockerd started here and stopped after."""
    cli()
    if _answers():
        yield
        return
    dockerd = shutil.which("dockerd")
    if dockerd is None:
        raise Skip("no engine answers and there is no dockerd to start (apt-get install docker.io)")
    if os.geteuid() != 0:
        raise Skip("no engine answers, and dockerd can only be started as root")
    with tempfile.NamedTemporaryFile("w+", prefix="dockerd-", suffix=".log") as out:
        log("… starting dockerd")
        proc = subprocess.Popen(
            [dockerd], stdout=out, stderr=subprocess.STDOUT, start_new_session=True
        )
        try:
            deadline = time.monotonic() + 60
            while not _answers():
                if proc.poll() is not None or time.monotonic() > deadline:
                    out.seek(0)
                    tail = "".join(out.readlines()[-5:]).strip()
                    raise Skip(f"dockerd did not start here:\n{tail}")
                time.sleep(0.5)
            yield
        finally:
            proc.terminate()
            try:
                proc.wait(timeout=30)
            except subprocess.TimeoutExpired:
                proc.kill()
                proc.wait()


def _apt_source() -> tuple[str, str]:
    """The Debian mirror and release this machine's apt uses (debootstrap fetches from it)."""
    for path in sorted(Path("/etc/apt/sources.list.d").glob("*.sources")):
        for stanza in path.read_text().split("\n\n"):
            fields = dict(line.split(":", 1) for line in stanza.splitlines() if ":" in line[:12])
            uris, suites = fields.get("URIs", "").split(), fields.get("Suites", "").split()
            if uris and suites and "-" not in suites[0]:
                return uris[0], suites[0]
    for line in Path("/etc/apt/sources.list").read_text().splitlines():
        parts = line.split()
        if parts[:1] == ["deb"] and "-" not in parts[2]:
            return parts[1], parts[2]
    raise Skip("no Debian apt source found for debootstrap")


def standin_base() -> str:
    """A Debian image with Python and pip, standing in for python:*-slim; made once, then kept."""
    if docker("image", "inspect", BASE_TAG, check=False).returncode == 0:
        return BASE_TAG
    debootstrap = shutil.which("debootstrap")
    if debootstrap is None:
        raise Skip("no stand-in base and no debootstrap to make one (apt-get install debootstrap)")
    mirror, suite = _apt_source()
    log(f"… making the stand-in base {BASE_TAG} from Debian {suite} (once; kept for later runs)")
    with tempfile.TemporaryDirectory(prefix="standin-") as tmp:
        rootfs = Path(tmp) / "rootfs"
        subprocess.run(
            [debootstrap, "--variant=minbase", f"--include={BASE_PACKAGES}", suite, rootfs, mirror],
            check=True,
            capture_output=True,
        )
        # Trust what this machine trusts: its package indexes sit behind a TLS proxy.
        for cert in LOCAL_CAS.glob("*.crt"):
            shutil.copy(cert, rootfs / "usr/local/share/ca-certificates" / cert.name)
        subprocess.run(
            ["chroot", rootfs, "update-ca-certificates"], check=True, capture_output=True
        )
        # The Dockerfile's ENTRYPOINT is python:*-slim's interpreter path.
        (rootfs / "usr/local/bin/python").symlink_to("/usr/bin/python3")
        for junk in ("var/cache/apt/archives", "var/lib/apt/lists"):
            shutil.rmtree(rootfs / junk, ignore_errors=True)
        tar = subprocess.Popen(["tar", "-C", rootfs, "-c", "."], stdout=subprocess.PIPE)
        changes = [
            "ENV PATH=/usr/local/sbin:/usr/local/bin:/usr/sbin:/usr/bin:/sbin:/bin",
            "ENV LANG=C.UTF-8",
            # Debian's Python refuses a system-wide pip install without it (PEP 668).
            "ENV PIP_BREAK_SYSTEM_PACKAGES=1",
        ]
        subprocess.run(
            [cli(), "import", *(f"--change={c}" for c in changes), "-", BASE_TAG],
            stdin=tar.stdout,
            check=True,
            capture_output=True,
        )
        assert tar.wait() == 0, "tar of the stand-in root failed"
    return BASE_TAG


def build(base: str, *, cold: bool) -> float:
    """Build the Dockerfile on the stand-in base; seconds it took."""
    args = ["build", "--build-arg", f"BASE={base}", "--network", "host", "-t", IMAGE_TAG]
    args += ["--label", BUILT_LABEL]
    if cold:
        args.append("--no-cache")
    start = time.monotonic()
    proc = docker(*args, str(ROOT), check=False, env={**os.environ, "DOCKER_BUILDKIT": "1"})
    if proc.returncode:
        raise SystemExit(f"docker build failed:\n{proc.stdout}{proc.stderr}")
    took = time.monotonic() - start
    # The image the tag held before is left untagged by this build: remove it (and any such
    # leftover of ours), so that runs do not pile up images. The build cache stays.
    docker("image", "prune", "--force", "--filter", f"label={BUILT_LABEL}", check=False)
    return took


# Running the container as the runner does -------------------------------------------------------


def action_inputs() -> dict[str, str]:
    """Every input of action.yml with its default (empty without one), as the runner sets them."""
    meta = yaml.safe_load((ROOT / "action.yml").read_text())
    return {name: str(spec.get("default", "")) for name, spec in meta["inputs"].items()}


@dataclass
class Job:
    """The runner's directories that it mounts into a Docker action's container."""

    root: Path

    @property
    def workspace(self) -> Path:
        return self.root / "workspace"

    def make(self, owner: int) -> None:
        for name in ("workspace", "file_commands", "home", "workflow"):
            (self.root / name).mkdir(parents=True, exist_ok=True)
        (self.root / "workflow" / "event.json").write_text("{}")
        os.chown(self.workspace, owner, owner)

    def run(
        self,
        inputs: Mapping[str, str],
        env: Mapping[str, str] = {},
        *,
        docker_args: tuple[str, ...] = (),
    ) -> tuple[ActionRun, float]:
        step = uuid.uuid4().hex
        output = f"set_output_{step}"
        summary = f"step_summary_{step}"
        commands = self.root / "file_commands"
        for name in (output, summary):
            (commands / name).write_text("")
        variables = {
            **{f"INPUT_{k.upper()}": v for k, v in {**action_inputs(), **inputs}.items()},
            "HOME": "/github/home",
            "GITHUB_JOB": "sync",
            "GITHUB_REF": "refs/heads/main",
            "GITHUB_SHA": "0123456789abcdef0123456789abcdef01234567",
            "GITHUB_REPOSITORY": REPOSITORY,
            "GITHUB_REPOSITORY_OWNER": REPOSITORY.split("/")[0],
            "GITHUB_RUN_ID": "4242",
            "GITHUB_RUN_NUMBER": "7",
            "GITHUB_RUN_ATTEMPT": "1",
            "GITHUB_ACTOR": "octocat",
            "GITHUB_WORKFLOW": "deploy",
            "GITHUB_EVENT_NAME": "push",
            "GITHUB_SERVER_URL": "https://github.com",
            "GITHUB_WORKSPACE": "/github/workspace",
            "GITHUB_ACTION": "sync",
            "GITHUB_EVENT_PATH": "/github/workflow/event.json",
            "GITHUB_OUTPUT": f"/github/file_commands/{output}",
            "GITHUB_STEP_SUMMARY": f"/github/file_commands/{summary}",
            "RUNNER_OS": "Linux",
            "RUNNER_TEMP": "/home/runner/work/_temp",
            "GITHUB_ACTIONS": "true",
            "CI": "true",
            **env,
        }
        argv = [cli(), "run", "--rm", "--workdir", "/github/workspace", "--network", "host"]
        # One `-e NAME` per variable, its value taken from docker's own environment, as the
        # runner does: no value on a command line.
        for name in variables:
            argv += ["-e", name]
        for name, target in (
            ("home", "/github/home"),
            ("workflow", "/github/workflow"),
            ("file_commands", "/github/file_commands"),
            ("workspace", "/github/workspace"),
        ):
            argv += ["-v", f"{self.root / name}:{target}"]
        argv += [*docker_args, IMAGE_TAG]
        start = time.monotonic()
        proc = subprocess.run(
            argv,
            env={"PATH": os.environ["PATH"], **variables},
            capture_output=True,
            text=True,
            timeout=120,
            check=False,
        )
        seconds = time.monotonic() - start
        text = (commands / output).read_text()
        run = ActionRun(
            proc.returncode,
            proc.stdout,
            proc.stderr,
            text,
            (commands / summary).read_text(),
            self.workspace,
        )
        run.outputs = parse_outputs(text)
        return run, seconds


def size(image: str) -> int:
    return int(docker("image", "inspect", "--format", "{{.Size}}", image).stdout)
