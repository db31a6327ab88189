"""A scripted HTTP server on 127.0.0.1 in a daemon thread: what the fake model and fake Scrapybara share."""

from __future__ import annotations

import json
import threading
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer
from typing import Any


class JsonHandler(BaseHTTPRequestHandler):
    """Quiet, HTTP/1.1, JSON replies; a client that goes away mid-reply (a test killed it) is not an error."""

    protocol_version = "HTTP/1.1"

    def handle(self) -> None:
        try:
            super().handle()
        except (BrokenPipeError, ConnectionResetError):
            pass

    def log_message(self, *args: Any) -> None:  # keep test output clean
        pass

    def _send_json(self, status: int, payload: Any, headers: dict[str, str] | None = None) -> None:
        data = json.dumps(payload).encode()
        self.send_response(status)
        self.send_header("Content-Type", "application/json")
        self.send_header("Content-Length", str(len(data)))
        for k, v in (headers or {}).items():
            self.send_header(k, v)
        self.end_headers()
        self.wfile.write(data)


_PORTS_USED: set[int] = set()  # by this process's servers so far


def _fresh_server(handler: type[BaseHTTPRequestHandler]) -> ThreadingHTTPServer:
    """A server on a port no earlier server of this process had. A test's background work that outlives it (CrewAI's
    memory saves, retried with backoff) must not reach a later test's server because the kernel gave it the same
    port: seen once as two unexplained requests in another test's count."""
    for _ in range(50):
        server = ThreadingHTTPServer(("127.0.0.1", 0), handler)
        port = server.server_address[1]
        if port not in _PORTS_USED:
            _PORTS_USED.add(port)
            return server
        server.server_close()
    raise RuntimeError("no fresh loopback port after 50 tries")


class LoopbackServer:
    def __init__(self, handler: type[BaseHTTPRequestHandler]) -> None:
        self._server = _fresh_server(handler)
        self._server.daemon_threads = True
        self._thread = threading.Thread(target=self._server.serve_forever, daemon=True)

    @property
    def origin(self) -> str:
        host, port = self._server.server_address[:2]
        return f"http://{host}:{port}"

    def start(self) -> Any:
        self._thread.start()
        return self

    def stop(self) -> None:
        self._server.shutdown()
        self._server.server_close()

    def __enter__(self) -> Any:
        return self.start()

    def __exit__(self, *exc: object) -> None:
        self.stop()
