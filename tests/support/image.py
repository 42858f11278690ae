"""The Docker image, without Docker: the Dockerfile read, its build context laid out as its COPY
lines would, and its RUN lines replayed in a temporary root and a fresh virtual environment
standing in for the image's Python. tests/test_image.py checks and runs what this builds, and
bench/ measures it, so none of them can drift from the Dockerfile."""

from __future__ import annotations

import json
import os
import re
import shlex
import shutil
import subprocess
import sys
from dataclasses import dataclass
from pathlib import Path

from packaging.requirements import Requirement
from packaging.utils import canonicalize_name

ROOT = Path(__file__).resolve().parents[2]
DOCKERFILE = ROOT / "Dockerfile"
LOCK = ROOT / "requirements.lock"
IMAGE_PYTHON = "/usr/local/bin/python"


# Reading the Dockerfile -----------------------------------------------------------------------


@dataclass(frozen=True)
class Instruction:
    keyword: str
    args: str


def instructions(text: str) -> list[Instruction]:
    """The Dockerfile's instructions, comments dropped and continuation lines joined."""
    logical: list[str] = []
    pending = ""
    for line in text.splitlines():
        if line.lstrip().startswith("#"):
            continue
        if line.rstrip().endswith("\\"):
            pending += line.rstrip()[:-1] + " "
            continue
        pending += line
        if pending.strip():
            logical.append(pending.strip())
        pending = ""
    assert not pending.strip(), "the Dockerfile ends in a continuation line"
    return [Instruction(*[*re.split(r"\s+", line, maxsplit=1), ""][:2]) for line in logical]


def words(args: str) -> list[str]:
    return json.loads(args) if args.startswith("[") else shlex.split(args)


def _base(found: list[Instruction]) -> str:
    """The image the final stage is built on, as a build without --build-arg resolves it: the
    ARGs declared before the first FROM substituted, and a stage name followed to its image.
    Only a stage that is nothing but a name for a pinned image may come before the final one
    (the Dockerfile keeps its pinned base there, for Dependabot): the test replays one stage."""
    defaults = {}
    for ins in found:
        if ins.keyword.upper() == "FROM":
            break
        assert ins.keyword.upper() == "ARG", f"{ins.keyword} before the first FROM"
        name, _, default = ins.args.partition("=")
        defaults[name] = default
    stages: dict[str, str] = {}
    froms = [i for i in found if i.keyword.upper() == "FROM"]
    for n, ins in enumerate(froms):
        image, *alias = re.split(r"\s+[Aa][Ss]\s+", ins.args)
        image = re.sub(r"\$\{?(\w+)\}?", lambda m: defaults[m[1]], image)
        image = stages.get(image, image)
        if n == len(froms) - 1:
            return image
        following = found[found.index(ins) + 1]
        assert alias, "one stage: the test replays one"
        assert following.keyword.upper() == "FROM", "one stage: the test replays one"
        stages[alias[0]] = image
    raise AssertionError("the Dockerfile has no FROM")


@dataclass(frozen=True)
class Dockerfile:
    base: str
    env: dict[str, str]
    copies: list[tuple[list[str], str]]  # (sources, destination), in order
    copy_positions: list[int]
    runs: list[tuple[int, list[list[str]]]]  # (position, the commands its `&&` chain runs)
    entrypoint: list[str]
    keywords: list[str]

    @classmethod
    def parse(cls, text: str) -> Dockerfile:
        found = instructions(text)
        keywords = [i.keyword.upper() for i in found]
        env: dict[str, str] = {}
        copies: list[tuple[list[str], str]] = []
        copy_positions: list[int] = []
        runs: list[tuple[int, list[list[str]]]] = []
        entrypoint: list[str] = []
        for n, ins in enumerate(found):
            kw = ins.keyword.upper()
            if kw == "ENV":
                env.update(dict(w.split("=", 1) for w in shlex.split(ins.args)))
            elif kw == "COPY":
                parts = [w for w in words(ins.args) if not w.startswith("--")]
                copies.append((parts[:-1], parts[-1]))
                copy_positions.append(n)
            elif kw == "RUN":
                runs.append((n, [shlex.split(command) for command in ins.args.split("&&")]))
            elif kw == "ENTRYPOINT":
                entrypoint = json.loads(ins.args)
        return cls(_base(found), env, copies, copy_positions, runs, entrypoint, keywords)

    @property
    def commands(self) -> list[list[str]]:
        return [argv for _, chain in self.runs for argv in chain]

    @property
    def pip(self) -> list[str]:
        """The pip install command, as the RUN line gives it."""
        (found,) = [a for a in self.commands if a[:4] == ["python", "-m", "pip", "install"]]
        return found

    @property
    def pip_position(self) -> int:
        (found,) = [n for n, chain in self.runs if self.pip in chain]
        return found


DOCKERFILE_DATA = Dockerfile.parse(DOCKERFILE.read_text())


# .dockerignore, as Docker reads it ------------------------------------------------------------


def _pattern(glob: str) -> re.Pattern[str]:
    out = ""
    i = 0
    while i < len(glob):
        if glob.startswith("**/", i):
            out, i = out + "(?:.*/)?", i + 3
        elif glob.startswith("**", i):
            out, i = out + ".*", i + 2
        elif glob[i] == "*":
            out, i = out + "[^/]*", i + 1
        elif glob[i] == "?":
            out, i = out + "[^/]", i + 1
        elif glob[i] == "[":
            end = glob.index("]", i)
            out, i = out + glob[i : end + 1], end + 1
        else:
            out, i = out + re.escape(glob[i]), i + 1
    return re.compile(out + r"\Z")


def dockerignore(root: Path) -> list[tuple[bool, re.Pattern[str]]]:
    rules = []
    for raw in (root / ".dockerignore").read_text().splitlines():
        line = raw.strip()
        if not line or line.startswith("#"):
            continue
        keep = line.startswith("!")
        rules.append((keep, _pattern(line.lstrip("!").strip("/"))))
    return rules


def excluded(rel: str, rules: list[tuple[bool, re.Pattern[str]]]) -> bool:
    """Docker's rule: the last pattern that matches the path or one of its parents wins."""
    parts = rel.split("/")
    prefixes = ["/".join(parts[: n + 1]) for n in range(len(parts))]
    result = False
    for keep, pattern in rules:
        if any(pattern.match(p) for p in prefixes):
            result = not keep
    return result


# Local state that Docker would walk and exclude; skipped here only to keep the walk quick.
_LOCAL_STATE = {".git", ".venv", ".mypy_cache", ".ruff_cache", ".pytest_cache", ".hypothesis"}


def context_files(root: Path) -> list[str]:
    """The files of the build context: everything under root that .dockerignore lets through."""
    rules = dockerignore(root)
    found = []
    for dirpath, dirnames, filenames in os.walk(root):
        here = Path(dirpath)
        dirnames[:] = [d for d in dirnames if not (here == root and d in _LOCAL_STATE)]
        for name in filenames:
            rel = (here / name).relative_to(root).as_posix()
            if not excluded(rel, rules):
                found.append(rel)
    return sorted(found)


# The image, laid out -------------------------------------------------------------------------


def layout(rootfs: Path, dockerfile: Dockerfile) -> None:
    """Copy the build context into rootfs as the COPY lines would."""
    context = set(context_files(ROOT))
    for sources, dest in dockerfile.copies:
        for src in sources:
            src_rel = src.rstrip("/")
            members = sorted(f for f in context if f == src_rel or f.startswith(src_rel + "/"))
            assert members, f"COPY {src}: nothing of it is in the build context"
            target = rootfs / dest.lstrip("/")
            for rel in members:
                if rel == src_rel:  # a file
                    to = target / Path(rel).name if dest.endswith("/") else target
                else:  # a directory's contents
                    to = target / rel[len(src_rel) + 1 :]
                to.parent.mkdir(parents=True, exist_ok=True)
                shutil.copy2(ROOT / rel, to)


def lock_requirements() -> dict[str, str]:
    """Name → version of every requirement in the lock whose marker holds for this Python (the
    venv's, which is the one running the tests)."""
    text = LOCK.read_text().replace("\\\n", " ")
    found = {}
    for line in text.splitlines():
        line = line.split(" --hash", 1)[0].strip()
        if not line or line.startswith("#"):
            continue
        req = Requirement(line)
        if req.marker is None or req.marker.evaluate():
            (version,) = (s.version for s in req.specifier)
            found[canonicalize_name(req.name)] = version
    return found


@dataclass(frozen=True)
class Image:
    rootfs: Path
    python: Path
    entrypoint: list[str]

    def command(self, *, drop: tuple[str, ...] = ()) -> list[str]:
        argv = [a for a in self.entrypoint if a not in drop]
        assert argv[0] == IMAGE_PYTHON
        mapped = [str(self.python)]
        for arg in argv[1:]:
            mapped.append(str(self.rootfs / arg.lstrip("/")) if arg.startswith("/") else arg)
        return mapped


def replay(argv: list[str], rootfs: Path, python: Path) -> None:
    """One command of a RUN line, run against the temporary root: absolute paths are mapped
    into it and `python` is the venv standing in for the image's. Only the commands the
    Dockerfile uses are known; a new kind of command needs a rule here first."""

    def mapped(args: list[str]) -> list[str]:
        return [str(rootfs / a.lstrip("/")) if a.startswith("/") else a for a in args]

    env = {**os.environ, "PIP_DISABLE_PIP_VERSION_CHECK": "1", "PIP_NO_INPUT": "1"}
    env.pop("PYTHONPATH", None)
    if argv[:4] == ["python", "-m", "pip", "install"]:
        # The venv has no pip of its own: this one installs into it. --no-cache-dir only keeps
        # the image small; the cache keeps this test quick.
        args = [a for a in argv[4:] if a != "--no-cache-dir"]
        command = [sys.executable, "-m", "pip", "--python", str(python), "install", "--quiet"]
        command += mapped(args)
    elif argv[0] == "python":
        command = [str(python), *mapped(argv[1:])]
    elif argv[:2] == ["rm", "-r"]:
        for path in mapped(argv[2:]):
            shutil.rmtree(path)
        return
    else:
        raise AssertionError(f"the image test cannot replay {argv}")
    proc = subprocess.run(
        command, env=env, capture_output=True, text=True, timeout=600, check=False
    )
    assert proc.returncode == 0, f"{argv}:\n{proc.stdout}{proc.stderr}"


def build(base: Path) -> Image:
    """The image's files in base/rootfs, and a venv in base/venv standing in for its Python,
    made by replaying the Dockerfile's RUN lines in order: the lock installed by its own pip
    arguments, the botocore models slimmed, our code compiled. The venv gets no pip of its own
    (the image's pip is the base image's, not ours), so what is installed in it is exactly what
    the lock brought."""
    rootfs = base / "rootfs"
    layout(rootfs, DOCKERFILE_DATA)
    venv = base / "venv"
    subprocess.run([sys.executable, "-m", "venv", "--without-pip", str(venv)], check=True)
    python = venv / "bin" / "python"
    for argv in DOCKERFILE_DATA.commands:
        replay(argv, rootfs, python)
    return Image(rootfs, python, DOCKERFILE_DATA.entrypoint)
