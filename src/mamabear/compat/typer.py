"""Typer's internals: help that shows no Python types.

Typer labels options <str>, <int> and flags <bool>; a person reads METAVARs, and a flag takes
none. The help option is built once and kept by the command (``get_help_option`` with a stand-in
context), and an argument's type column comes from ``TyperArgument.display_type_rich``.
"""

from __future__ import annotations

from types import SimpleNamespace
from typing import Any

from mamabear.compat.versions import moved


def plain_metavars(cmd: Any, help_option_names: list[str]) -> None:
    from typer.core import TyperArgument, TyperOption

    helper = cmd.get_help_option(SimpleNamespace(help_option_names=help_option_names))
    if helper is not None:
        helper.metavar = ""
    for param in getattr(cmd, "params", []):
        if isinstance(param, TyperOption):
            if param.is_flag or param.count:
                param.metavar = ""
            elif param.metavar is None:
                param.metavar = (param.name or "value").upper()
        elif isinstance(param, TyperArgument):
            param.display_type_rich = lambda ctx: None  # type: ignore[method-assign]  # this instance only: its metavar says what it is
    for sub in getattr(cmd, "commands", {}).values():
        plain_metavars(sub, help_option_names)


def problems() -> list[str]:
    try:
        from typer.core import TyperArgument, TyperGroup
    except ImportError as exc:
        return [moved("typer", f"module {exc.name}", "cannot be imported")]
    found = []
    if not callable(getattr(TyperArgument, "display_type_rich", None)):
        found.append(moved("typer", "TyperArgument.display_type_rich", "is gone"))
    if not callable(getattr(TyperGroup, "get_help_option", None)):
        found.append(moved("typer", "TyperGroup.get_help_option", "is gone"))
    return found
