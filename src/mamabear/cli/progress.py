"""Showing a run as it happens: a Rich live table on a terminal, one plain line per event otherwise."""

from __future__ import annotations

import sys
import threading
import time
from collections.abc import Iterator
from contextlib import contextmanager
from typing import IO, Any

from mamabear.cli.output import status_text
from mamabear.config.durations import fmt_seconds
from mamabear.config.money import fmt_usd
from mamabear.observe import Event, RunObserver, RunState


class PlainProgress(RunObserver):
    """For logs and CI: every event as one timestamped line on stderr, written whole (events come from many threads)."""

    def __init__(self, stream: IO[str] | None = None) -> None:
        self.stream = stream or sys.stderr
        self._lock = threading.Lock()

    def event(self, state: RunState, event: Event) -> None:
        if event.message:
            with self._lock:
                self.stream.write(f"{time.strftime('%H:%M:%S')} {state.run_id} {event.message}\n")
                self.stream.flush()

    def __enter__(self) -> PlainProgress:
        return self

    def __exit__(self, *exc: object) -> None:
        pass


def task_table(state: RunState, title: str | None = None) -> Any:
    from rich.table import Table
    from rich.text import Text

    table = Table(title=Text(title) if title else None, title_justify="left", expand=False)
    for column, justify in (
        ("#", "right"),
        ("task", "left"),
        ("agent", "left"),
        ("model", "left"),
        ("state", "left"),
        ("time", "right"),
        ("tokens in/out", "right"),
        ("cost", "right"),
    ):
        table.add_column(column, justify=justify)  # type: ignore[arg-type]  # one of Rich's justify literals
    for task in state.tasks:  # Text cells: names from YAML are shown as written, never read as markup
        table.add_row(
            str(task.position),
            Text(task.task),
            Text(state.runs_on(task)),
            Text(task.model or "-"),
            status_text(task.status),
            fmt_seconds(task.seconds),
            f"{task.tokens_in:,}/{task.tokens_out:,}",
            fmt_usd(task.cost_usd, task.unpriced_calls),
        )
    table.add_section()
    table.add_row(
        "",
        "total",
        "",
        f"{state.llm_calls} calls",
        status_text(state.status),
        fmt_seconds(state.seconds),
        f"{state.tokens_in:,}/{state.tokens_out:,}",
        fmt_usd(state.cost_usd, state.unpriced_calls),
    )
    return table


class LiveProgress(RunObserver):
    """For a person at a terminal: the task table redrawn live, with what is happening now."""

    def __init__(self, console: Any) -> None:
        from rich.live import Live

        self.console = console
        self.state: RunState | None = None
        self.checklist: Any = None  # a mission's plan, once it has one
        self.live = Live(console=console, refresh_per_second=4, transient=True, get_renderable=self._render)

    def _render(self) -> Any:
        from rich.console import Group
        from rich.text import Text

        if self.state is None:
            return Text("starting…")
        elapsed = fmt_seconds(self.state.seconds)
        header = Text.assemble((f"{self.state.crew} ", "bold"), (f"{self.state.run_id}  {elapsed}  ", "dim"), ("▸ ", "cyan"), self.state.activity)
        if self.checklist is not None:
            return Group(header, self.checklist.render(self.state), task_table(self.state))
        return Group(header, task_table(self.state))

    def changed(self, state: RunState) -> None:
        self.state = state  # redrawn four times a second from it

    def event(self, state: RunState, event: Event) -> None:
        self.state = state
        if event.kind.startswith("mission_"):
            if self.checklist is None:
                from mamabear.cli.mission_view import Checklist

                self.checklist = Checklist()
            self.checklist.heard(event)

    @contextmanager
    def paused(self) -> Iterator[None]:
        """The live view off while the terminal is wanted for something else (a question), then on again.

        Rich's Live puts back the streams it found when it stops and wraps the ones it finds when it starts:
        the run's streams (the libraries' chatter silenced) are kept as they were."""
        streams = sys.stdout, sys.stderr
        self.live.stop()
        try:
            yield
        finally:
            self.live.start()
            sys.stdout, sys.stderr = streams

    def __enter__(self) -> LiveProgress:
        self.live.start()
        return self

    def __exit__(self, *exc: object) -> None:
        self.live.stop()
        if self.state is not None:
            if self.checklist is not None:
                self.console.print(self.checklist.render(self.state))
            self.console.print(task_table(self.state, title=f"{self.state.crew} {self.state.run_id}: {self.state.status}"))
            if self.state.cache_hits:
                self.console.print(
                    f"{self.state.cache_hits} model calls answered from the response cache, ${self.state.saved_usd:.4f} saved", style="cyan", markup=False
                )
