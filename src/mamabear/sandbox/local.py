"""The local sandbox: a workspace directory per session and commands in real, limited subprocesses.

Each command runs in a fresh ``bash`` inside the session's jail (``sandbox.jail``: bubblewrap,
the system read-only, the workspace the only writable place), with CPU, memory, file-size and
process limits, a disk quota on the session's files (``quota.py``), a timeout that kills
everything it started, output capped from the middle, and an environment built from nothing:
no key, token or other variable of the caller reaches it (a jailed command's PATH is the jail's
own). ``sandbox stop``, from any process, kills what runs in the session (``inflight.py``).
The shell's exported variables and working directory are saved after each command and
restored before the next, so a session keeps its environment across commands and CLI
invocations like a terminal would.

Where no jail can be made (no bubblewrap, not Linux), ``isolation: required`` refuses to run
commands and ``isolation: best-effort`` runs them unjailed, as the user who runs mamabear.
"""

from __future__ import annotations

import errno
import json
import os
import signal
import subprocess
import sys
import threading
import time
from pathlib import Path
from typing import Any

from mamabear.sandbox import files, inflight, jail, quota
from mamabear.sandbox.backend import CommandResult, Lost, SandboxError
from mamabear.sandbox.config import CommandLimits

# The command arrives as $1 and is eval'd in this shell, so `cd` and `export` persist.
_SCRIPT = r"""{relay}
ulimit -t {cpu} -v {memory_kib} -f {file_kib} -u {processes} 2>/dev/null
[ -f "$MB_STATE/env" ] && . "$MB_STATE/env" 2>/dev/null
export -n MB_STATE
cd "$(cat "$MB_STATE/cwd" 2>/dev/null)" 2>/dev/null || cd "$HOME"
trap 'export -p > "$MB_STATE/env.new" && mv -f "$MB_STATE/env.new" "$MB_STATE/env"; pwd > "$MB_STATE/cwd"' EXIT
eval "$1"
"""
_KEPT = ("PATH", "LANG", "LC_ALL", "LC_CTYPE", "TZ", "USER", "LOGNAME")
_LIMIT_SIGNALS: dict[int, str] = {
    signal.SIGXCPU: "CPU time limit ({cpu} s) reached",
    signal.SIGXFSZ: "file size limit ({file_mib} MiB) reached",
    signal.SIGKILL: "killed (memory or CPU limit)",
}


class LocalBackend:
    name = "local"

    def __init__(self, home: Path, limits: CommandLimits, isolation: str = "required") -> None:
        self.root = home / "sandboxes"
        self.limits = limits
        self.isolation = isolation
        self._running: set[int] = set()  # process groups of the commands running now
        from mamabear.sandbox.browser import Browsers

        self.browsers = Browsers()  # each session's Chromium, started at its first use

    def create(self, session_id: str, network: bool = True, host_ports: tuple[int, ...] = ()) -> tuple[str | None, str]:
        self._jail()  # refused before anything is made, when a jail is required and none can be made
        layout = jail.Layout.of(self.root / session_id / "work")
        for folder in (layout.work, layout.state, layout.tmp, layout.control):
            folder.mkdir(parents=True, exist_ok=True)
        (layout.control / "jail.json").write_text(json.dumps({"network": network, "host_ports": list(host_ports)}))
        inflight.reopen(layout.control)  # a lost session made again under its id
        jail.own([layout.work, layout.state, layout.tmp])  # the control folder stays the caller's: the jail cannot change it
        return None, str(layout.work)

    def _jail(self) -> jail.Support | None:
        """This machine's jail, or None to run unjailed (best-effort); SandboxError when one is required and cannot be made."""
        support = jail.support()
        if support.jail:
            return support
        if self.isolation == "required":
            raise SandboxError(
                f"the local sandbox cannot jail commands here: {support.why}. To run them unjailed, as you, set isolation: best-effort in config/sandbox.yaml."
            )
        return None

    def caveat(self, session: dict) -> str | None:
        support = jail.support()
        if not support.jail:
            return f"sandbox session {session['id']} is not jailed ({support.why}); its commands run as you and can read your files."
        if self._network(session) and not support.slirp:
            return f"sandbox session {session['id']} shares this machine's network, its loopback services included ({support.slirp_why})."
        return None

    @staticmethod
    def _settings(session: dict) -> tuple[bool, tuple[int, ...]]:
        """The session's network and host ports, as made (where the jail cannot reach them)."""
        try:
            saved = json.loads((jail.Layout.of(Path(session["workdir"])).control / "jail.json").read_text())
            return bool(saved.get("network", True)), tuple(int(p) for p in saved.get("host_ports", ()))
        except (OSError, ValueError, TypeError, AttributeError):
            return True, ()  # a session made before sessions had these settings: the defaults

    def _network(self, session: dict) -> bool:
        return self._settings(session)[0]

    # ------------------------------------------------------------ commands

    def environment(self, session: dict, jailed: bool = False) -> dict[str, str]:
        """Built from nothing: a few harmless variables, never a key or token of the caller."""
        work = Path(session["workdir"])
        env = {k: os.environ[k] for k in _KEPT if k in os.environ}
        own_bin = str(Path(sys.prefix) / "bin")  # mamabear's own venv: installs must not land there
        env["PATH"] = jail.PATH if jailed else os.pathsep.join(p for p in env.get("PATH", os.defpath).split(os.pathsep) if p != own_bin)
        home, tmp, state = (jail.WORK, "/tmp", jail.STATE) if jailed else (str(work), str(work.parent / "tmp"), str(work.parent / "state"))
        env.update(HOME=home, PWD=home, TMPDIR=tmp, SHELL="/bin/bash", TERM="dumb", MB_STATE=state)
        env.setdefault("LANG", "C.UTF-8")
        return env

    def bash(self, session: dict, command: str, timeout_s: float) -> CommandResult:
        work = self._require(session)
        support = self._jail()
        limits = self.limits
        layout = jail.Layout.of(work)
        network, host_ports = self._settings(session) if support is not None else (True, ())
        relay = jail.relay_line(host_ports) if host_ports else ""
        watch = quota.Watch((layout.work, layout.tmp, layout.state), limits.workspace_mib * quota.MIB)
        file_kib = min(limits.file_mib * 1024, watch.room // 1024)  # no one file takes the session past its quota
        script = _SCRIPT.format(relay=relay, cpu=limits.cpu_s, memory_kib=limits.memory_mib * 1024, file_kib=file_kib, processes=limits.processes)
        argv = ["bash", "--noprofile", "--norc", "-c", script, "bash", command]
        env = self.environment(session, jailed=support is not None)
        started = time.monotonic()
        launched: jail.Launched | None = None
        try:
            if support is not None:
                mode = jail.network_mode(network, support)
                launched = jail.launch(layout, argv, mode, support, env, host_ports)
                proc = launched.proc
            else:
                proc = subprocess.Popen(
                    argv, cwd=work, env=env, stdin=subprocess.DEVNULL, stdout=subprocess.PIPE, stderr=subprocess.STDOUT, start_new_session=True
                )
        except OSError as exc:
            too_long = exc.errno == errno.E2BIG
            why = f"it is too long ({len(command.encode()):,} bytes); write it to a file with file_create and run that" if too_long else exc.strerror
            raise SandboxError(f"sandbox session {session['id']}: the command could not be started: {why or exc}.") from exc
        if launched is None:  # a jail records itself
            layout.control.mkdir(exist_ok=True)
            inflight.add(layout.control, proc.pid)
        capture = _Capture(proc.stdout, limits.output_kib * 1024)
        watch.start(lambda: _kill_group(proc.pid))
        timed_out = False
        self._running.add(proc.pid)
        try:
            proc.wait(timeout=timeout_s)
        except subprocess.TimeoutExpired:
            timed_out = True
        finally:
            self._running.discard(proc.pid)
        _kill_group(proc.pid)  # the command and anything it left running in the background (a jail's: its PID namespace)
        proc.wait()
        why = watch.finish()  # the quota, when the command passed it
        notes = launched.close() if launched is not None else []
        if launched is None:
            inflight.discard(layout.control, proc.pid)
        output = "".join(f"[{note}]\n" for note in notes) + capture.result()
        code = None if timed_out else proc.returncode
        if code == -signal.SIGKILL and inflight.stopped(layout.control):
            why = "the session was stopped (sandbox stop) while the command ran, which killed it"
        return CommandResult(
            output=output,
            exit_code=code,
            duration_ms=(time.monotonic() - started) * 1000,
            timed_out=timed_out,
            note=why or self._note(code, timeout_s if timed_out else None, file_kib),
        )

    def interrupt(self) -> None:
        """Stop every command running now, with what it started (a run that is stopped exits without waiting for them)."""
        for pgid in list(self._running):
            _kill_group(pgid)
        self.browsers.close()

    def _note(self, code: int | None, timed_out_after: float | None, file_kib: int) -> str:
        if timed_out_after is not None:
            return f"the {timed_out_after:g} s limit was reached"
        if code is None or -128 <= code <= 128:
            signum = -code if code is not None and code < 0 else None  # bash itself was killed by a signal
        else:
            signum = code - 128 if code - 128 in (signal.SIGXCPU, signal.SIGXFSZ) else None  # a command it ran was
        if signum == signal.SIGXFSZ and file_kib < self.limits.file_mib * 1024:
            quota_mib = self.limits.workspace_mib
            return f"the session's quota of {quota_mib} MiB (workspace_mib) left room for files of {file_kib // 1024} MiB; delete files to make room"
        text = _LIMIT_SIGNALS.get(signum) if signum else None
        return text.format(cpu=self.limits.cpu_s, file_mib=self.limits.file_mib) if text else ""

    # ------------------------------------------------------------ files

    def view(self, session: dict, path: str, view_range: list[int] | None) -> str:
        return files.view(self._require(session), path, view_range)

    def create_file(self, session: dict, path: str, text: str) -> str:
        return files.create(self._require(session), path, text, owner=jail.jail_user())  # a root caller's jail can change it

    def str_replace(self, session: dict, path: str, old: str, new: str) -> str:
        return files.str_replace(self._require(session), path, old, new)

    def insert(self, session: dict, path: str, line: int, text: str) -> str:
        return files.insert(self._require(session), path, line, text)

    # ------------------------------------------------------------ life cycle

    def pause(self, session: dict) -> None:
        """Nothing runs between commands, so a paused local session only refuses commands until resumed."""

    def resume(self, session: dict) -> None:
        self._require(session)

    def stop(self, session: dict) -> None:
        """What runs in the session is killed, from whichever process started it: its commands' jails, its browser's.
        The workspace is kept: stopping a session never deletes the user's files."""
        inflight.stop(jail.Layout.of(Path(session["workdir"])).control)
        self.browsers.close(session["id"])

    def browser_jail(self, session: dict) -> tuple[jail.Layout, dict[str, Any] | None]:
        """The session's folders, and how its browser is jailed (chromium_jail.py): its network rule, host ports and
        environment; None when this machine has no jail (isolation: best-effort)."""
        layout = jail.Layout.of(self._require(session))
        support = self._jail()
        if support is None:
            return layout, None
        network, host_ports = self._settings(session)
        env = {**self.environment(session, jailed=True), "HOME": jail.WORK}
        folders = {k: str(getattr(layout, k)) for k in ("work", "state", "tmp", "control")}
        return layout, {**folders, "mode": jail.network_mode(network, support), "host_ports": list(host_ports), "env": env}

    def browse(self, session: dict, action: str, **params: Any) -> tuple[str, bytes | None]:
        """An action in the session's browser (browser.py): what the agent reads, and a screenshot, if it took one."""
        return self.browsers.act(self, session, action, **params)

    def alive(self, session: dict) -> str:
        return "running" if Path(session["workdir"]).is_dir() else "lost"

    def _require(self, session: dict) -> Path:
        work = Path(session["workdir"])
        if not work.is_dir():
            raise Lost(f"the workspace of sandbox session {session['id']} ({work}) is gone.")
        return work


def _kill_group(pgid: int) -> None:
    try:
        os.killpg(pgid, signal.SIGKILL)
    except (ProcessLookupError, PermissionError):
        pass


DRAIN_S = 1.0  # after the command's group is gone, how long its output may still take to arrive


class _Capture:
    """Reads a pipe to its end, keeping the first and last halves of ``cap`` bytes and counting the rest."""

    def __init__(self, pipe: object, cap: int) -> None:
        self.pipe, self.cap = pipe, cap
        self.head = bytearray()
        self.tail = bytearray()
        self.total = 0
        self._lock = threading.Lock()
        self.thread = threading.Thread(target=self._read, daemon=True)
        self.thread.start()

    def _read(self) -> None:
        half = self.cap // 2
        while chunk := self.pipe.read1(65536):  # type: ignore[attr-defined]  # a BufferedReader, typed as the object it is stored as
            with self._lock:
                self.total += len(chunk)
                room = half - len(self.head)
                if room > 0:
                    self.head += chunk[:room]
                    chunk = chunk[room:]
                if chunk:
                    self.tail = (self.tail + chunk)[-half:]
        self.pipe.close()  # type: ignore[attr-defined]  # as above

    def result(self) -> str:
        """What the command wrote. A process that left its group (setsid) and still holds the output is not waited for:
        closing the pipe under its reader would block until that process ended (a 5 s timeout took 43.8 s)."""
        self.thread.join(timeout=DRAIN_S)
        with self._lock:
            cut = self.total - len(self.head) - len(self.tail)
            middle = f"\n[... {cut} bytes of output cut ...]\n" if cut > 0 else ""
            text = self.head.decode("utf-8", "replace") + middle + self.tail.decode("utf-8", "replace")
        if self.thread.is_alive():
            text += "\n[a process that left the command's group still holds its output; it was not waited for]"
        return text
