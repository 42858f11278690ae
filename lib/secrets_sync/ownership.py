"""What the action writes into the workspace, handed to the workspace's owner.

A Docker action runs as root (GitHub requires it), so a file it creates in the mounted workspace,
and every directory it makes for one, would belong to root: a later step running as the runner
user could not rewrite them, and on a self-hosted runner the next job's checkout could not clean
the workspace (actions/runner#434). As root, each such path is given to the owner of the
workspace directory, with the modes a normal user's umask 022 gives. As anyone else (a normal
user outside a container) there is nothing to hand over and nothing is changed."""

from __future__ import annotations

import os
import stat
from collections.abc import Callable, Sequence
from dataclasses import dataclass
from pathlib import Path

FILE_MODE = 0o644
DIR_MODE = 0o755


@dataclass(frozen=True)
class Owner:
    uid: int
    gid: int

    @classmethod
    def of(cls, path: Path) -> Owner:
        st = path.stat()
        return cls(st.st_uid, st.st_gid)


def missing_dirs(directory: Path, workspace: Path) -> list[Path]:
    """The directories from the workspace down to `directory` that do not exist yet, outermost
    first: what a `mkdir(parents=True)` of `directory` is about to create."""
    chain = [directory, *directory.parents]
    inside = [d for d in chain if d.is_relative_to(workspace) and d != workspace]
    return [d for d in reversed(inside) if not d.exists()]


def to_hand_over(
    written: Sequence[Path], *, workspace: Path, owner: Owner, euid: int
) -> list[Path]:
    """Which of the paths just written to give to `owner`: none unless this process is root and
    the workspace belongs to someone else; never a path outside the workspace."""
    if euid != 0 or owner == Owner(0, 0):
        return []
    return [p for p in written if p.is_relative_to(workspace) and p != workspace]


def hand_over(
    paths: Sequence[Path],
    owner: Owner,
    *,
    chown: Callable[[Path, int, int], None] | None = None,
    chmod: Callable[[Path, int], None] | None = None,
    name: Callable[[Path], str] = str,
) -> list[str]:
    """Give each path to `owner` with umask-022 modes. A filesystem that cannot (EPERM on a
    mount without chown, ENOTSUP, EROFS, ...) costs a warning naming the file, not the run: the
    file is written and correct, only its owner is root. Returns the warnings. (os.chown and
    os.chmod are looked up per call, so that tests can stand in for them.)"""
    warnings = []
    for path in paths:
        try:
            mode = DIR_MODE if stat.S_ISDIR(path.lstat().st_mode) else FILE_MODE
            (chmod or os.chmod)(path, mode)
            (chown or os.chown)(path, owner.uid, owner.gid)
        except OSError as exc:
            warnings.append(
                f"{name(path)} is left owned by root: it could not be handed to the workspace's "
                f"owner {owner.uid}:{owner.gid} ({exc.strerror or type(exc).__name__})."
            )
    return warnings
