"""Versions: the one answer to "did secrets-sync write this version?", and which run did.

Every value secrets-sync writes (CreateSecret, PutSecretValue) sends a ClientRequestToken of its
own making, and AWS makes that token the new version's VersionId (API_PutSecretValue,
API_CreateSecret: "This value becomes the VersionId of the new version"; 32-64 characters). The
token reads `secrets-sync-<run id>-<attempt>-<ms since the epoch, 12 hex digits><random hex>`:
so the AWSCURRENT version named in the BatchGetSecretValue answer a run reads anyway says, with
no label and no listing, whether it is ours, and which run wrote it and when. botocore resends
the same request (and so the same token) on each of its retries: AWS then ignores a resend
whose version already landed with the same value. The token is built from the run's ids, the
clock and a random number; never from a value.

Versions written by v1.1 carry no such token; v1.1 put its staging label `secrets-sync` on the
version it wrote. That label on the version itself, in the same answer, still counts as ours.
A label left on an older version is never read: whether AWS keeps it there when another writer
moves AWSCURRENT is not recorded (tests/support/realaws/ models both readings)."""

from __future__ import annotations

import re
import secrets
import time
from collections.abc import Iterable, Mapping, Sequence
from dataclasses import dataclass
from datetime import UTC, datetime
from typing import TextIO

PREFIX = "secrets-sync-"
LEGACY_LABEL = "secrets-sync"  # v1.1's staging label on each version it wrote
CURRENT = "AWSCURRENT"
PREVIOUS = "AWSPREVIOUS"
MIN_LENGTH, MAX_LENGTH = 32, 64  # ClientRequestToken
_TIME_DIGITS = 12  # ms since the epoch in hex: 12 digits last until the year 10889
_RANDOM_DIGITS = 16  # 64 random bits, fewer only when long run ids leave no room
_MIN_RANDOM_DIGITS = 8
_TOKEN = re.compile(
    rf"^{PREFIX}(?P<run>[0-9]{{1,20}})-(?P<attempt>[0-9]{{1,20}})-"
    rf"(?P<ms>[0-9a-f]{{{_TIME_DIGITS}}})[0-9a-f]{{{_MIN_RANDOM_DIGITS},}}$"
)


def new_token(run_id: str | None, attempt: str | None, *, now: float | None = None) -> str:
    """A fresh ClientRequestToken for one write request ("0" stands for an id unknown outside
    Actions). Run ids so long that fewer than 8 random digits would fit are left out ("0"):
    GitHub's have 11 digits today, and the token must stay within 64 characters."""
    ms = int((time.time() if now is None else now) * 1000)
    ids = f"{run_id or '0'}-{attempt or '0'}"
    head = f"{PREFIX}{ids}-{ms:0{_TIME_DIGITS}x}"
    room = MAX_LENGTH - len(head)
    if room < _MIN_RANDOM_DIGITS:
        head = f"{PREFIX}0-0-{ms:0{_TIME_DIGITS}x}"
        room = MAX_LENGTH - len(head)
    return head + secrets.token_hex(_RANDOM_DIGITS)[: min(room, _RANDOM_DIGITS)]


@dataclass(frozen=True, order=True)
class Writer:
    """Which run wrote a version, and when (ordered by time, then run id, then attempt)."""

    at_ms: int
    run_id: int
    attempt: int

    @property
    def at(self) -> datetime:
        return datetime.fromtimestamp(self.at_ms / 1000, tz=UTC)

    def __str__(self) -> str:
        when = self.at.strftime("%Y-%m-%d %H:%M:%S UTC")
        if not self.run_id:
            return f"a run outside Actions, {when}"
        return f"run {self.run_id} attempt {self.attempt}, {when}"


def written_by(version_id: str | None) -> Writer | None:
    """The run that wrote a version with our token, or None (not our token)."""
    found = _TOKEN.fullmatch(version_id or "")
    if found is None or len(version_id or "") > MAX_LENGTH:
        return None
    return Writer(int(found["ms"], 16), int(found["run"]), int(found["attempt"]))


def is_ours(version_id: str | None, stages: Iterable[str] = ()) -> bool:
    """Whether secrets-sync wrote this version: our token as its VersionId, or (written by
    v1.1) our old staging label among the version's own stages as the same answer gives them."""
    return written_by(version_id) is not None or LEGACY_LABEL in stages


def older(first: tuple[str, Iterable[str]], second: tuple[str, Iterable[str]]) -> bool | None:
    """Whether version `first` was written before `second`, both (VersionId, stages) of ours; None
    when that cannot be told (either is not ours). A v1.1 version (label, no token) is older than
    every token version: v1.2 writes only tokens, and v1.1's label was on one version at a time."""
    keys = []
    for version_id, stages in (first, second):
        writer = written_by(version_id)
        if writer is None and not is_ours(version_id, stages):
            return None
        keys.append((0, Writer(0, 0, 0)) if writer is None else (1, writer))
    if keys[0] == keys[1]:
        return None  # two v1.1 versions (cannot be), or the same token twice
    return keys[0] < keys[1]


def main(args: Sequence[str], out: TextIO, env: Mapping[str, str]) -> int:
    """`secrets-sync written-by VERSION_ID [--repository OWNER/REPO]`: which run wrote a version
    (its VersionId, e.g. from `aws secretsmanager list-secret-version-ids`), and its URL."""
    import argparse

    from .settings import run_url

    parser = argparse.ArgumentParser(
        prog="secrets-sync written-by",
        description="Say which workflow run of secrets-sync wrote a secret's version, from its "
        "VersionId alone (no AWS call).",
    )
    parser.add_argument("version_id", metavar="VERSION_ID")
    parser.add_argument(
        "--repository",
        default=env.get("GITHUB_REPOSITORY", ""),
        help="OWNER/REPO, for the run's URL (default: GITHUB_REPOSITORY)",
    )
    parsed = parser.parse_args(list(args))
    writer = written_by(parsed.version_id)
    if writer is None:
        out.write(f"{parsed.version_id}: not a version secrets-sync v1.2+ wrote\n")
        return 1
    out.write(f"{writer}\n")
    ids = {"GITHUB_RUN_ID": str(writer.run_id), "GITHUB_RUN_ATTEMPT": str(writer.attempt)}
    server = {"GITHUB_SERVER_URL": env.get("GITHUB_SERVER_URL", "")}
    url = run_url({**ids, **server}, parsed.repository) if parsed.repository else None
    if url and writer.run_id:
        out.write(f"{url}\n")
    return 0
