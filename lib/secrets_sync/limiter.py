"""Pacing writes to Secrets Manager's per-account quotas, and retrying what AWS refused.

Why not botocore's adaptive mode: it cuts its send rate on every throttle, so the sporadic
throttles of an account that other workloads share collapse a run. Here each quota group (the
APIs AWS counts together, 50 calls a second each) has one limiter shared by the run's threads:
a token bucket whose rate starts at the documented quota, is cut multiplicatively only on
SUSTAINED throttling (several throttles, and a fair share of the answers, among calls sent since
the last cut), and climbs back additively within a second or two. An isolated throttle is only
retried, after a short full-jitter pause, through the same limiter.

All retries are ours: the client is made with botocore's retries off (one attempt) and this
module's handler on its `needs-retry` event, so the two never multiply. botocore resends the
same request on a retry, so a write keeps its ClientRequestToken and a 5xx after the write
landed mints no second version. Reads have far higher quotas: they are retried with the same
pauses but never paced, and their throttles never slow the writes.

The limiter and the retry policy are pure (an injected clock); `install` is the botocore glue.
"""

from __future__ import annotations

import random
import threading
import time
from collections import deque
from collections.abc import Callable, Mapping
from dataclasses import dataclass, field
from typing import TYPE_CHECKING, Any

from botocore.exceptions import ConnectionError as BotoConnectionError
from botocore.exceptions import HTTPClientError

if TYPE_CHECKING:
    from mypy_boto3_secretsmanager import SecretsManagerClient

# Each write API and the quota it counts against. AWS's quotas page lists 50 a second, not
# adjustable, per Region for "PutSecretValue, ..., UpdateSecret ... combined", TagResource with
# UntagResource, and RestoreSecret; CreateSecret and DeleteSecret have rates of their own there,
# taken as 50 too (a lower one would only cost a cut or two at the start).
QUOTA_GROUPS: Mapping[str, str] = {
    "CreateSecret": "CreateSecret",
    "DeleteSecret": "DeleteSecret",
    "RestoreSecret": "RestoreSecret",
    "TagResource": "TagResource",
    "UntagResource": "TagResource",
    **{
        op: "PutSecretValue"
        for op in (
            "PutSecretValue",
            "UpdateSecret",
            "UpdateSecretVersionStage",
            "ReplicateSecretToRegions",
            "RemoveRegionsFromReplication",
            "StopReplicationToReplica",
        )
    },
}
QUOTA_TPS = 50.0

THROTTLING = frozenset(
    {
        "ThrottlingException",
        "Throttling",
        "ThrottledException",
        "TooManyRequestsException",
        "RequestLimitExceeded",
        "RequestThrottledException",
    }
)
# A hard quota (secrets per Region, versions of a secret, ...), which no retry and no slower pace
# will lift: not in THROTTLING, so classify() calls it final. botocore, though, counts it as
# throttling; stop_retrying_quotas keeps its retry modes (bench/throttle.py) from retrying it.
QUOTA = "LimitExceededException"
TRANSIENT = frozenset(
    {"InternalServiceError", "InternalFailure", "ServiceUnavailable", "RequestTimeout"}
)
MAX_ATTEMPTS = 8  # for 5xx, timeouts and dropped connections: a write may have landed
THROTTLE_ATTEMPTS = 16  # a throttled call did not land, and the limiter paces its retries


@dataclass(frozen=True)
class Tuning:
    ceiling: float = QUOTA_TPS  # calls a second: the start, and the most it climbs back to
    floor: float = 1.0
    # A full bucket holds this many seconds of calls: a second's worth, so that a run of a few
    # dozen writes is not slowed at all, until the first cut shows AWS's bucket to be smaller.
    burst_seconds: float = 1.0
    burst_after_cut: float = 0.2
    window: float = 1.0  # seconds of answers judged for sustained throttling
    min_throttles: int = 4  # sustained: at least this many throttles in the window ...
    min_share: float = 0.3  # ... and at least this share of its answers
    decrease: float = 0.8
    increase_every: float = 0.25  # seconds between additive steps up
    increase_by: float = 2.5  # calls a second per step: back from one cut to 50 in a second


class RateLimiter:
    """An AIMD token bucket for one quota group. `reserve` says how long a caller waits before
    sending; `record` takes each answer. Thread-safe; time comes from the caller."""

    def __init__(self, tuning: Tuning, now: float) -> None:
        self.tuning = tuning
        self.rate = tuning.ceiling
        self._burst = tuning.burst_seconds
        self._tokens = self._capacity()
        self._refilled = now
        self._changed = now  # the last cut or step up
        self._cut = float("-inf")  # answers to calls sent before this judge an older rate
        self._answers: deque[tuple[float, bool]] = deque()  # (answered, throttled)
        self._lock = threading.Lock()

    def _capacity(self) -> float:
        return max(1.0, self.rate * self._burst)

    def reserve(self, now: float) -> float:
        """Take a token; the seconds to wait before sending (0: at once). Tokens may go into
        debt: each caller's slot is fixed when it asks, so waiting callers keep their order."""
        with self._lock:
            elapsed = max(0.0, now - self._refilled)
            self._tokens = min(self._capacity(), self._tokens + elapsed * self.rate)
            self._refilled = now
            self._tokens -= 1.0
            return 0.0 if self._tokens >= 0 else -self._tokens / self.rate

    def record(self, sent: float, now: float, *, throttled: bool) -> None:
        tuning = self.tuning
        with self._lock:
            if sent < self._cut:
                return  # sent at the rate already cut: no news about the current one
            answers = self._answers
            answers.append((now, throttled))
            while answers and answers[0][0] < now - tuning.window:
                answers.popleft()
            if throttled:
                count = sum(t for _, t in answers)
                if count >= tuning.min_throttles and count >= tuning.min_share * len(answers):
                    self.rate = max(tuning.floor, self.rate * tuning.decrease)
                    self._burst = tuning.burst_after_cut
                    self._tokens = min(self._tokens, self._capacity())
                    self._cut = self._changed = now
                    answers.clear()
            elif self.rate < tuning.ceiling and now - self._changed >= tuning.increase_every:
                self.rate = min(tuning.ceiling, self.rate + tuning.increase_by)
                self._changed = now


@dataclass(frozen=True)
class Backoff:
    """Full jitter: a uniform pause in [0, min(cap, base * 2^(retry - 1))]."""

    base: float
    cap: float

    def delay(self, retry: int, rng: random.Random) -> float:
        return rng.uniform(0.0, min(self.cap, self.base * 2 ** (retry - 1)))


# Throttles: short, as the limiter does the pacing; others: long enough for AWS to recover.
THROTTLE_BACKOFF = Backoff(base=0.05, cap=1.0)
ERROR_BACKOFF = Backoff(base=0.25, cap=8.0)


def classify(response: Any, caught: BaseException | None) -> str:
    """'ok', 'throttled', 'transient' (worth another attempt) or 'final', for one attempt."""
    if caught is not None:
        return "transient" if isinstance(caught, BotoConnectionError | HTTPClientError) else "final"
    if not response:
        return "ok"
    parsed = response[1] if isinstance(response, tuple) else {}
    code = str(parsed.get("Error", {}).get("Code", ""))
    status = int(parsed.get("ResponseMetadata", {}).get("HTTPStatusCode", 200))
    if code in THROTTLING or status == 429:
        return "throttled"
    if code in TRANSIENT or status >= 500:
        return "transient"
    return "final" if code or status >= 400 else "ok"


def retry_delay(outcome: str, attempts: int, rng: random.Random) -> float | None:
    """The pause before the next attempt, or None: do not retry. `attempts`: made so far."""
    if outcome == "throttled" and attempts < THROTTLE_ATTEMPTS:
        return THROTTLE_BACKOFF.delay(attempts, rng)
    if outcome == "transient" and attempts < MAX_ATTEMPTS:
        return ERROR_BACKOFF.delay(attempts, rng)
    return None


@dataclass
class Pacer:
    """The limiters of one client, one per quota group, made on first use."""

    tuning: Tuning = field(default_factory=Tuning)
    clock: Callable[[], float] = time.monotonic
    sleep: Callable[[float], None] = time.sleep
    rng: random.Random = field(default_factory=random.Random)
    limiters: dict[str, RateLimiter] = field(default_factory=dict)
    _lock: threading.Lock = field(default_factory=threading.Lock)
    _sent: threading.local = field(default_factory=threading.local)

    def limiter(self, operation: str) -> RateLimiter | None:
        group = QUOTA_GROUPS.get(operation)
        if group is None:
            return None  # a read: its quota is far higher, and it never slows the writes
        with self._lock:
            if group not in self.limiters:
                self.limiters[group] = RateLimiter(self.tuning, self.clock())
            return self.limiters[group]

    def before_send(self, operation: str) -> None:
        limiter = self.limiter(operation)
        if limiter is not None:
            wait = limiter.reserve(self.clock())
            if wait > 0:
                self.sleep(wait)
        # botocore sends and answers each attempt on the thread that made it.
        self._sent.at = self.clock()

    def after_attempt(
        self, operation: str, attempts: int, response: Any, caught: BaseException | None
    ) -> float | None:
        outcome = classify(response, caught)
        limiter = self.limiter(operation)
        if limiter is not None and outcome in ("ok", "throttled"):
            now = self.clock()
            limiter.record(getattr(self._sent, "at", now), now, throttled=outcome == "throttled")
        with self._lock:
            return retry_delay(outcome, attempts, self.rng)


def install(client: Any, pacer: Pacer) -> None:
    """Hook the pacer into a botocore client whose own retries are off (one attempt)."""
    service = client.meta.service_model.service_id.hyphenize()

    def before_send(**kwargs: Any) -> None:
        # botocore passes no operation to before-send; the event name carries it.
        pacer.before_send(kwargs["event_name"].rsplit(".", 1)[-1])

    def needs_retry(
        operation: Any,
        attempts: int,
        response: Any = None,
        caught_exception: BaseException | None = None,
        **kwargs: Any,
    ) -> float | None:
        return pacer.after_attempt(operation.name, attempts, response, caught_exception)

    client.meta.events.register(f"before-send.{service}", before_send, "secrets-sync-pace")
    client.meta.events.register(f"needs-retry.{service}", needs_retry, "secrets-sync-retry")


def stop_retrying_quotas(client: SecretsManagerClient) -> None:
    """Make a LimitExceededException final at its first answer, in every retry mode: raised
    before any retry handler sees it (ours, botocore's standard one, and its adaptive rate
    limiter, which would slow every other thread), as the client would raise it at the end.
    Paced alone would not need it (one botocore attempt, and classify() says final); it is
    installed on every client so that one mechanism, not one per mode, holds the rule."""

    def final(response: Any = None, operation: Any = None, **_: Any) -> None:
        parsed = response[1] if response else None
        if parsed and parsed.get("Error", {}).get("Code") == QUOTA:
            raise client.exceptions.LimitExceededException(parsed, operation.name)

    event = f"needs-retry.{client.meta.service_model.service_id.hyphenize()}"
    client.meta.events.register_first(event, final)
