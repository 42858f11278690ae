"""Image build step: delete the botocore service models that no run can load.

botocore carries a model for each of some 400 AWS services, over half the size of the image's
dependencies. A run loads the models of the clients secrets-sync makes (Secrets Manager, STS)
and of those botocore's own credential providers can make when the ambient credentials come from
an AWS profile (STS, IAM Identity Center's SSO and SSO-OIDC, and sign-in). Every other
service's directory under botocore/data is removed; the shared files there (endpoints,
partitions, retry and default-configuration data) stay.

The Dockerfile runs this in the same RUN as the pip install, so the deleted files never reach a
layer; tests/test_image.py replays it and runs the action on what is left, and checks SERVICES
against the clients our code and botocore's credential code create.

Usage: python -I slim_botocore.py
"""

from __future__ import annotations

import importlib.util
import shutil
import sys
from pathlib import Path

SERVICES = frozenset({"secretsmanager", "sts", "sso", "sso-oidc", "signin"})


def data_dir() -> Path:
    spec = importlib.util.find_spec("botocore")
    if spec is None or not spec.submodule_search_locations:
        raise SystemExit("slim_botocore: botocore is not installed")
    return Path(next(iter(spec.submodule_search_locations))) / "data"


def main() -> int:
    data = data_dir()
    services = {p.name: p for p in data.iterdir() if p.is_dir()}
    missing = SERVICES - services.keys()
    if missing:
        raise SystemExit(f"slim_botocore: botocore has no model for {', '.join(sorted(missing))}")
    removed = 0
    for name, path in sorted(services.items()):
        if name not in SERVICES:
            removed += sum(f.stat().st_size for f in path.rglob("*") if f.is_file())
            shutil.rmtree(path)
    print(
        f"slim_botocore: kept {', '.join(sorted(SERVICES))}; removed "
        f"{len(services) - len(SERVICES)} service models ({removed / 2**20:.1f} MiB)"
    )
    return 0


if __name__ == "__main__":
    sys.exit(main())
