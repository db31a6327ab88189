"""mamabear validate"""

from __future__ import annotations

import typer
from rich.markup import escape

from mamabear.cli.options import JSON
from mamabear.cli.output import console, emit_json
from mamabear.errors import EXIT_USAGE


def validate(json_out: bool = JSON) -> None:
    """Check config/ and crews/ (packaged and local) and report every broken file."""
    from mamabear.config.catalog import validate_all
    from mamabear.engine.services import Services
    from mamabear.errors import ConfigError

    ws = Services()
    catalog, errors = validate_all(ws.roots)
    from mamabear.config.redact import sensitive
    from mamabear.mission.config import MissionConfig
    from mamabear.mission.runner import TEAM

    checks = (lambda: ws.models, lambda: ws.sandbox, lambda: ws.memory_config, lambda: sensitive(ws.settings.project_dir))
    for load in checks:  # models, sandbox, memory and privacy .yaml
        try:
            load()
        except ConfigError as exc:
            errors.append(exc.message)
    try:
        missions = MissionConfig.load(ws.roots)
        if catalog is not None:
            errors += missions.check_agents(set(TEAM) & set(catalog.agents))  # they plan and judge among the mission's team
    except ConfigError as exc:
        errors.append(exc.message)
    if catalog is not None:
        from mamabear.config.catalog import CREW_PY
        from mamabear.config.json_crew import CREW_FILES
        from mamabear.engine.project import json_problems, project_problems
        from mamabear.tools.library import crew_problems

        for name, path in catalog.crew_files().items():
            if path.name in CREW_FILES:  # CrewAI's own checks of what it builds: tools, settings, Python references
                errors += json_problems(str(path))
            elif path.name == CREW_PY:  # the crew its crew.py builds, as a run builds it (importing the project)
                errors += project_problems(catalog, name)

        try:
            errors += crew_problems(catalog, ws.settings.env)  # a missing key or package, a tool that does not exist
        except ConfigError as exc:  # tools.yaml itself
            errors.append(exc.message)
    from mamabear.errors import UsageError
    from mamabear.flow.start import flow_plan_crew, here

    try:
        if (flow := here(ws)) is not None:
            flow_plan_crew(flow)  # its module imported and its Flow class found, as a run does
    except UsageError as exc:
        errors.append(exc.message)
    roots = [str(r) for r in ws.roots]
    if json_out:
        emit_json(
            {
                "ok": not errors,
                "errors": errors,
                "warnings": [*catalog.warnings, *catalog.ignored] if catalog else [],
                "roots": roots,
                "agents": len(catalog.agents) if catalog else 0,
                "tasks": len(catalog.tasks) if catalog else 0,
                "crews": sorted(catalog.crew_files()) if catalog else [],
            }
        )
    else:
        out = console(stderr=bool(errors))
        for error in errors:
            out.print(f"[red]error:[/] {escape(error)}", soft_wrap=True)
        for warning in [*catalog.warnings, *catalog.ignored] if catalog else []:
            console(stderr=True).print(f"[yellow]warning:[/] {escape(warning)}", soft_wrap=True)
        if not errors and catalog:
            out.print(
                f"ok: {len(catalog.agents)} agents, {len(catalog.tasks)} tasks, "
                f"{len(catalog.crew_files())} crews ({', '.join(sorted(catalog.crew_files()))}) from {', '.join(roots)}"
            )
    if errors:
        raise typer.Exit(EXIT_USAGE)
