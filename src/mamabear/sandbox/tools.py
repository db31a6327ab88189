"""The CrewAI tools that drive a sandbox session: bash, file view/create/str_replace/insert, browser.

Each tool reaches the run's session through its ``SessionLink`` (not serialised into
checkpoints; a resumed run gives every agent fresh tools). What a tool returns is what
the agent reads: the output, or one sentence saying why nothing was done.
"""

from __future__ import annotations

from typing import Any, Literal

from crewai.tools import BaseTool
from pydantic import BaseModel, Field, PrivateAttr

from mamabear.sandbox.backend import CommandResult, SandboxError
from mamabear.status import Status


class _Tool(BaseTool):
    _link: Any = PrivateAttr(default=None)
    _agent: str | None = PrivateAttr(default=None)

    def bind(self, link: Any, agent: str | None) -> _Tool:
        self._link, self._agent = link, agent
        return self

    def _session(self) -> tuple[Any, dict, Any]:
        session = self._link.session(self._agent)
        return self._link.sessions, session, self._link.context(self._agent)

    def _run(self, **kwargs: Any) -> str:
        if self._link is None:
            return "the sandbox failed: this tool is not connected to a sandbox session."
        stop = self._link.guard.stopping() if self._link.guard is not None else None
        if stop is not None:  # no tool starts once the run is asked to stop
            return f"not run: the run {stop.reason}."
        try:
            with self._link.in_use():
                return self._use(**kwargs)
        except SandboxError as exc:
            return f"the sandbox failed: {exc.message}"

    def _use(self, **kwargs: Any) -> str:
        raise NotImplementedError


class BashArgs(BaseModel):
    command: str = Field(description="The shell command to run (bash).")
    timeout_s: float | None = Field(default=None, description="Stop the command after this many seconds (default: the sandbox's limit).")


class BashTool(_Tool):
    name: str = "bash"
    description: str = (
        "Run a bash command in your sandbox computer and read its output and exit code. The working "
        "directory and exported variables persist between commands. Long output is cut in the middle."
    )
    args_schema: type[BaseModel] = BashArgs

    def _use(self, command: str, timeout_s: float | None = None) -> str:  # type: ignore[override]  # each tool takes its own arguments, checked by its args_schema
        sessions, session, context = self._session()
        result = sessions.exec(session, command, timeout_s, context)
        return result.for_model() if isinstance(result, CommandResult) else result


class ViewArgs(BaseModel):
    path: str = Field(description="A file or directory, relative to the workspace.")
    view_range: list[int] | None = Field(default=None, description="[first line, last line] to show; -1 for the end.")


class CreateArgs(BaseModel):
    path: str = Field(description="The file to create or overwrite, relative to the workspace.")
    file_text: str = Field(description="The whole content of the file.")


class ReplaceArgs(BaseModel):
    path: str = Field(description="The file to edit, relative to the workspace.")
    old_str: str = Field(description="Text that occurs exactly once in the file.")
    new_str: str = Field(default="", description="What to put in its place.")


class InsertArgs(BaseModel):
    path: str = Field(description="The file to edit, relative to the workspace.")
    insert_line: int = Field(description="Insert after this line (0: at the top).")
    text: str = Field(description="The lines to insert.")


class _FileTool(_Tool):
    action: str = ""

    def _use(self, path: str, **arguments: Any) -> str:  # type: ignore[override]  # each tool takes its own arguments, checked by its args_schema
        sessions, session, context = self._session()
        return sessions.edit(session, self.action, path, context, **arguments)


class FileViewTool(_FileTool):
    name: str = "file_view"
    description: str = "Show a file with line numbers, or list a directory, in your sandbox workspace."
    args_schema: type[BaseModel] = ViewArgs
    action: str = "view"


class FileCreateTool(_FileTool):
    name: str = "file_create"
    description: str = "Create a file (or overwrite it) in your sandbox workspace, making its directories."
    args_schema: type[BaseModel] = CreateArgs
    action: str = "create"


class FileReplaceTool(_FileTool):
    name: str = "file_str_replace"
    description: str = "Replace text that occurs exactly once in a file of your sandbox workspace."
    args_schema: type[BaseModel] = ReplaceArgs
    action: str = "str_replace"


class FileInsertTool(_FileTool):
    name: str = "file_insert"
    description: str = "Insert lines into a file of your sandbox workspace after a given line."
    args_schema: type[BaseModel] = InsertArgs
    action: str = "insert"


class NavigateArgs(BaseModel):
    url: str = Field(description="The address to open in the sandbox's browser.")


class NavigateTool(_Tool):
    name: str = "browser_navigate"
    description: str = "Open a web page in your sandbox computer's browser; returns the address it ended up at."
    args_schema: type[BaseModel] = NavigateArgs

    def _use(self, url: str) -> str:  # type: ignore[override]  # each tool takes its own arguments, checked by its args_schema
        sessions, session, context = self._session()
        return sessions.act(session, "navigate", url, context, url=url)


class NoArgs(BaseModel):
    pass


def _shown(said: str, shot: Any) -> str:
    """What a tool that took a screenshot tells the agent: what it did, and the image (as a marker, see llm.images)."""
    from mamabear.llm.images import image_marker

    if shot is None:
        return said
    return f"{said}. The screen: {shot.describe()}. {image_marker(shot.path)}"


def _over_budget(link: Any, sessions: Any) -> str | None:
    """A run that has shown its model as many screenshots (or bytes) as its budget allows stops, cleanly."""
    screen = sessions.config.screen
    count, size = sessions.ledger.images(link.run_id)
    if count < screen.max_images and size < screen.max_mib * 1024 * 1024:
        return None
    why = f"reached its image budget: {count} screenshots, {size / 1024 / 1024:.1f} MiB (screen: max_images, max_mib in config/sandbox.yaml)"
    if link.guard is not None:
        link.guard.request_stop(Status.BUDGET_EXHAUSTED, why)
    return f"not done: the run {why}."


class ScreenshotTool(_Tool):
    name: str = "browser_screenshot"
    description: str = "Take a screenshot of your sandbox computer's screen (or its browser's page); you are shown it."
    args_schema: type[BaseModel] = NoArgs

    def _use(self) -> str:  # type: ignore[override]  # each tool takes its own arguments, checked by its args_schema
        sessions, session, context = self._session()
        over = _over_budget(self._link, sessions)
        if over is not None:
            return over
        local = session["backend"] == "local"
        said, shot = sessions.screen(session, "screenshot" if local else "take_screenshot", "screenshot", context, via="browse" if local else "computer")
        return _shown(said, shot)


class OpenArgs(BaseModel):
    url: str = Field(description="The address to open, e.g. https://example.org/ or http://127.0.0.1:8000/.")


class ClickArgs(BaseModel):
    text: str | None = Field(default=None, description="The text shown on the link or button to click.")
    selector: str | None = Field(default=None, description="Or a CSS selector of the element.")


class TypeArgs(BaseModel):
    value: str = Field(description="What to type into the field.")
    text: str | None = Field(default=None, description="The field's label or placeholder.")
    selector: str | None = Field(default=None, description="Or a CSS selector of the field.")
    submit: bool = Field(default=False, description="Press Enter afterwards (submit the form).")


class _BrowserTool(_Tool):
    """An action in the local sandbox's browser; the audit names its address, its element, or the page."""

    action: str = ""

    def _use(self, **arguments: Any) -> str:
        sessions, session, context = self._session()
        target = arguments.get("url") or arguments.get("selector") or arguments.get("text") or "page"
        return sessions.screen(session, self.action, target, context, via="browse", **arguments)[0]


class BrowserOpenTool(_BrowserTool):
    name: str = "browser_open"
    description: str = "Open a web page in your sandbox's browser (headless Chromium) and read it: its title, text and links."
    args_schema: type[BaseModel] = OpenArgs
    action: str = "open"


class BrowserReadTool(_BrowserTool):
    name: str = "browser_read"
    description: str = "Read the page open in your sandbox's browser: its title, address, text and links."
    args_schema: type[BaseModel] = NoArgs
    action: str = "read"


class BrowserClickTool(_BrowserTool):
    name: str = "browser_click"
    description: str = "Click a link or button of the page open in your sandbox's browser, by the text shown on it or a CSS selector."
    args_schema: type[BaseModel] = ClickArgs
    action: str = "click"


class BrowserTypeTool(_BrowserTool):
    name: str = "browser_type"
    description: str = "Type into a field of the page open in your sandbox's browser (by its label, placeholder or a CSS selector)."
    args_schema: type[BaseModel] = TypeArgs
    action: str = "type"


class ComputerArgs(BaseModel):
    action: Literal["screenshot", "move", "click", "double_click", "right_click", "drag", "type", "key", "scroll", "wait", "cursor"] = Field(
        description="What to do: screenshot, move/click/double_click/right_click (at x, y), drag (x, y to to_x, to_y), "
        "type (text), key (keys, e.g. ['ctrl', 'l']), scroll (at x, y by scroll_x, scroll_y), wait (seconds), cursor (where it is)."
    )
    x: int | None = Field(default=None, description="Horizontal position, in pixels of the latest screenshot.")
    y: int | None = Field(default=None, description="Vertical position, in pixels of the latest screenshot.")
    to_x: int | None = Field(default=None, description="Where a drag ends (x).")
    to_y: int | None = Field(default=None, description="Where a drag ends (y).")
    text: str | None = Field(default=None, description="The text to type.")
    keys: list[str] | None = Field(default=None, description="Keys pressed together, e.g. ['Return'] or ['ctrl', 'a'].")
    scroll_x: int = Field(default=0, description="How far to scroll right (negative: left).")
    scroll_y: int = Field(default=0, description="How far to scroll down (negative: up).")
    seconds: float | None = Field(default=None, description="How long to wait.")


class ComputerTool(_Tool):
    name: str = "computer_use"
    description: str = (
        "See and work your sandbox computer's screen: take a screenshot (you are shown it), move and click the mouse, "
        "drag, type text, press keys, scroll, wait. Every action but `cursor` shows you the screen afterwards. "
        "Give positions in pixels of the latest screenshot."
    )
    args_schema: type[BaseModel] = ComputerArgs

    def _use(self, action: str, **given: Any) -> str:  # type: ignore[override]  # each tool takes its own arguments, checked by its args_schema
        sessions, session, context = self._session()
        over = _over_budget(self._link, sessions)
        if over is not None:
            return over
        try:
            name, params, target = self._action(action, given)
        except ValueError as exc:
            return f"not done: {exc}"
        said, shot = sessions.screen(session, name, target, context, **params)
        if shot is None:
            return f"{action}: {said}"
        self._link.last_shot = shot  # every agent's positions are in the latest screenshot of the session
        return _shown(f"{action} done: {said}", shot)

    def _at(self, given: dict[str, Any], x: str = "x", y: str = "y") -> list[int]:
        if given.get(x) is None or given.get(y) is None:
            raise ValueError(f"give {x} and {y}, in pixels of the latest screenshot")
        position = (int(given[x]), int(given[y]))
        shot = getattr(self._link, "last_shot", None)
        return list(shot.to_screen(*position) if shot is not None else position)

    def _action(self, action: str, given: dict[str, Any]) -> tuple[str, dict[str, Any], str]:
        """scrapybara's action, its parameters (positions on the screen), and what the audit says was done."""
        if action == "screenshot":
            return "take_screenshot", {}, "screenshot"
        if action == "cursor":
            return "get_cursor_position", {}, "cursor"
        if action == "move":
            at = self._at(given)
            return "move_mouse", {"coordinates": at}, f"move to {at}"
        if action in ("click", "double_click", "right_click"):
            params: dict[str, Any] = {"button": "right" if action == "right_click" else "left", "num_clicks": 2 if action == "double_click" else 1}
            if given.get("x") is not None:
                params["coordinates"] = self._at(given)
            return "click_mouse", params, f"{action} at {params.get('coordinates', 'the cursor')}"
        if action == "drag":
            path = [self._at(given), self._at(given, "to_x", "to_y")]
            return "drag_mouse", {"path": path}, f"drag {path[0]} to {path[1]}"
        if action == "type":
            if not given.get("text"):
                raise ValueError("give the text to type")
            return "type_text", {"text": given["text"]}, f"type {len(given['text'])} characters"
        if action == "key":
            if not given.get("keys"):
                raise ValueError("give the keys to press, e.g. ['Return']")
            return "press_key", {"keys": list(given["keys"])}, f"key {'+'.join(given['keys'])}"
        if action == "scroll":
            params = {"delta_x": float(given.get("scroll_x") or 0), "delta_y": float(given.get("scroll_y") or 0)}
            if given.get("x") is not None:
                params["coordinates"] = self._at(given)
            return "scroll", params, f"scroll by ({params['delta_x']:g}, {params['delta_y']:g})"
        if action == "wait":
            return "wait", {"duration": float(given.get("seconds") or 1.0)}, f"wait {float(given.get('seconds') or 1.0):g}s"
        raise ValueError(f"unknown action '{action}'")


TOOL_CLASSES: dict[str, type[_Tool]] = {
    "bash": BashTool,
    "file_view": FileViewTool,
    "file_create": FileCreateTool,
    "file_str_replace": FileReplaceTool,
    "file_insert": FileInsertTool,
    "browser_navigate": NavigateTool,
    "browser_screenshot": ScreenshotTool,
    "browser_open": BrowserOpenTool,
    "browser_read": BrowserReadTool,
    "browser_click": BrowserClickTool,
    "browser_type": BrowserTypeTool,
    "computer_use": ComputerTool,
}


def make_tools(names: tuple[str, ...], link: Any, agent: str | None) -> list[BaseTool]:
    classes: dict[str, Any] = TOOL_CLASSES  # pydantic fills name and description from each class's defaults
    return [classes[name]().bind(link, agent) for name in names]
