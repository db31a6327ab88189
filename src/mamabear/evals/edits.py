"""A change to one task of a YAML config file, made in its text: the rest of the file (comments, order, layout) stays.

The tuner's candidates are such edits: a task's ``complexity`` (its tier) or its ``description``. Each is tried on a
copy of the project, shown as a unified diff, and written into the project with ``--apply``.
"""

from __future__ import annotations

import difflib
from dataclasses import dataclass
from pathlib import Path

from mamabear.config import yamlfile
from mamabear.config.yamlfile import YamlMapping
from mamabear.errors import UsageError


@dataclass(frozen=True)
class Edit:
    path: Path  # the config file that defines the task (config/tasks.yaml of the project)
    task: str
    key: str  # complexity | description
    value: str | int


def applied(text: str, entry: YamlMapping, key: str, value: str | int) -> str:
    """``text`` with ``key`` of the mapping ``entry`` (parsed from it) set to ``value``."""
    lines = text.splitlines(keepends=True)
    first = min(entry.key_lines.values()) - 1
    indent = lines[first][: len(lines[first]) - len(lines[first].lstrip())]
    block = _block(indent, key, value)
    if key not in entry.key_lines:
        return "".join(lines[:first] + block + lines[first:])  # before its first key: never inside a value
    start = entry.key_lines[key] - 1
    end = start + 1
    while end < len(lines) and (not lines[end].strip() or len(lines[end]) - len(lines[end].lstrip()) > len(indent)):
        end += 1  # the value's own lines: blank, or indented deeper than the key
    while end > start + 1 and not lines[end - 1].strip():
        end -= 1  # a blank line after the value stays
    return "".join(lines[:start] + block + lines[end:])


def _block(indent: str, key: str, value: str | int) -> list[str]:
    if isinstance(value, int):
        return [f"{indent}{key}: {value}\n"]
    return [f"{indent}{key}: |\n", *(f"{indent}  {line}\n" if line.strip() else "\n" for line in value.strip().splitlines())]


def edited_text(edit: Edit) -> tuple[str, str]:
    """The file's text before and after the edit."""
    before = edit.path.read_text()
    doc = yamlfile.load(edit.path)
    entry = doc.get(edit.task) if isinstance(doc, YamlMapping) else None
    if not isinstance(entry, YamlMapping):
        raise UsageError(f"{edit.path} does not define task '{edit.task}'; the tuner changes tasks defined in the project's config/tasks.yaml.")
    return before, applied(before, entry, edit.key, edit.value)


def diff(edit: Edit, root: Path) -> str:
    before, after = edited_text(edit)
    name = str(edit.path.relative_to(root)) if edit.path.is_relative_to(root) else str(edit.path)
    return "".join(difflib.unified_diff(before.splitlines(keepends=True), after.splitlines(keepends=True), f"a/{name}", f"b/{name}"))


def write(edit: Edit, path: Path | None = None) -> None:
    """The edit written to ``path`` (a copy of the file), or to the file itself."""
    (path or edit.path).write_text(edited_text(edit)[1])
