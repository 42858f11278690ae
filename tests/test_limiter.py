"""The write limiter and the retry policy as pure functions, on a fake clock (nothing sleeps).

Through the real entrypoint and the proxy's token bucket: tests/test_faults.py."""

from __future__ import annotations

import random
from typing import Any

import pytest
from botocore.exceptions import EndpointConnectionError, ParamValidationError, ReadTimeoutError

from secrets_sync.limiter import (
    MAX_ATTEMPTS,
    THROTTLE_ATTEMPTS,
    THROTTLE_BACKOFF,
    Pacer,
    RateLimiter,
    Tuning,
    classify,
    retry_delay,
)

TUNING = Tuning()


class Clock:
    def __init__(self) -> None:
        self.now = 100.0
        self.slept: list[float] = []

    def __call__(self) -> float:
        return self.now

    def sleep(self, seconds: float) -> None:
        self.slept.append(seconds)
        self.now += seconds


def answer(code: str | None = None, status: int = 200) -> tuple[object, dict[str, Any]]:
    parsed: dict[str, Any] = {"ResponseMetadata": {"HTTPStatusCode": status}}
    if code:
        parsed["Error"] = {"Code": code, "Message": "m"}
    return object(), parsed


THROTTLED = answer("ThrottlingException", 400)


def answers(limiter: RateLimiter, clock: Clock, pattern: str, spacing: float = 0.02) -> None:
    """Feed the limiter one answer per character ('t': throttled, '.': done), `spacing` apart,
    each to a call sent just before it."""
    for mark in pattern:
        clock.now += spacing
        limiter.record(clock.now - 0.01, clock.now, throttled=mark == "t")


def test_the_rate_starts_at_the_documented_quota():
    assert TUNING.ceiling == 50.0
    assert RateLimiter(TUNING, 0.0).rate == 50.0


def test_a_single_throttle_does_not_lower_the_rate():
    clock = Clock()
    limiter = RateLimiter(TUNING, clock.now)
    answers(limiter, clock, "..........t..........")
    assert limiter.rate == TUNING.ceiling


def test_scattered_throttles_below_the_share_do_not_lower_the_rate():
    # One in ten throttled for seconds on end: noise from the account's other writers.
    clock = Clock()
    limiter = RateLimiter(TUNING, clock.now)
    answers(limiter, clock, ".........t" * 30)
    assert limiter.rate == TUNING.ceiling


def test_sustained_throttling_lowers_the_rate_multiplicatively():
    clock = Clock()
    limiter = RateLimiter(TUNING, clock.now)
    answers(limiter, clock, "t.t.t.t")
    assert limiter.rate == pytest.approx(TUNING.ceiling * TUNING.decrease)
    answers(limiter, clock, "tttt")
    assert limiter.rate == pytest.approx(TUNING.ceiling * TUNING.decrease**2)
    answers(limiter, clock, "tttt" * 40)
    assert limiter.rate == TUNING.floor


def test_answers_to_calls_sent_before_a_cut_do_not_cut_again():
    # The calls in flight when the rate was cut were sent at the old rate: their throttles say
    # nothing about the new one, so one burst of throttles costs one cut, not four.
    clock = Clock()
    limiter = RateLimiter(TUNING, clock.now)
    sent = clock.now
    for _ in range(16):
        clock.now += 0.001
        limiter.record(sent, clock.now, throttled=True)
    assert limiter.rate == pytest.approx(TUNING.ceiling * TUNING.decrease)


def test_the_rate_recovers_after_throttling_stops():
    clock = Clock()
    limiter = RateLimiter(TUNING, clock.now)
    answers(limiter, clock, "tttt" * 5)
    low = limiter.rate
    assert low < TUNING.ceiling * TUNING.decrease
    answers(limiter, clock, "." * 25)  # half a second of answers
    assert low < limiter.rate < TUNING.ceiling
    answers(limiter, clock, "." * 200)  # four seconds more
    assert limiter.rate == TUNING.ceiling


def test_reservations_are_spaced_at_the_rate_after_the_burst():
    clock = Clock()
    limiter = RateLimiter(TUNING, clock.now)
    burst = int(TUNING.ceiling * TUNING.burst_seconds)
    waits = [limiter.reserve(clock.now) for _ in range(burst + 5)]
    assert waits[:burst] == [0.0] * burst
    assert waits[burst:] == pytest.approx([k / TUNING.ceiling for k in range(1, 6)])


def test_a_lower_rate_spaces_later_reservations_wider():
    clock = Clock()
    limiter = RateLimiter(TUNING, clock.now)
    answers(limiter, clock, "tttt" * 3)
    rate = limiter.rate
    clock.now += 10  # a full bucket again
    waits = [limiter.reserve(clock.now) for _ in range(20)]
    assert rate < TUNING.ceiling
    assert waits[-1] - waits[-2] == pytest.approx(1 / rate)


@pytest.mark.parametrize(
    ("response", "caught", "outcome"),
    [
        (answer(), None, "ok"),
        (THROTTLED, None, "throttled"),
        (answer("TooManyRequestsException", 400), None, "throttled"),
        (answer("SomeNewThrottle", 429), None, "throttled"),
        # A hard quota (too many versions, say): neither throttling nor worth another attempt.
        (answer("LimitExceededException", 400), None, "final"),
        (answer("InternalServiceError", 500), None, "transient"),
        (answer("Whatever", 503), None, "transient"),
        (answer("AccessDeniedException", 400), None, "final"),
        (answer("ResourceExistsException", 400), None, "final"),
        (None, EndpointConnectionError(endpoint_url="http://x"), "transient"),
        (None, ReadTimeoutError(endpoint_url="http://x"), "transient"),
        (None, ParamValidationError(report="r"), "final"),
    ],
)
def test_classify(response, caught, outcome):
    assert classify(response, caught) == outcome


def test_retry_delays_are_short_full_jitter_for_throttles_and_bounded():
    rng = random.Random(3)
    throttle = [retry_delay("throttled", 1, rng) for _ in range(200)]
    assert all(d is not None and 0 <= d <= THROTTLE_BACKOFF.base for d in throttle)
    assert max(d for d in throttle if d is not None) > THROTTLE_BACKOFF.base / 2  # jittered
    assert retry_delay("throttled", THROTTLE_ATTEMPTS - 1, rng) is not None
    assert retry_delay("throttled", THROTTLE_ATTEMPTS, rng) is None
    assert retry_delay("transient", MAX_ATTEMPTS - 1, rng) is not None
    assert retry_delay("transient", MAX_ATTEMPTS, rng) is None
    assert retry_delay("final", 1, rng) is None
    assert retry_delay("ok", 1, rng) is None


def pacer(clock: Clock) -> Pacer:
    return Pacer(clock=clock, sleep=clock.sleep, rng=random.Random(1))


def test_limit_exceeded_is_not_throttling_for_the_limiter():
    clock = Clock()
    p = pacer(clock)
    for _ in range(20):
        p.before_send("PutSecretValue")
        refused = answer("LimitExceededException", 400)
        assert p.after_attempt("PutSecretValue", 1, refused, None) is None  # not retried
    assert p.limiters["PutSecretValue"].rate == TUNING.ceiling


def test_a_read_throttle_never_slows_the_writes():
    clock = Clock()
    p = pacer(clock)
    for _ in range(20):
        p.before_send("BatchGetSecretValue")
        assert p.after_attempt("BatchGetSecretValue", 1, THROTTLED, None) is not None  # retried
    p.before_send("CreateSecret")
    assert set(p.limiters) == {"CreateSecret"}
    assert p.limiters["CreateSecret"].rate == TUNING.ceiling


def test_quota_groups_are_paced_apart_as_aws_counts_them():
    clock = Clock()
    p = pacer(clock)
    for _ in range(8):
        p.before_send("UpdateSecret")
        p.after_attempt("UpdateSecret", 1, THROTTLED, None)
    p.before_send("TagResource")
    p.before_send("PutSecretValue")
    assert p.limiters["PutSecretValue"].rate < TUNING.ceiling  # UpdateSecret's group
    assert p.limiters["TagResource"].rate == TUNING.ceiling


def test_the_pacer_waits_its_turn_before_sending():
    clock = Clock()
    p = pacer(clock)
    for _ in range(int(TUNING.ceiling * TUNING.burst_seconds) + 3):
        p.before_send("CreateSecret")
    assert clock.slept == pytest.approx([1 / TUNING.ceiling] * 3, rel=0.01)


def test_the_burst_shrinks_once_aws_has_throttled():
    # A second's worth at first (a small run goes at once); after a cut, AWS's bucket has shown
    # itself smaller, and a full bucket holds only burst_after_cut seconds of calls.
    clock = Clock()
    limiter = RateLimiter(TUNING, clock.now)
    first = [limiter.reserve(clock.now) for _ in range(int(TUNING.ceiling * TUNING.burst_seconds))]
    assert first == [0.0] * len(first)
    answers(limiter, clock, "tttt")
    clock.now += 10
    rate = limiter.rate
    at_once = sum(limiter.reserve(clock.now) == 0.0 for _ in range(50))
    assert at_once == int(rate * TUNING.burst_after_cut)


def test_steps_start_one_from_each_quota_group_in_turn():
    """schedule.in_turns: a plan whose creates come before its updates (and tag changes) starts
    them alternately, so each quota group's rate is used at once, not one group after another;
    within a group the plan's order holds, and steps that make no call count as a group too."""
    from secrets_sync.plan import Action, Step
    from secrets_sync.schedule import in_turns, quota_of

    steps = [
        *(Step(f"c{i}", Action.CREATE) for i in range(3)),
        *(Step(f"u{i}", Action.UPDATE) for i in range(2)),
        Step("t0", Action.TAG, tags=(("Team", "a"),)),
        Step("d0", Action.TAG, description="only the description"),
        Step("n0", Action.UNCHANGED),
        Step("e0", Action.UPDATE, error="unreadable"),
    ]
    assert [quota_of(s) for s in steps] == [
        "CreateSecret",
        "CreateSecret",
        "CreateSecret",
        "PutSecretValue",
        "PutSecretValue",
        "TagResource",
        "PutSecretValue",  # UpdateSecret counts against the PutSecretValue quota
        None,
        None,
    ]
    order = [steps[i].name for i in in_turns(steps)]
    assert order == ["c0", "u0", "t0", "n0", "c1", "u1", "e0", "c2", "d0"]
    assert sorted(in_turns(steps)) == list(range(len(steps)))
