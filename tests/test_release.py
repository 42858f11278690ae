"""The release: scripts/release_action.py turns main's action.yml (`image: Dockerfile`) into the
released one (the published image by digest) and changes nothing else; release.yml is held to
least privilege and pinned actions."""

from __future__ import annotations

import difflib
import re
import subprocess
import sys
from pathlib import Path

import pytest
import yaml

ROOT = Path(__file__).resolve().parents[1]
sys.path.insert(0, str(ROOT / "scripts"))

from release_action import ReleaseError, released  # noqa: E402

ACTION = (ROOT / "action.yml").read_text()
DIGEST = "sha256:" + "0123456789abcdef" * 4
IMAGE = f"ghcr.io/lornu-ai/secrets-sync@{DIGEST}"
WORKFLOW = yaml.safe_load((ROOT / ".github/workflows/release.yml").read_text())
WORKFLOW_TEXT = (ROOT / ".github/workflows/release.yml").read_text()


def test_released_action_runs_the_image_by_digest_and_nothing_else_changed():
    out = released(ACTION, IMAGE)
    assert yaml.safe_load(out)["runs"] == {"using": "docker", "image": f"docker://{IMAGE}"}
    diff = [
        line
        for line in difflib.unified_diff(ACTION.splitlines(), out.splitlines(), lineterm="", n=0)
        if line[:1] in "+-" and not line.startswith(("+++", "---"))
    ]
    assert diff == ["-  image: Dockerfile", f"+  image: docker://{IMAGE}"]
    # Everything but runs.image, inputs and their defaults included, is the same YAML.
    before, after = yaml.safe_load(ACTION), yaml.safe_load(out)
    after["runs"]["image"] = "Dockerfile"
    assert after == before


@pytest.mark.parametrize(
    "image",
    [
        "ghcr.io/lornu-ai/secrets-sync:v1.2.3",  # a tag can move
        "ghcr.io/lornu-ai/secrets-sync:v1@" + DIGEST,  # a tag beside the digest misleads
        "ghcr.io/lornu-ai/secrets-sync@sha256:abc",  # not a full digest
        "ghcr.io/lornu-ai/secrets-sync@" + DIGEST.upper(),
        "docker://ghcr.io/lornu-ai/secrets-sync@" + DIGEST,  # the prefix is the script's to add
        "",
    ],
)
def test_rejects_anything_but_an_image_by_digest(image):
    with pytest.raises(ReleaseError, match="not an image by digest"):
        released(ACTION, image)


def test_refuses_to_release_twice_or_an_unexpected_action_yml():
    with pytest.raises(ReleaseError, match="exactly one"):
        released(released(ACTION, IMAGE), IMAGE)
    composite = ACTION.replace("using: docker", "using: composite")
    with pytest.raises(ReleaseError, match="runs"):
        released(composite, IMAGE)


def test_command_line_rewrites_the_file_in_place(tmp_path):
    target = tmp_path / "action.yml"
    target.write_text(ACTION)
    script = ROOT / "scripts/release_action.py"
    proc = subprocess.run(
        [sys.executable, script, IMAGE, target], capture_output=True, text=True, check=False
    )
    assert proc.returncode == 0, proc.stderr
    assert target.read_text() == released(ACTION, IMAGE)
    bad = subprocess.run(
        [sys.executable, script, "ghcr.io/x/y:latest", target],
        capture_output=True,
        text=True,
        check=False,
    )
    assert bad.returncode == 1
    assert bad.stderr.startswith("::error::")
    assert target.read_text() == released(ACTION, IMAGE)  # untouched by the failed run


# The workflow ----------------------------------------------------------------------------------


def test_release_workflow_grants_nothing_at_the_top_and_each_write_where_it_is_used():
    assert WORKFLOW["permissions"] == {}
    grants = {name: job.get("permissions") for name, job in WORKFLOW["jobs"].items()}
    assert all(g is not None for g in grants.values()), grants
    holders = {
        scope: sorted(name for name, g in grants.items() if g.get(scope) == "write")
        for scope in ("packages", "id-token", "attestations", "contents")
    }
    # Pushing and attesting the image is one job; writing the release commit and tags another.
    assert holders["packages"] == holders["id-token"] == holders["attestations"] == ["image"]
    assert holders["contents"] == ["release"]


def test_release_workflow_pins_actions_by_sha_and_keeps_no_credentials():
    uses = re.findall(r"uses: (\S+)(.*)", WORKFLOW_TEXT)
    assert uses
    for ref, comment in uses:
        assert re.fullmatch(r"[\w.-]+/[\w./-]+@[0-9a-f]{40}", ref), ref
        assert re.fullmatch(r" # v\d+\.\d+\.\d+", comment), (ref, comment)
    for job in WORKFLOW["jobs"].values():
        for step in job["steps"]:
            if step.get("uses", "").startswith("actions/checkout@"):
                assert step["with"]["persist-credentials"] is False


def test_release_workflow_uses_the_release_script():
    assert "scripts/release_action.py" in WORKFLOW_TEXT
