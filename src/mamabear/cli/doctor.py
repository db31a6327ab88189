"""mamabear doctor"""

from __future__ import annotations

import typer
from rich.text import Text

from mamabear.cli.options import JSON
from mamabear.cli.output import console, emit_json, table
from mamabear.errors import EXIT_USAGE

MARK = {"ok": "green", "warn": "yellow", "fail": "red"}


def doctor(json_out: bool = JSON) -> None:
    """Check the installation, configuration, model providers and run store."""
    from dataclasses import asdict

    from mamabear.doctor import run_checks
    from mamabear.workspace import Workspace

    checks = run_checks(Workspace())
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
