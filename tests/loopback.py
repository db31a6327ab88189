"""A scripted HTTP server on 127.0.0.1 in a daemon thread: what the fake model and fake Scrapybara share."""

from __future__ import annotations

import json
import socket
import threading
import time
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

    def handle_one_request(self) -> None:
        if getattr(self.server, "refusing", False):  # going down (LoopbackServer.down): no answer, the connection drops
            self.close_connection = True
            return
        super().handle_one_request()

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


class _Server(ThreadingHTTPServer):
    """Knows its open connections, so that ``LoopbackServer.down`` can drop them as a server that goes away does."""

    daemon_threads = True

    def __init__(self, address: tuple[str, int], handler: type[BaseHTTPRequestHandler]) -> None:
        self.refusing = False
        self.connections: set[socket.socket] = set()
        self.connections_lock = threading.Lock()
        super().__init__(address, handler)

    def process_request(self, request: Any, client_address: Any) -> None:
        with self.connections_lock:
            self.connections.add(request)
        super().process_request(request, client_address)

    def shutdown_request(self, request: Any) -> None:
        with self.connections_lock:
            self.connections.discard(request)
        super().shutdown_request(request)


def _drop(server: _Server) -> None:
    with server.connections_lock:
        open_now = list(server.connections)
    for connection in open_now:
        try:
            connection.shutdown(socket.SHUT_RDWR)
        except OSError:
            pass


def _fresh_server(handler: type[BaseHTTPRequestHandler]) -> ThreadingHTTPServer:
    """A server on a port no earlier server of this process had. A test's background work that outlives it (CrewAI's
    memory saves, retried with backoff) must not reach a later test's server because the kernel gave it the same
    port: seen once as two unexplained requests in another test's count."""
    for _ in range(50):
        server = _Server(("127.0.0.1", 0), handler)
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

    def down(self) -> None:
        """Go away as a server that stops or restarts does: its port refuses connections, and the open ones (a
        client's kept-alive connection) are dropped; a request already being answered is dropped unanswered."""
        server = self._server
        assert isinstance(server, _Server)
        server.refusing = True
        _drop(server)
        server.shutdown()
        server.server_close()
        _drop(server)  # any accepted while it shut down

    def up(self) -> None:
        """Listen again on the same port, as the restarted server does (after ``down``)."""
        host, port = self._server.server_address[:2]
        handler = self._server.RequestHandlerClass
        for tries in range(50):
            try:
                self._server = _Server((str(host), int(port)), handler)
                break
            except OSError:  # the port is not free yet
                if tries == 49:
                    raise
                time.sleep(0.1)
        self._thread = threading.Thread(target=self._server.serve_forever, daemon=True)
        self._thread.start()

    def __enter__(self) -> Any:
        return self.start()

    def __exit__(self, *exc: object) -> None:
        self.stop()
