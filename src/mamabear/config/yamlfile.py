"""YAML loading that remembers where each key was written, so errors can say file:line."""

from __future__ import annotations

from collections.abc import Callable, Iterator
from pathlib import Path
from typing import Any

import yaml

from mamabear.errors import ConfigError

_Loader = getattr(yaml, "CSafeLoader", yaml.SafeLoader)


class YamlMapping(dict):
    """A YAML mapping that knows its file, its own line and the line of each key (1-based)."""

    path: Path
    line: int
    key_lines: dict[str, int]
    key_paths: dict[str, Path]  # a merged mapping's keys may come from several files (config.layered)

    def path_of(self, key: str) -> Path:
        return getattr(self, "key_paths", {}).get(key, self.path)

    def where(self, key: str | None = None) -> str:
        if key is None:
            return f"{self.path}:{self.line}"
        return f"{self.path_of(key)}:{self.key_lines.get(key, self.line)}"


MAX_BYTES = 1 << 20  # a config file larger than 1 MiB is not a config file
MAX_VALUES = 100_000  # values in a document once its aliases are expanded: a "billion laughs" file expands to 10^9


def _expanded(node: yaml.Node, memo: dict[int, int]) -> int:
    """How many values a node stands for once every alias in it is expanded (each shared node counted once per use)."""
    key = id(node)
    if key in memo:
        return memo[key]
    memo[key] = 1  # a recursive alias counts once
    if isinstance(node, yaml.SequenceNode):
        total = 1 + sum(_expanded(child, memo) for child in node.value)
    elif isinstance(node, yaml.MappingNode):
        total = 1 + sum(_expanded(k, memo) + _expanded(v, memo) for k, v in node.value)
    else:
        total = 1
    memo[key] = total
    return total


class _LineLoader(_Loader):  # type: ignore[misc, valid-type]  # the C or Python loader, chosen at import
    source: Path = Path("<string>")

    def get_single_node(self) -> Any:
        node = super().get_single_node()
        if node is not None and _expanded(node, {}) > MAX_VALUES:
            memo: dict[int, int] = {}
            parts = node.value if isinstance(node, yaml.MappingNode) else [(node, node)]
            worst = max(parts, key=lambda kv: _expanded(kv[1], memo))[0]
            raise ConfigError(
                f"{self.source}:{worst.start_mark.line + 1}: its aliases expand to more than {MAX_VALUES:,} values "
                "(an alias bomb?); write the values out instead."
            )
        return node


def _construct_mapping(loader: _LineLoader, node: yaml.MappingNode) -> YamlMapping:
    loader.flatten_mapping(node)
    mapping = YamlMapping()
    mapping.path = loader.source
    mapping.line = node.start_mark.line + 1
    mapping.key_lines = {}
    for key_node, value_node in node.value:
        key = loader.construct_object(key_node, deep=True)
        if not isinstance(key, (str, int, float, bool)) and key is not None:
            raise ConfigError(f"{loader.source}:{key_node.start_mark.line + 1}: a key must be a plain value.")
        key = str(key)
        if key in mapping:
            raise ConfigError(f"{loader.source}:{key_node.start_mark.line + 1}: '{key}' is defined twice.")
        mapping[key] = loader.construct_object(value_node, deep=True)
        mapping.key_lines[key] = key_node.start_mark.line + 1
    return mapping


_LineLoader.add_constructor(yaml.resolver.BaseResolver.DEFAULT_MAPPING_TAG, _construct_mapping)


def load(path: Path) -> Any:
    """Parse one YAML file; syntax errors become a ConfigError naming file and line."""
    return _parse(_read(path), path, "YAML")


def load_jsonc(path: Path) -> Any:
    """Parse one JSON or JSONC file (JSON with // and /* */ comments and trailing commas, CrewAI's ``crew.jsonc``),
    remembering lines as YAML does: JSON is YAML's flow style once its comments are blanked out, lines kept."""
    return _parse(strip_jsonc_comments(_read(path)), path, "JSON")


def strip_jsonc_comments(text: str) -> str:
    """``text`` with its comments blanked (newlines kept, so lines still count) and strings left as they are."""
    out, i, n = [], 0, len(text)
    while i < n:
        c = text[i]
        if c == '"':
            end = i + 1
            while end < n and text[end] != '"':
                end += 2 if text[end] == "\\" else 1
            out.append(text[i : end + 1])
            i = end + 1
        elif text.startswith("//", i):
            end = text.find("\n", i)
            i = n if end < 0 else end
        elif text.startswith("/*", i):
            end = text.find("*/", i + 2)
            end = n if end < 0 else end + 2
            out.append("\n" * text.count("\n", i, end))
            i = end
        else:
            out.append(c)
            i += 1
    return "".join(out)


def _read(path: Path) -> str:
    try:
        if path.stat().st_size > MAX_BYTES:
            raise ConfigError(f"{path}: {path.stat().st_size:,} bytes is too large for a config file (at most {MAX_BYTES:,}).")
        raw = path.read_bytes()
    except OSError as exc:
        raise ConfigError(f"{path}: cannot be read ({exc.strerror}).") from exc
    try:
        return raw.decode("utf-8")
    except UnicodeDecodeError as exc:
        line = raw[: exc.start].count(b"\n") + 1
        raise ConfigError(f"{path}:{line}: not UTF-8 text (byte 0x{raw[exc.start]:02x}); save the file as UTF-8.") from exc


def _parse(text: str, path: Path, kind: str) -> Any:
    class Loader(_LineLoader):
        source = path

    try:
        return yaml.load(text, Loader=Loader)  # noqa: S506 - a SafeLoader subclass
    except yaml.MarkedYAMLError as exc:
        mark = exc.problem_mark or exc.context_mark
        at = f":{mark.line + 1}" if mark else ""
        problem = exc.problem or exc.context or f"invalid {kind}"
        raise ConfigError(f"{path}{at}: broken {kind}, {problem}; fix the syntax there.") from exc
    except yaml.YAMLError as exc:
        raise ConfigError(f"{path}: broken {kind} ({exc}).") from exc


def layers(roots: list[Path], filename: str) -> Iterator[tuple[Any, Path]]:
    """``config/FILENAME`` of each root that has one, lowest precedence first, parsed: (document, path)."""
    for root in roots:
        path = root / "config" / filename
        if path.is_file():
            yield load(path), path


def known_keys(entry: YamlMapping, keys: set[str] | frozenset[str], what: str, warn: Callable[[str], None] | None = None) -> set[str]:
    """A key of ``entry`` not in ``keys`` is an error at its line, listing the keys there are; with ``warn``, a
    warning instead (a CrewAI project's file, whose keys CrewAI reads, not mamabear). The unknown keys."""
    unknown = set()
    for key in entry:
        if key not in keys:
            if warn is None:
                raise ConfigError(f"{entry.where(key)}: unknown field '{key}' in {what}; use one of: {', '.join(sorted(keys))}.")
            warn(f"{entry.where(key)}: mamabear does not read '{key}' of {what}; CrewAI's own loader gets it as written.")
            unknown.add(key)
    return unknown
