"""versions.py: the one answer to "did secrets-sync write this version?", from the VersionId the
action chooses (its ClientRequestToken) or, for v1.1's versions, v1.1's label on that version."""

from __future__ import annotations

import re
import uuid

import pytest

from secrets_sync.versions import LEGACY_LABEL, Writer, is_ours, new_token, older, written_by

_UUID = "3f2b8c1e-9d4a-4e7b-8a6c-5b1d2e3f4a5b"  # fixed: test ids must match across workers
_ALLOWED = re.compile(r"^[A-Za-z0-9-]{32,64}$")


@pytest.mark.parametrize(
    ("run_id", "attempt", "ids"),
    [
        ("12345678901", "1", "12345678901-1"),
        (None, None, "0-0"),  # outside Actions
        ("1", "20", "1-20"),
        ("9" * 20, "9" * 3, f"{'9' * 20}-999"),  # the longest that still fit
        ("9" * 20, "9" * 20, "0-0"),  # no room: the ids are left out, never cut
    ],
)
def test_a_token_names_the_run_and_the_time_and_fits_aws(run_id, attempt, ids):
    token = new_token(run_id, attempt, now=1_700_000_000.123)
    assert _ALLOWED.fullmatch(token), token
    assert token.startswith(f"secrets-sync-{ids}-{1_700_000_000_123:012x}")
    writer = written_by(token)
    assert writer is not None
    assert writer.at_ms == 1_700_000_000_123
    assert f"{writer.run_id}-{writer.attempt}" == ids
    assert is_ours(token)


def test_tokens_are_never_the_same_and_never_from_a_value():
    tokens = {new_token("7", "1", now=1.0) for _ in range(1000)}
    assert len(tokens) == 1000  # the same run, the same millisecond: still distinct
    assert str(written_by(new_token("7", "1", now=0))) == (
        "run 7 attempt 1, 1970-01-01 00:00:00 UTC"
    )
    assert str(written_by(new_token(None, None, now=0))).startswith("a run outside Actions")


@pytest.mark.parametrize(
    ("version", "stages", "ours"),
    [
        (_UUID, ("AWSCURRENT",), False),  # AWS's own, or another writer's
        (_UUID, ("AWSCURRENT", LEGACY_LABEL), True),  # written by v1.1
        (_UUID, ("AWSPREVIOUS", "secrets-sync-x"), False),
        ("secrets-sync-1-1-0123456789ab", (), False),  # too short a random part
        ("secrets-sync-1-1-0123456789abcdef0123", (), True),
        ("secrets-sync-1-1-0123456789ABCDEF0123", (), False),  # we write lower case only
        ("secrets-sync-a-1-0123456789abcdef0123", (), False),
        ("x-secrets-sync-1-1-0123456789abcdef0123", (), False),
        ("secrets-sync-1-1-" + "0" * 60, (), False),  # over 64: not a token AWS took
        (None, (), False),
    ],
)
def test_is_ours(version, stages, ours):
    assert is_ours(version, stages) is ours


def test_older_orders_by_time_then_run_then_attempt_and_v11_first():
    early, late = new_token("5", "1", now=100.0), new_token("4", "1", now=200.0)
    assert older((early, ()), (late, ())) is True
    assert older((late, ()), (early, ())) is False
    same_ms = [new_token(run, attempt, now=100.0) for run, attempt in (("5", "1"), ("5", "2"))]
    assert older((same_ms[0], ()), (same_ms[1], ())) is True
    v11 = (str(uuid.uuid4()), ("AWSPREVIOUS", LEGACY_LABEL))
    assert older(v11, (early, ())) is True
    assert older((early, ()), v11) is False
    hand = (str(uuid.uuid4()), ("AWSCURRENT",))
    assert older(hand, (early, ())) is None  # not ours: no order to tell
    assert older((early, ()), (early, ())) is None
    assert Writer(1, 2, 3) < Writer(1, 2, 4) < Writer(2, 0, 0)
