"""Running a plan's steps on the pool: a second round, from a fresh read, for the secrets that
failed transiently, and a cancelled run that starts no new write and bounds the ones in flight.
What one step does is apply.py's; this module only decides when steps run and what a step that
did not run, or did not finish, reports."""

from __future__ import annotations

import threading
import time
from collections import deque
from collections.abc import Callable, Sequence
from concurrent.futures import Future, ThreadPoolExecutor, wait
from functools import partial

from . import limiter
from .apply import Applier, Result
from .plan import WRITES, Action, Step

RETRY_PAUSE_SECONDS = 1.0

# The runner, cancelling a step, sends SIGINT, SIGTERM 7.5 s later and kills 2.5 s after that:
# writes in flight get 5 s, which leaves time to write the outputs and the step summary.
CANCEL_GRACE_SECONDS = 5.0
_POLL_SECONDS = 0.2
NOT_STARTED = "cancelled: the run was stopped before this write started; a rerun makes it."
STILL_IN_FLIGHT = (
    "cancelled: this write was still in flight when the run stopped and may have landed; "
    "a rerun finds out and finishes it."
)


def apply_all(
    applier: Applier,
    steps: tuple[Step, ...],
    executor: ThreadPoolExecutor,
    *,
    pause: float = RETRY_PAUSE_SECONDS,
    stop: threading.Event | None = None,
    grace: float = CANCEL_GRACE_SECONDS,
    retry: bool = True,
) -> list[Result]:
    """Run every step; secrets that failed transiently (after the SDK's own retries) get one
    more try from a fresh read, so a throttled burst does not leave them behind.

    Once `stop` is set (the run is being cancelled), no secret's write starts: those not
    started are reported as cancelled, those in flight get `grace` seconds to finish, and
    nothing is tried again. retry=False: no second round (a rollback's fresh read would plan a
    sync)."""
    stop = stop or threading.Event()

    def start(step: Step, work: Callable[[], Result], otherwise: Result) -> Result:
        if stop.is_set() and step.action in WRITES and not step.error:
            return otherwise
        return work()

    def run_all(jobs: Sequence[tuple[Step, Callable[[], Result], Result]]) -> list[Result]:
        futures = [executor.submit(start, *job) for job in jobs]
        _wait(futures, stop, grace)
        return [
            _outcome(f, s, otherwise) for f, (s, _, otherwise) in zip(futures, jobs, strict=True)
        ]

    # A step that makes no call (unchanged, skipped, in conflict) is reported here, not on the
    # pool: a no-op of 1,000 secrets spent more on handing them to threads than on its writes.
    done = {i: applier.run(s) for i, s in enumerate(steps) if quota_of(s) is None}
    order = [i for i in in_turns(steps) if i not in done]
    jobs = [
        (steps[i], partial(applier.run, steps[i]), _cancelled(steps[i], NOT_STARTED)) for i in order
    ]
    done.update(zip(order, run_all(jobs), strict=True))
    results = [done[i] for i in range(len(steps))]
    again = [i for i, r in enumerate(results) if r.transient and retry]
    if again and not stop.wait(pause):
        failed = [results[i] for i in again]
        retried = run_all([(r.step, partial(applier.retry, r), r) for r in failed])
        for i, result in zip(again, retried, strict=True):
            results[i] = result
    return results


# The first call each action makes, for the quota it counts against (limiter.QUOTA_GROUPS).
_FIRST_CALL = {
    Action.CREATE: "CreateSecret",
    Action.UPDATE: "PutSecretValue",
    Action.RESTORE: "RestoreSecret",
    Action.DELETE: "DeleteSecret",
    Action.ROLLBACK: "UpdateSecretVersionStage",
}


def quota_of(step: Step) -> str | None:
    """The quota group the step's first write call counts against; None: it makes none."""
    if step.action is Action.TAG:
        tagging = step.tags or step.tags_to_remove
        return limiter.QUOTA_GROUPS["TagResource" if tagging else "UpdateSecret"]
    first = _FIRST_CALL.get(step.action)
    return None if first is None or step.error else limiter.QUOTA_GROUPS[first]


def in_turns(steps: Sequence[Step]) -> list[int]:
    """The order to start the steps in: one from each quota group in turn (plan order within a
    group). Each group has its own rate in AWS (and its own limiter here): taken in plan order, a
    mapping whose creates come before its updates would use one quota, then the other, and take
    the sum of their times instead of the longer one."""
    queues: dict[str | None, deque[int]] = {}
    for i, step in enumerate(steps):
        queues.setdefault(quota_of(step), deque()).append(i)
    order: list[int] = []
    while queues:
        for group in list(queues):
            order.append(queues[group].popleft())
            if not queues[group]:
                del queues[group]
    return order


def _outcome(future: Future[Result], step: Step, otherwise: Result) -> Result:
    if future.cancel():  # still queued behind the writes in flight: never started
        return otherwise
    if future.done():
        return future.result()
    return _cancelled(step, STILL_IN_FLIGHT)  # running past the grace period


def _cancelled(step: Step, why: str) -> Result:
    return Result(step, step.action, step.arn, error=why)


def _wait(futures: list[Future[Result]], stop: threading.Event, grace: float) -> None:
    """Until every future is done; once `stop` is set, `grace` seconds more at most (polled:
    a signal handler can only set a flag)."""
    pending = set(futures)
    deadline: float | None = None
    while pending:
        if deadline is None and stop.is_set():
            deadline = time.monotonic() + grace
        left = _POLL_SECONDS if deadline is None else deadline - time.monotonic()
        if left <= 0:
            return
        _, pending = wait(pending, timeout=min(left, _POLL_SECONDS))
