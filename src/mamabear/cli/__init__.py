"""The mamabear command line: one module per command group; rendering only, no decisions."""

from __future__ import annotations

import os
import sys
import time
from typing import Optional

import typer

from mamabear import __version__
from mamabear.cli import agents, crews, doctor, evals, memory, mission, run, runs, sandbox, stats, tools, validate, worker
from mamabear.cli.options import debug_enabled, process_started, set_debug, set_started, with_optional_values
from mamabear.errors import EXIT_INTERRUPTED, EXIT_USAGE, MamabearError

app = typer.Typer(
    name="mamabear",
    help="Run crews of CrewAI agents from the terminal, scripts and CI.",
    no_args_is_help=True,
    pretty_exceptions_enable=False,
    add_completion=True,  # --install-completion / --show-completion for bash, zsh, fish and PowerShell
    context_settings={"help_option_names": ["-h", "--help"]},
)
app.add_typer(agents.app, name="agents")
app.add_typer(crews.app, name="crews")
app.add_typer(runs.app, name="runs")
app.add_typer(sandbox.app, name="sandbox")
app.add_typer(memory.app, name="memory")
app.add_typer(tools.app, name="tools")
app.command("run")(run.run)
app.command("resume")(run.resume)
app.command("step", hidden=True)(run.step)
app.command("mission")(mission.mission)
app.command("validate")(validate.validate)
app.command("doctor")(doctor.doctor)
app.command("stats")(stats.stats)
app.command("eval")(evals.eval_command)
app.command("tune")(evals.tune_command)
app.command("worker")(worker.worker)
app.command("workers")(worker.workers)


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


_command = None


def command():  # noqa: ANN201 - a click.Command
    """The click command behind the Typer app, built once, with help that shows no Python types.

    Typer labels options <str>, <int> and flags <bool>; a person reads METAVARs, and a flag takes none.
    """
    global _command
    if _command is None:
        _command = typer.main.get_command(app)
        from mamabear.compat.typer import plain_metavars

        plain_metavars(_command, app.info.context_settings["help_option_names"])
    return _command


def main(argv: list[str] | None = None) -> int:
    """Entry point: usage errors exit 2 (Typer), MamabearError becomes one sentence and its exit code."""
    from mamabear.cli.output import emit_json, print_error
    from mamabear.config.settings import apply_privacy_defaults

    set_started(process_started() if argv is None else time.time())  # in-process callers (tests) run many commands
    apply_privacy_defaults()
    if argv is None and os.environ.get("MAMABEAR_WORKER_PID"):  # a run a worker started ends with its worker
        from mamabear.workers.execute import die_with_worker

        die_with_worker()
    _quiet_libraries()
    args = with_optional_values(sys.argv[1:] if argv is None else argv)
    try:
        returned = command().main(args=args, prog_name="mamabear", standalone_mode=False)
        code = returned if isinstance(returned, int) else 0
    except typer.TyperException as exc:  # a bad flag or value, a missing argument: one sentence, not a box
        code = exc.exit_code
        if type(exc).__name__ != "NoArgsIsHelpError":  # that one has printed the help already
            where = getattr(getattr(exc, "ctx", None), "command_path", None) or "mamabear"
            print_error(f"{exc.format_message().rstrip('.')}; `{where} --help` shows the usage." if code == EXIT_USAGE else exc.format_message())
    except typer.Abort:
        print_error("interrupted.")
        code = EXIT_INTERRUPTED
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
    except Exception as exc:  # a disk that is full, read-only or failing, wherever it is met: one sentence, nothing lost
        from mamabear.errors import storage_fault

        fault = storage_fault(exc)
        if fault is None or debug_enabled():
            raise
        what = getattr(exc, "filename", None) or "a file under MAMABEAR_HOME"
        print_error(f"cannot write {what} ({fault}); free space or make it writable, then run the command again.")
        code = EXIT_USAGE
    if argv is None:
        _exit(code)
    return code


def _exit(code: int) -> None:
    """Exit without tearing down every module one by one: after a run that took 1.2-1.4 s (measured), for nothing.

    The exit handlers still run (they flush exporters and close stores); then the streams are flushed and the process ends.
    """
    import os

    from mamabear.compat.stdlib import run_exit_handlers

    run_exit_handlers()
    for stream in (sys.stdout, sys.stderr):
        try:
            stream.flush()
        except (OSError, ValueError):  # a closed pipe: nothing more to say there
            pass
    os._exit(code)
