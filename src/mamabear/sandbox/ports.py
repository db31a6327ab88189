"""Named host ports for a jailed session: 127.0.0.1:PORT inside the jail reaches 127.0.0.1:PORT on this machine.

The jail's network never reaches the host's loopback. A kind that needs a service there (a database
for its tests) names its ports (``host_ports: [5432]``); for each, mamabear listens on a Unix socket in
the session's control folder while a command runs, and a relay inside the jail (``sandbox/relay.py``,
started before the command, ended with it) listens on the jail's own 127.0.0.1:PORT and passes each
connection through that socket. Every other host port stays out of reach.
"""

from __future__ import annotations

import os
import socket
import threading
from pathlib import Path

from mamabear.sandbox.relay import pump


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
            threading.Thread(target=pump, args=(conn, up), daemon=True).start()
            threading.Thread(target=pump, args=(up, conn), daemon=True).start()

    def close(self) -> None:
        self._closed.set()
        for listener in self.listeners:
            listener.close()
