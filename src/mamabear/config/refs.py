"""Python objects named in YAML by import path: ``myproject.models:Report`` or ``myproject.models.Report``.

CrewAI's YAML names a task's ``output_pydantic``, ``callback`` or ``guardrail`` by a method of
its ``@CrewBase`` class; mamabear's YAML names them by import path, resolved from the project's
directory (and its ``src/``, the layout ``crewai create crew`` makes). Each failure is one
sentence at the file:line that named the object.
"""

from __future__ import annotations

import importlib
import sys
from collections.abc import Iterator
from contextlib import contextmanager
from dataclasses import dataclass
from pathlib import Path
from typing import Any

from mamabear.errors import ConfigError


@dataclass(frozen=True)
class Ref:
    """An object named by import path, and where it was named."""

    key: str  # the YAML key: output_pydantic, callbacks, ...
    path: str
    where: str  # file:line


@contextmanager
def project_path(roots: list[Path]) -> Iterator[None]:
    """The project roots (and their src/) importable while the block runs."""
    added = [str(p) for root in roots[1:] for p in (root / "src", root) if p.is_dir() and str(p) not in sys.path]
    sys.path[:0] = added
    try:
        yield
    finally:
        for p in added:
            if p in sys.path:
                sys.path.remove(p)


def resolve(ref: Ref, owner: str) -> Any:
    """The object ``ref`` names, checked for what its key needs; a ConfigError at ``ref.where`` otherwise."""
    module_name, attr = _split(ref)
    try:
        module = importlib.import_module(module_name)
    except ImportError as exc:
        raise ConfigError(f"{ref.where}: {ref.key} '{ref.path}' of {owner} cannot be imported: {exc}.") from exc
    except Exception as exc:  # noqa: BLE001 - the user's module failed while it was imported
        raise ConfigError(f"{ref.where}: importing '{module_name}' for {ref.key} of {owner} failed: {type(exc).__name__}: {exc}.") from exc
    found: Any = module
    for part in attr.split("."):
        if not hasattr(found, part):
            raise ConfigError(f"{ref.where}: {ref.key} '{ref.path}' of {owner}: module '{module_name}' has no '{attr}'.")
        found = getattr(found, part)
    _check(ref, found, owner)
    return found


def _split(ref: Ref) -> tuple[str, str]:
    if ":" in ref.path:
        module_name, _, attr = ref.path.partition(":")
    else:
        module_name, _, attr = ref.path.rpartition(".")
    if not module_name or not attr:
        raise ConfigError(f"{ref.where}: {ref.key} '{ref.path}' is not an import path; write it as package.module:Name.")
    return module_name, attr


def _check(ref: Ref, found: Any, owner: str) -> None:
    if ref.key in ("output_pydantic", "output_json"):
        from pydantic import BaseModel

        if not (isinstance(found, type) and issubclass(found, BaseModel)):
            raise ConfigError(f"{ref.where}: {ref.key} '{ref.path}' of {owner} must be a pydantic model class.")
    elif not callable(found) and ref.key not in ("knowledge_sources", "cache_handler"):
        raise ConfigError(f"{ref.where}: {ref.key} '{ref.path}' of {owner} must be callable.")
