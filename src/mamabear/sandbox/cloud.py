"""The scrapybara backend: a Scrapybara cloud instance per session, through the ``scrapybara`` SDK.

Commands run in the instance's persistent shell; file edits go through its edit tool;
the browser is driven with computer actions. The workspace is saved (tar, read back in
base64) after each task and before a pause or stop, so a lost instance is replaced by
a new one with the last saved workspace uploaded. ``SCRAPYBARA_BASE_URL`` points the SDK
at another server (tests use a scripted one).
"""

from __future__ import annotations

import base64
import os
import posixpath
import time
from collections.abc import Callable
from functools import partial
from pathlib import Path
from typing import Any, TypeVar

from mamabear.config.settings import Settings
from mamabear.sandbox.backend import CommandResult, Lost, Refused, SandboxError, cap_text
from mamabear.sandbox.config import SandboxConfig

T = TypeVar("T")
_EXIT = "__MB_EXIT="
_TRANSIENT = {408, 409, 429, 500, 502, 503, 504}
TRIES = 3
SAVE_LIMIT = 100 * 1024 * 1024  # a workspace larger than this is not copied back


class CloudBackend:
    name = "scrapybara"

    def __init__(self, settings: Settings, config: SandboxConfig, backoff_s: float = 1.0) -> None:
        key = settings.env.get("SCRAPYBARA_API_KEY")
        if not key:
            raise SandboxError("the scrapybara sandbox needs SCRAPYBARA_API_KEY; set it, or use --sandbox local.")
        from scrapybara import Scrapybara

        self.client = Scrapybara(api_key=key, base_url=settings.env.get("SCRAPYBARA_BASE_URL") or None, timeout=60)
        self.options, self.limits = config.scrapybara, config.limits
        self.home = settings.home / "sandboxes"
        self.backoff_s = backoff_s

    # ------------------------------------------------------------ calls

    def _call(self, what: str, fn: Callable[[], T]) -> T:
        """One SDK call, retried on transient faults, its errors turned into one sentence."""
        import httpx
        import pydantic
        import tenacity
        from scrapybara.core.api_error import ApiError

        def transient(exc: BaseException) -> bool:
            return isinstance(exc, httpx.HTTPError) or (isinstance(exc, ApiError) and exc.status_code in _TRANSIENT)

        retrying = tenacity.Retrying(
            retry=tenacity.retry_if_exception(transient),
            stop=tenacity.stop_after_attempt(TRIES),
            wait=tenacity.wait_exponential(multiplier=self.backoff_s, min=0, max=60),
            reraise=True,
        )
        try:
            return retrying(fn)
        except ApiError as exc:
            status, detail = exc.status_code, _detail(exc.body)
            if status in (401, 403):
                raise SandboxError(f"Scrapybara refused the API key ({detail}); check SCRAPYBARA_API_KEY.") from exc
            if status == 404:
                raise Lost(f"the Scrapybara instance is gone ({detail}).") from exc
            raise SandboxError(f"Scrapybara could not {what} (HTTP {status}: {detail}).") from exc
        except pydantic.ValidationError as exc:  # the SDK could not parse the reply (e.g. a 422 of another shape)
            raise SandboxError(f"Scrapybara gave an unexpected reply when asked to {what}; see `mamabear --debug`.") from exc
        except httpx.HTTPError as exc:
            raise SandboxError(f"cannot reach Scrapybara to {what} ({type(exc).__name__}: {exc}); check your network.") from exc

    def _instance(self, session: dict) -> Any:
        from mamabear.compat.scrapybara import instance

        return instance(self.client, session["remote_id"])

    def interrupt(self) -> None:
        """A cloud command ends with its own timeout on the instance; nothing runs here to stop."""

    # ------------------------------------------------------------ life cycle

    def caveat(self, session: dict) -> str | None:
        return None  # a VM of its own; its network is Scrapybara's

    def create(self, session_id: str, network: bool = True, host_ports: tuple[int, ...] = ()) -> tuple[str | None, str]:
        opts = self.options
        instance = self._call(
            "start an instance", lambda: self.client.start_ubuntu(timeout_hours=opts.timeout_hours, blocked_domains=list(opts.blocked_domains))
        )
        workdir = opts.workdir
        self._call("prepare the workspace", lambda: instance.bash(command=f"mkdir -p {workdir} && cd {workdir}"))
        return instance.id, workdir

    def pause(self, session: dict) -> None:
        self._call("pause the instance", lambda: self._instance(session).pause())

    def resume(self, session: dict) -> None:
        self._call("resume the instance", lambda: self._instance(session).resume(timeout_hours=self.options.timeout_hours))

    def stop(self, session: dict) -> None:
        self._call("stop the instance", lambda: self._instance(session).stop())

    def alive(self, session: dict) -> str:
        status = self._call("look up the instance", lambda: self.client.get(session["remote_id"])).status
        return {"running": "running", "paused": "paused"}.get(str(status), "lost")

    # ------------------------------------------------------------ commands and files

    def bash(self, session: dict, command: str, timeout_s: float) -> CommandResult:
        instance = self._instance(session)
        started = time.monotonic()
        response = self._call(
            "run a command",
            lambda: instance.bash(
                command=f"{command}\n__mb=$?; echo; echo {_EXIT}$__mb", timeout=timeout_s, request_options={"timeout_in_seconds": int(timeout_s) + 60}
            ),
        )
        output = getattr(response, "output", None) or ""
        error = getattr(response, "error", None) or ""
        code: int | None = None
        head, marker, tail = output.rpartition(_EXIT)
        if marker:
            output, code = head.rstrip("\n"), int(tail.strip() or 0)
        text = "\n".join(part for part in (output, error) if part)
        timed_out = code is None and "timed out" in error
        note = "the command ended the shell, so its exit code is unknown" if code is None and not timed_out else ""
        return CommandResult(cap_text(text, self.limits.output_kib * 1024), code, (time.monotonic() - started) * 1000, timed_out=timed_out, note=note)

    def _path(self, session: dict, path: str) -> str:
        return path if path.startswith("/") else f"{session['workdir'].rstrip('/')}/{path}"

    def _edit(self, session: dict, what: str, **arguments: Any) -> str:
        instance = self._instance(session)
        response = self._call(what, lambda: instance.edit(**arguments))
        if getattr(response, "error", None):
            raise Refused(response.error)
        return getattr(response, "output", None) or "done"

    def view(self, session: dict, path: str, view_range: list[int] | None) -> str:
        extra = {"view_range": view_range} if view_range else {}
        return self._edit(session, "view a file", command="view", path=self._path(session, path), **extra)

    def create_file(self, session: dict, path: str, text: str) -> str:
        target = self._path(session, path)
        instance = self._instance(session)
        self._call("create a file", lambda: instance.bash(command=f"mkdir -p \"$(dirname '{target}')\""))
        self._call("create a file", lambda: instance.file(command="write", path=target, content=text, encoding="utf-8"))
        return f"wrote {path} ({len(text.encode())} bytes)"

    def str_replace(self, session: dict, path: str, old: str, new: str) -> str:
        return self._edit(session, "edit a file", command="str_replace", path=self._path(session, path), old_str=old, new_str=new)

    def insert(self, session: dict, path: str, line: int, text: str) -> str:
        return self._edit(session, "edit a file", command="insert", path=self._path(session, path), insert_line=line, new_str=text)

    # ------------------------------------------------------------ browser

    def navigate(self, session: dict, url: str) -> str:
        instance = self._instance(session)
        self._call("start the browser", lambda: instance.browser.start())
        for action in ({"action": "press_key", "keys": ["ctrl", "l"]}, {"action": "type_text", "text": url}, {"action": "press_key", "keys": ["Return"]}):
            self._call("drive the browser", partial(instance.computer, **action, screenshot=False))
        current = self._call("read the browser's address", lambda: instance.browser.get_current_url())
        return f"the browser is at {getattr(current, 'current_url', url)}"

    def computer(self, session: dict, action: str, **params: Any) -> tuple[str, bytes | None]:
        """One of the instance's own computer actions (scrapybara's ``computer``): what it said, with the cursor's
        position, and the screenshot it took (PNG bytes), if any."""
        instance = self._instance(session)
        response = self._call(action.replace("_", " "), partial(instance.computer, action=action, **params))
        if getattr(response, "error", None):
            return f"the computer said: {response.error}", None
        cursor = self._call("read the cursor", partial(instance.computer, action="get_cursor_position"))
        said = " ".join(x for x in (getattr(response, "output", None), f"cursor at {getattr(cursor, 'output', None) or 'unknown'}") if x)
        image = getattr(response, "base_64_image", None)
        return said, base64.b64decode(image) if image else None

    def authenticate(self, session: dict, auth_state: str) -> str:
        """The browser started with a saved auth state's log-ins."""
        instance = self._instance(session)
        self._call("start the browser", lambda: instance.browser.start())
        self._call("apply the saved browser log-ins", lambda: instance.browser.authenticate(auth_state_id=auth_state))
        return f"the browser is logged in with auth state {auth_state}"

    def save_auth(self, session: dict, name: str | None) -> str:
        instance = self._instance(session)
        self._call("start the browser", lambda: instance.browser.start())
        response = self._call("save the browser's log-ins", lambda: instance.browser.save_auth(name=name))
        return str(response.auth_state_id)

    def stream_url(self, session: dict) -> str:
        response = self._call("give the live view", lambda: self._instance(session).get_stream_url())
        return str(getattr(response, "stream_url", ""))

    # ------------------------------------------------------------ saved workspace

    def _saved(self, session: dict) -> Path:
        return self.home / session["id"] / "workspace.tar.gz"

    def save(self, session: dict) -> None:
        instance, work = self._instance(session), session["workdir"]
        archive = _beside(work, ".mamabear-workspace.tar.gz")
        self._call("save the workspace", lambda: instance.bash(command=f"tar czf {archive} -C {work} . 2>/dev/null; true"))
        response = self._call("save the workspace", lambda: instance.file(command="read", path=archive, encoding="base64"))
        data = base64.b64decode(getattr(response, "output", None) or "")
        if not data or len(data) > SAVE_LIMIT:
            return
        target = self._saved(session)
        target.parent.mkdir(parents=True, exist_ok=True)
        partial = target.with_suffix(".part")
        partial.write_bytes(data)
        os.replace(partial, target)

    def restore(self, session: dict) -> str:
        saved = self._saved(session)
        if not saved.is_file():
            return "no saved workspace to restore"
        instance, work = self._instance(session), session["workdir"]
        archive = _beside(work, ".mamabear-restore.tar.gz")
        self._call("restore the workspace", lambda: instance.upload(file=saved.read_bytes(), path=archive))
        self._call("restore the workspace", lambda: instance.bash(command=f"mkdir -p {work} && tar xzf {archive} -C {work} && cd {work}"))
        saved_at = time.strftime("%Y-%m-%d %H:%M:%S", time.localtime(saved.stat().st_mtime))
        return f"restored the workspace saved at {saved_at}"


def _beside(workdir: str, name: str) -> str:
    """A path next to the workspace (so it is never inside the archive of it)."""
    return posixpath.join(posixpath.dirname(workdir.rstrip("/")), name)


def _detail(body: Any) -> str:
    if isinstance(body, dict):
        body = body.get("detail", body)
    return str(body)[:200]
