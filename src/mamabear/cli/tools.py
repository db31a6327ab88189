"""mamabear tools list|show"""

from __future__ import annotations

import typer
from rich.text import Text

from mamabear.cli.options import JSON
from mamabear.cli.output import console, emit_json, table

app = typer.Typer(help="Tools agents can be given: the sandbox's, crewai-tools, the project's own, MCP servers.", no_args_is_help=True)


def _sources():  # noqa: ANN202 - (catalog, tools config, environment)
    from mamabear.config.toolset import ToolsConfig
    from mamabear.engine.services import Services

    ws = Services()
    return ws.catalog, ToolsConfig.load(ws.roots), ws.settings.env


@app.command("list")
def list_tools(json_out: bool = JSON) -> None:
    """Every tool, whether it can be used now (or what it needs), and who has it."""
    from mamabear.tools.inventory import inventory

    rows = inventory(*_sources())
    if json_out:
        emit_json(rows)
        return
    out = table("tool", "kind", "usable now", "used by", "detail")
    for r in rows:
        usable = Text(r["usable"], style="green" if r["usable"].startswith("yes") else "yellow")
        out.add_row(Text(r["name"]), r["kind"], usable, Text(", ".join(r["used_by"]) or "-"), Text(r["detail"]))
    console().print(out)


@app.command("show")
def show_tool(name: str = typer.Argument(..., metavar="NAME", help="A tool, as `tools list` names it."), json_out: bool = JSON) -> None:
    """One tool in full: what the agent reads, its arguments and settings, the keys it needs, who has it."""
    from mamabear.tools.inventory import details

    doc = details(name, *_sources())
    if json_out:
        emit_json(doc)
        return
    out = console()
    out.print(Text.assemble((doc["name"], "bold"), f"  {doc.get('kind', '')}  ", doc.get("usable", "")))
    for key, label in (("description", "reads"), ("detail", "detail")):
        if doc.get(key):
            out.print(Text.assemble((f"{label:<10}", "bold"), str(doc[key])))
    if doc.get("arguments"):
        out.print(Text.assemble(("arguments ", "bold"), ", ".join(doc["arguments"])))
    for var in doc.get("keys", []):
        state = "set" if var["set"] else "not set"
        out.print(Text.assemble(("key       ", "bold"), f"{var['name']} ({'required' if var['required'] else 'optional'}, {state})"))
    if doc.get("defaults"):
        out.print(Text.assemble(("defaults  ", "bold"), ", ".join(f"{k}={v!r}" for k, v in doc["defaults"].items())))
    out.print(Text.assemble(("used by   ", "bold"), ", ".join(doc.get("used_by") or []) or "-"))
