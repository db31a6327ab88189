"""Rendering helpers shared by the command modules: JSON on stdout, people-facing text on stderr."""

from __future__ import annotations

import json
import os
import sys
from collections.abc import Iterator
from contextlib import ExitStack, contextmanager, redirect_stdout
from pathlib import Path
from typing import IO, Any, cast

from mamabear.status import Status


def emit_json(document: Any) -> None:
    """The one JSON document a --json command prints on stdout."""
    sys.stdout.write(json.dumps(document, indent=2, default=str, ensure_ascii=False) + "\n")
    sys.stdout.flush()


def console(stderr: bool = False) -> Any:
    from rich.console import Console

    stream = sys.stderr if stderr else sys.stdout
    if is_tty(stream):
        return Console(stderr=stderr, no_color=bool(os.environ.get("NO_COLOR")), highlight=False)
    # Piped output is read by scripts, grep and pagers: tables are not squeezed into 80 columns, text is never
    # hard-wrapped, and no line ends in the padding Rich gives a table's last column.
    columns = os.environ.get("COLUMNS", "")
    width = max(int(columns) if columns.isdigit() else 0, 200)  # a COLUMNS=80 left over from a terminal must not cut cells to "…"
    return Console(file=cast(IO[str], _Rstripped(stream)), no_color=bool(os.environ.get("NO_COLOR")), highlight=False, width=width, soft_wrap=True)


class _Rstripped:
    """A text stream that drops the spaces at the end of each line written through it."""

    def __init__(self, stream: Any) -> None:
        self.stream = stream
        self._pending = ""

    def write(self, text: str) -> int:
        lines = (self._pending + text).split("\n")
        self._pending = lines.pop()
        if lines:
            self.stream.write("".join(line.rstrip(" ") + "\n" for line in lines))
        return len(text)

    def flush(self) -> None:
        if self._pending:
            self.stream.write(self._pending)
            self._pending = ""
        self.stream.flush()

    def isatty(self) -> bool:
        return False

    def fileno(self) -> int:
        return self.stream.fileno()


def is_tty(stream: Any) -> bool:
    try:
        return stream.isatty()
    except (AttributeError, ValueError):
        return False


def table(*columns: str, title: str | None = None) -> Any:
    """A borderless table whose plain-string cells are shown as written (never parsed as markup); pass a Text for colour."""
    from rich.table import Table
    from rich.text import Text

    class PlainTable(Table):
        def add_row(self, *cells: Any, **kwargs: Any) -> None:
            super().add_row(*(Text(c) if isinstance(c, str) else c for c in cells), **kwargs)

    result = PlainTable(
        title=Text(title, style="italic") if title else None, title_justify="left", show_edge=False, pad_edge=False, box=None, header_style="bold"
    )
    for column in columns:
        result.add_column(column, no_wrap=column in ("id", "#", "status", "started"))
    return result


STATUS_STYLE = {  # keyed by value: a status read back from the store is a plain str
    Status.PENDING.value: "dim",
    Status.QUEUED.value: "blue",
    Status.RUNNING.value: "yellow",
    Status.COMPLETED.value: "green",
    Status.FAILED.value: "red",
    Status.INTERRUPTED.value: "magenta",
    Status.TIME_LIMIT.value: "magenta",
    Status.BUDGET_EXHAUSTED.value: "magenta",
    Status.CANCELLED.value: "dim",
    Status.STUCK.value: "red",
}


def status_text(status: str | None) -> Any:
    """A status in its colour, as a Text: never parsed as markup, so no status (even one a newer version stored) breaks a view."""
    from rich.text import Text

    return Text(str(status or "-"), style=STATUS_STYLE.get(str(status), ""))


def when(ts: float | None) -> str:
    if not ts:
        return "-"
    from datetime import datetime

    return datetime.fromtimestamp(ts).strftime("%Y-%m-%d %H:%M:%S")


def print_error(message: str) -> None:
    """One clear sentence on stderr."""
    from rich.markup import escape

    console(stderr=True).print(f"[red]error:[/] {escape(message)}", soft_wrap=True)


@contextmanager
def library_chatter_off(project: Path | None = None) -> Iterator[None]:
    """stdout carries only our result: what CrewAI and its libraries print goes to stderr with --debug, else nowhere.
    What the project's own code prints (``project``: its folder; a flow's steps, a task's callback) goes to stderr."""
    from mamabear.cli.options import debug_enabled

    with ExitStack() as stack:
        chatter = sys.stderr if debug_enabled() else stack.enter_context(open(os.devnull, "w"))
        stack.enter_context(redirect_stdout(_ProjectEcho(chatter, project) if project is not None and chatter is not sys.stderr else chatter))
        yield
        if "crewai.events" in sys.modules:  # CrewAI prints from its event-bus threads: let them finish in here
            from crewai.events import crewai_event_bus

            crewai_event_bus.flush(timeout=10)


_OURS = str(Path(__file__).resolve().parents[1])  # mamabear's own code, even when run in its own repository


class _ProjectEcho:
    """A stdout that sends what code in the project's folder writes to stderr, and the rest to ``chatter``."""

    def __init__(self, chatter: IO[str], project: Path) -> None:
        self.chatter, self.project = chatter, str(project.resolve())

    def write(self, text: str) -> int:
        caller = sys._getframe(1).f_code.co_filename  # print() is a builtin: its caller's frame is the writer's
        mine = caller.startswith(self.project) and not caller.startswith(_OURS) and "site-packages" not in caller
        return (sys.stderr if mine else self.chatter).write(text)

    def flush(self) -> None:
        sys.stderr.flush()
        self.chatter.flush()

    def isatty(self) -> bool:
        return False

    def __getattr__(self, name: str) -> Any:
        return getattr(self.chatter, name)
