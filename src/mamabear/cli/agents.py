"""mamabear agents list|show"""

from __future__ import annotations

import typer

from mamabear.cli.options import JSON
from mamabear.cli.output import console, emit_json, table

app = typer.Typer(help="The specialists in config/agents.yaml.", no_args_is_help=True)


def agent_dict(spec: object) -> dict:
    from dataclasses import asdict

    data = asdict(spec)  # type: ignore[call-overload]  # a dataclass instance, typed loosely by its caller
    data["tools"] = list(data["tools"])
    return data


@app.command("list")
def list_agents(json_out: bool = JSON) -> None:
    """List the agents with their tier and temperature."""
    from mamabear.engine.services import Services

    agents = Services().catalog.agents
    if json_out:
        emit_json([agent_dict(a) for a in agents.values()])
        return
    out = table("id", "role", "tier", "temp")
    for a in agents.values():
        out.add_row(a.id, a.role, a.tier, f"{a.temperature:g}")
    console().print(out)


@app.command("show")
def show_agent(agent_id: str = typer.Argument(..., metavar="ID"), json_out: bool = JSON) -> None:
    """Show one agent in full, with the models its tier falls back through."""
    from mamabear.engine.services import Services

    ws = Services()
    spec = ws.catalog.agent(agent_id)
    data = agent_dict(spec)
    data["models"] = list(ws.models.tiers[spec.tier])
    if json_out:
        emit_json(data)
        return
    out = console()
    out.print(f"[bold]{spec.id}[/]  {spec.role}  (tier {spec.tier}, temperature {spec.temperature:g})")
    out.print(f"[bold]goal[/]       {spec.goal}")
    out.print(f"[bold]backstory[/]  {spec.backstory}")
    out.print(f"[bold]models[/]     {' → '.join(data['models'])}" + (f"  (pinned: {spec.llm})" if spec.llm else ""))
    if spec.tools:
        out.print(f"[bold]tools[/]      {', '.join(spec.tools)}")
    out.print(f"[dim]defined at {spec.source}[/]")
