"""`make image-test`: the real Dockerfile, built by a real Docker engine and run as the runner
runs a Docker action, against moto on this machine. `make test` stands the image in without an
engine (tests/test_image.py); this is the image itself.

It starts what it needs (tests/support/engine.py): dockerd when no engine answers (as root), and
a stand-in base image when there is none (Docker Hub cannot be reached here: debootstrap +
`docker import`, kept between runs). It stops what it started and removes its containers and
temporary directories.

Exit status: 0 every check passed, 1 a check failed, 77 no engine could be had (it says why;
.ci/run reports the test as skipped, loudly).
"""

from __future__ import annotations

import argparse
import json
import os
import subprocess
import sys
import tempfile
from collections.abc import Iterator
from contextlib import contextmanager, suppress
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import boto3

ROOT = Path(__file__).resolve().parents[1]
sys.path.insert(0, str(ROOT))

from tests.support.action import WRITES, ActionRun, assert_run_clean  # noqa: E402
from tests.support.engine import (  # noqa: E402
    IMAGE_TAG,
    Job,
    Skip,
    build,
    engine,
    log,
    size,
    standin_base,
)
from tests.support.proxy import AwsProxy  # noqa: E402
from tests.support.realaws import moto_server  # noqa: E402

SKIPPED = 77
REGION = "us-east-1"
# The runner user's uid and gid on GitHub's hosted images: the owner of the workspace.
RUNNER_UID = 1001
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
    with moto_server() as url, AwsProxy(url) as proxy:
        sm = boto3.client("secretsmanager", region_name=REGION, endpoint_url=url, **_boto_keys())
        yield proxy, sm


def _boto_keys() -> dict[str, str]:
    return {
        "aws_access_key_id": AWS_ENV["AWS_ACCESS_KEY_ID"],
        "aws_secret_access_key": AWS_ENV["AWS_SECRET_ACCESS_KEY"],
    }


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
                if failed:
                    return 1
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
            return 0
    except Skip as why:
        log(f"image test skipped: {why}")
        return SKIPPED


if __name__ == "__main__":
    sys.exit(main())
