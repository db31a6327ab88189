"""A flow's start, made in one place: `run` at a flow project's root, `resume` of a flow's run, and `--dry-run`."""

from __future__ import annotations

from typing import TYPE_CHECKING, Any

from mamabear.config.catalog import CrewSpec
from mamabear.errors import UsageError
from mamabear.flow.project import FlowProject, flow_class, flow_crew, flow_methods, flow_project
from mamabear.flow.work import DONE

if TYPE_CHECKING:
    from mamabear.engine.services import Services


def here(ws: Services) -> FlowProject | None:
    """The flow project the command runs in (its root is the project folder), if it is one."""
    return flow_project(ws.settings.project_dir)


def flow_plan_crew(project: FlowProject) -> tuple[CrewSpec, list[str]]:
    """The flow's crew for the plan, and a line per method for the dry-run: its kind and the crews it starts."""
    cls = flow_class(project)
    methods = flow_methods(cls)
    lines = [
        f"flow method {m.name} (@{m.kind})" + (f": starts {', '.join(m.crews)}" if m.crews else "") + (", asks a person" if m.asks else "") for m in methods
    ]
    return flow_crew(project, cls, methods), lines


def crew_of(run: Any) -> CrewSpec | None:
    """The crew a run was made with when it is a flow's (for ``prepare_resume``), else None. A flow is resumed at its
    project's root, as it was run."""
    if run.process != "flow":
        return None
    from mamabear.engine.services import Services

    ws = Services()
    project = here(ws)
    if project is None or project.name != run.crew:
        elsewhere = f" (this is the root of the flow {project.name})" if project is not None else ""
        raise UsageError(f"run {run.id} is a run of the flow {run.crew}; resume it at that flow project's root{elsewhere}, as it was run.")
    methods = [str(e["data"].get("method")) for e in ws.store.events(run.id, kinds=(DONE,))]
    again = sorted({m for m in methods if methods.count(m) > 1})
    if again:
        raise UsageError(
            f"run {run.id} ran the flow method {', '.join(again)} more than once (a cycle), and mamabear cannot yet resume a flow part way "
            "through a cycle; start it again with `mamabear run` at its root."
        )
    return flow_plan_crew(project)[0]
