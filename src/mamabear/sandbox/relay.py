"""The port relay, run inside a jail as `python3 relay.py FOLDER PORT...` (this file, bound read-only; it imports
nothing of mamabear): it binds 127.0.0.1:PORT for each port, then returns while a child of it serves, so the
command that follows finds them listening; each connection goes on through FOLDER/PORT.sock. ``pump`` serves
the other end too (``sandbox.ports``).
"""

from __future__ import annotations

import os
import socket
import sys
import threading


def pump(a: socket.socket, b: socket.socket) -> None:
    """Copy ``a`` to ``b`` until ``a`` ends, then close both ways of both."""
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


def serve(listener: socket.socket, path: str) -> None:
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


def main(folder: str, ports: list[str]) -> None:
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


if __name__ == "__main__":
    main(sys.argv[1], sys.argv[2:])
