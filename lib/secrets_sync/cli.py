"""The command line and the action's run: the one place where errors become messages and exit
codes."""

from __future__ import annotations

import atexit
import gc
import os
import signal
import sys
import threading
from collections.abc import Callable, Mapping, Sequence
from concurrent.futures import ThreadPoolExecutor
from dataclasses import replace
from typing import TYPE_CHECKING, TextIO, TypeVar

from . import __version__
from .errors import SecretsSyncError
from .inputs import INPUTS
from .runner import Runner
from .settings import Settings, load_settings

if TYPE_CHECKING:
    import argparse
    from pathlib import Path

    from mypy_boto3_secretsmanager import SecretsManagerClient

    from .apply import Result

T = TypeVar("T")


def build_parser() -> argparse.ArgumentParser:
    import argparse  # only for command-line use: the action passes no arguments

    parser = argparse.ArgumentParser(
        prog="secrets-sync",
        description="Sync a mapping of GitHub secrets to AWS Secrets Manager. Every flag is an "
        "input of the action; unset flags fall back to INPUT_* variables, then to "
        "the defaults.",
    )
    parser.add_argument("--version", action="version", version=f"secrets-sync {__version__}")
    for spec in INPUTS:
        kwargs: dict[str, object] = {
            "metavar": "VALUE",
            "help": spec.description,
            "dest": spec.name,
        }
        if spec.is_boolean:  # a bare flag (`--dry-run`) means true
            kwargs.update(nargs="?", const="true", metavar="true|false")
        parser.add_argument(f"--{spec.name}", **kwargs)  # type: ignore[arg-type]
    return parser


def main(
    argv: Sequence[str] | None = None,
    env: Mapping[str, str] | None = None,
    stream: TextIO | None = None,
) -> int:
    env = dict(os.environ) if env is None else dict(env)
    # Outside Actions the log goes to stderr, so that stdout carries only the JSON results.
    in_actions = env.get("GITHUB_ACTIONS") == "true"
    runner = Runner.from_env(env, stream or (sys.stdout if in_actions else sys.stderr))
    args = list(sys.argv[1:] if argv is None else argv)
    if args[:1] == ["iam-policy"]:
        from .iam import main as iam_main

        return iam_main(args[1:], sys.stdout)
    if args[:1] == ["written-by"]:
        from .versions import main as written_by_main

        return written_by_main(args[1:], sys.stdout, env)
    parsed = vars(build_parser().parse_args(args)) if args else {}  # bad usage: exits 2
    overrides = {k: v for k, v in parsed.items() if v is not None}
    # Start-up (imports, botocore's models, the client) makes some 90,000 objects that live
    # until exit. Collecting while they are made, and again as the interpreter exits, cost a
    # no-op sync 50-100 ms of its ~0.6 s: so no collection until the client exists (`started`),
    # and none at exit (bench/startup.py and `make bench` measure it).
    collecting = gc.isenabled()
    gc.disable()
    atexit.unregister(gc.freeze)
    atexit.register(gc.freeze)
    stop = Stop()
    previous = stop.install()
    try:
        code = sync(load_settings(env, overrides), env, runner, stop)
        if stop.signal:
            # Writes still in flight past the grace period would hold the exit (the pool's
            # threads are joined at exit) until the runner kills the container: the report is
            # written, so leave now, with its exit code.
            sys.stdout.flush()
            sys.stderr.flush()
            os._exit(code)
        return code
    except SecretsSyncError as exc:
        return die(runner, exc)
    except Exception as exc:  # noqa: BLE001 - the boundary: nothing escapes as a traceback
        runner.error(
            f"secrets-sync stopped on an unexpected {type(exc).__name__}. Rerun with "
            "debug logging (RUNNER_DEBUG=1) to see where, and report it.",
            title="secrets-sync: internal error",
        )
        import traceback

        runner.debug(traceback.format_exc())
        return 1
    finally:
        stop.uninstall(previous)
        if collecting:
            gc.enable()


class Stop:
    """Cancellation. The runner cancels a Docker action by signalling the container, where this
    process is PID 1 and SIGTERM is ignored unless handled: SIGINT first, SIGTERM 7.5 s later,
    then a kill. Either signal sets `event`, which apply reads to start no new write; the run
    then reports what it did and exits non-zero."""

    SIGNALS = (signal.SIGTERM, signal.SIGINT)
    POLL_SECONDS = 0.1  # a signal handler can only set a flag: how often it is looked at

    def __init__(self) -> None:
        self.event = threading.Event()
        self.signal = ""  # the first signal received

    def __call__(self, signum: int, frame: object) -> None:
        # Only a flag: a handler that wrote to the log could interrupt a write to it.
        self.signal = self.signal or signal.Signals(signum).name
        self.event.set()

    def install(self) -> dict[int, object]:
        if threading.current_thread() is not threading.main_thread():
            return {}  # signals reach only the main thread; an embedding caller keeps its own
        return {int(s): signal.signal(s, self) for s in self.SIGNALS}

    @staticmethod
    def uninstall(previous: dict[int, object]) -> None:
        for signum, handler in previous.items():
            signal.signal(signum, handler)  # type: ignore[arg-type]

    def unless_stopped(self, client: SecretsManagerClient, work: Callable[[], T]) -> T | None:
        """work() (reads, which write nothing), or None as soon as the run is cancelled: no
        call of `client` starts after the signal, and those in flight are not waited for (a
        read can take its whole timeout, and retries, on a slow endpoint). It runs on a thread
        of its own so that this one, which the signal reaches, can leave at once."""
        if self.event.is_set():
            return None
        event = f"before-call.{client.meta.service_model.service_id.hyphenize()}"

        def refuse(**_: object) -> None:
            if self.event.is_set():
                raise _Cancelled

        client.meta.events.register_first(event, refuse, unique_id="secrets-sync-cancel")
        box: list[T] = []
        failed: list[BaseException] = []
        done = threading.Event()

        def run() -> None:
            try:
                box.append(work())
            except BaseException as exc:  # noqa: BLE001 - handed to the caller's thread
                failed.append(exc)
            finally:
                done.set()

        threading.Thread(target=run, name="secrets-sync-read", daemon=True).start()
        try:
            while not done.wait(self.POLL_SECONDS):
                if self.event.is_set():
                    return None
        finally:
            if done.is_set():
                client.meta.events.unregister(event, unique_id="secrets-sync-cancel")
        if failed and not (isinstance(failed[0], _Cancelled) or self.event.is_set()):
            raise failed[0]
        return None if failed else box[0]


class _Cancelled(Exception):
    """Raised in the reading thread, for a call that would start after the signal."""


def started() -> None:
    """Start-up is over: what it built lives to the end of the run, so collections skip it."""
    gc.freeze()
    gc.enable()


def die(runner: Runner, exc: SecretsSyncError) -> int:
    """One failure, said once in the log (as an annotation) and once in the step summary."""
    runner.error(exc.message, title="secrets-sync")
    runner.append_summary(f"### secrets-sync failed\n\n{exc.message}\n\n")
    return exc.exit_code


def common_prefix(names: Sequence[str]) -> str:
    """The longest shared prefix: ListSecrets is filtered on it, and names matched exactly."""
    if not names:
        return ""
    low, high = min(names), max(names)
    size = next((i for i, (a, b) in enumerate(zip(low, high, strict=False)) if a != b), len(low))
    return low[:size]


def sync(
    settings: Settings, env: Mapping[str, str], runner: Runner, stop: Stop | None = None
) -> int:
    # Heavy imports wait until the inputs are known to be good: a bad input fails fast, and a
    # bad mapping without loading botocore.
    from . import eso, mapping, selection, sources

    runner.add_masks(settings.values.values())
    default_tags = mapping.parse_default_tags(settings.default_tags_text)
    secret_map = mapping.load_mapping(
        settings.mapping_text,
        settings.mapping_origin,
        name_prefix=settings.name_prefix,
        default_tags=default_tags,
        kms_key_id=settings.kms_key_id,
        update_policy=settings.update_policy,
        region=settings.region,
    )
    eso.check(settings, secret_map.specs)
    # Only the selected secrets' sources are looked up: pushing one rotated secret must not
    # need every other secret's value at hand.
    specs = selection.select(secret_map.specs, settings.only)
    if settings.rollback:
        # A rollback moves labels between versions AWS holds: it needs no value at all.
        desired = tuple(sources.Desired(spec, None) for spec in specs)
    else:
        values = sources.lookup(specs, settings.values, env)
        runner.add_masks(values.values())
        desired = sources.resolve(specs, values, missing=settings.missing)
        runner.add_masks(form for d in desired for form in sources.mask_forms(d))

    for warning in secret_map.warnings:
        runner.warning(warning, title="secrets-sync: name")
    mode = " (dry run: nothing will be written)" if settings.dry_run else ""
    what = "secrets to roll back" if settings.rollback else "secrets"
    selected = f" (selected by `only` from {len(secret_map.specs)})" if settings.only else ""
    runner.info(
        f"secrets-sync {__version__}: {len(desired)} {what}{selected} in {settings.region} for "
        f"{settings.repository}{mode}"
    )

    from . import credentials, drift, outgoing, state, summary
    from .apply import Applier, dry_run
    from .plan import plan
    from .rollback import plan_rollback, read_versions
    from .schedule import apply_all

    sess = credentials.session(settings, env, runner)
    client = credentials.secretsmanager(sess, settings)
    outgoing.install(client, runner)  # before any call: every value sent is redacted
    started()
    names = [d.name for d in desired]
    list_prefix = settings.name_prefix if settings.prune else common_prefix(names)
    stop = stop or Stop()
    pool = ThreadPoolExecutor(max_workers=settings.max_concurrency)
    try:
        if settings.rollback:
            # Each chosen secret's versions afresh (DescribeSecret), never the lagging listing.
            versions = stop.unless_stopped(client, lambda: read_versions(client, names, pool))
            if versions is None:
                return cancelled_while_reading(runner, stop)
            steps = tuple(
                plan_rollback(d, versions.get(d.name), repository=settings.repository)
                for d in desired
            )
        else:
            current = stop.unless_stopped(
                client,
                lambda: state.read_current(
                    client,
                    pool,
                    prefix=list_prefix,
                    valued=[d.name for d in desired if d.has_value],
                    replicated=[d.name for d in desired if d.spec.replica_regions],
                    only=None if settings.prune else names,  # a prune needs all under the prefix
                ),
            )
            if current is None:
                return cancelled_while_reading(runner, stop)
            steps = plan(
                desired,
                current,
                repository=settings.repository,
                adopt=settings.adopt_existing,
                prune=settings.prune,
                name_prefix=settings.name_prefix,
                max_deletions=settings.max_deletions,
            )
            # Costs calls only where a write would go over a version written outside.
            steps = drift.judge_all(client, steps, settings.on_drift, pool)
        if settings.dry_run:
            results = dry_run(steps)
        else:
            applier = Applier(
                client,
                settings.repository,
                settings.adopt_existing,
                settings.recovery_window_days,
                audit_tags=audit_tags(settings),
                on_drift=settings.on_drift,
                run_ids=(settings.run_id, settings.run_attempt),
            )
            # A rollback is not retried from a fresh read: that read would plan a sync.
            results = apply_all(applier, steps, pool, stop=stop.event, retry=not settings.rollback)
    finally:
        # Once cancelled, a write still in flight past the grace period is not waited for.
        pool.shutdown(wait=not stop.event.is_set(), cancel_futures=True)
    # AWS error messages can echo a request: redact each whole, before a log line is split at
    # its line breaks or a Markdown cell folds them, which could leave pieces too short to match.
    results = [replace(r, error=runner.redact(r.error)) if r.error else r for r in results]

    manifests: Path | None = None
    try:
        report(runner, settings, results, stop.signal)
        manifests = eso.write(
            settings,
            secret_map.specs,
            warn=lambda message: runner.warning(message, title="secrets-sync: eso-manifests"),
        )
    finally:
        # Whatever fails after the writes (the manifests, the log), the run still says what it
        # wrote, in its outputs and step summary; main() then reports the failure itself.
        publish(runner, settings, results, manifests)
    verb = "Would sync" if settings.dry_run else "Synced"
    if settings.rollback:
        verb = "Would roll back" if settings.dry_run else "Rolled back"
    runner.info(f"{verb} {len(results)} secrets: {summary.counts(results)}.")
    failed = any(summary.bucket(r) == "failed" for r in results)
    # `on-drift: fail` is the drift alarm, and the alarm is a daily dry run: it must fail too.
    alarm = settings.on_drift == "fail" and any(r.step.drift for r in results)
    return 1 if (failed and not settings.dry_run) or alarm or stop.signal else 0


def cancelled_while_reading(runner: Runner, stop: Stop) -> int:
    said = (
        f"Cancelled ({stop.signal}) while reading the current state: nothing was written. "
        "Rerun the workflow to sync."
    )
    runner.error(said, title="secrets-sync: cancelled")
    runner.append_summary(f"### secrets-sync cancelled\n\n{said}\n\n")
    return 1


def publish(
    runner: Runner, settings: Settings, results: Sequence[Result], manifests: Path | None
) -> None:
    """The outputs and the step summary of a run that reached AWS."""
    from . import summary

    outs = summary.outputs(results, manifests)
    if not runner.set_outputs(outs):
        print(summary.as_json(outs))
    runner.append_summary(
        summary.markdown(
            results,
            dry_run=settings.dry_run,
            region=settings.region,
            repository=settings.repository,
        )
    )


def report(
    runner: Runner, settings: Settings, results: Sequence[Result], cancelled_by: str | None
) -> None:
    """The log's account of the results: the plan lines, one annotation per problem, and one
    line for a cancellation (each secret it left undone is in the outputs and the summary)."""
    from . import summary
    from .plan import WRITES, Action
    from .schedule import NOT_STARTED, STILL_IN_FLIGHT

    with runner.group("Plan" if settings.dry_run else "Results"):
        lines = summary.plan_lines(results)
        if lines:
            runner.info("\n".join(lines))  # redacted and written at once, not line by line
    for r in results:
        if r.error and r.error not in (NOT_STARTED, STILL_IN_FLIGHT):
            runner.error(f"{r.name}: {r.error}", title="secrets-sync: " + str(r.action))
        elif r.step.drift:
            runner.warning(f"{r.name}: {r.step.reason}.", title="secrets-sync: drift")
        elif settings.rollback and r.action is not Action.ROLLBACK:
            runner.warning(f"{r.name}: not rolled back: {r.step.reason}.", title="secrets-sync")
    if cancelled_by:
        done = sum(1 for r in results if r.ok and r.action in WRITES)
        cancelled = sum(1 for r in results if r.error in (NOT_STARTED, STILL_IN_FLIGHT))
        said = (
            f"Cancelled ({cancelled_by}): {done} secrets written before the run stopped, "
            f'{cancelled} left unwritten (`failed`, reason "cancelled"). Rerun the '
            "workflow to finish: a rerun picks up where this one stopped."
        )
        runner.error(said, title="secrets-sync: cancelled")
        runner.append_summary(f"### secrets-sync cancelled\n\n{said}\n\n")


def audit_tags(settings: Settings) -> tuple[tuple[str, str], ...]:
    from .mapping import COMMIT_TAG, RUN_TAG

    tags = ((RUN_TAG, settings.run_url), (COMMIT_TAG, settings.commit))
    return tuple((k, v) for k, v in tags if v)
