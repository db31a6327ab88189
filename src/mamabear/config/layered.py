"""One reader for the layered settings files (``config/NAME.yaml`` of each root, packaged first, the project's last).

The layers are merged key by key (a later mapping's keys over an earlier one's; a list or a plain value replaces
the earlier one; an ``atomic`` path such as ``mcp_servers.*`` replaces as a whole), then the merged document is
checked by a pydantic model. An error is one sentence at the file:line of the value it is about, whichever layer
wrote it.
"""

from __future__ import annotations

import types
import typing
from collections.abc import Iterable
from fnmatch import fnmatchcase
from pathlib import Path
from typing import Annotated, Any, TypeVar

from pydantic import BaseModel, BeforeValidator, ConfigDict, ValidationError, model_validator

from mamabear.config import yamlfile
from mamabear.config.yamlfile import YamlMapping
from mamabear.errors import ConfigError


class Section(BaseModel):
    """A settings mapping: no unknown keys, no coercion (``"3"`` is not a number, ``1`` is not true), frozen.
    A field's ``description`` finishes the sentence "'KEY' must be ..." of its error."""

    model_config = ConfigDict(extra="forbid", strict=True, frozen=True)

    @model_validator(mode="before")
    @classmethod
    def _empty_sections(cls, data: Any) -> Any:
        """``limits:`` written with nothing under it is an empty mapping, not an error."""
        if not isinstance(data, dict):
            return data
        fields = cls.model_fields
        return {k: v for k, v in data.items() if v is not None or k not in fields or not _is_mapping(fields[k].annotation)}


M = TypeVar("M", bound=Section)


def listed(value: Any) -> Any:
    """A YAML list as the tuple a frozen setting holds."""
    return tuple(value) if isinstance(value, list) else value


Words = Annotated[tuple[str, ...], BeforeValidator(listed)]  # a YAML list of text, kept as a tuple


def read(roots: list[Path], filename: str, model: type[M], atomic: Iterable[str] = ()) -> M:
    """``config/FILENAME`` of every root, merged (an empty file counts as absent), as ``model``; or a ConfigError
    naming the file:line of the first value it refuses."""
    patterns = tuple(atomic)
    doc = _mapping_at(Path(filename), 1)
    for layer, path in yamlfile.layers(roots, filename):
        if layer is None:
            continue
        if not isinstance(layer, YamlMapping):
            raise ConfigError(f"{path}:1: {filename} must be a mapping.")
        doc = _merge(doc, layer, patterns, ())
    try:
        return model.model_validate(doc)
    except ValidationError as exc:
        raise ConfigError(_sentence(exc.errors()[0], doc, model, filename)) from None


# ------------------------------------------------------------------ merging


def _mapping_at(path: Path, line: int) -> YamlMapping:
    out = YamlMapping()
    out.path, out.line, out.key_lines = path, line, {}
    return out


def _merge(low: YamlMapping, high: YamlMapping, atomic: tuple[str, ...], at: tuple[str, ...]) -> YamlMapping:
    out = _mapping_at(high.path, high.line)
    out.update(low)
    out.key_lines = dict(low.key_lines)
    out.key_paths = {key: low.path_of(key) for key in low}
    for key, value in high.items():
        here = (*at, key)
        earlier = low.get(key)
        whole = any(fnmatchcase(".".join(here), pattern) for pattern in atomic)
        if isinstance(earlier, YamlMapping) and value is None:
            continue  # `limits:` with nothing under it keeps the earlier layer's limits
        if isinstance(earlier, YamlMapping) and isinstance(value, YamlMapping) and not whole:
            value = _merge(earlier, value, atomic, here)
        out[key] = value
        out.key_lines[key] = high.key_lines[key]
        out.key_paths[key] = high.path
    return out


# ------------------------------------------------------------------ errors

_MUST = {
    "bool_type": "true or false",
    "int_type": "a whole number",
    "int_from_float": "a whole number",
    "float_type": "a number",
    "finite_number": "a finite number",
    "string_type": "text (quote it if YAML reads it as something else)",
    "tuple_type": "a list",
    "list_type": "a list",
    "dict_type": "a mapping",
    "model_type": "a mapping",
    "model_attributes_type": "a mapping",
    "greater_than": "above {gt}",
    "greater_than_equal": "at least {ge}",
    "less_than": "below {lt}",
    "less_than_equal": "at most {le}",
    "too_short": "not empty",
    "literal_error": "{expected}",
}


def _sentence(error: Any, doc: YamlMapping, model: type[Section], filename: str) -> str:
    loc = tuple(str(part) for part in error["loc"] if not str(part).startswith("function-"))
    where = _where(doc, loc)
    kind = error["type"]
    if kind == "extra_forbidden":
        owner = _model_at(model, loc[:-1])
        known = ", ".join(sorted(k for k, f in owner.model_fields.items() if not f.exclude)) if owner else ""
        inside = ".".join(loc[:-1]) or filename
        return f"{where}: unknown field '{loc[-1]}' in {inside}; use one of: {known}."
    if kind == "value_error":
        return f"{where}: {error['ctx']['error']}"
    named = loc
    while named and named[-1].isdigit():
        named = named[:-1]  # an item of a list: the sentence is about the list
    label = "'" + ".".join(named) + "'" if named else filename
    if kind == "missing":
        return f"{where}: {label} is required."
    field = _field_at(model, loc)
    must = (field.description if field is not None else None) or _MUST.get(kind, "").format(**error.get("ctx", {})) or error["msg"].lower()
    return f"{where}: {label} must be {must}."


def _where(doc: YamlMapping, loc: tuple[str, ...]) -> str:
    """The file:line of the deepest mapping key along ``loc`` (a list's items have no line of their own)."""
    node: Any = doc
    where = doc.where()
    for part in loc:
        if isinstance(node, YamlMapping) and part in node:
            where, node = node.where(part), node[part]
        elif isinstance(node, list) and part.isdigit() and int(part) < len(node):
            node = node[int(part)]
        else:
            break
    return where


def _model_at(model: type[Section], loc: tuple[str, ...]) -> type[BaseModel] | None:
    """The model that holds the value at ``loc``, if a model does."""
    held = _held_at(model, loc)[0]
    return held if isinstance(held, type) and issubclass(held, BaseModel) else None


def _field_at(model: type[Section], loc: tuple[str, ...]) -> Any:
    """The pydantic field that governs ``loc``: the last model field along it."""
    return _held_at(model, loc)[1]


def _held_at(model: type[Section], loc: tuple[str, ...]) -> tuple[Any, Any]:
    """(what the value at ``loc`` is declared as, the last model field on the way), walking a model's fields, a
    dict's values and a tuple's items."""
    current: Any = model
    field = None
    for part in loc:
        current = _unwrapped(current)
        origin = typing.get_origin(current)
        if isinstance(current, type) and issubclass(current, BaseModel):
            field = current.model_fields.get(part)
            if field is None:
                return None, None
            current = field.annotation
        elif origin is dict:
            current = typing.get_args(current)[1]
        elif origin in (tuple, list):
            current = typing.get_args(current)[0]
        else:
            return None, field
    return _unwrapped(current), field


def _unwrapped(annotation: Any) -> Any:
    """``X`` of ``Annotated[X, ...]`` and of ``X | None`` (the first model of a union)."""
    origin = typing.get_origin(annotation)
    if origin is Annotated:
        return _unwrapped(typing.get_args(annotation)[0])
    if origin in (typing.Union, types.UnionType):
        models = [a for a in typing.get_args(annotation) if isinstance(a, type) and issubclass(a, BaseModel)]
        return models[0] if models else annotation
    return annotation


def _is_mapping(annotation: Any) -> bool:
    held = _unwrapped(annotation)
    return typing.get_origin(held) is dict or (isinstance(held, type) and issubclass(held, BaseModel))
