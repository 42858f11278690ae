"""`make image-test`: the real Dockerfile, built by a real Docker engine and run as the runner
runs a Docker action, against moto on this machine. `make test` stands the image in without an
engine (tests/test_image.py); this is the image itself.

It starts what it needs: dockerd when no engine answers (as root), and a stand-in base image when
there is none (Docker Hub cannot be reached here: debootstrap + `docker import`, kept between
runs). It stops what it started and removes its containers and temporary directories.

Exit status: 0 every check passed, 1 a check failed, 77 no engine could be had (it says why;
.ci/run reports the test as skipped, loudly).
"""

from __future__ import annotations

import argparse
import functools
import json
import logging
import os
import shutil
import socket
import subprocess
import sys
import tempfile
import time
import uuid
from collections.abc import Iterator, Mapping
from contextlib import contextmanager, suppress
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import boto3
import yaml
from moto.server import ThreadedMotoServer

ROOT = Path(__file__).resolve().parents[1]
sys.path.insert(0, str(ROOT))

from tests.support.action import (  # noqa: E402
    REPOSITORY,
    WRITES,
    ActionRun,
    assert_run_clean,
    parse_outputs,
)
from tests.support.proxy import AwsProxy  # noqa: E402

SKIPPED = 77
REGION = "us-east-1"
BASE_TAG = "secrets-sync-standin-base:bookworm"
IMAGE_TAG = "secrets-sync:image-test"
# The runner user's uid and gid on GitHub's hosted images: the owner of the workspace.
RUNNER_UID = 1001
# What the stand-in base needs from Debian: the Python the Dockerfile's RUN lines call, its pip,
# and the CA bundle (package indexes are reached through a TLS proxy here).
BASE_PACKAGES = "python3,python3-pip,ca-certificates"
LOCAL_CAS = Path("/usr/local/share/ca-certificates")
HOSTILE = ROOT / ".github" / "selftest" / "hostile.sh"

MAPPING = (
    "api: API_KEY\n"
    "db: [DB_USER, DB_PASSWORD]\n"
    "dsn: { value: DSN }\n"
    "app: { keys: [API_KEY], k8s: { secret: app-secrets, namespace: default } }\n"
)
VALUES = {
    "API_KEY": "engine-canary-api-key",
    "DB_USER": "engine-canary-user",
    "DB_PASSWORD": "engine-canary-password",
    "DSN": "https://engine-canary@sentry.invalid/1",
}
UPDATED_PASSWORD = "engine-canary-password-2"
MANIFESTS = "k8s/generated/external-secrets.yaml"


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
    if cold:
        args.append("--no-cache")
    start = time.monotonic()
    proc = docker(*args, str(ROOT), check=False, env={**os.environ, "DOCKER_BUILDKIT": "1"})
    if proc.returncode:
        raise SystemExit(f"docker build failed:\n{proc.stdout}{proc.stderr}")
    return time.monotonic() - start


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


# The checks -------------------------------------------------------------------------------------

AWS_ENV = {
    "AWS_ACCESS_KEY_ID": "testing",
    "AWS_SECRET_ACCESS_KEY": "testing",
    "AWS_EC2_METADATA_DISABLED": "true",
}
INPUTS = {
    "secrets": MAPPING,
    "aws-region": REGION,
    "name-prefix": "image/",
    "eso-manifests": MANIFESTS,
}
NAMES = ["image/api", "image/app", "image/db", "image/dsn"]


@dataclass
class Checks:
    job: Job
    proxy: AwsProxy
    sm: Any

    def env(self, **values: str) -> dict[str, str]:
        return {"AWS_ENDPOINT_URL": self.proxy.url, **AWS_ENV, **VALUES, **values}

    def _stored(self, name: str) -> Any:
        return json.loads(self.sm.get_secret_value(SecretId=name)["SecretString"])

    def create(self) -> str:
        run, _ = self.job.run(INPUTS, self.env())
        assert run.returncode == 0, _said(run)
        assert sorted(run.json("created")) == NAMES, run.outputs.get("created")
        assert self._stored("image/db") == {
            "DB_USER": VALUES["DB_USER"],
            "DB_PASSWORD": VALUES["DB_PASSWORD"],
        }
        assert run.outputs["manifests"] == MANIFESTS, run.outputs.get("manifests")
        assert (self.job.workspace / MANIFESTS).is_file()
        self._owned_by_the_runner_user()
        assert_run_clean(run, VALUES.values())
        return (
            f"{len(NAMES)} secrets created and stored; manifests written, owned by "
            f"{RUNNER_UID}:{RUNNER_UID} like the workspace; no value leaked"
        )

    def _owned_by_the_runner_user(self) -> None:
        """Issue 16: what the container (root) wrote is the workspace owner's, with umask-022
        modes, so a later step running as the runner user can rewrite or delete it."""
        found = {
            p.relative_to(self.job.workspace).as_posix(): p.lstat()
            for p in self.job.workspace.rglob("*")
        }
        assert sorted(found) == ["k8s", "k8s/generated", MANIFESTS], sorted(found)
        wrong = {
            rel: (st.st_uid, st.st_gid, oct(st.st_mode & 0o7777))
            for rel, st in found.items()
            if (st.st_uid, st.st_gid) != (RUNNER_UID, RUNNER_UID)
            or st.st_mode & 0o7777 != (0o644 if rel == MANIFESTS else 0o755)
        }
        assert not wrong, f"owner or mode not the workspace owner's: {wrong}"

    def noop(self) -> str:
        self.proxy.reset()
        run, _ = self.job.run(INPUTS, self.env())
        assert run.returncode == 0, _said(run)
        assert run.outputs["changed"] == "false", run.outputs
        assert sorted(run.json("unchanged")) == NAMES, run.outputs.get("unchanged")
        writes = sorted(set(self.proxy.ops()) & WRITES)
        assert not writes, f"a no-op run wrote: {writes}"
        assert_run_clean(run, VALUES.values())
        return f"nothing written, {len(self.proxy.calls)} read calls"

    def update(self) -> str:
        new = UPDATED_PASSWORD
        run, _ = self.job.run(INPUTS, self.env(DB_PASSWORD=new))
        assert run.returncode == 0, _said(run)
        assert run.json("updated") == ["image/db"], run.outputs.get("updated")
        assert self._stored("image/db")["DB_PASSWORD"] == new
        self._owned_by_the_runner_user()  # the manifests were rewritten
        assert_run_clean(run, [*VALUES.values(), new])
        return "the changed secret alone updated"

    def bad_input(self) -> str:
        self.proxy.reset()
        run, _ = self.job.run({**INPUTS, "dry-run": "yes"}, self.env())
        assert run.returncode == 1, _said(run)
        assert len(run.errors) == 1, run.errors
        assert "dry-run" in run.errors[0], run.errors
        assert "Traceback" not in run.stdout + run.stderr, _said(run)
        assert not self.proxy.calls, f"AWS calls on bad input: {self.proxy.ops()}"
        return "exit 1, one error naming `dry-run`, no traceback, no AWS call"

    def hostile(self) -> str:
        job = Job(self.job.root.parent / "hostile-job")
        job.make(RUNNER_UID)
        subprocess.run(
            [
                HOSTILE,
                job.workspace / ".selftest",
                "/github/workspace/.selftest",
                job.root / "home",
            ],
            check=True,
        )
        ctr = "/github/workspace/.selftest"
        env = self.env(
            PATH=f"{ctr}/bin:/usr/local/bin:/usr/bin:/bin",
            PYTHONPATH=f"{ctr}/pythonpath",
            PYTHONHOME="/nonexistent",
        )
        run, _ = job.run({**INPUTS, "name-prefix": "hostile/"}, env)
        assert run.returncode == 0, _said(run)
        assert len(run.json("created")) == len(NAMES), run.outputs.get("created")
        sprung = sorted(p.name for p in (job.workspace / ".selftest/markers").iterdir())
        assert not sprung, f"the container used the hostile environment: {sprung}"
        return "PATH, PYTHONPATH, PYTHONHOME and HOME traps untouched; synced"


def _said(run: ActionRun) -> str:
    return f"exit {run.returncode}\n{run.stdout[-3000:]}{run.stderr[-3000:]}"


@contextmanager
def local_aws() -> Iterator[tuple[AwsProxy, Any]]:
    """moto on a loopback port, behind the recording proxy; the container shares the host's
    network, so 127.0.0.1 is the same place on both sides."""
    port = free_port()
    logging.getLogger("werkzeug").setLevel(logging.ERROR)  # a line per request otherwise
    server = ThreadedMotoServer(ip_address="127.0.0.1", port=port, verbose=False)
    server.start()
    try:
        url = f"http://127.0.0.1:{port}"
        with AwsProxy(url) as proxy:
            sm = boto3.client(
                "secretsmanager", region_name=REGION, endpoint_url=url, **_boto_keys()
            )
            yield proxy, sm
    finally:
        server.stop()


def _boto_keys() -> dict[str, str]:
    return {
        "aws_access_key_id": AWS_ENV["AWS_ACCESS_KEY_ID"],
        "aws_secret_access_key": AWS_ENV["AWS_SECRET_ACCESS_KEY"],
    }


def free_port() -> int:
    with socket.socket() as sock:
        sock.bind(("127.0.0.1", 0))
        return int(sock.getsockname()[1])


def noop_figures(checks: Checks, runs: int = 3) -> tuple[float, int | None]:
    """(median seconds from `docker run` to its exit, peak memory in bytes) of no-op runs. The
    container is put under a cgroup of ours, which outlives it, to read its memory high-water
    mark (cgroup v2 `memory.peak`, v1 `memory.max_usage_in_bytes`); None where neither exists."""
    parent = f"secrets-sync-image-test-{os.getpid()}"
    candidates = [
        Path("/sys/fs/cgroup") / parent / "memory.peak",
        Path("/sys/fs/cgroup/memory") / parent / "memory.max_usage_in_bytes",
    ]
    seconds, peaks = [], []
    try:
        for _ in range(runs):
            run, took = checks.job.run(
                INPUTS,
                checks.env(DB_PASSWORD=UPDATED_PASSWORD),
                docker_args=("--cgroup-parent", f"/{parent}"),
            )
            assert run.outputs["changed"] == "false", _said(run)
            seconds.append(took)
            peaks += [int(p.read_text()) for p in candidates if p.is_file()]
            for path in candidates:  # a fresh high-water mark for the next run
                with suppress(OSError):
                    path.parent.rmdir()
    finally:
        for path in candidates:
            with suppress(OSError):
                path.parent.rmdir()
    return sorted(seconds)[len(seconds) // 2], max(peaks, default=None)


def size(image: str) -> int:
    return int(docker("image", "inspect", "--format", "{{.Size}}", image).stdout)


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--cold", action="store_true", help="build without the layer cache")
    args = parser.parse_args(argv)
    try:
        with engine():
            base = standin_base()
            seconds = build(base, cold=args.cold)
            log(f"built {IMAGE_TAG} on {base} in {seconds:.1f} s")
            with tempfile.TemporaryDirectory(prefix="image-test-") as tmp, local_aws() as aws:
                job = Job(Path(tmp) / "job")
                job.make(RUNNER_UID)
                checks = Checks(job, *aws)
                failed = 0
                for name, check in (
                    ("create", checks.create),
                    ("no-op", checks.noop),
                    ("update", checks.update),
                    ("bad input", checks.bad_input),
                    ("hostile environment", checks.hostile),
                ):
                    try:
                        log(f"PASS {name}: {check()}")
                    except AssertionError as exc:
                        failed += 1
                        log(f"FAIL {name}: {exc}")
                ours, total = size(IMAGE_TAG) - size(base), size(IMAGE_TAG)
                noop, peak = noop_figures(checks)
                memory = f"{peak / 2**20:.0f} MiB" if peak else "not readable here"
                log(
                    f"figures (stand-in base): build {seconds:.1f} s "
                    f"({'cold' if args.cold else 'with the layer cache as found'}); "
                    f"project layers {ours / 1e6:.1f} MB of {total / 1e6:.1f} MB; "
                    f"no-op from `docker run` to exit {noop:.2f} s (median of 3); "
                    f"peak memory {memory}"
                )
            return 1 if failed else 0
    except Skip as why:
        log(f"image test skipped: {why}")
        return SKIPPED


if __name__ == "__main__":
    sys.exit(main())
