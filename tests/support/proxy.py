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
from dataclasses import dataclass, field
from http.client import HTTPConnection
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer
from typing import Any

HOP_HEADERS = {"connection", "keep-alive", "transfer-encoding", "proxy-connection", "upgrade"}


@dataclass(frozen=True)
class Call:
    service: str  # "secretsmanager", "sts" or "other"
    operation: str
    body: dict[str, Any]
    status: int  # what the client got

    @property
    def secret_id(self) -> str | None:
        value = self.body.get("SecretId") or self.body.get("Name")
        return str(value) if value is not None else None


@dataclass
class Faults:
    """What to break. Rates are per request; `rule` decides a status for a given call."""

    throttle_rate: float = 0.0
    error_rate: float = 0.0
    latency: float = 0.0
    hang: float = 0.0  # seconds to sleep before answering (for timeout tests)
    rule: Callable[[Call], int | None] | None = None
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


class AwsProxy:
    def __init__(self, upstream: str, faults: Faults | None = None) -> None:
        parsed = urllib.parse.urlsplit(upstream)
        self.upstream = (parsed.hostname or "127.0.0.1", parsed.port or 80)
        self.faults = faults or Faults()
        self.calls: list[Call] = []
        self._lock = threading.Lock()
        proxy = self

        class Handler(BaseHTTPRequestHandler):
            protocol_version = "HTTP/1.1"

            def log_message(self, *args: Any) -> None:
                pass

            def do_POST(self) -> None:
                proxy._handle(self)

            do_GET = do_POST
            do_PUT = do_POST
            do_DELETE = do_POST

        self.server = ThreadingHTTPServer(("127.0.0.1", 0), Handler)
        self.server.daemon_threads = True
        self.url = f"http://127.0.0.1:{self.server.server_address[1]}"
        self._thread = threading.Thread(target=self.server.serve_forever, daemon=True)

    def __enter__(self) -> AwsProxy:
        self._thread.start()
        return self

    def __exit__(self, *exc: object) -> None:
        self.server.shutdown()
        self.server.server_close()

    def ops(self, service: str = "secretsmanager") -> list[str]:
        with self._lock:
            return [c.operation for c in self.calls if c.service == service]

    def reset(self) -> None:
        with self._lock:
            self.calls.clear()

    def _record(self, call: Call) -> None:
        with self._lock:
            self.calls.append(call)

    def _handle(self, handler: BaseHTTPRequestHandler) -> None:
        length = int(handler.headers.get("Content-Length") or 0)
        body = handler.rfile.read(length) if length else b""
        service, operation, data = parse_call(handler.headers, body)
        faults = self.faults
        if faults.latency:
            time.sleep(faults.latency)
        if faults.hang:
            time.sleep(faults.hang)
        status = self._injected(Call(service, operation, data, 0))
        if status is not None:
            self._record(Call(service, operation, data, status))
            self._answer_fault(handler, status, service)
            return
        conn = HTTPConnection(*self.upstream, timeout=60)
        headers = {k: v for k, v in handler.headers.items() if k.lower() not in HOP_HEADERS}
        conn.request(handler.command, handler.path, body=body, headers=headers)
        answer = conn.getresponse()
        payload = answer.read()
        self._record(Call(service, operation, data, answer.status))
        handler.send_response(answer.status)
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
        if roll < faults.throttle_rate:
            return 400
        if roll < faults.throttle_rate + faults.error_rate:
            return 503
        return None

    @staticmethod
    def _answer_fault(handler: BaseHTTPRequestHandler, status: int, service: str) -> None:
        if status == 400:
            code, message = "ThrottlingException", "Rate exceeded"
        elif status == 403:
            code, message = "AccessDeniedException", "injected: not authorized"
        else:
            code, message = "InternalServiceError", "injected: service unavailable"
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
