"""The Docker image, without Docker: the Dockerfile is read, and its COPY and RUN lines are
replayed in a temporary root and a fresh virtual environment (tests/support/image.py), so the
two cannot drift apart. Its shape is checked against what the action needs; the entrypoint
then syncs against moto with a hostile PATH, PYTHONPATH and HOME, as a workflow's `env:` or an
earlier step could hand them to the container.

No Docker engine runs where the tests run; what this cannot see is the base image itself."""

from __future__ import annotations

import importlib.util
import json
import os
import re
import runpy
import shlex
import subprocess
import sys
from collections.abc import Mapping
from dataclasses import dataclass
from importlib import metadata
from pathlib import Path
from typing import Any

import botocore
import pytest
from packaging.utils import canonicalize_name

from tests.support.action import ActionRun, run_action
from tests.support.image import (
    DOCKERFILE_DATA,
    IMAGE_PYTHON,
    LOCK,
    ROOT,
    Image,
    build,
    context_files,
    lock_requirements,
)
from tests.test_oidc import STS_ENDPOINTS

REGION = "us-east-1"

MAPPING = "api: API_KEY\ndb: [DB_USER, DB_PASSWORD]\ndsn: { value: DSN }\n"
VALUES = {
    "API_KEY": "image-canary-api-key",
    "DB_USER": "image-canary-user",
    "DB_PASSWORD": "image-canary-password",
    "DSN": "https://image-canary@sentry.invalid/1",
}


# One worker builds the stand-in image once for all of this module under `make test`'s
# parallel workers (pytest-xdist, --dist loadgroup), instead of one build per worker.
pytestmark = pytest.mark.xdist_group("image")


@pytest.fixture(scope="session")
def image(tmp_path_factory: pytest.TempPathFactory) -> Image:
    """Built once per session: the install is the slow part."""
    return build(tmp_path_factory.mktemp("image"))


# A hostile environment ------------------------------------------------------------------------


def _write(path: Path, text: str, mode: int = 0o644) -> None:
    path.parent.mkdir(parents=True, exist_ok=True)
    path.write_text(text)
    path.chmod(mode)


@dataclass(frozen=True)
class Hostile:
    markers: Path  # every trap writes a file here when it is sprung
    env: dict[str, str]

    def sprung(self) -> list[str]:
        return sorted(p.name for p in self.markers.iterdir())


def hostile(tmp: Path, home: str = "poisoned") -> Hostile:
    markers = tmp / "markers"
    markers.mkdir(parents=True)

    def trap_py(name: str) -> str:
        return f"open({str(markers / name)!r}, 'w').close()\n"

    def trap_sh(name: str) -> str:
        return f"#!/bin/sh\n: > {shlex.quote(str(markers / name))}\nexit 0\n"

    # PATH: programs the action must never look up by name.
    bin_dir = tmp / "bin"
    for prog in ("python", "python3", "aws", "sh", "bash", "git", "pip", "env"):
        _write(bin_dir / prog, trap_sh(f"PATH-{prog}"), 0o755)

    # PYTHONPATH: modules that would run before, or instead of, the real ones.
    py_dir = tmp / "pythonpath"
    _write(py_dir / "sitecustomize.py", trap_py("PYTHONPATH-sitecustomize"))
    _write(py_dir / "secrets_sync" / "__init__.py", trap_py("PYTHONPATH-secrets_sync"))
    _write(py_dir / "secrets_sync" / "cli.py", trap_py("PYTHONPATH-secrets_sync.cli"))
    _write(py_dir / "yaml.py", trap_py("PYTHONPATH-yaml"))
    _write(py_dir / "jsonschema.py", trap_py("PYTHONPATH-jsonschema"))
    _write(py_dir / "boto3" / "__init__.py", trap_py("PYTHONPATH-boto3"))
    _write(py_dir / "botocore" / "__init__.py", trap_py("PYTHONPATH-botocore"))
    _write(py_dir / "actions_toolkit" / "__init__.py", trap_py("PYTHONPATH-actions_toolkit"))

    # HOME: the runner mounts one HOME into every container of a job, so an earlier step can
    # leave AWS configuration (and a user site-packages) in it.
    if home == "poisoned":
        home_dir = tmp / "home"
        _write(
            home_dir / ".aws" / "config",
            "[default]\n"
            f"credential_process = {bin_dir / 'aws'}\n"
            "region = eu-west-3\n"
            "[profile attacker]\n"
            f"credential_process = {bin_dir / 'aws'}\n",
        )
        _write(
            home_dir / ".aws" / "credentials",
            "[default]\naws_access_key_id = AKIAPOISONED\naws_secret_access_key = poisoned\n",
        )
        home_path = str(home_dir)
    else:
        # Unusable: a regular file where a directory should be, so nothing can be read from or
        # written under it. (Tests run as root, for whom no directory is unwritable.)
        home_file = tmp / "home-is-a-file"
        _write(home_file, "")
        home_path = str(home_file)

    env = {
        "PATH": f"{bin_dir}:/usr/bin:/bin",
        "PYTHONPATH": str(py_dir),
        "PYTHONHOME": str(tmp / "no-such-python-home"),
        "HOME": home_path,
    }
    return Hostile(markers, env)


def run_image(
    image: Image,
    proxy_url: str,
    workspace: Path,
    env: Mapping[str, str],
    *,
    drop: tuple[str, ...] = (),
    inputs: Mapping[str, str] | None = None,
) -> ActionRun:
    return run_action(
        {"secrets": MAPPING, "aws-region": REGION, "name-prefix": "img/", **(inputs or {})},
        endpoint=proxy_url,
        workspace=workspace,
        # The image's ENV first: the runner's `-e` variables override it, as Docker does.
        env={**DOCKERFILE_DATA.env, **VALUES, **env},
        command=image.command(drop=drop),
        timeout=120,
    )


def image_files(image: Image) -> dict[Path, tuple[int, int]]:
    """Every file of the image's code and dependencies, with its size and modification time."""
    return {
        path: (path.stat().st_size, path.stat().st_mtime_ns)
        for top in (image.rootfs / "app", image.python.parents[1])
        for path in top.rglob("*")
        if path.is_file()
    }


def image_python(image: Image, code: str) -> Any:
    """Run code with the image's Python, isolated as the ENTRYPOINT is; its stdout as JSON."""
    proc = subprocess.run(
        [str(image.python), "-I", "-c", code],
        capture_output=True,
        text=True,
        check=True,
        timeout=60,
        env={"PATH": "/usr/bin:/bin"},
    )
    return json.loads(proc.stdout)


# The Dockerfile's shape -----------------------------------------------------------------------


def test_base_is_an_official_slim_python_pinned_by_version_and_digest():
    match = re.fullmatch(
        r"python:(?P<version>3\.\d+\.\d+)-slim(?:-\w+)?@sha256:[0-9a-f]{64}", DOCKERFILE_DATA.base
    )
    assert match, DOCKERFILE_DATA.base
    major, minor, _ = (int(n) for n in match["version"].split("."))
    assert (major, minor) >= (3, 11)  # what pyproject's requires-python allows


def test_environment_and_pip_flags():
    env = DOCKERFILE_DATA.env
    assert env["PYTHONUNBUFFERED"] == "1"
    assert env["PYTHONDONTWRITEBYTECODE"] == "1"
    pip = DOCKERFILE_DATA.pip
    assert {"--require-hashes", "--no-deps", "--no-cache-dir"} <= set(pip)
    assert pip[pip.index("-r") + 1] == landed("requirements.lock")
    # The slimming runs in the same RUN as the install: a later RUN could not shrink the layer.
    (chain,) = [chain for _, chain in DOCKERFILE_DATA.runs if pip in chain]
    assert ["python", "-I", landed("scripts/slim_botocore.py")] in chain


def landed(source: str) -> str:
    """Where a COPY puts a file of the build context."""
    (dest,) = [dest for sources, dest in DOCKERFILE_DATA.copies if source in sources]
    return dest + Path(source).name if dest.endswith("/") else dest


def test_lock_is_installed_before_the_code_is_copied():
    code_copies = [
        pos
        for pos, (sources, _) in zip(
            DOCKERFILE_DATA.copy_positions, DOCKERFILE_DATA.copies, strict=True
        )
        if set(sources) - {"requirements.lock", "scripts/slim_botocore.py"}
    ]
    assert code_copies, "no COPY of the code"
    assert DOCKERFILE_DATA.pip_position < min(code_copies)


def test_copies_only_what_runs():
    sources = sorted(s for srcs, _ in DOCKERFILE_DATA.copies for s in srcs)
    assert sources == [
        "entrypoint.py",
        "lib/",
        "requirements.lock",
        "schema/",
        "scripts/slim_botocore.py",
    ]


def test_entrypoint_is_exec_form_isolated_and_absolute():
    argv = DOCKERFILE_DATA.entrypoint
    assert argv[0] == IMAGE_PYTHON
    assert "-I" in argv  # isolated: PYTHON* variables, user site and the script's dir ignored
    # -I drops PYTHONUNBUFFERED and PYTHONDONTWRITEBYTECODE too; the flags stand in for them.
    assert "-u" in argv
    assert "-B" in argv
    script = argv[-1]
    assert script.startswith("/")
    assert script.endswith("/entrypoint.py")
    assert script in {dest for _, dest in DOCKERFILE_DATA.copies}


def test_no_user_no_shell_form():
    # The runner starts Docker actions as root; the workspace it mounts is not writable by
    # another user. CMD is not used: the runner passes `args:` as the command.
    assert "USER" not in DOCKERFILE_DATA.keywords
    assert "CMD" not in DOCKERFILE_DATA.keywords


def test_build_context_is_only_what_is_copied():
    files = context_files(ROOT)
    allowed = ("requirements.lock", "scripts/slim_botocore.py", "entrypoint.py", "lib/", "schema/")
    assert files, ".dockerignore excludes everything"
    assert [f for f in files if not f.startswith(allowed)] == []
    assert not [f for f in files if "__pycache__" in f or f.endswith(".pyc")]
    assert "lib/secrets_sync/cli.py" in files


@pytest.mark.parametrize("arch", ["x86_64", "aarch64"])  # GitHub's x64 and arm64 runners
def test_lock_installs_on_the_image_python(arch, tmp_path):
    """The venv below runs this machine's Python; the image runs another. Every locked package
    must have a wheel for the image's Python and both runner architectures, or the runner's
    `docker build` would fall back to building from source (rpds-py needs Rust) and fail."""
    version = re.match(r"python:(\d+)\.(\d+)\.", DOCKERFILE_DATA.base)
    assert version
    tag = f"{version[1]}{version[2]}"
    glibc = 41  # Debian trixie, the base of python:3.14-slim
    platforms = [f"manylinux_2_{minor}_{arch}" for minor in range(glibc, 4, -1)]
    platforms += [f"manylinux2014_{arch}", f"manylinux2010_{arch}", f"manylinux1_{arch}"]
    proc = subprocess.run(
        [
            sys.executable,
            "-m",
            "pip",
            "download",
            "--quiet",
            "--require-hashes",
            "--no-deps",
            "--only-binary=:all:",
            "--implementation=cp",
            f"--python-version={version[1]}.{version[2]}",
            f"--abi=cp{tag}",
            "--abi=abi3",
            "--abi=none",
            *(f"--platform={p}" for p in platforms),
            "--dest",
            str(tmp_path),
            "-r",
            str(LOCK),
        ],
        env={**os.environ, "PIP_DISABLE_PIP_VERSION_CHECK": "1"},
        capture_output=True,
        text=True,
        timeout=600,
        check=False,
    )
    assert proc.returncode == 0, proc.stderr[-3000:]


# The image, run -------------------------------------------------------------------------------


def test_installed_packages_are_exactly_the_lock(image):
    listing = image_python(
        image,
        "import importlib.metadata as m, json;"
        "print(json.dumps([[d.metadata['Name'], d.version] for d in m.distributions()]))",
    )
    installed = {canonicalize_name(name): version for name, version in listing}
    assert installed == lock_requirements()
    # Neither the toolkit's declared dependencies nor anything else came along; boto3, the SDK
    # the action calls, is there (with s3transfer, which it requires).
    assert not {"pygithub", "requests"} & set(installed)
    assert {"boto3", "botocore", "s3transfer"} <= set(installed)


def test_the_development_environment_runs_the_locked_versions():
    # `make venv` installs the tools under the lock's pins, so that moto's boto3 cannot move
    # botocore: the tests exercise the versions the image runs.
    locked = lock_requirements()
    assert {name: metadata.version(name) for name in locked} == locked


SLIM = runpy.run_path(str(ROOT / "scripts" / "slim_botocore.py"))
# What our code asks the SDK to make: ("client" | "resource", service), from boto3 sessions'
# client() and resource(), and botocore's create_client(), were it called directly again.
SDK_CALLS = [
    ("resource" if kind == "resource" else "client", name)
    for path in (ROOT / "lib").rglob("*.py")
    for kind, name in re.findall(
        r'\b(create_client|client|resource)\(\s*"([a-z0-9-]+)"', path.read_text()
    )
]


def test_botocore_in_the_image_keeps_only_the_models_a_run_can_load(image):
    found = image_python(
        image,
        "import json, botocore.session\n"
        "from botocore.exceptions import UnknownServiceError\n"
        "s = botocore.session.Session()\n"
        "names = s.get_available_services()\n"
        "loaded = [s.get_service_model(n).service_name for n in names]\n"
        "try:\n"
        "    s.get_service_model('s3'); refused = False\n"
        "except UnknownServiceError:\n"
        "    refused = True\n"
        "print(json.dumps({'available': sorted(names), 'loaded': len(loaded),\n"
        "                  'refused': refused}))",
    )
    assert found == {
        "available": sorted(SLIM["SERVICES"]),
        "loaded": len(SLIM["SERVICES"]),
        "refused": True,
    }
    # The shared data stays: endpoints and partitions (every client), retry and defaults.
    data = image.python.parents[1].glob("lib/python*/site-packages/botocore/data")
    (data_dir,) = data
    assert {"endpoints.json", "partitions.json", "_retry.json"} <= {
        p.name for p in data_dir.iterdir() if p.is_file()
    }


def test_boto3_in_the_image_keeps_no_resource_model_and_still_makes_clients(image):
    """boto3's resource models are read by Session.resource() alone, which no run calls (the
    test below finds only clients): all of them are gone, and boto3 still makes our clients."""
    found = image_python(
        image,
        "import json, boto3.session\n"
        "s = boto3.session.Session(region_name='us-east-1')\n"
        "c = s.client('secretsmanager', endpoint_url='http://127.0.0.1:9')\n"
        "print(json.dumps({'resources': s.get_available_resources(),\n"
        "                  'services': sorted(s.get_available_services()),\n"
        "                  'client': c.meta.service_model.service_name}))",
    )
    assert found == {
        "resources": [],
        "services": sorted(SLIM["SERVICES"]),
        "client": "secretsmanager",
    }
    assert "resource" not in {kind for kind, _ in SDK_CALLS}


def test_the_slimmed_botocore_still_resolves_sts_in_every_partition(image):
    """The STS endpoint comes from botocore's endpoint rule set (in the kept sts model) and its
    partitions file: both must survive the slimming, for every partition."""
    found = image_python(
        image,
        "import json, sys\n"
        f"sys.path.insert(0, {str(image.rootfs / 'app' / 'lib')!r})\n"
        "from secrets_sync.credentials import sts_endpoint\n"
        "from secrets_sync.settings import load_settings\n"
        "base = {'INPUT_SECRETS': 'a: A', 'GITHUB_REPOSITORY': 'o/r'}\n"
        f"regions = {sorted(STS_ENDPOINTS)!r}\n"
        "print(json.dumps({r: sts_endpoint(load_settings({**base, 'INPUT_AWS-REGION': r}))\n"
        "                  for r in regions}))",
    )
    assert found == STS_ENDPOINTS


def test_the_kept_models_are_every_client_a_run_can_make():
    """Our code's clients, and those botocore's credential providers make for profile-based
    ambient credentials (assume-role and web-identity profiles, SSO, sign-in). A botocore
    upgrade that adds a provider fails here, not in a user's run."""
    ours = {name for kind, name in SDK_CALLS if kind == "client"}
    source = Path(botocore.__file__).parent
    theirs = {
        name
        for module in ("credentials.py", "tokens.py")
        for name in re.findall(
            r"(?:_client_creator|create_nested_client)\(\s*(?:self\._session,\s*)?"
            r"['\"]([a-z0-9-]+)['\"]",
            (source / module).read_text(),
        )
    }
    assert ours == {"secretsmanager", "sts"}
    assert {"sts", "sso", "sso-oidc"} <= theirs  # the scan sees botocore's providers
    assert ours | theirs == SLIM["SERVICES"]


def test_our_code_is_compiled_once_in_the_image(image):
    modules = sorted((image.rootfs / "app" / "lib").rglob("*.py"))
    assert modules
    for module in modules:
        pyc = Path(importlib.util.cache_from_source(str(module)))
        # PEP 552 flags: 0b01 is hash-based and unchecked, so an import reads no source.
        assert int.from_bytes(pyc.read_bytes()[4:8], "little") == 0b01, pyc


def test_entrypoint_syncs_with_a_hostile_path_pythonpath_and_home(image, proxy, sm, tmp_path):
    trap = hostile(tmp_path)
    before = image_files(image)
    run = run_image(image, proxy.url, tmp_path / "workspace", trap.env)
    assert run.returncode == 0, run.stdout + run.stderr
    assert trap.sprung() == []
    assert sorted(run.json("created")) == ["img/api", "img/db", "img/dsn"]
    db = json.loads(sm.get_secret_value(SecretId="img/db")["SecretString"])
    assert db == {"DB_USER": VALUES["DB_USER"], "DB_PASSWORD": VALUES["DB_PASSWORD"]}
    assert sm.get_secret_value(SecretId="img/dsn")["SecretString"] == VALUES["DSN"]
    arns = run.json("arns")
    assert set(arns) == {"img/api", "img/db", "img/dsn"}
    # Nothing is written next to the code (-B), whatever PYTHONDONTWRITEBYTECODE says.
    assert image_files(image) == before


def test_entrypoint_runs_with_an_unusable_home(image, proxy, sm, tmp_path):
    trap = hostile(tmp_path, home="file")
    run = run_image(image, proxy.url, tmp_path / "workspace", trap.env)
    assert run.returncode == 0, run.stdout + run.stderr
    assert trap.sprung() == []
    assert json.loads(sm.get_secret_value(SecretId="img/api")["SecretString"]) == {
        "API_KEY": VALUES["API_KEY"]
    }


def test_entrypoint_assumes_a_role_through_the_slimmed_botocore(image, proxy, sm, tmp_path):
    run = run_image(
        image,
        proxy.url,
        tmp_path / "workspace",
        {},
        inputs={"role-to-assume": "arn:aws:iam::123456789012:role/image-test"},
    )
    assert run.returncode == 0, run.stdout + run.stderr
    assert [c.operation for c in proxy.calls if c.service == "sts"] == ["AssumeRole"]
    assert sorted(run.json("created")) == ["img/api", "img/db", "img/dsn"]


def test_the_traps_are_real_without_isolation(image, proxy, tmp_path):
    """The control: the same command without -I, in the same environment, is taken over. So the
    test above passes because of the ENTRYPOINT, not because the traps cannot spring. PYTHONHOME
    is left out here, as without -I it stops Python from starting at all."""
    trap = hostile(tmp_path)
    env = {k: v for k, v in trap.env.items() if k != "PYTHONHOME"}
    run_image(image, proxy.url, tmp_path / "workspace", env, drop=("-I",))
    sprung = trap.sprung()
    assert "PYTHONPATH-sitecustomize" in sprung  # runs at start-up, before any of our code
    # ... and a dependency's shadow is imported in place of the real one (which one comes
    # first depends on the import order of the package).
    assert [s for s in sprung if s.startswith("PYTHONPATH-") and s != "PYTHONPATH-sitecustomize"]
