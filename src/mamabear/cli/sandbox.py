"""mamabear sandbox start|exec|pause|resume|stop|list"""

from __future__ import annotations

import shlex
import sys
from typing import Optional

import typer
from rich.markup import escape

from mamabear.cli.options import JSON
from mamabear.cli.output import console, emit_json, table, when

app = typer.Typer(help="Sandbox sessions: the computers agents work on.", no_args_is_help=True)

SESSION_ID = typer.Argument(..., metavar="ID", help="A session id or a unique prefix of one.")
EXIT_TIMED_OUT = 124  # what timeout(1) returns


def _sessions():  # noqa: ANN202
    from mamabear.engine.services import Services

    return Services().sessions()


def _row(session: dict) -> dict:
    keep = ("id", "backend", "kind", "status", "remote_id", "workdir", "pooled", "run_id", "created_at", "last_used_at", "active_seconds", "saved_at", "error")
    return {k: session[k] for k in keep}


def _print_session(session: dict, json_out: bool, verb: str) -> None:
    if json_out:
        emit_json(_row(session))
        return
    sys.stdout.write(session["id"] + "\n")
    where = session["remote_id"] or session["workdir"]
    console(stderr=True).print(f"[dim]{verb} {session['backend']} session {session['id']} ({session['kind']}) at {escape(where)}[/]")


@app.command("start")
def start(
    backend: Optional[str] = typer.Option(None, "--backend", help="local or scrapybara (default: scrapybara if SCRAPYBARA_API_KEY is set)."),
    kind: str = typer.Option("development", "--kind", help="research, development, data_analysis (config/sandbox.yaml)."),
    pool: bool = typer.Option(False, "--pool", help="Let runs of crews of this kind reuse it."),
    network: Optional[bool] = typer.Option(
        None, "--network/--no-network", help="Whether its commands reach the internet (default: the kind's network setting)."
    ),
    json_out: bool = JSON,
) -> None:
    """Start a session; its kind's set-up commands run once, now. Prints its id."""
    sessions = _sessions()
    chosen = sessions.config.choose_backend(sessions.settings, backend)
    session = sessions.start(chosen, kind, pooled=pool, network=network)
    caveat = sessions.caveat(session)
    if caveat:
        console(stderr=True).print(f"[yellow]warning:[/] {escape(caveat)}")
    _print_session(session, json_out, "started")


@app.command("exec", context_settings={"allow_interspersed_args": False})
def exec_(
    session_id: str = SESSION_ID,
    command: list[str] = typer.Argument(..., metavar="-- CMD", help="The command: after --, as words or one quoted string."),
    timeout: Optional[float] = typer.Option(None, "--timeout", metavar="SECONDS", help="Stop it after this long (default: config)."),
    json_out: bool = JSON,
) -> None:
    """Run a command in a session (resumed first if paused); exits with the command's exit code.

    Options go before ID; everything after -- is the command.
    """
    from mamabear.errors import UsageError
    from mamabear.sandbox.backend import CommandResult

    sessions = _sessions()
    session = sessions.get(session_id)
    words = command[1:] if command[:1] == ["--"] else command
    if not words:
        raise UsageError("sandbox exec needs a command after --, for example: mamabear sandbox exec ID -- ls -la")
    line = words[0] if len(words) == 1 else shlex.join(words)
    result = sessions.exec(session, line, timeout)
    if not isinstance(result, CommandResult):
        raise UsageError(result)
    code = EXIT_TIMED_OUT if result.timed_out else 1 if result.exit_code is None else result.exit_code
    if json_out:
        emit_json(
            {
                "session": session["id"],
                "command": line,
                "exit_code": result.exit_code,
                "timed_out": result.timed_out,
                "duration_ms": round(result.duration_ms, 1),
                "note": result.note,
                "output": result.output,
            }
        )
    else:
        sys.stdout.write(result.output)
        if result.output and not result.output.endswith("\n"):
            sys.stdout.write("\n")
        if result.timed_out or result.note:
            console(stderr=True).print(f"[yellow]{escape(result.note or 'timed out')}[/]")
    raise typer.Exit(code)


@app.command("pause")
def pause(session_id: str = SESSION_ID, json_out: bool = JSON) -> None:
    """Pause a session (a cloud instance stops billing; its workspace is saved first)."""
    sessions = _sessions()
    _print_session(sessions.pause(sessions.get(session_id)), json_out, "paused")


@app.command("resume")
def resume(session_id: str = SESSION_ID, json_out: bool = JSON) -> None:
    """Resume a paused session; a lost cloud instance is replaced from its last saved workspace."""
    sessions = _sessions()
    _print_session(sessions.resume(sessions.get(session_id)), json_out, "resumed")


@app.command("stop")
def stop(session_id: str = SESSION_ID, json_out: bool = JSON) -> None:
    """Stop a session for good (a local workspace's files are kept)."""
    sessions = _sessions()
    _print_session(sessions.stop(sessions.get(session_id)), json_out, "stopped")


@app.command("list")
def list_sessions(
    all_: bool = typer.Option(False, "--all", "-a", help="Include stopped and lost sessions."),
    json_out: bool = JSON,
) -> None:
    """List sessions; idle cloud sessions past their idle time are paused first."""
    rows = [s for s in _sessions().every() if all_ or s["status"] in ("running", "paused")]
    if json_out:
        emit_json([_row(s) for s in rows])
        return
    out = table("id", "backend", "kind", "status", "pooled", "run", "last used", "hours", "where")
    for s in rows:
        out.add_row(
            s["id"],
            s["backend"],
            s["kind"],
            s["status"],
            "yes" if s["pooled"] else "",
            s["run_id"] or "-",
            when(s["last_used_at"]),
            f"{s['active_seconds'] / 3600:.2f}",
            s["remote_id"] or s["workdir"],
        )
    console().print(out)


@app.command("stream")
def stream(session_id: str = SESSION_ID, json_out: bool = JSON) -> None:
    """Print the live view of a Scrapybara session's screen (a URL to open in a browser)."""
    sessions = _sessions()
    session = sessions.get(session_id)
    url = sessions.stream_url(session)
    if json_out:
        emit_json({"id": session["id"], "stream_url": url})
        return
    sys.stdout.write(url + "\n")


@app.command("save-auth")
def save_auth(
    session_id: str = SESSION_ID,
    name: Optional[str] = typer.Option(None, "--name", help="A name to know it by."),
    json_out: bool = JSON,
) -> None:
    """Save a Scrapybara session's browser log-ins; prints the id to give a kind as `auth_state` in config/sandbox.yaml."""
    sessions = _sessions()
    session = sessions.get(session_id)
    auth_state = sessions.save_auth(session, name)
    if json_out:
        emit_json({"id": session["id"], "auth_state": auth_state, "name": name})
        return
    sys.stdout.write(auth_state + "\n")
