"""mamabear crews list|show"""

from __future__ import annotations

from dataclasses import asdict

import typer

from mamabear.cli.options import JSON
from mamabear.cli.output import console, emit_json, table

app = typer.Typer(help="The crews in crews/*.yaml.", no_args_is_help=True)


def crew_dict(spec: object) -> dict:
    data = asdict(spec)  # type: ignore[call-overload]  # a dataclass instance, typed loosely by its caller
    data["agents"] = list(data["agents"])
    data["tasks"] = [dict(t) for t in data["tasks"]]
    data["inputs"] = [dict(i) for i in data["inputs"]]
    return data


@app.command("list")
def list_crews(json_out: bool = JSON) -> None:
    """List the crews with their process, agents and tasks."""
    from mamabear.engine.services import Services

    catalog = Services().catalog
    crews = [catalog.crew(name) for name in catalog.crew_files()]
    if json_out:
        emit_json([crew_dict(c) for c in crews])
        return
    out = table("name", "process", "agents", "tasks", "inputs", "description")
    for c in crews:
        out.add_row(c.name, c.process, str(len(c.agents)), str(len(c.tasks)), ", ".join(i.name + ("" if i.required else "?") for i in c.inputs), c.description)
    console().print(out)


@app.command("show")
def show_crew(name: str = typer.Argument(..., metavar="NAME"), json_out: bool = JSON) -> None:
    """Show one crew: its tasks in order, who runs them, and the inputs it takes."""
    from mamabear.engine.services import Services

    catalog = Services().catalog
    crew = catalog.crew(name)
    if json_out:
        emit_json(crew_dict(crew))
        return
    out = console()
    out.print(f"[bold]{crew.name}[/]  {crew.description}")
    out.print(f"process {crew.process}" + (f", manager {crew.manager}" if crew.manager else "") + f"; defined in {crew.source}")
    tasks = table("#", "task", "agent", "complexity")
    for i, t in enumerate(crew.tasks, start=1):
        complexity = catalog.tasks[t.task].complexity
        tasks.add_row(str(i), t.task, t.agent or "(manager assigns)", "-" if complexity is None else str(complexity))
    out.print(tasks)
    inputs = table("input", "required", "default", "description")
    for spec in crew.inputs:
        inputs.add_row(spec.name, "yes" if spec.required else "no", spec.default or "", spec.description)
    out.print(inputs)
