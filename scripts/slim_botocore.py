"""Image build step: delete the AWS SDK models that no run can load.

botocore carries a model for each of some 400 AWS services, over half the size of the image's
dependencies. A run loads the models of the clients secrets-sync makes (Secrets Manager, STS)
and of those botocore's own credential providers can make when the ambient credentials come from
an AWS profile (STS, IAM Identity Center's SSO and SSO-OIDC, and sign-in). Every other
service's directory under botocore/data is removed; the shared files there (endpoints,
partitions, retry and default-configuration data) stay.

boto3 adds resource models (boto3/data: S3, EC2, DynamoDB, ...), read only by
`Session.resource()`, which secrets-sync never calls: it makes clients. All of them go; the
empty directory stays on the search path boto3 gives botocore's loader.

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


def data_dir(package: str) -> Path:
    spec = importlib.util.find_spec(package)
    if spec is None or not spec.submodule_search_locations:
        raise SystemExit(f"slim_botocore: {package} is not installed")
    return Path(next(iter(spec.submodule_search_locations))) / "data"


def remove(paths: list[Path]) -> int:
    """Delete the directories; the bytes they held."""
    size = sum(f.stat().st_size for path in paths for f in path.rglob("*") if f.is_file())
    for path in paths:
        shutil.rmtree(path)
    return size


def main() -> int:
    services = {p.name: p for p in data_dir("botocore").iterdir() if p.is_dir()}
    missing = SERVICES - services.keys()
    if missing:
        raise SystemExit(f"slim_botocore: botocore has no model for {', '.join(sorted(missing))}")
    removed = remove([path for name, path in sorted(services.items()) if name not in SERVICES])
    resources = sorted(p for p in data_dir("boto3").iterdir() if p.is_dir())
    removed_resources = remove(resources)
    print(
        f"slim_botocore: kept {', '.join(sorted(SERVICES))}; removed "
        f"{len(services) - len(SERVICES)} service models ({removed / 2**20:.1f} MiB) and "
        f"{len(resources)} boto3 resource models ({removed_resources / 2**20:.1f} MiB)"
    )
    return 0


if __name__ == "__main__":
    sys.exit(main())
