"""The `only` input: which secrets of the mapping one run (a sync or a rollback) takes part in."""

from __future__ import annotations

import re
from collections.abc import Sequence
from fnmatch import fnmatchcase
from typing import TYPE_CHECKING

from .errors import InputError

if TYPE_CHECKING:  # inputs.py parses `only` before the mapping module (and yaml) is loaded
    from .mapping import SecretSpec

# Names hold A-Za-z0-9/_+=.@- (the mapping's schema); a pattern adds the `*` glob. `?` and
# `[...]` of fnmatch are refused so that a name is never read as a pattern by surprise.
_PATTERN = re.compile(r"^[A-Za-z0-9/_+=.@*-]{1,512}$")


def parse_only(text: str) -> tuple[str, ...]:
    """The patterns of `only`, separated by newlines or commas; blanks ignored, order kept."""
    patterns = [p.strip() for p in re.split(r"[,\n]", text) if p.strip()]
    for pattern in patterns:
        if not _PATTERN.fullmatch(pattern):
            raise InputError(
                "input `only`",
                f"{pattern!r} is not a secret name or pattern.",
                "give mapping keys or full secret names (A-Z a-z 0-9 / _ + = . @ -), "
                "separated by commas or newlines; `*` matches any characters.",
            )
    return tuple(dict.fromkeys(patterns))


def select(specs: Sequence[SecretSpec], patterns: Sequence[str]) -> tuple[SecretSpec, ...]:
    """The specs whose mapping key or full name matches a pattern (case-sensitive, as secret
    names are). Every pattern must match something: a typo must not make a quiet no-op run."""
    if not patterns:
        return tuple(specs)
    unmatched = [p for p in patterns if not any(_matches(p, spec) for spec in specs)]
    if unmatched:
        known = ", ".join(s.key for s in specs[:5]) + (", ..." if len(specs) > 5 else "")
        raise InputError(
            "input `only`",
            f"{', '.join(repr(p) for p in unmatched)} matches no secret of the mapping.",
            f"use a mapping key or a full secret name (keys: {known}).",
        )
    return tuple(s for s in specs if any(_matches(p, s) for p in patterns))


def _matches(pattern: str, spec: SecretSpec) -> bool:
    return fnmatchcase(spec.key, pattern) or fnmatchcase(spec.name, pattern)
