"""Rewrite action.yml for a release: `runs.image: Dockerfile` becomes
`docker://<image>@sha256:<digest>`, so the released tag runs the published image by digest and a
moved image tag can never change what `@vX.Y.Z` runs. Only that one line changes (a text edit,
so comments and layout stay); the result is checked to be the same YAML otherwise.

    python scripts/release_action.py ghcr.io/lornu-ai/secrets-sync@sha256:<64 hex> [action.yml]

.github/workflows/release.yml runs this; tests/test_release.py checks it.
"""

from __future__ import annotations

import re
import sys
from pathlib import Path
from typing import Any

import yaml

# A registry image by digest alone: no tag, nothing to resolve at run time.
IMAGE = re.compile(r"[a-z0-9][a-z0-9._-]*(?:/[a-z0-9._-]+)+@sha256:[0-9a-f]{64}")
DEVELOPMENT = re.compile(r"^(?P<indent>\s+)image: Dockerfile\s*$", re.M)


class ReleaseError(ValueError):
    pass


def released(text: str, image: str) -> str:
    """action.yml's text with the Dockerfile replaced by `image`, pinned by digest."""
    if not IMAGE.fullmatch(image):
        raise ReleaseError(f"{image!r} is not an image by digest (name@sha256:<64 hex>)")
    found = DEVELOPMENT.findall(text)
    if len(found) != 1:
        raise ReleaseError("action.yml must have exactly one `image: Dockerfile` line")
    out = DEVELOPMENT.sub(lambda m: f"{m['indent']}image: docker://{image}", text)
    before: Any = yaml.safe_load(text)
    after: Any = yaml.safe_load(out)
    if before["runs"] != {"using": "docker", "image": "Dockerfile"}:
        raise ReleaseError("action.yml's `runs:` is not `using: docker` with `image: Dockerfile`")
    before["runs"]["image"] = f"docker://{image}"
    if after != before:
        raise ReleaseError("the rewrite changed more than `runs.image`")
    return out


def main(argv: list[str]) -> int:
    if len(argv) not in (1, 2):
        print(__doc__, file=sys.stderr)
        return 2
    path = Path(argv[1] if len(argv) == 2 else "action.yml")
    try:
        path.write_text(released(path.read_text(), argv[0]))
    except ReleaseError as exc:
        print(f"::error::{exc}", file=sys.stderr)
        return 1
    print(f"{path}: runs.image = docker://{argv[0]}")
    return 0


if __name__ == "__main__":
    sys.exit(main(sys.argv[1:]))
