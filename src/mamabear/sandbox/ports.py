"""Named host ports for a jailed session: 127.0.0.1:PORT inside the jail reaches 127.0.0.1:PORT on this machine.

The jail's network never reaches the host's loopback. A kind that needs a service there (a database
for its tests) names its ports (``host_ports: [5432]``); for each, mamabear listens on a Unix socket in
the session's state directory while a command runs, and a relay inside the jail (``RELAY``, started
before the command, ended with it) listens on the jail's own 127.0.0.1:PORT and passes each
connection through that socket. Every other host port stays out of reach.
"""

from __future__ import annotations

import os
import socket
import threading
from pathlib import Path

# Run inside the jail as `python3 RELAY DIR PORT...`: binds every port, then returns (its child serves), so the
# command that follows finds them listening.
RELAY = """
import os, socket, sys, threading

def pump(a, b):
    try:
        while True:
            data = a.recv(65536)
            if not data:
                break
            b.sendall(data)
    except OSError:
        pass
    for s in (a, b):
        try:
            s.shutdown(socket.SHUT_RDWR)
        except OSError:
            pass

def serve(listener, path):
    while True:
        conn, _ = listener.accept()
        up = socket.socket(socket.AF_UNIX)
        try:
            up.connect(path)
        except OSError:
            conn.close()
            continue
        threading.Thread(target=pump, args=(conn, up), daemon=True).start()
        threading.Thread(target=pump, args=(up, conn), daemon=True).start()

folder, ports = sys.argv[1], sys.argv[2:]
listeners = []
for port in ports:
    listener = socket.socket()
    listener.setsockopt(socket.SOL_SOCKET, socket.SO_REUSEADDR, 1)
    listener.bind(("127.0.0.1", int(port)))
    listener.listen(64)
    listeners.append((listener, os.path.join(folder, port + ".sock")))
if os.fork():
    os._exit(0)
os.setsid()
for listener, path in listeners[1:]:
    threading.Thread(target=serve, args=(listener, path), daemon=True).start()
serve(*listeners[0])
"""


class HostPorts:
    """While a command runs: a Unix socket per named port in ``folder``, each connection passed on to 127.0.0.1:PORT."""

    def __init__(self, folder: Path, ports: tuple[int, ...], owner: int | None) -> None:
        folder.mkdir(exist_ok=True)
        self.listeners: list[socket.socket] = []
        self._closed = threading.Event()
        # A Unix socket's path is at most 107 bytes and a workspace's may be longer: bound through the folder's fd.
        handle = os.open(folder, os.O_RDONLY | os.O_DIRECTORY)
        try:
            for port in ports:
                (folder / f"{port}.sock").unlink(missing_ok=True)
                listener = socket.socket(socket.AF_UNIX)
                self.listeners.append(listener)
                listener.bind(f"/proc/self/fd/{handle}/{port}.sock")
                if owner is not None:
                    os.chown(folder / f"{port}.sock", owner, owner)
                listener.listen(64)
                threading.Thread(target=self._serve, args=(listener, port), name=f"mamabear-host-port-{port}", daemon=True).start()
        except OSError:
            self.close()
            raise
        finally:
            os.close(handle)

    def _serve(self, listener: socket.socket, port: int) -> None:
        while not self._closed.is_set():
            try:
                conn, _ = listener.accept()
            except OSError:
                return  # closed
            try:
                up = socket.create_connection(("127.0.0.1", port), timeout=5)
            except OSError:
                conn.close()
                continue
            up.settimeout(None)
            threading.Thread(target=_pump, args=(conn, up), daemon=True).start()
            threading.Thread(target=_pump, args=(up, conn), daemon=True).start()

    def close(self) -> None:
        self._closed.set()
        for listener in self.listeners:
            listener.close()


def _pump(a: socket.socket, b: socket.socket) -> None:
    try:
        while data := a.recv(65536):
            b.sendall(data)
    except OSError:
        pass
    for s in (a, b):
        try:
            s.shutdown(socket.SHUT_RDWR)
        except OSError:
            pass
