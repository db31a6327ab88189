"""mamabear doctor"""

from __future__ import annotations

from typing import Optional

import typer
from rich.text import Text

from mamabear.cli.options import JSON
from mamabear.cli.output import console, emit_json, table
from mamabear.errors import EXIT_USAGE

MARK = {"ok": "green", "warn": "yellow", "fail": "red"}


def doctor(
    model: Optional[str] = typer.Option(None, "--model", help="Check this model for every agent, as `run --model` would use it."),
    base_url: Optional[str] = typer.Option(None, "--base-url", help="Check this OpenAI-compatible server, as `run --base-url` would use it."),
    json_out: bool = JSON,
) -> None:
    """Check the installation, configuration, model providers (each is asked for its models list) and run store."""
    from dataclasses import asdict

    from mamabear.engine.doctor import run_checks
    from mamabear.engine.services import Services

    checks = run_checks(Services(model=model, base_url=base_url))
    healthy = all(c.status != "fail" for c in checks)
    if json_out:
        emit_json({"ok": healthy, "checks": [asdict(c) for c in checks]})
    else:
        out = table("check", "", "detail")
        for c in checks:
            out.add_row(c.name, Text(c.status, style=MARK[c.status]), c.detail)
        console().print(out)
    if not healthy:
        raise typer.Exit(EXIT_USAGE)
