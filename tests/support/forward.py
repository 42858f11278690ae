"""A forward HTTP proxy on a loopback port, as a corporate proxy is one: plain requests in
absolute form are forwarded, CONNECT opens a tunnel (TLS passes through it untouched). It records
what it was asked for, to prove which calls went through it. And a stand-in for an EC2 instance's
metadata service whose IMDSv2 token PUT never answers (a hop limit of 1, seen from a container)."""

from __future__ import annotations

import http.client
import select
import socket
import threading
import urllib.parse

from tests.support.loopback import LoopbackServer, QuietHandler

_HOP = {"connection", "keep-alive", "proxy-connection", "proxy-authorization", "te", "upgrade"}


class ForwardProxy(LoopbackServer):
    """`.seen`: ("CONNECT", "host:port") or (METHOD, absolute URL), in order of arrival."""

    def __init__(self) -> None:
        self.seen: list[tuple[str, str]] = []
        self._lock = threading.Lock()
        proxy = self

        class Handler(QuietHandler):
            def do_CONNECT(self) -> None:
                proxy._note("CONNECT", self.path)
                host, _, port = self.path.rpartition(":")
                try:
                    upstream = socket.create_connection((host, int(port)), timeout=10)
                except OSError:
                    self.send_error(502)
                    return
                self.send_response(200, "Connection established")
                self.end_headers()
                _pipe(self.connection, upstream)
                self.close_connection = True

            def _forward(self) -> None:
                proxy._note(self.command, self.path)
                url = urllib.parse.urlsplit(self.path)
                if url.scheme != "http" or not url.hostname:
                    self.send_error(400, "absolute http URL expected")
                    return
                length = int(self.headers.get("Content-Length") or 0)
                body = self.rfile.read(length) if length else None
                headers = {k: v for k, v in self.headers.items() if k.lower() not in _HOP}
                conn = http.client.HTTPConnection(url.hostname, url.port or 80, timeout=60)
                target = url.path + (f"?{url.query}" if url.query else "")
                try:
                    conn.request(self.command, target or "/", body=body, headers=headers)
                    answer = conn.getresponse()
                    payload = answer.read()
                except OSError:
                    self.send_error(502)
                    return
                finally:
                    conn.close()
                self.send_response(answer.status, answer.reason)
                for key, value in answer.getheaders():
                    if key.lower() not in _HOP | {"content-length", "transfer-encoding"}:
                        self.send_header(key, value)
                self.send_header("Content-Length", str(len(payload)))
                self.end_headers()
                self.wfile.write(payload)

            do_GET = do_POST = do_PUT = do_DELETE = _forward

        super().__init__(Handler)

    def _note(self, method: str, target: str) -> None:
        with self._lock:
            self.seen.append((method, target))

    def hosts(self) -> set[str]:
        """host:port of everything asked for."""
        with self._lock:
            seen = list(self.seen)
        out = set()
        for method, target in seen:
            out.add(target if method == "CONNECT" else urllib.parse.urlsplit(target).netloc)
        return out


def _pipe(a: socket.socket, b: socket.socket) -> None:
    sockets = [a, b]
    try:
        while True:
            ready, _, broken = select.select(sockets, [], sockets, 30)
            if broken or not ready:
                return
            for sock in ready:
                data = sock.recv(65536)
                if not data:
                    return
                (b if sock is a else a).sendall(data)
    except OSError:
        return
    finally:
        b.close()


class HopLimitedMetadata(LoopbackServer):
    """EC2's metadata service as a container behind a hop limit of 1 sees it: the token PUT
    reaches it and its answer never comes back (the PUT hangs until the test ends); a GET
    without a token is refused 401, as on an instance that requires IMDSv2."""

    def __init__(self) -> None:
        self.puts = 0
        self.gets = 0
        meta = self

        class Handler(QuietHandler):
            def do_PUT(self) -> None:
                meta.puts += 1
                meta.release.wait(60)
                self.close_connection = True

            def do_GET(self) -> None:
                meta.gets += 1
                self.send_response(401)
                self.send_header("Content-Length", "0")
                self.end_headers()

        super().__init__(Handler)
