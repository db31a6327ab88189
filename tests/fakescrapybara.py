"""A scripted Scrapybara cloud API on 127.0.0.1 for offline tests and benches.

It speaks enough of the real wire protocol (``/v1/start``, ``/v1/instance/{id}/...``)
that the real ``scrapybara`` SDK works against it::

    with FakeScrapybara() as fake:
        client = Scrapybara(api_key=fake.api_key, base_url=fake.url)
        instance = client.start_ubuntu(timeout_hours=0.5)
        instance.bash(command="echo hi").output  # "hi"

Instances are real directories: each one gets a root under a temporary folder,
with the nominal home ``/home/scrapybara`` at ``root/home/scrapybara``. The edit,
file and upload tools map absolute paths into that root (``/tmp/x`` becomes
``root/tmp/x``). ``bash`` really runs ``bash -c`` on the host, in the instance's
home, with the working directory and exported variables kept between calls;
``/home/scrapybara`` in the command is rewritten to the real home and back in
the output, so paths agree with the edit tool. Screenshots are a 1x1 PNG.

Every request is recorded in ``fake.requests``. ``fake.fail(...)`` injects HTTP
errors (with headers, a delay, or a dropped connection), ``fake.lose(id)`` makes
an instance vanish (404), ``fake.expire(id)`` terminates it as a timeout would.
Tool-level failures (missing file, ambiguous ``old_str``) come back as HTTP 200
with ``error`` set; calls on a paused or terminated instance get a 400 with a
JSON ``detail``; a wrong ``x-api-key`` gets a 401 ``{"detail": "Invalid API key"}``.
"""

from __future__ import annotations

import base64
import datetime as dt
import email.parser
import email.policy
import json
import os
import re
import shlex
import shutil
import signal
import struct
import subprocess
import tempfile
import threading
import time
import urllib.parse
import uuid
import zlib
from dataclasses import dataclass, field
from http.server import BaseHTTPRequestHandler
from pathlib import Path, PurePosixPath
from typing import Any

from loopback import JsonHandler, LoopbackServer

NOMINAL_HOME = "/home/scrapybara"
INSTANCE_TYPES = ("ubuntu", "browser", "windows")
SNIPPET_LINES = 4
ENTER_KEYS = {"return", "enter", "kp_enter"}


def _png_1x1() -> bytes:
    def chunk(kind: bytes, data: bytes) -> bytes:
        return struct.pack(">I", len(data)) + kind + data + struct.pack(">I", zlib.crc32(kind + data) & 0xFFFFFFFF)

    header = struct.pack(">IIBBBBB", 1, 1, 8, 2, 0, 0, 0)  # 1x1, 8-bit RGB
    pixels = zlib.compress(b"\x00\xff\xff\xff")
    return b"\x89PNG\r\n\x1a\n" + chunk(b"IHDR", header) + chunk(b"IDAT", pixels) + chunk(b"IEND", b"")


PNG_1X1 = _png_1x1()
PNG_B64 = base64.b64encode(PNG_1X1).decode()


class HttpError(Exception):
    """Ends a request with ``status`` and ``{"detail": detail}``."""

    def __init__(self, status: int, detail: Any) -> None:
        super().__init__(detail)
        self.status, self.detail = status, detail


class ToolError(Exception):
    """A tool-level failure: HTTP 200 with the message in ``error``."""


@dataclass
class Rule:
    path_contains: str
    status: int
    times: int | None = 1  # None: unlimited
    body: dict[str, Any] | None = None
    headers: dict[str, str] = field(default_factory=dict)
    delay: float = 0.0
    drop: bool = False
    method: str | None = None  # None matches all
    used: int = 0

    def matches(self, method: str, path: str) -> bool:
        if self.times is not None and self.used >= self.times:
            return False
        return self.path_contains in path and (self.method is None or self.method.upper() == method)


@dataclass
class Session:
    """One persistent bash session: its working directory and exported variables live in files."""

    cwd: Path
    env_file: Path
    lock: threading.Lock = field(default_factory=threading.Lock)


@dataclass
class Instance:
    id: str
    instance_type: str
    root: Path  # the instance's "/"
    state_dir: Path  # bash session files, outside the instance's filesystem
    timeout_hours: float = 1.0
    blocked_domains: list[str] = field(default_factory=list)
    resolution: list[int] | None = None
    status: str = "running"
    launch_time: dt.datetime = field(default_factory=lambda: dt.datetime.now(dt.timezone.utc))
    expires_at: float = 0.0
    sessions: dict[int, Session] = field(default_factory=dict)
    pgids: set[int] = field(default_factory=set)  # process groups of bash runs, killed on stop
    browser_started: bool = False
    authenticated_with: str | None = None  # the auth state applied to its browser
    current_url: str = "about:blank"
    typed: str = ""
    cursor: tuple[int, int] = (0, 0)
    actions: list[dict[str, Any]] = field(default_factory=list)  # computer actions, in order
    history: dict[str, list[str]] = field(default_factory=dict)  # edit undo stacks by nominal path

    @property
    def home(self) -> Path:
        return self.root / NOMINAL_HOME.lstrip("/")

    def info(self) -> dict[str, Any]:
        return {
            "id": self.id,
            "launch_time": self.launch_time.isoformat().replace("+00:00", "Z"),
            "instance_type": self.instance_type,
            "status": self.status,
            "resolution": self.resolution,
        }


def tool_result(output: str | None = None, error: str | None = None, image: str | None = None) -> dict[str, Any]:
    """The shape of BashResponse / EditResponse / FileResponse / ComputerResponse."""
    return {"output": output, "error": error, "base64_image": image, "system": None}


def default_error_body(status: int) -> dict[str, Any]:
    if status == 422:  # the SDK parses 422 bodies as HttpValidationError: detail must be a list
        return {"detail": [{"loc": ["body"], "msg": "scripted error 422", "type": "value_error"}]}
    return {"detail": f"scripted error {status}"}


def validation_error(field_name: str, msg: str) -> HttpError:
    return HttpError(422, [{"loc": ["body", field_name], "msg": msg, "type": "value_error"}])


# ---------------------------------------------------------------- paths


def real_path(inst: Instance, path: str) -> Path:
    """Map an instance path (absolute, or relative to the home) to the host path under the instance's root."""
    nominal = PurePosixPath(path if path.startswith("/") else f"{NOMINAL_HOME}/{path}")
    real = Path(os.path.normpath(inst.root / str(nominal).lstrip("/")))
    if real != inst.root and inst.root not in real.parents:
        raise ToolError(f"The path {path} is outside the instance's filesystem.")
    return real


def nominal_path(inst: Instance, real: Path) -> str:
    return "/" + str(Path(real).relative_to(inst.root)).lstrip(".")


def numbered(text: str, path: str, first_line: int = 1) -> str:
    lines = text.split("\n")
    body = "\n".join(f"{i + first_line:6}\t{line}" for i, line in enumerate(lines))
    return f"Here's the result of running `cat -n` on {path}:\n{body}\n"


# ---------------------------------------------------------------- bash


def bash_script(command: str, session: Session) -> str:
    env_file, cwd_file = shlex.quote(str(session.env_file)), shlex.quote(str(session.env_file.with_suffix(".cwd")))
    return (
        f"source {env_file} >/dev/null 2>&1\n"
        f'cd {shlex.quote(str(session.cwd))} 2>/dev/null || cd "$HOME"\n'
        f"trap 'pwd > {cwd_file}; export -p > {env_file}' EXIT\n"
        f"{command}\n"
    )


def run_bash(inst: Instance, session: Session, command: str, timeout: float, env: dict[str, str], map_home: bool = True) -> dict[str, Any]:
    """Run ``command`` in the session's shell state; stdout and stderr lose one trailing newline, like the real tool."""
    home = str(inst.home)
    if map_home:
        command = command.replace(NOMINAL_HOME, home)
    out_file, err_file = session.env_file.with_suffix(".out"), session.env_file.with_suffix(".err")
    with open(out_file, "wb") as out, open(err_file, "wb") as err:  # files, not pipes: `cmd &` must not block
        proc = subprocess.Popen(
            ["bash", "-c", bash_script(command, session)],
            cwd=home,
            env={**env, "HOME": home},
            stdin=subprocess.DEVNULL,
            stdout=out,
            stderr=err,
            start_new_session=True,
        )
        inst.pgids.add(proc.pid)
        try:
            proc.wait(timeout=timeout)
            timed_out = False
        except subprocess.TimeoutExpired:
            _kill_group(proc.pid)
            proc.wait()
            timed_out = True
    if not _group_alive(proc.pid):  # keep only groups with background processes left, to kill on stop
        inst.pgids.discard(proc.pid)
    output = out_file.read_text(errors="replace").removesuffix("\n")
    error = err_file.read_text(errors="replace").removesuffix("\n")
    if map_home:
        output, error = output.replace(home, NOMINAL_HOME), error.replace(home, NOMINAL_HOME)
    if timed_out:
        error = f"{error}\ntimed out: bash has not returned in {timeout:g} seconds and must be restarted".lstrip("\n")
    else:
        cwd_file = session.env_file.with_suffix(".cwd")
        if cwd_file.exists() and cwd_file.read_text().strip():
            session.cwd = Path(cwd_file.read_text().strip())
    return tool_result(output, error or None)


def _group_alive(pgid: int) -> bool:
    try:
        os.killpg(pgid, 0)
        return True
    except (ProcessLookupError, PermissionError):
        return False


def _kill_group(pgid: int) -> None:
    try:
        os.killpg(pgid, signal.SIGKILL)
    except (ProcessLookupError, PermissionError):
        pass


# ---------------------------------------------------------------- edit (str_replace_editor semantics)


def edit_tool(inst: Instance, body: dict[str, Any]) -> str:
    command, path = body.get("command"), body.get("path") or ""
    if not path.startswith("/"):
        raise ToolError(f"The path {path} is not an absolute path, it should start with `/`. Maybe you meant {NOMINAL_HOME}/{path}?")
    real = real_path(inst, path)
    if command != "create" and not real.exists():
        raise ToolError(f"The path {path} does not exist. Please provide a valid path.")
    if command != "view" and real.is_dir():
        raise ToolError(f"The path {path} is a directory and only the `view` command can be used on directories")
    handlers = {"view": _edit_view, "create": _edit_create, "str_replace": _edit_replace, "insert": _edit_insert, "undo_edit": _edit_undo}
    if command not in handlers:
        raise ToolError(f"Unrecognized command {command}. The allowed commands are: {', '.join(handlers)}")
    return handlers[command](inst, path, real, body)


def _edit_view(inst: Instance, path: str, real: Path, body: dict[str, Any]) -> str:
    view_range = body.get("view_range")
    if real.is_dir():
        if view_range:
            raise ToolError("The `view_range` parameter is not allowed when `path` points to a directory.")
        found = [
            p for p in sorted(real.rglob("*")) if len(p.relative_to(real).parts) <= 2 and not any(part.startswith(".") for part in p.relative_to(real).parts)
        ]
        listing = "\n".join([path, *(nominal_path(inst, p) for p in found)])
        return f"Here's the files and directories up to 2 levels deep in {path}, excluding hidden items:\n{listing}\n"
    text = real.read_text(errors="replace")
    if not view_range:
        return numbered(text, path)
    lines = text.split("\n")
    if len(view_range) != 2 or not all(isinstance(i, int) for i in view_range):
        raise ToolError("Invalid `view_range`. It should be a list of two integers.")
    start, end = view_range
    if not 1 <= start <= len(lines):
        raise ToolError(f"Invalid `view_range`: {view_range}. Its first element `{start}` should be within the range of lines of the file: [1, {len(lines)}]")
    if end != -1 and not start <= end <= len(lines):
        raise ToolError(f"Invalid `view_range`: {view_range}. Its second element `{end}` should be -1 or within [{start}, {len(lines)}]")
    return numbered("\n".join(lines[start - 1 :] if end == -1 else lines[start - 1 : end]), path, start)


def _edit_create(inst: Instance, path: str, real: Path, body: dict[str, Any]) -> str:
    if body.get("file_text") is None:
        raise ToolError("Parameter `file_text` is required for command: create")
    if real.exists():
        raise ToolError(f"File already exists at: {path}. Cannot overwrite files using command `create`.")
    real.parent.mkdir(parents=True, exist_ok=True)
    real.write_text(body["file_text"])
    inst.history.setdefault(path, [])
    return f"File created successfully at: {path}"


def _edit_replace(inst: Instance, path: str, real: Path, body: dict[str, Any]) -> str:
    old, new = body.get("old_str"), body.get("new_str") or ""
    if old is None:
        raise ToolError("Parameter `old_str` is required for command: str_replace")
    text = real.read_text()
    count = text.count(old)
    if count == 0:
        raise ToolError(f"No replacement was performed, old_str `{old}` did not appear verbatim in {path}.")
    if count > 1:
        lines = [i + 1 for i, line in enumerate(text.split("\n")) if old in line]
        raise ToolError(f"No replacement was performed. Multiple occurrences of old_str `{old}` in lines {lines}. Please ensure it is unique")
    inst.history.setdefault(path, []).append(text)
    new_text = text.replace(old, new)
    real.write_text(new_text)
    changed_line = text.split(old)[0].count("\n")
    snippet = _snippet(new_text, changed_line, new.count("\n"), path)
    return f"The file {path} has been edited. {snippet}Review the changes and make sure they are as expected. Edit the file again if necessary."


def _edit_insert(inst: Instance, path: str, real: Path, body: dict[str, Any]) -> str:
    line, new = body.get("insert_line"), body.get("new_str")
    if line is None or new is None:
        raise ToolError("Parameters `insert_line` and `new_str` are required for command: insert")
    text = real.read_text()
    lines = text.split("\n")
    if not 0 <= line <= len(lines):
        raise ToolError(f"Invalid `insert_line` parameter: {line}. It should be within the range of lines of the file: [0, {len(lines)}]")
    inst.history.setdefault(path, []).append(text)
    new_text = "\n".join(lines[:line] + new.split("\n") + lines[line:])
    real.write_text(new_text)
    snippet = _snippet(new_text, line, new.count("\n") + 1, path)
    return (
        f"The file {path} has been edited. {snippet}Review the changes and make sure they are as expected "
        "(correct indentation, no duplicate lines, etc). Edit the file again if necessary."
    )


def _edit_undo(inst: Instance, path: str, real: Path, body: dict[str, Any]) -> str:
    if not inst.history.get(path):
        raise ToolError(f"No edit history found for {path}.")
    previous = inst.history[path].pop()
    real.write_text(previous)
    return f"Last edit to {path} undone successfully. {numbered(previous, path)}"


def _snippet(text: str, first_changed: int, changed: int, path: str) -> str:
    lines = text.split("\n")
    start = max(0, first_changed - SNIPPET_LINES)
    end = first_changed + changed + SNIPPET_LINES + 1
    return numbered("\n".join(lines[start:end]), f"a snippet of {path}", start + 1)


# ---------------------------------------------------------------- file


def file_tool(inst: Instance, body: dict[str, Any]) -> str:
    command = body.get("command")
    handlers = {
        "read": _file_read,
        "write": _file_write,
        "append": _file_write,
        "exists": _file_exists,
        "list": _file_list,
        "mkdir": _file_mkdir,
        "delete": _file_delete,
        "move": _file_move,
        "copy": _file_move,
    }
    if command not in handlers:
        raise HttpError(400, f"fakescrapybara: file command {command!r} is not implemented (have: {', '.join(handlers)})")
    return handlers[command](inst, body)


def _need(body: dict[str, Any], name: str) -> Any:
    if body.get(name) is None:
        raise ToolError(f"Parameter `{name}` is required for command: {body.get('command')}")
    return body[name]


def _encoding(body: dict[str, Any]) -> str:
    encoding = body.get("encoding") or "utf-8"
    if encoding not in ("utf-8", "base64"):
        raise ToolError(f"Unsupported encoding: {encoding}. Use 'utf-8' or 'base64'.")
    return encoding


def _file_read(inst: Instance, body: dict[str, Any]) -> str:
    path = _need(body, "path")
    real = real_path(inst, path)
    if not real.is_file():
        raise ToolError(f"File not found: {path}")
    data = real.read_bytes()
    return base64.b64encode(data).decode() if _encoding(body) == "base64" else data.decode(errors="replace")


def _file_write(inst: Instance, body: dict[str, Any]) -> str:
    path, content = _need(body, "path"), _need(body, "content")
    real = real_path(inst, path)
    data = base64.b64decode(content) if _encoding(body) == "base64" else content.encode()
    real.parent.mkdir(parents=True, exist_ok=True)
    with open(real, "ab" if body["command"] == "append" else "wb") as f:
        f.write(data)
    if body.get("mode"):
        real.chmod(int(str(body["mode"]), 8))
    verb = "appended to" if body["command"] == "append" else "written to"
    return f"{len(data)} bytes {verb} {path}"


def _file_exists(inst: Instance, body: dict[str, Any]) -> str:
    return "true" if real_path(inst, _need(body, "path")).exists() else "false"


def _file_list(inst: Instance, body: dict[str, Any]) -> str:
    path = _need(body, "path")
    real = real_path(inst, path)
    if not real.is_dir():
        raise ToolError(f"Directory not found: {path}")
    return "\n".join(p.name + ("/" if p.is_dir() else "") for p in sorted(real.iterdir()))


def _file_mkdir(inst: Instance, body: dict[str, Any]) -> str:
    path = _need(body, "path")
    real_path(inst, path).mkdir(parents=True, exist_ok=True)
    return f"Directory created: {path}"


def _file_delete(inst: Instance, body: dict[str, Any]) -> str:
    path = _need(body, "path")
    real = real_path(inst, path)
    if not real.exists():
        raise ToolError(f"Path not found: {path}")
    if real.is_dir():
        if any(real.iterdir()) and not body.get("recursive"):
            raise ToolError(f"Directory not empty: {path} (pass recursive=True)")
        shutil.rmtree(real)
    else:
        real.unlink()
    return f"Deleted: {path}"


def _file_move(inst: Instance, body: dict[str, Any]) -> str:
    src, dst = _need(body, "src"), _need(body, "dst")
    real_src, real_dst = real_path(inst, src), real_path(inst, dst)
    if not real_src.exists():
        raise ToolError(f"Path not found: {src}")
    real_dst.parent.mkdir(parents=True, exist_ok=True)
    if body["command"] == "move":
        shutil.move(real_src, real_dst)
    elif real_src.is_dir():
        shutil.copytree(real_src, real_dst)
    else:
        shutil.copy2(real_src, real_dst)
    return f"{'Moved' if body['command'] == 'move' else 'Copied'} {src} to {dst}"


# ---------------------------------------------------------------- multipart


def parse_multipart(content_type: str, data: bytes) -> tuple[dict[str, str], dict[str, dict[str, Any]]]:
    """(form fields, files by field name: {"filename", "content_type", "data"})."""
    message = email.parser.BytesParser(policy=email.policy.HTTP).parsebytes(f"Content-Type: {content_type}\r\nMIME-Version: 1.0\r\n\r\n".encode() + data)
    fields: dict[str, str] = {}
    files: dict[str, dict[str, Any]] = {}
    for part in message.iter_parts() if message.is_multipart() else []:
        name = part.get_param("name", header="content-disposition")
        payload = part.get_payload(decode=True) or b""
        if part.get_filename() is not None or part.get_content_type() != "text/plain":
            files[str(name)] = {"filename": part.get_filename(), "content_type": part.get_content_type(), "data": payload}
        else:
            fields[str(name)] = payload.decode(errors="replace")
    return fields, files


# ---------------------------------------------------------------- the server


class FakeScrapybara(LoopbackServer):
    def __init__(self, api_key: str | None = "sb-test-key", root: str | Path | None = None, bash_timeout: float = 120.0) -> None:
        self.api_key = api_key  # None: accept any key
        self.bash_timeout = bash_timeout  # used when a bash request has no timeout
        self.inactive_status = 400  # status for tool calls on paused / terminated instances
        self.screen_b64 = PNG_B64  # what a screenshot shows: a 1x1 PNG unless a test gives a screen of its own
        self.auth_states: dict[str, dict[str, Any]] = {}  # saved browser log-ins (browser/save_auth)
        self.map_home_in_bash = True
        self.env: dict[str, str] = {
            "PATH": os.environ.get("PATH", "/usr/bin:/bin"),
            "LANG": "C.UTF-8",
            "TERM": "dumb",
            "USER": "scrapybara",
            "SHELL": "/bin/bash",
        }
        self.instances: dict[str, Instance] = {}
        self.lost: dict[str, Instance] = {}
        self.rules: list[Rule] = []
        self.requests: list[dict[str, Any]] = []
        self._own_root = root is None
        self.root = Path(root if root is not None else tempfile.mkdtemp(prefix="fakescrapybara-")).resolve()
        self._lock = threading.Lock()
        super().__init__(_handler_for(self))

    @property
    def url(self) -> str:
        return self.origin

    def stop(self) -> None:
        super().stop()
        for inst in [*self.instances.values(), *self.lost.values()]:
            _kill_groups(inst)
        if self._own_root:
            shutil.rmtree(self.root, ignore_errors=True)

    # -- scripting

    def fail(self, path_contains: str, status: int, times: int | None = 1, body: dict[str, Any] | None = None, **kwargs: Any) -> Rule:
        """Answer matching requests with ``status``; kwargs: headers (e.g. Retry-After), delay, drop, method."""
        rule = Rule(path_contains, status, times, body, **kwargs)
        with self._lock:
            self.rules.append(rule)
        return rule

    def lose(self, instance_id: str) -> None:
        """The instance disappears: every later call about it gets a 404."""
        with self._lock:
            inst = self.instances.pop(instance_id)
            self.lost[instance_id] = inst
        _kill_groups(inst)

    def expire(self, instance_id: str) -> None:
        """Terminate the instance as if its timeout_hours ran out."""
        self._terminate(self.instances[instance_id])

    def reset(self) -> None:
        with self._lock:
            self.rules.clear()
            self.requests.clear()
            self.screen_b64 = PNG_B64

    # -- inspection

    def home(self, instance_id: str) -> Path:
        return self._any(instance_id).home

    def real_path(self, instance_id: str, path: str) -> Path:
        return real_path(self._any(instance_id), path)

    def nominal_path(self, instance_id: str, real: str | Path) -> str:
        return nominal_path(self._any(instance_id), Path(real))

    def requests_to(self, path_contains: str) -> list[dict[str, Any]]:
        return [r for r in self.requests if path_contains in r["path"]]

    def _any(self, instance_id: str) -> Instance:
        return self.instances.get(instance_id) or self.lost[instance_id]

    # -- instance life cycle (called by the handler)

    def _create(self, body: dict[str, Any]) -> Instance:
        kind = body.get("instance_type") or "ubuntu"
        if kind not in INSTANCE_TYPES:
            raise validation_error("instance_type", f"Input should be {', '.join(map(repr, INSTANCE_TYPES))}")
        hours = body.get("timeout_hours")
        hours = 1.0 if hours is None else hours
        if not isinstance(hours, (int, float)) or hours <= 0:
            raise validation_error("timeout_hours", "Input should be greater than 0")
        instance_id = f"s-{uuid.uuid4().hex[:8]}"
        inst = Instance(
            instance_id,
            kind,
            self.root / instance_id / "root",
            self.root / instance_id / "state",
            float(hours),
            list(body.get("blocked_domains") or []),
            body.get("resolution") or [1024, 768],
        )
        inst.expires_at = time.time() + hours * 3600
        inst.browser_started = kind == "browser"
        inst.home.mkdir(parents=True)
        (inst.root / "tmp").mkdir()
        inst.state_dir.mkdir(parents=True)
        with self._lock:
            self.instances[instance_id] = inst
        return inst

    def _get(self, instance_id: str) -> Instance:
        inst = self.instances.get(instance_id)
        if inst is None:
            raise HttpError(404, f"Instance {instance_id} not found")
        if inst.status == "running" and time.time() > inst.expires_at:
            self._terminate(inst)
        return inst

    def _active(self, instance_id: str, *kinds: str) -> Instance:
        inst = self._get(instance_id)
        if inst.status != "running":
            raise HttpError(self.inactive_status, f"Instance {instance_id} is {inst.status}")
        if kinds and inst.instance_type not in kinds:
            raise HttpError(400, f"This endpoint is not available for {inst.instance_type} instances")
        return inst

    def _terminate(self, inst: Instance) -> None:
        inst.status, inst.browser_started = "terminated", False
        _kill_groups(inst)

    def _session(self, inst: Instance, number: int, restart: bool = False) -> Session:
        with self._lock:
            if restart or number not in inst.sessions:
                env_file = inst.state_dir / f"session-{number}.env"
                env_file.unlink(missing_ok=True)
                inst.sessions[number] = Session(inst.home, env_file)
            return inst.sessions[number]


def _kill_groups(inst: Instance) -> None:
    for pgid in list(inst.pgids):
        _kill_group(pgid)
    inst.pgids.clear()


# ---------------------------------------------------------------- endpoints: (method, sub-path) -> handler(fake, id, request)


def _bash(fake: FakeScrapybara, instance_id: str, req: Request) -> dict[str, Any]:
    inst, body = fake._active(instance_id, "ubuntu"), req.json
    number = int(body.get("session") or 0)
    if body.get("list_sessions"):
        return tool_result("\n".join(str(n) for n in sorted(inst.sessions)))
    if body.get("check_session") is not None:
        exists = int(body["check_session"]) in inst.sessions
        return tool_result(f"Session {body['check_session']} {'is running' if exists else 'does not exist'}")
    session = fake._session(inst, number, restart=bool(body.get("restart")))
    command = body.get("command")
    if not command:
        return tool_result("tool has been restarted.") if body.get("restart") else tool_result(error="no command provided.")
    timeout = float(body["timeout"]) if body.get("timeout") else fake.bash_timeout
    with session.lock:
        return run_bash(inst, session, command, timeout, fake.env, fake.map_home_in_bash)


def _tool(function: Any, kinds: tuple[str, ...]) -> Any:
    def handler(fake: FakeScrapybara, instance_id: str, req: Request) -> dict[str, Any]:
        inst = fake._active(instance_id, *kinds)
        try:
            return tool_result(function(inst, req.json))
        except ToolError as e:
            return tool_result(error=str(e))
        except OSError as e:
            return tool_result(error=f"{type(e).__name__}: {e.strerror or e}")

    return handler


def _upload(fake: FakeScrapybara, instance_id: str, req: Request) -> dict[str, Any]:
    inst = fake._active(instance_id, "ubuntu")
    upload, path = req.files.get("file"), req.form.get("path")
    if upload is None or not path:
        raise validation_error("file" if upload is None else "path", "Field required")
    real = real_path(inst, path)
    if path.endswith("/") or real.is_dir():
        real = real / (upload["filename"] or "upload")
    real.parent.mkdir(parents=True, exist_ok=True)
    real.write_bytes(upload["data"])
    return {"filename": upload["filename"] or real.name, "path": nominal_path(inst, real), "media_type": upload["content_type"]}


def _pause(fake: FakeScrapybara, instance_id: str, req: Request) -> dict[str, Any]:
    inst = fake._get(instance_id)
    if inst.status == "terminated":
        raise HttpError(fake.inactive_status, f"Instance {instance_id} is terminated")
    inst.status = "paused"
    return {"status": "paused"}


def _resume(fake: FakeScrapybara, instance_id: str, req: Request) -> dict[str, Any]:
    inst = fake._get(instance_id)
    if inst.status == "terminated":
        raise HttpError(fake.inactive_status, f"Instance {instance_id} is terminated")
    hours = req.query.get("timeout_hours")  # the SDK sends it as a query parameter
    if hours:
        inst.timeout_hours = float(hours)
    inst.status, inst.expires_at = "running", time.time() + inst.timeout_hours * 3600
    return inst.info()


def _stop(fake: FakeScrapybara, instance_id: str, req: Request) -> dict[str, Any]:
    fake._terminate(fake._get(instance_id))
    return {"status": "terminated"}


def _screenshot(fake: FakeScrapybara, instance_id: str, req: Request) -> dict[str, Any]:
    fake._active(instance_id)
    return {"base64_image": fake.screen_b64}


def _computer(fake: FakeScrapybara, instance_id: str, req: Request) -> dict[str, Any]:
    inst, body = fake._active(instance_id), req.json
    action = body.get("action")
    with fake._lock:
        inst.actions.append(body)
    output = None
    if action in ("move_mouse", "click_mouse", "scroll") and body.get("coordinates"):
        inst.cursor = tuple(body["coordinates"][:2])  # type: ignore[assignment]
    elif action == "drag_mouse" and body.get("path"):
        inst.cursor = tuple(body["path"][-1][:2])  # type: ignore[assignment]
    elif action == "type_text":
        _typed(inst, str(body.get("text") or ""))
    elif action == "press_key":
        _pressed(inst, [str(k) for k in body.get("keys") or []])
    elif action == "wait":
        time.sleep(min(float(body.get("duration") or 0), 1.0))
    elif action == "get_cursor_position":
        output = f"x={inst.cursor[0]}, y={inst.cursor[1]}"
    wants_image = action == "take_screenshot" or (action != "get_cursor_position" and body.get("screenshot") is not False)
    return tool_result(output, image=fake.screen_b64 if wants_image else None)


def _typed(inst: Instance, text: str) -> None:
    inst.typed += text
    if text.endswith("\n"):
        _pressed(inst, ["Return"])


def _pressed(inst: Instance, keys: list[str]) -> None:
    lowered = [k.lower() for k in keys]
    if any(k in ENTER_KEYS for k in lowered):
        candidate = inst.typed.strip()
        if candidate and not re.search(r"\s", candidate):
            inst.current_url = candidate
        inst.typed = ""
    elif any(k in ("ctrl", "control", "alt", "super") or "+" in k for k in lowered):
        inst.typed = ""  # ctrl+l, ctrl+a, ...: a fresh address bar


def _stream_url(fake: FakeScrapybara, instance_id: str, req: Request) -> dict[str, Any]:
    fake._active(instance_id)
    return {"stream_url": f"{fake.url}/stream/{instance_id}"}


def _browser_start(fake: FakeScrapybara, instance_id: str, req: Request) -> dict[str, Any]:
    inst = fake._active(instance_id, "ubuntu", "browser")
    inst.browser_started = True
    return {"cdp_url": _cdp_url(fake, inst)}


def _browser_running(fake: FakeScrapybara, instance_id: str) -> Instance:
    inst = fake._active(instance_id, "ubuntu", "browser")
    if not inst.browser_started:
        raise HttpError(400, "Browser not started. Call browser.start() first.")
    return inst


def _cdp_url(fake: FakeScrapybara, inst: Instance) -> str:
    return f"ws://{fake.url.split('://', 1)[1]}/devtools/browser/{inst.id}"


def _browser_cdp(fake: FakeScrapybara, instance_id: str, req: Request) -> dict[str, Any]:
    return {"cdp_url": _cdp_url(fake, _browser_running(fake, instance_id))}


def _browser_url(fake: FakeScrapybara, instance_id: str, req: Request) -> dict[str, Any]:
    return {"current_url": _browser_running(fake, instance_id).current_url}


def _browser_save_auth(fake: FakeScrapybara, instance_id: str, req: Request) -> dict[str, Any]:
    inst = _browser_running(fake, instance_id)
    auth_id = f"auth-{len(fake.auth_states) + 1}"
    fake.auth_states[auth_id] = {"name": req.query.get("name"), "from": inst.id}
    return {"status": "saved", "auth_state_id": auth_id, "name": req.query.get("name")}


def _browser_authenticate(fake: FakeScrapybara, instance_id: str, req: Request) -> dict[str, Any]:
    inst = _browser_running(fake, instance_id)
    auth_id = str(req.query.get("auth_state_id") or req.json.get("auth_state_id") or "")
    if auth_id not in fake.auth_states:
        raise HttpError(404, f"auth state {auth_id} not found")
    inst.authenticated_with = auth_id
    return {"status": "authenticated"}


def _browser_stop(fake: FakeScrapybara, instance_id: str, req: Request) -> dict[str, Any]:
    inst = fake._active(instance_id, "ubuntu", "browser")
    inst.browser_started = False
    return {"status": "stopped"}


INSTANCE_ROUTES: dict[tuple[str, str], Any] = {
    ("GET", ""): lambda fake, instance_id, req: fake._get(instance_id).info(),
    ("POST", "bash"): _bash,
    ("POST", "edit"): _tool(edit_tool, ("ubuntu",)),
    ("POST", "file"): _tool(file_tool, ("ubuntu",)),
    ("POST", "upload"): _upload,
    ("POST", "pause"): _pause,
    ("POST", "resume"): _resume,
    ("POST", "stop"): _stop,
    ("POST", "screenshot"): _screenshot,
    ("POST", "computer"): _computer,
    ("GET", "stream_url"): _stream_url,
    ("POST", "browser/start"): _browser_start,
    ("GET", "browser/cdp_url"): _browser_cdp,
    ("GET", "browser/current_url"): _browser_url,
    ("POST", "browser/stop"): _browser_stop,
    ("POST", "browser/save_auth"): _browser_save_auth,
    ("POST", "browser/authenticate"): _browser_authenticate,
}


@dataclass
class Request:
    method: str
    route: str  # the path after "/v1/", without query or trailing slash
    json: dict[str, Any]
    form: dict[str, str]
    files: dict[str, dict[str, Any]]
    query: dict[str, str] = field(default_factory=dict)


def dispatch(fake: FakeScrapybara, req: Request) -> tuple[int, Any]:
    if (req.method, req.route) == ("POST", "start"):
        return 200, fake._create(req.json).info()
    if (req.method, req.route) == ("GET", "instances"):
        with fake._lock:
            ids = list(fake.instances)
        return 200, [fake._get(i).info() for i in ids]
    match = re.fullmatch(r"instance/([^/]+)(?:/(.*))?", req.route)
    handler = INSTANCE_ROUTES.get((req.method, match.group(2) or "")) if match else None
    if handler is None:
        raise HttpError(404, "Not Found")
    return 200, handler(fake, urllib.parse.unquote(match.group(1)), req)


def _handler_for(fake: FakeScrapybara) -> type[BaseHTTPRequestHandler]:
    class Handler(JsonHandler):
        def _send_json(self, status: int, payload: Any, headers: dict[str, str] | None = None) -> None:
            super()._send_json(status, payload, headers)
            self.record["status"] = status

        def do_GET(self) -> None:
            self._serve()

        def do_POST(self) -> None:
            self._serve()

        def _read(self) -> Request:
            length = int(self.headers.get("Content-Length") or 0)
            raw = self.rfile.read(length) if length else b""
            content_type = self.headers.get("Content-Type") or ""
            body, form, files = {}, {}, {}
            if content_type.startswith("multipart/form-data"):
                form, files = parse_multipart(content_type, raw)
            elif raw:
                try:
                    body = json.loads(raw)
                except ValueError:
                    body = {"_raw": raw.decode(errors="replace")}
            url = urllib.parse.urlsplit(self.path)
            match = re.search(r"/v1/(.*)$", url.path)
            route = match.group(1).rstrip("/") if match else ""
            query = dict(urllib.parse.parse_qsl(url.query))
            return Request(self.command, route, body if isinstance(body, dict) else {"_body": body}, form, files, query)

        def _serve(self) -> None:
            req = self._read()
            self.record = {
                "method": self.command,
                "path": urllib.parse.urlsplit(self.path).path,
                "headers": dict(self.headers),
                "query": req.query,
                "json": req.json,
                "form": req.form,
                "files": {k: {"filename": v["filename"], "content_type": v["content_type"], "size": len(v["data"])} for k, v in req.files.items()},
                "time": time.time(),
                "status": None,
            }
            with fake._lock:
                fake.requests.append(self.record)
            if self._scripted():
                return
            if fake.api_key is not None and self.headers.get("x-api-key") != fake.api_key:
                self._send_json(401, {"detail": "Invalid API key"})
                return
            try:
                status, payload = dispatch(fake, req)
            except HttpError as e:
                status, payload = e.status, {"detail": e.detail}
            except Exception as e:  # a bug in the fake or an odd request: say so instead of dropping the connection
                status, payload = 500, {"detail": f"fakescrapybara internal error: {type(e).__name__}: {e}"}
            self._send_json(status, payload)

        def _scripted(self) -> bool:
            with fake._lock:
                rule = next((r for r in fake.rules if r.matches(self.command, self.record["path"])), None)
                if rule:
                    rule.used += 1
            if rule is None:
                return False
            if rule.delay:
                time.sleep(rule.delay)
            if rule.drop:
                self.record["status"] = "dropped"
                self.close_connection = True
                self.connection.shutdown(2)
                return True
            self._send_json(rule.status, rule.body if rule.body is not None else default_error_body(rule.status), rule.headers)
            return True

    return Handler


if __name__ == "__main__":  # python tests/fakescrapybara.py: a server to point `base_url` at by hand
    server = FakeScrapybara().start()
    print(server.url, f"api_key={server.api_key}", flush=True)
    try:
        threading.Event().wait()
    except KeyboardInterrupt:
        server.stop()
