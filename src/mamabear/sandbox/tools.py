"""The CrewAI tools that drive a sandbox session: bash, file view/create/str_replace/insert, browser.

Each tool reaches the run's session through its ``SessionLink`` (not serialised into
checkpoints; a resumed run gives every agent fresh tools). What a tool returns is what
the agent reads: the output, or one sentence saying why nothing was done.
"""

from __future__ import annotations

from typing import Any

from crewai.tools import BaseTool
from pydantic import BaseModel, Field, PrivateAttr

from mamabear.sandbox.backend import CommandResult, SandboxError


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


class ScreenshotArgs(BaseModel):
    pass


class ScreenshotTool(_Tool):
    name: str = "browser_screenshot"
    description: str = "Take a screenshot of your sandbox computer's screen; returns where the image was saved."
    args_schema: type[BaseModel] = ScreenshotArgs

    def _use(self) -> str:  # type: ignore[override]  # each tool takes its own arguments, checked by its args_schema
        sessions, session, context = self._session()
        return sessions.act(session, "screenshot", "screen", context)


TOOL_CLASSES: dict[str, type[_Tool]] = {
    "bash": BashTool,
    "file_view": FileViewTool,
    "file_create": FileCreateTool,
    "file_str_replace": FileReplaceTool,
    "file_insert": FileInsertTool,
    "browser_navigate": NavigateTool,
    "browser_screenshot": ScreenshotTool,
}


def make_tools(names: tuple[str, ...], link: Any, agent: str | None) -> list[BaseTool]:
    classes: dict[str, Any] = TOOL_CLASSES  # pydantic fills name and description from each class's defaults
    return [classes[name]().bind(link, agent) for name in names]
