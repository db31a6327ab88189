"""Sandbox sessions: start, find, use, pause, resume and stop them, with every action audited.

A session is a row in the run store plus a computer on a backend (a local workspace or
a Scrapybara instance). It outlives the command that made it: ``sandbox start``, ``exec``
and a run all reach the same session by id. Every command and edit goes through here,
so each is checked against the policy, redacted, and written to the store.
"""

from __future__ import annotations

import secrets
import time
from dataclasses import dataclass
from typing import Any

from mamabear.config.redact import Redactor
from mamabear.config.settings import Settings
from mamabear.errors import UsageError
from mamabear.sandbox.backend import Backend, CommandResult, Lost, Refused, SandboxError
from mamabear.sandbox.config import SandboxConfig
from mamabear.sandbox.policy import refusal
from mamabear.sandbox.screens import Shot
from mamabear.store.database import Store
from mamabear.store.ledger import Ledger

LIVE = ("running", "paused")


@dataclass(frozen=True)
class Context:
    """Who is acting, for the audit: a run's task and agent, or nobody (the CLI)."""

    run_id: str | None = None
    attempt: int | None = None
    task_position: int | None = None
    agent: str | None = None

    def columns(self) -> dict[str, Any]:
        return {"run_id": self.run_id, "attempt": self.attempt, "task_position": self.task_position, "agent": self.agent}


CLI = Context()


class Sessions:
    def __init__(self, settings: Settings, store: Store, config: SandboxConfig) -> None:
        self.settings, self.config = settings, config
        self.ledger = Ledger(store)
        self.redact = Redactor.for_settings(settings)
        self._backends: dict[str, Backend] = {}

    def backend(self, name: str) -> Backend:
        if name not in self._backends:
            if name == "local":
                from mamabear.sandbox.local import LocalBackend

                self._backends[name] = LocalBackend(self.settings.home, self.config.limits, self.config.isolation)
            else:
                from mamabear.sandbox.cloud import CloudBackend

                self._backends[name] = CloudBackend(self.settings, self.config)
        return self._backends[name]

    # ------------------------------------------------------------ life cycle

    def start(self, backend: str, kind: str, pooled: bool = False, context: Context = CLI, network: bool | None = None) -> dict:
        """A new session of a kind, its set-up commands run once. ``network``: None for the kind's setting."""
        setup = self.config.kind(kind)
        session_id = f"sb-{secrets.token_hex(4)}"
        remote_id, workdir = self.backend(backend).create(session_id, self.config.network_for(kind, network), self.config.kind_ports.get(kind, ()))
        self.ledger.add_session(
            id=session_id,
            backend=backend,
            kind=kind,
            status="running",
            remote_id=remote_id,
            workdir=workdir,
            pooled=pooled,
            run_id=context.run_id,
            active_since=time.time(),
        )
        session = self.ledger.session(session_id)
        for command in setup:
            result = self._run(session, "setup", command, self.config.limits.timeout_s, context)
            if result.exit_code != 0:
                self.ledger.update_session(session_id, error=f"set-up command failed: {command}")
                if backend != "local":
                    self.pause(self.ledger.session(session_id))  # kept to look into, but not billed meanwhile
                raise SandboxError(
                    f"sandbox session {session_id}: set-up command `{command}` of kind '{kind}' failed "
                    f"({result.for_model().splitlines()[-1].strip('[]')}); fix it in config/sandbox.yaml."
                )
        auth_state = self.config.kind_auth.get(kind)
        if auth_state:
            self.act(session, "authenticate", auth_state, context, auth_state=auth_state)  # the kind's saved browser log-ins
        return self.ledger.session(session_id)

    def save_auth(self, session: dict, name: str | None) -> str:
        """The browser's log-ins (cookies, storage) of a Scrapybara session, saved for new sessions of a kind to reuse;
        their id (``auth_state`` of the kind in config/sandbox.yaml)."""
        method = getattr(self.backend(session["backend"]), "save_auth", None)
        if method is None:
            raise UsageError(f"session {session['id']} is a {session['backend']} session; browser log-ins are saved on Scrapybara sessions.")
        return method(self._ready(session, CLI), name)

    def caveat(self, session: dict) -> str | None:
        """What a person should know about where the session's commands run (a local session that is not jailed)."""
        return self.backend(session["backend"]).caveat(session)

    def get(self, prefix: str) -> dict:
        return self.ledger.session(self.ledger.resolve(prefix))

    def every(self) -> list[dict]:
        self.pause_idle()
        return self.ledger.sessions()

    def pause(self, session: dict) -> dict:
        if session["status"] == "paused":
            return session
        self._live(session)
        self.save(session)
        self.backend(session["backend"]).pause(session)
        self._bill(session)
        self.ledger.update_session(session["id"], status="paused")
        return self.ledger.session(session["id"])

    def resume(self, session: dict, context: Context = CLI) -> dict:
        """Make a session usable: resume it if paused, replace its computer if it was lost."""
        self._live(session)
        backend = self.backend(session["backend"])
        try:
            state = backend.alive(session)
            if state == "paused" or session["status"] == "paused":
                backend.resume(session)
        except Lost:
            state = "lost"
        if state == "lost":
            return self.replace(session, context)
        billing = session["status"] == "running" and session["active_since"] is not None
        if billing and context.run_id in (None, session["run_id"]):
            return session
        self._bill(session)  # close the time billed so far (to the run that had it); this run's time starts now
        self.ledger.update_session(session["id"], status="running", active_since=time.time(), run_id=context.run_id)
        return self.ledger.session(session["id"])

    def stop(self, session: dict) -> dict:
        if session["status"] == "stopped":
            return session
        if session["status"] in LIVE:
            self.save(session)
            try:
                self.backend(session["backend"]).stop(session)
            except Lost:
                pass
            self._bill(session)
        self.ledger.update_session(session["id"], status="stopped")
        return self.ledger.session(session["id"])

    def replace(self, session: dict, context: Context = CLI) -> dict:
        """The computer is gone: start a new one under the same session id and restore the last saved workspace."""
        self._bill(session)
        backend = self.backend(session["backend"])
        remote_id, workdir = backend.create(session["id"], self.config.network_for(session["kind"]), self.config.kind_ports.get(session["kind"], ()))
        restored = getattr(backend, "restore", None)
        note = "no saved workspace to restore"
        if restored is not None:
            note = restored({**session, "remote_id": remote_id, "workdir": workdir})
        self.ledger.update_session(
            session["id"],
            remote_id=remote_id,
            workdir=workdir,
            status="running",
            active_since=time.time(),
            run_id=context.run_id or session["run_id"],
            error=f"replaced a lost computer; {note}",
        )
        self.ledger.record(session["id"], "replace", remote_id or workdir, True, output=note, context=context.columns())
        return self.ledger.session(session["id"])

    def save(self, session: dict) -> None:
        """Keep a copy of a cloud session's workspace, to restore if its instance is lost."""
        saver = getattr(self.backend(session["backend"]), "save", None)
        if saver is not None and session["status"] == "running":
            try:
                saver(session)
                self.ledger.update_session(session["id"], saved_at=time.time())
            except (Lost, SandboxError):
                pass  # the last saved copy stays

    def pause_idle(self, now: float | None = None) -> list[str]:
        """Pause running cloud sessions unused for longer than ``idle_pause_minutes``; return their ids."""
        now = now or time.time()
        paused = []
        for session in self.ledger.sessions(("running",)):
            if session["backend"] != "local" and now - session["last_used_at"] > self.config.idle_pause_minutes * 60:
                try:
                    self.pause(session)
                    paused.append(session["id"])
                except SandboxError:
                    continue
        return paused

    def release(self, session: dict) -> None:
        """A run is done with the session: bill its time; a cloud session that is not pooled is paused."""
        session = self.ledger.session(session["id"])
        if session["status"] != "running":
            return
        if session["backend"] != "local" and not session["pooled"]:
            self.pause(session)
        else:
            self._bill(session)
            self.ledger.update_session(session["id"], active_since=time.time(), run_id=None)

    # ------------------------------------------------------------ actions

    def exec(self, session: dict, command: str, timeout_s: float | None = None, context: Context = CLI) -> CommandResult | str:
        """Run a command, or say why the policy refuses it (the refusal is audited too)."""
        why = refusal(self.config, command)
        if why is not None:
            self.ledger.record(session["id"], "bash", self.redact(command) or "", False, output=why, context=context.columns())
            return why
        try:
            return self._run(self._ready(session, context), "bash", command, timeout_s or self.config.limits.timeout_s, context)
        except Lost:
            return self._lost(session, context)

    def edit(self, session: dict, action: str, path: str, context: Context = CLI, **arguments: Any) -> str:
        """view | create | str_replace | insert a file; a refusal comes back as the text the agent reads."""
        session = self._ready(session, context)
        backend = self.backend(session["backend"])
        started = time.monotonic()
        try:
            if action == "view":
                text, ok = backend.view(session, path, arguments.get("view_range")), True
            elif action == "create":
                text, ok = backend.create_file(session, path, arguments["file_text"]), True
            elif action == "str_replace":
                text, ok = backend.str_replace(session, path, arguments["old_str"], arguments.get("new_str", "")), True
            elif action == "insert":
                text, ok = backend.insert(session, path, arguments["insert_line"], arguments["text"]), True
            else:
                raise UsageError(f"unknown file action '{action}'.")
        except Refused as exc:
            text, ok = f"refused: {exc}", False
        except Lost:
            return self._lost(session, context)
        text = self.redact(text) or ""
        kept = text if action != "view" else None  # a view's content is the file, which the audit need not copy
        self.ledger.record(
            session["id"], action, path, ok, exit_code=0 if ok else 1, duration_ms=(time.monotonic() - started) * 1000, output=kept, context=context.columns()
        )
        return text

    def act(self, session: dict, action: str, target: str, context: Context = CLI, **arguments: Any) -> str:
        """A backend-specific action (browser navigate, a kind's saved log-ins), audited like the rest."""
        return self._perform(session, action, action, target, context, lambda method, ready: (method(ready, **arguments), None))[0]

    def screen(self, session: dict, action: str, target: str, context: Context = CLI, via: str = "computer", **params: Any) -> tuple[str, Shot | None]:
        """An action on the session's screen (``via`` computer: Scrapybara's mouse, keyboard and screenshots) or in its
        browser (``via`` browse: the local Chromium), audited with the screenshot it took (its bytes and thumbnail);
        what it said, and the shot kept for the model."""
        audited = "computer" if via == "computer" else "browser"
        return self._perform(session, via, audited, target, context, lambda method, ready: method(ready, action, **params))

    def _perform(self, session: dict, name: str, audited: str, target: str, context: Context, call: Any) -> tuple[str, Shot | None]:
        """``call(method, session)`` of the backend's method ``name``, which gives what it said and an image (or None);
        redacted, the image kept as a screenshot, and audited as ``audited`` on ``target``."""
        from mamabear.sandbox.screens import keep

        session = self._ready(session, context)
        method = getattr(self.backend(session["backend"]), name, None)
        if method is None:
            return f"{name} is not available on the {session['backend']} sandbox.", None
        started = time.monotonic()
        try:
            said, image = call(method, session)
        except Lost:
            return self._lost(session, context), None
        shot = keep(self.settings.home / "sandboxes" / session["id"] / "screenshots", image, self.config.screen.width) if image else None
        said = self.redact(said) or ""
        self.ledger.record(
            session["id"],
            audited,
            target,
            True,
            exit_code=0,
            duration_ms=(time.monotonic() - started) * 1000,
            output=said,
            context=context.columns(),
            image_bytes=shot.bytes if shot else None,
            thumbnail=str(shot.thumbnail) if shot else None,
        )
        return said, shot

    def stream_url(self, session: dict) -> str:
        """The live view of a cloud session's screen (resumed first, if paused)."""
        method = getattr(self.backend(session["backend"]), "stream_url", None)
        if method is None:
            raise UsageError(f"session {session['id']} is a {session['backend']} session; only a Scrapybara session has a live view.")
        return method(self._ready(session, CLI))

    def _run(self, session: dict, action: str, command: str, timeout_s: float, context: Context) -> CommandResult:
        result = self.backend(session["backend"]).bash(session, command, timeout_s)
        result.output = self.redact(result.output) or ""
        self.ledger.record(session["id"], action, self.redact(command) or "", True, result.exit_code, result.duration_ms, result.output, context.columns())
        return result

    def _lost(self, session: dict, context: Context) -> str:
        """The computer vanished under a command: replace it and tell the agent (the command is not repeated)."""
        replaced = self.replace(self.ledger.session(session["id"]), context)
        return (
            f"the sandbox computer was lost and has been replaced ({replaced['error'].split('; ', 1)[-1]}); "
            "nothing since then was kept, so run the step again if it is still needed."
        )

    def _ready(self, session: dict, context: Context) -> dict:
        session = self.ledger.session(session["id"])
        if session["status"] != "running":
            return self.resume(session, context)
        return session

    def _live(self, session: dict) -> None:
        if session["status"] not in LIVE:
            raise UsageError(f"sandbox session {session['id']} is {session['status']}; start a new one with `mamabear sandbox start`.")

    def _bill(self, session: dict) -> None:
        session = self.ledger.session(session["id"])
        if session["active_since"] is None:
            return
        seconds = max(0.0, time.time() - session["active_since"])
        price = self.config.scrapybara.usd_per_hour if session["backend"] == "scrapybara" else 0.0
        self.ledger.bill(session["id"], session["run_id"], seconds, price)
        self.ledger.update_session(session["id"], active_since=None, active_seconds=session["active_seconds"] + seconds)
