"""Ownership of what the action writes into the workspace (lib/secrets_sync/ownership.py).

Without an engine: the decision (what to hand over, to whom) is a pure function, and the handover
runs with os.chown and os.chmod replaced by recorders. They are faked because a real chown to
another user needs root, and these tests must pass as a normal user too (and a filesystem that
refuses chown cannot be had on demand); the files themselves are real. `make image-test` runs
the real container, as root, against a workspace owned by 1001:1001 and checks the owners."""

from __future__ import annotations

import errno
import io
import os
from pathlib import Path

import pytest

from secrets_sync import eso, ownership
from secrets_sync.ownership import (
    DIR_MODE,
    FILE_MODE,
    Owner,
    hand_over,
    missing_dirs,
    to_hand_over,
)
from secrets_sync.runner import Runner
from tests.test_eso import MAPPING, settings_for

RUNNER = Owner(1001, 1001)


def test_only_root_hands_over_and_only_to_someone_else(tmp_path):
    written = [tmp_path / "k8s", tmp_path / "k8s" / "es.yaml"]
    # A normal user outside a container: nothing changes.
    assert to_hand_over(written, workspace=tmp_path, owner=RUNNER, euid=1001) == []
    assert to_hand_over(written, workspace=tmp_path, owner=Owner(1000, 1000), euid=1001) == []
    # Root in a workspace of root's: nothing to do.
    assert to_hand_over(written, workspace=tmp_path, owner=Owner(0, 0), euid=0) == []
    # Root in the runner user's workspace (a Docker action): every path written.
    assert to_hand_over(written, workspace=tmp_path, owner=RUNNER, euid=0) == written
    # A group alone differing still counts.
    assert to_hand_over(written, workspace=tmp_path, owner=Owner(0, 1001), euid=0) == written


def test_never_the_workspace_itself_nor_anything_outside_it(tmp_path):
    workspace = tmp_path / "ws"
    written = [workspace, tmp_path / "elsewhere.yaml", workspace / "es.yaml"]
    assert to_hand_over(written, workspace=workspace, owner=RUNNER, euid=0) == [
        workspace / "es.yaml"
    ]


def test_missing_dirs_are_those_mkdir_will_make_outermost_first(tmp_path):
    (tmp_path / "k8s").mkdir()
    target = tmp_path / "k8s" / "generated" / "prod"
    assert missing_dirs(target, tmp_path) == [tmp_path / "k8s" / "generated", target]
    assert missing_dirs(tmp_path / "k8s", tmp_path) == []
    assert missing_dirs(tmp_path, tmp_path) == []


class Recorder:
    def __init__(self, refuse: dict[str, int] | None = None) -> None:
        self.refuse = refuse or {}
        self.chowns: list[tuple[str, int, int]] = []
        self.chmods: list[tuple[str, int]] = []

    def chown(self, path: Path, uid: int, gid: int) -> None:
        if path.name in self.refuse:
            code = self.refuse[path.name]
            raise OSError(code, os.strerror(code), str(path))
        self.chowns.append((path.name, uid, gid))

    def chmod(self, path: Path, mode: int) -> None:
        self.chmods.append((path.name, mode))


def test_hands_over_each_path_with_umask_022_modes(tmp_path):
    (tmp_path / "k8s").mkdir(mode=0o700)
    (tmp_path / "k8s" / "es.yaml").write_text("x")
    fake = Recorder()
    paths = [tmp_path / "k8s", tmp_path / "k8s" / "es.yaml"]
    assert hand_over(paths, RUNNER, chown=fake.chown, chmod=fake.chmod) == []
    assert fake.chowns == [("k8s", 1001, 1001), ("es.yaml", 1001, 1001)]
    assert fake.chmods == [("k8s", DIR_MODE), ("es.yaml", FILE_MODE)]
    assert (DIR_MODE, FILE_MODE) == (0o755, 0o644)


@pytest.mark.parametrize("code", [errno.EPERM, errno.ENOTSUP, errno.EROFS])
def test_a_refused_chown_is_a_warning_naming_the_file_and_the_rest_go_on(tmp_path, code):
    (tmp_path / "k8s").mkdir()
    (tmp_path / "k8s" / "es.yaml").write_text("x")
    fake = Recorder(refuse={"k8s": code})
    paths = [tmp_path / "k8s", tmp_path / "k8s" / "es.yaml"]
    warnings = hand_over(
        paths,
        RUNNER,
        chown=fake.chown,
        chmod=fake.chmod,
        name=lambda p: p.relative_to(tmp_path).as_posix(),
    )
    assert len(warnings) == 1
    assert warnings[0].startswith("k8s is left owned by root")
    assert "1001:1001" in warnings[0]
    assert os.strerror(code) in warnings[0]
    assert fake.chowns == [("es.yaml", 1001, 1001)]  # the next path was still handed over


def test_eso_write_hands_over_what_it_made_and_warns_through_the_runner(tmp_path, monkeypatch):
    """eso.write as it runs in the container: root (faked: geteuid), a workspace of the runner
    user's (faked: its stat, as making one needs root), and a filesystem that refuses chown on
    the new directory (faked: os.chown). The warning reaches the runner as a `::warning`
    naming the path; the file is written and handed over all the same."""
    (tmp_path / "k8s").mkdir()  # exists already: not the action's to touch
    settings, specs = settings_for(tmp_path, MAPPING, **{"eso-manifests": "k8s/gen/es.yaml"})
    fake = Recorder(refuse={"gen": errno.EPERM})
    monkeypatch.setattr(os, "geteuid", lambda: 0)
    monkeypatch.setattr(os, "chown", fake.chown)
    monkeypatch.setattr(ownership.Owner, "of", classmethod(lambda cls, path: RUNNER))
    out = io.StringIO()
    runner = Runner(out, in_actions=True)
    written = eso.write(
        settings, specs, warn=lambda m: runner.warning(m, title="secrets-sync: eso-manifests")
    )
    assert written == Path("k8s/gen/es.yaml")
    assert fake.chowns == [("es.yaml", 1001, 1001)]  # k8s/ existed: left alone
    assert out.getvalue() == (
        "::warning title=secrets-sync%3A eso-manifests::k8s/gen is left owned by root: it could "
        "not be handed to the workspace's owner 1001:1001 (Operation not permitted).\n"
    )
