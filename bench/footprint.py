"""The installed footprint of the runtime dependencies, and what of it a run actually uses.

Builds the image's environment from the Dockerfile as tests/test_image.py does (the lock
installed with `--require-hashes --no-deps`, the unused SDK models deleted), sizes each
distribution from the files of its RECORD that are still there (byte code included), then runs
the image's entrypoint against a local moto (create, then no-op, with role-to-assume so the STS
path is loaded too) and records every module it imports and every file it opens under
site-packages. It reports, per distribution, the
installed size, how much of it a run touched, and what was never imported at all.

Usage: python bench/footprint.py [--keep DIR] [--markdown FILE]
"""

from __future__ import annotations

import argparse
import json
import subprocess
import sys
import tempfile
import textwrap
from collections import defaultdict
from collections.abc import Iterable, Sequence
from dataclasses import dataclass, field
from pathlib import Path

import harness
from harness import AwsProxy, Runtime

ROLE = "arn:aws:iam::123456789012:role/secrets-sync-footprint"
SECRETS = 25

# Runs the entrypoint as __main__ with an audit hook watching imports and file opens; at exit it
# writes what it saw as JSON to the path in $FOOTPRINT_OUT.
PROBE = textwrap.dedent(
    """
    import atexit, json, os, sys, runpy
    opened = set()
    def hook(event, args):
        if event == "open" and isinstance(args[0], str):
            opened.add(os.path.realpath(args[0]))
    sys.addaudithook(hook)
    def dump():
        files = {m.__name__: os.path.realpath(f) for m in list(sys.modules.values())
                 if (f := getattr(m, "__file__", None))}
        with open(os.environ["FOOTPRINT_OUT"], "w") as out:
            json.dump({"modules": files, "opened": sorted(opened)}, out)
    atexit.register(dump)
    entry = sys.argv[1]
    sys.argv = sys.argv[1:]
    runpy.run_path(entry, run_name="__main__")
    """
)


@dataclass
class Dist:
    name: str
    version: str
    files: dict[Path, int]  # installed file (resolved) -> bytes
    used: set[Path] = field(default_factory=set)
    imported: set[str] = field(default_factory=set)

    @property
    def size(self) -> int:
        return sum(self.files.values())

    @property
    def used_size(self) -> int:
        return sum(self.files[p] for p in self.used)


def mib(size: int) -> str:
    return f"{size / 2**20:.2f}"


def site_packages(python: Path) -> Path:
    out = subprocess.run(
        [str(python), "-c", "import sysconfig; print(sysconfig.get_paths()['purelib'])"],
        check=True,
        capture_output=True,
        text=True,
    )
    return Path(out.stdout.strip()).resolve()


def distributions(python: Path, site: Path) -> list[Dist]:
    listing = subprocess.run(
        [
            str(python),
            "-c",
            "import json, importlib.metadata as m; print(json.dumps([(d.metadata['Name'], "
            "d.version, [str(d.locate_file(f)) for f in d.files or []]) "
            "for d in m.distributions()]))",
        ],
        check=True,
        capture_output=True,
        text=True,
    )
    dists = []
    for name, version, paths in json.loads(listing.stdout):
        files = {}
        for raw in paths:
            path = Path(raw).resolve()
            if path.is_file() and site in path.parents:
                files[path] = path.stat().st_size
        dists.append(Dist(name, version, files))
    return sorted(dists, key=lambda d: -d.size)


def probe_runs(runtime: Runtime, work: Path) -> tuple[dict[str, str], set[Path]]:
    """Modules imported and files opened over a create and a no-op run."""
    modules: dict[str, str] = {}
    opened: set[Path] = set()
    mapping = "\n".join(f"s{i:03d}: V{i:03d}" for i in range(SECRETS))
    values = {f"V{i:03d}": f"footprint-value-{i:03d}" for i in range(SECRETS)}
    inputs = {"secrets": mapping, "name-prefix": "footprint/", "role-to-assume": ROLE}
    with harness.moto_server() as moto_url, AwsProxy(moto_url) as proxy:
        for run in ("create", "no-op"):
            run_dir = work / run
            run_dir.mkdir()
            child = harness.run_action(
                runtime.command("-c", PROBE),
                proxy,
                run_dir,
                inputs,
                values,
                env={"FOOTPRINT_OUT": str(run_dir / "seen.json")},
            )
            seen = json.loads((run_dir / "seen.json").read_text())
            modules.update(seen["modules"])
            opened.update(Path(p) for p in seen["opened"])
            print(f"{run}: {len(child.calls)} calls {dict(child.kinds)}", file=sys.stderr)
    return modules, opened


def attribute(dists: Iterable[Dist], modules: dict[str, str], opened: set[Path]) -> None:
    owner = {path: dist for dist in dists for path in dist.files}
    for name, file in modules.items():
        path = Path(file)
        if path in owner:
            owner[path].imported.add(name)
            owner[path].used.add(path)
            cached = path.parent / "__pycache__"
            for pyc in cached.glob(f"{path.stem}.*.pyc") if path.suffix == ".py" else ():
                if pyc.resolve() in owner:
                    owner[path].used.add(pyc.resolve())
    for path in opened:
        if path in owner:
            owner[path].used.add(path)


def botocore_data(dists: Sequence[Dist], site: Path) -> tuple[int, dict[str, int], set[str]]:
    """botocore/data by service: total bytes, bytes per service, the services a run read."""
    data = site / "botocore" / "data"
    botocore = next(d for d in dists if d.name.lower() == "botocore")
    per_service: dict[str, int] = defaultdict(int)
    used: set[str] = set()
    total = 0
    for path, size in botocore.files.items():
        if data in path.parents:
            rel = path.relative_to(data)
            total += size
            if len(rel.parts) > 1:
                per_service[rel.parts[0]] += size
                if path in botocore.used:
                    used.add(rel.parts[0])
    return total, dict(per_service), used


def report(dists: Sequence[Dist], site: Path) -> str:
    total = sum(d.size for d in dists)
    lines = [
        "| distribution | version | installed MiB | files | imported modules | MiB a run touches |",
        "|---|---|---:|---:|---:|---:|",
    ]
    for d in dists:
        modules = sum(1 for p in d.files if p.suffix in (".py", ".so"))
        lines.append(
            f"| {d.name} | {d.version} | {mib(d.size)} | {len(d.files)} "
            f"| {len(d.imported)} of {modules} | {mib(d.used_size)} |"
        )
    used_total = sum(d.used_size for d in dists)
    lines.append(
        f"| **total** | | **{mib(total)}** | {sum(len(d.files) for d in dists)} | "
        f"| **{mib(used_total)}** |"
    )
    never = [d for d in dists if not d.imported]
    lines.append("")
    lines.append(
        "Never imported by a run: "
        + (", ".join(f"{d.name} ({mib(d.size)} MiB)" for d in never) or "none")
        + "."
    )
    data_total, per_service, read = botocore_data(dists, site)
    kept = sum(per_service.get(s, 0) for s in read)
    lines.append(
        f"botocore/data: {mib(data_total)} MiB for {len(per_service)} services; a run reads "
        f"{', '.join(sorted(read)) or 'none'} ({mib(kept)} MiB) and the top-level JSON files "
        f"(endpoints, partitions, defaults, retry): the other {len(per_service) - len(read)} "
        f"services are {mib(data_total - kept - _top_level(per_service, data_total))} MiB never "
        "read."
    )
    lines.append(
        "The probe talks plain HTTP to a local endpoint: what only a TLS connection reads "
        "(botocore/cacert.pem, the CA bundle) shows as unread here, and real runs need it."
    )
    return "\n".join(lines) + "\n"


def _top_level(per_service: dict[str, int], data_total: int) -> int:
    return data_total - sum(per_service.values())


def never_imported(dists: Sequence[Dist], site: Path, smallest: int = 32 * 1024) -> str:
    """Packages and modules no run imported, in the distributions a run does import, largest
    first: the source, its byte code, and data files that nothing opened either."""
    groups: dict[str, int] = defaultdict(int)
    for dist in dists:
        if not dist.imported:
            continue  # named whole above
        for path, size in dist.files.items():
            if path in dist.used or site not in path.parents:
                continue
            rel = path.relative_to(site)
            if rel.parts[0].endswith((".dist-info", ".data")) or rel.parts[0] == "bin":
                continue
            parts = [p for p in rel.parts[:-1] if p != "__pycache__"]
            if rel.suffix in (".py", ".pyc", ".so", ".pyi"):
                stem = rel.name.split(".")[0]
                module = ".".join([*parts, stem] if stem != "__init__" else parts)
                # Name the package the module lives in, or the module itself at the top level.
                key = ".".join(module.split(".")[:2])
            else:
                key = "/".join(parts[:2]) + "/ (data files)"
            groups[key] += size
    rows = [(size, key) for key, size in groups.items() if size >= smallest]
    lines = ["| never imported or read | MiB |", "|---|---:|"]
    lines += [f"| `{key}` | {mib(size)} |" for size, key in sorted(rows, reverse=True)]
    return "\n".join(lines) + "\n"


def main(argv: Sequence[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--keep", type=Path, help="build the image's files here and keep them")
    parser.add_argument("--markdown", type=Path, help="also write the report to this file")
    args = parser.parse_args(argv)
    with tempfile.TemporaryDirectory(prefix="secrets-sync-footprint-") as tmp:
        where = args.keep or Path(tmp) / "image"
        runtime = Runtime.image(where)
        python = Path(runtime.python)
        site = site_packages(python)
        dists = distributions(python, site)
        modules, opened = probe_runs(runtime, Path(tmp))
        attribute(dists, modules, opened)
        text = report(dists, site) + "\n" + never_imported(dists, site)
    print(text)
    if args.markdown:
        args.markdown.write_text(text)
    return 0


if __name__ == "__main__":
    sys.exit(main())
