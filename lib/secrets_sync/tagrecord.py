"""Which tag keys of a secret this action set: the one place that reads and writes the record.

The record is a tag of its own, TAGS_RECORD, so that knowing it costs no call: ListSecrets (and
DescribeSecret) carry it with the other tags. Its value lists the user tag keys (the mapping's
`tags` and `default-tags`) that secrets-sync wrote to the secret and that the mapping still has;
a key that leaves the mapping is removed from the secret only if it is in the record. A key the
action never wrote (set by hand, by Terraform, or equal to the mapping's value before the secret
was adopted) is never in it, so it is never removed. A secret without the record (adopted or
made before the record existed) has nothing recorded, and loses nothing.

AWS allows in a tag value letters, digits, spaces and `+ - = . _ : / @`, at most 256 characters,
and tag keys are made of the same characters: the keys are joined with `+`, and a `+` or `=`
inside a key is written `=2B` / `=3D` (so a key may hold any character a key may hold). The keys
that do not fit in 256 characters are left out of the record, the first in sorted order kept:
those are then never removed (the safe side), and the plan says so."""

from __future__ import annotations

import re
from collections.abc import Iterable

from .mapping import TAGS_RECORD

__all__ = ["TAGS_RECORD", "decode", "encode"]
MAX_VALUE = 256  # API_Tag: Value, maximum length 256
_SEPARATOR = "+"
_ESCAPED = {"=": "=3D", "+": "=2B"}
_UNESCAPED = {v[1:]: k for k, v in _ESCAPED.items()}


def _escape(key: str) -> str:
    return re.sub(r"[=+]", lambda m: _ESCAPED[m[0]], key)


def _unescape(text: str) -> str:
    return re.sub(r"=(3D|2B)", lambda m: _UNESCAPED[m[1]], text)


def decode(value: str | None) -> frozenset[str]:
    """The keys a record holds; none for no record (or an empty one)."""
    if not value:
        return frozenset()
    return frozenset(_unescape(part) for part in value.split(_SEPARATOR) if part)


def encode(keys: Iterable[str]) -> tuple[str, tuple[str, ...]]:
    """The record's value for these keys (empty for none), and the keys left out because the
    value would be over 256 characters."""
    kept: list[str] = []
    left_out: list[str] = []
    size = 0
    for key in sorted(set(keys)):
        part = _escape(key)
        grown = size + len(part) + (1 if kept else 0)
        if grown > MAX_VALUE:
            left_out.append(key)
            continue
        kept.append(part)
        size = grown
    return _SEPARATOR.join(kept), tuple(left_out)
