"""What the tests' HTTP servers share: a threaded server on a free port of 127.0.0.1, serving
inside `with`, and a request handler that keeps quiet."""

from __future__ import annotations

import threading
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer
from typing import Any, Self


class QuietHandler(BaseHTTPRequestHandler):
    """HTTP/1.1 (connections kept alive, as the SDKs keep them), and no line on stderr for each
    request."""

    protocol_version = "HTTP/1.1"

    def log_message(self, *args: Any) -> None:
        pass


class LoopbackServer:
    """`.server`, a ThreadingHTTPServer on 127.0.0.1 at a port the kernel picks (so parallel
    workers cannot race for one), `.port` and `.url`; it serves from `__enter__` in a thread of
    its own. On exit `.release` is set first, for handlers that hang until the test ends."""

    def __init__(self, handler: type[BaseHTTPRequestHandler]) -> None:
        self.server = ThreadingHTTPServer(("127.0.0.1", 0), handler)
        self.server.daemon_threads = True
        self.port = self.server.server_address[1]
        self.url = f"http://127.0.0.1:{self.port}"
        self.release = threading.Event()
        # A short poll interval: shutdown() waits up to one, and every test stops a server.
        self._thread = threading.Thread(
            target=self.server.serve_forever, kwargs={"poll_interval": 0.05}, daemon=True
        )

    def __enter__(self) -> Self:
        self._thread.start()
        return self

    def __exit__(self, *exc: object) -> None:
        self.release.set()
        self.server.shutdown()
        self.server.server_close()
