"""A loopback HTTP proxy in front of moto that records every AWS call and can inject faults.

It is a real server on a real socket: the action under test reaches it through the standard
AWS_ENDPOINT_URL variable, exactly as it would reach AWS. Used by the tests and by bench/."""

from __future__ import annotations

import json
import random
import threading
import time
import urllib.parse
from collections.abc import Callable
from dataclasses import dataclass, field, replace
from http.client import HTTPConnection
from http.server import BaseHTTPRequestHandler
from typing import Any, Protocol

from tests.support.loopback import LoopbackServer, QuietHandler

HOP_HEADERS = {"connection", "keep-alive", "transfer-encoding", "proxy-connection", "upgrade"}


@dataclass(frozen=True)
class Call:
    service: str  # "secretsmanager", "sts" or "other"
    operation: str
    body: dict[str, Any]
    status: int  # what the client got
    # When the request arrived, on time.monotonic(): CLOCK_MONOTONIC is one clock for the whole
    # machine, so bench/ can subtract a subprocess's launch time from it.
    received: float = field(default=0.0, compare=False)
    in_flight: int = field(default=0, compare=False)  # requests in flight on arrival, this one too
    forwarded: bool = field(default=False, compare=False)  # reached moto, whatever the client got

    @property
    def secret_id(self) -> str | None:
        value = self.body.get("SecretId") or self.body.get("Name")
        return str(value) if value is not None else None


@dataclass
class TokenBucket:
    """A quota as AWS enforces one: `rate` calls a second, up to `burst` at once; a call of
    `operations` that finds the bucket empty is answered ThrottlingException (400) and does not
    reach moto. Starts full."""

    rate: float
    burst: float
    operations: frozenset[str]
    tokens: float = field(init=False)
    refilled: float = field(init=False)

    def __post_init__(self) -> None:
        self.tokens = self.burst
        self.refilled = time.monotonic()

    def take(self, now: float) -> bool:
        """Called under the proxy's lock."""
        self.tokens = min(self.burst, self.tokens + (now - self.refilled) * self.rate)
        self.refilled = now
        if self.tokens < 1.0:
            return False
        self.tokens -= 1.0
        return True


# Secrets Manager's request quotas per account and Region, as the user guide's quotas page
# (reference_limits) lists them: calls a second, and the operations each one counts together.
# None of them can be raised. The page gives CreateSecret and DeleteSecret rates of their own;
# they are taken as 50 here, as lib/secrets_sync/limiter.py takes them.
AWS_QUOTAS: tuple[tuple[float, frozenset[str]], ...] = (
    (
        50,
        frozenset(
            {
                "PutSecretValue",
                "RemoveRegionsFromReplication",
                "ReplicateSecretToRegions",
                "StopReplicationToReplica",
                "UpdateSecret",
                "UpdateSecretVersionStage",
            }
        ),
    ),
    (50, frozenset({"TagResource", "UntagResource"})),
    (50, frozenset({"RestoreSecret"})),
    (50, frozenset({"RotateSecret", "CancelRotateSecret"})),
    (50, frozenset({"CreateSecret"})),
    (50, frozenset({"DeleteSecret"})),
    (100, frozenset({"BatchGetSecretValue"})),
    (100, frozenset({"ListSecrets"})),
    (10_000, frozenset({"DescribeSecret", "GetSecretValue"})),
)


def quota_buckets(burst_seconds: float, scale: float = 1.0) -> tuple[TokenBucket, ...]:
    """A token bucket per quota group of AWS_QUOTAS, its rate times `scale` (below 1: a tight
    account, reached by a test in few calls), holding `burst_seconds` of that rate (at least one
    call) and starting full: AWS does not document its burst."""
    return tuple(
        TokenBucket(rate * scale, max(1.0, rate * scale * burst_seconds), operations)
        for rate, operations in AWS_QUOTAS
    )


@dataclass
class Faults:
    """What to break. Rates are per request; `rule` decides a status for a given call."""

    throttle_rate: float = 0.0
    error_rate: float = 0.0
    latency: float = 0.0
    hang: float = 0.0  # seconds to sleep before answering (for timeout tests)
    rule: Callable[[Call], int | None] | None = None
    # Decides a status for a call AFTER it reached moto: the write is done, but the client sees
    # an error, as when AWS answers 5xx or the connection drops after committing.
    after: Callable[[Call], int | None] | None = None
    # Seconds to sleep before answering one call (for timeouts on some calls, not all).
    hang_for: Callable[[Call], float | None] | None = None
    # The message of an injected error (default: a fixed text per status); e.g. one that echoes
    # the request, as some services' validation errors do.
    message: Callable[[Call], str | None] | None = None
    # Rewrites the body of an answer that came back from moto, before the client sees it (e.g.
    # an STS Expiration brought near, to reach a refresh without waiting for it).
    rewrite: Callable[[Call, bytes], bytes] | None = None
    bucket: TokenBucket | None = None
    buckets: tuple[TokenBucket, ...] = ()  # more quotas, one bucket per group (quota_buckets)
    seed: int = 7
    rng: random.Random = field(init=False)

    def __post_init__(self) -> None:
        self.rng = random.Random(self.seed)


def parse_call(headers: Any, body: bytes) -> tuple[str, str, dict[str, Any]]:
    target = headers.get("X-Amz-Target", "")
    if target:
        service, _, operation = target.partition(".")
        try:
            data = json.loads(body or b"{}")
        except ValueError:
            data = {}
        return service.lower(), operation, data if isinstance(data, dict) else {}
    form = dict(urllib.parse.parse_qsl(body.decode("utf-8", "replace")))
    if "Action" in form:
        return "sts", form["Action"], form
    return "other", "", {}


class Model(Protocol):
    """What the real service does where the emulator behind the proxy is kinder: refuse a call
    moto would take, or change an answer moto gave (tests/support/realaws/ is the one)."""

    def refuse(self, call: Call) -> tuple[int, str, str] | None:
        """(status, error code, message) for a call AWS refuses, before it reaches moto."""

    def answered(self, call: Call, payload: bytes) -> bytes:
        """The body AWS would give for a call moto answered with 200."""

    def failed(self, call: Call, status: int, payload: bytes) -> tuple[int, bytes] | None:
        """(status, body) AWS would give for a call moto failed; None where AWS fails it too."""


class AwsProxy(LoopbackServer):
    def __init__(
        self, upstream: str, faults: Faults | None = None, model: Model | None = None
    ) -> None:
        parsed = urllib.parse.urlsplit(upstream)
        self.upstream = (parsed.hostname or "127.0.0.1", parsed.port or 80)
        self.faults = faults or Faults()
        self.model = model
        self.calls: list[Call] = []
        self._lock = threading.Lock()
        # In-flight bookkeeping: the high-water mark of concurrent requests, overall and per
        # operation, is how tests prove parallelism without timing anything.
        self._active: dict[str, int] = {}
        self._peaks: dict[str, int] = {}
        self.max_in_flight = 0
        self.closed = False
        proxy = self

        class Handler(QuietHandler):
            # Headers and body go out in two writes; with Nagle on, the second waits for the
            # client's delayed ACK, adding some 40 ms to every call.
            disable_nagle_algorithm = True

            def do_POST(self) -> None:
                proxy._handle(self)

            do_GET = do_POST
            do_PUT = do_POST
            do_DELETE = do_POST

        super().__init__(Handler)

    def __exit__(self, *exc: object) -> None:
        self.closed = True
        super().__exit__(*exc)

    def ops(self, service: str = "secretsmanager") -> list[str]:
        with self._lock:
            return [c.operation for c in self.calls if c.service == service]

    def reset(self) -> None:
        with self._lock:
            self.calls.clear()
            self._peaks.clear()
            self.max_in_flight = sum(self._active.values())

    def peak(self, operation: str | None = None) -> int:
        """The most requests (of one operation, if given) in flight at once since the last
        reset: the high-water mark, counted as requests arrive and leave, not timed."""
        with self._lock:
            if operation is None:
                return self.max_in_flight
            return self._peaks.get(operation, 0)

    def _record(self, call: Call) -> None:
        with self._lock:
            self.calls.append(call)

    def _enter(self, operation: str) -> int:
        with self._lock:
            self._active[operation] = self._active.get(operation, 0) + 1
            self._peaks[operation] = max(self._peaks.get(operation, 0), self._active[operation])
            total = sum(self._active.values())
            self.max_in_flight = max(self.max_in_flight, total)
            return total

    def _leave(self, operation: str) -> None:
        with self._lock:
            self._active[operation] -= 1

    def _handle(self, handler: BaseHTTPRequestHandler) -> None:
        length = int(handler.headers.get("Content-Length") or 0)
        body = handler.rfile.read(length) if length else b""
        received = time.monotonic()
        service, operation, data = parse_call(handler.headers, body)
        in_flight = self._enter(operation)
        try:
            self._serve(handler, Call(service, operation, data, 0, received, in_flight), body)
        except (BrokenPipeError, ConnectionResetError):
            pass  # the client gave up (a timeout test): nobody is left to answer
        finally:
            self._leave(operation)

    def _serve(self, handler: BaseHTTPRequestHandler, call: Call, body: bytes) -> None:
        faults = self.faults
        if faults.latency:
            time.sleep(faults.latency)
        if faults.hang:
            time.sleep(faults.hang)
        if faults.hang_for is not None and call.service != "other":
            time.sleep(faults.hang_for(call) or 0.0)
        if self.closed:
            # A request that outslept its test: forwarding it now would write into the moto
            # state of whichever test runs next.
            return
        status = self._injected(call)
        if status is not None:
            self._record(replace(call, status=status))
            self._fault(handler, status, call)
            return
        refusal = self.model.refuse(call) if self.model is not None else None
        if refusal is not None:
            self._record(replace(call, status=refusal[0]))
            AwsProxy._send_error(handler, *refusal, call.service)
            return
        conn = HTTPConnection(*self.upstream, timeout=60)
        headers = {k: v for k, v in handler.headers.items() if k.lower() not in HOP_HEADERS}
        conn.request(handler.command, handler.path, body=body, headers=headers)
        answer = conn.getresponse()
        payload = answer.read()
        late = faults.after(call) if faults.after is not None and call.service != "other" else None
        if late is not None:
            conn.close()
            self._record(replace(call, status=late, forwarded=True))
            self._fault(handler, late, call)
            return
        status = answer.status
        if status == 200 and self.model is not None:
            payload = self.model.answered(call, payload)
        elif self.model is not None:
            status, payload = self.model.failed(call, status, payload) or (status, payload)
        if faults.rewrite is not None and call.service != "other":
            payload = faults.rewrite(call, payload)
        self._record(replace(call, status=status, forwarded=True))
        handler.send_response(status)
        for key, value in answer.getheaders():
            if key.lower() not in HOP_HEADERS | {"content-length"}:
                handler.send_header(key, value)
        handler.send_header("Content-Length", str(len(payload)))
        handler.end_headers()
        handler.wfile.write(payload)
        conn.close()

    def _injected(self, call: Call) -> int | None:
        faults = self.faults
        if call.service == "other":
            return None
        if faults.rule is not None:
            status = faults.rule(call)
            if status is not None:
                return status
        with self._lock:
            roll = faults.rng.random()
            now = time.monotonic()
            for bucket in (faults.bucket, *faults.buckets):
                if bucket and call.operation in bucket.operations and not bucket.take(now):
                    return 400
        if roll < faults.throttle_rate:
            return 400
        if roll < faults.throttle_rate + faults.error_rate:
            return 503
        return None

    def _fault(self, handler: BaseHTTPRequestHandler, status: int, call: Call) -> None:
        # Subclasses override _answer_fault(handler, status, service): keep that call as it was.
        text = self.faults.message(call) if self.faults.message is not None else None
        if text is None:
            self._answer_fault(handler, status, call.service)
        else:
            AwsProxy._answer_fault(handler, status, call.service, text)

    @staticmethod
    def _answer_fault(
        handler: BaseHTTPRequestHandler, status: int, service: str, text: str | None = None
    ) -> None:
        if status == 400:
            code, message = "ThrottlingException", "Rate exceeded"
        elif status == 403:
            code, message = "AccessDeniedException", "injected: not authorized"
        else:
            code, message = "InternalServiceError", "injected: service unavailable"
        AwsProxy._send_error(handler, status, code, message if text is None else text, service)

    @staticmethod
    def _send_error(
        handler: BaseHTTPRequestHandler, status: int, code: str, message: str, service: str
    ) -> None:
        if service == "sts":
            payload = (
                f"<ErrorResponse><Error><Type>Sender</Type><Code>{code}</Code>"
                f"<Message>{message}</Message></Error></ErrorResponse>"
            ).encode()
            ctype = "text/xml"
        else:
            payload = json.dumps({"__type": code, "message": message}).encode()
            ctype = "application/x-amz-json-1.1"
        handler.send_response(status)
        handler.send_header("Content-Type", ctype)
        handler.send_header("Content-Length", str(len(payload)))
        handler.end_headers()
        handler.wfile.write(payload)
