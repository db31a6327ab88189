"""mamabear memory add|search|list|stats|reset"""

from __future__ import annotations

from typing import Any, Optional

import typer
from rich.markup import escape

from mamabear.cli.options import JSON
from mamabear.cli.output import console, emit_json, library_chatter_off, table, when

app = typer.Typer(help="The shared long-term memory every crew recalls from.", no_args_is_help=True)

SCOPE = typer.Option(None, "--scope", metavar="PATH", help="A scope such as /user, /crew/research or /run/ID (and everything under it).")


def _do(action: str, *args: object) -> Any:
    """Run a MemoryService action with CrewAI's console chatter kept off stdout."""
    from mamabear.engine.services import Services
    from mamabear.memory.service import MemoryService

    ws = Services()
    with library_chatter_off():
        return getattr(MemoryService(ws.settings, ws.memory_config), action)(*args)


def _record(record: Any, score: float | None = None) -> dict:
    r = record  # a crewai MemoryRecord
    data = {
        "id": r.id,
        "content": r.content,
        "scope": r.scope,
        "categories": r.categories,
        "importance": r.importance,
        "metadata": r.metadata,
        "created_at": r.created_at.isoformat(),
    }
    if score is not None:
        data["score"] = round(score, 4)
    return data


@app.command("add")
def add(
    text: str = typer.Argument(..., metavar="TEXT", help="What to remember."),
    scope: str = typer.Option("/user", "--scope", metavar="PATH", help="Where it belongs (default /user)."),
    category: list[str] = typer.Option([], "--category", "-c", metavar="NAME", help="A category; repeat for more (default: note)."),
    importance: float = typer.Option(0.5, "--importance", min=0.0, max=1.0, help="0 to 1."),
    json_out: bool = JSON,
) -> None:
    """Remember a piece of text (no model is called)."""
    record = _do("add", text, scope, category or ["note"], importance)
    if json_out:
        emit_json(_record(record))
    else:
        console().print(f"{record.id}  [dim]{escape(record.scope)}[/]")


@app.command("search")
def search(
    query: str = typer.Argument(..., metavar="QUERY"),
    scope: Optional[str] = SCOPE,
    limit: int = typer.Option(5, "--limit", "-n", min=1, help="How many memories."),
    json_out: bool = JSON,
) -> None:
    """Find memories by meaning, best first (no model is called)."""
    matches = _do("search", query, scope, limit)
    if json_out:
        emit_json([_record(m.record, m.score) for m in matches])
        return
    out = table("score", "scope", "memory")
    for m in matches:
        out.add_row(f"{m.score:.3f}", m.record.scope, m.record.content)
    console().print(out)


@app.command("list")
def list_memories(scope: Optional[str] = SCOPE, limit: int = typer.Option(50, "--limit", "-n", min=1), json_out: bool = JSON) -> None:
    """List memories, newest first."""
    records = _do("records", scope, limit)
    if json_out:
        emit_json([_record(r) for r in records])
        return
    out = table("id", "saved", "scope", "categories", "memory")
    for r in records:
        out.add_row(r.id[:8], when(r.created_at.timestamp()), r.scope, ", ".join(r.categories), r.content[:100])
    console().print(out)


@app.command("stats")
def stats(json_out: bool = JSON) -> None:
    """How much is remembered, where, and by which embedder."""
    data = _do("stats")
    if json_out:
        emit_json(data)
        return
    out = console()
    out.print(f"{data['records']} memories in {escape(data['location'])} (collection {data['collection']}, embedder {data['embedder']})")
    scopes = table("scope", "memories")
    for scope, count in data["scopes"].items():
        scopes.add_row(scope, str(count))
    out.print(scopes)
    if data["categories"]:
        out.print("categories: " + escape(", ".join(f"{k} ({v})" for k, v in data["categories"].items())))


@app.command("reset")
def reset(scope: Optional[str] = SCOPE, yes: bool = typer.Option(False, "--yes", help="Really delete."), json_out: bool = JSON) -> None:
    """Delete every memory (or those in a scope). Refuses without --yes."""
    from mamabear.errors import UsageError

    if not yes:
        where = f"in {scope}" if scope else "everywhere"
        raise UsageError(f"memory reset deletes the memories {where} and cannot be undone; add --yes to do it.")
    deleted = _do("reset", scope)
    if json_out:
        emit_json({"deleted": deleted, "scope": scope})
    else:
        console().print(f"deleted {deleted} memories" + (f" in {escape(scope)}" if scope else ""))
