"""The mamabear command line: one module per command group; rendering only, no decisions."""

from __future__ import annotations

import sys
from typing import Optional

import typer

from mamabear import __version__
from mamabear.cli import agents, crews, doctor, memory, run, runs, sandbox, stats, validate
from mamabear.cli.options import debug_enabled, set_debug
from mamabear.errors import EXIT_INTERRUPTED, MamabearError

app = typer.Typer(
    name="mamabear",
    help="Run crews of CrewAI agents from the terminal, scripts and CI.",
    no_args_is_help=True,
    pretty_exceptions_enable=False,
    add_completion=False,
    context_settings={"help_option_names": ["-h", "--help"]},
)
app.add_typer(agents.app, name="agents")
app.add_typer(crews.app, name="crews")
app.add_typer(runs.app, name="runs")
app.add_typer(sandbox.app, name="sandbox")
app.add_typer(memory.app, name="memory")
app.command("run")(run.run)
app.command("resume")(run.resume)
app.command("validate")(validate.validate)
app.command("doctor")(doctor.doctor)
app.command("stats")(stats.stats)

def _version(value: bool) -> None:
    if value:
        print(f"mamabear {__version__}")
        raise typer.Exit()


@app.callback()
def _root(
    version: Optional[bool] = typer.Option(None, "--version", callback=_version, is_eager=True, help="Print the version and exit."),
    debug: bool = typer.Option(False, "--debug", help="Show tracebacks and library logs."),
) -> None:
    set_debug(debug)


def _quiet_libraries() -> None:
    """Library chatter (CrewAI, LiteLLM, HTTP clients, and Python warnings such as pydantic's) stays off the terminal unless --debug."""
    import logging

    logging.captureWarnings(True)  # warnings become log records of "py.warnings", shown only at --debug's level
    logging.basicConfig(level=logging.WARNING if debug_enabled() else logging.CRITICAL, stream=sys.stderr)


def main(argv: list[str] | None = None) -> int:
    """Entry point: usage errors exit 2 (Typer), MamabearError becomes one sentence and its exit code."""
    from mamabear.cli.output import emit_json, print_error
    from mamabear.settings import apply_privacy_defaults

    apply_privacy_defaults()
    _quiet_libraries()
    args = sys.argv[1:] if argv is None else argv
    try:
        app(args=args, prog_name="mamabear")
        code = 0
    except SystemExit as exc:
        code = exc.code if isinstance(exc.code, int) else (0 if exc.code is None else 1)
    except KeyboardInterrupt:
        print_error("interrupted.")
        code = EXIT_INTERRUPTED
    except MamabearError as exc:
        if debug_enabled():
            raise
        if "--json" in args:
            emit_json({"error": exc.message, "exit_code": exc.exit_code})
        print_error(exc.message)
        code = exc.exit_code
    if argv is None:
        sys.exit(code)
    return code
