"""`secrets-sync iam-policy`: the IAM policies a sync needs, as JSON to paste."""

from __future__ import annotations

from collections.abc import Sequence
from typing import TextIO


def main(argv: Sequence[str], stream: TextIO) -> int:
    raise NotImplementedError  # being built for issue 6
