"""``config/tools.yaml``: the ``web`` group's search tools and reader, default arguments per tool class, and limits."""

from __future__ import annotations

from collections.abc import Mapping
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

from mamabear.config import yamlfile
from mamabear.config.yamlfile import YamlMapping, known_keys
from mamabear.errors import ConfigError

TRANSPORTS = ("stdio", "http", "sse")


@dataclass(frozen=True)
class McpServer:
    """An MCP server declared in tools.yaml, given to agents as ``mcp:NAME``: a command (stdio) or a URL (http, sse)."""

    name: str
    transport: str
    command: str | None = None
    args: tuple[str, ...] = ()
    env: dict[str, str] = field(default_factory=dict)  # ${VAR} is taken from the environment when the server starts
    url: str | None = None
    headers: dict[str, str] = field(default_factory=dict)
    tools: tuple[str, ...] = ()  # only these of its tools (all when empty)
    where: str = ""


@dataclass
class ToolsConfig:
    search: tuple[tuple[str, str, str | None], ...] = (  # (tool class, the key that makes it the one, the module it needs)
        ("SerperDevTool", "SERPER_API_KEY", None),
        ("TavilySearchTool", "TAVILY_API_KEY", "tavily"),
        ("BraveSearchTool", "BRAVE_API_KEY", None),
        ("EXASearchTool", "EXA_API_KEY", "exa_py"),
    )
    reader: str = "ScrapeWebsiteTool"
    defaults: dict[str, dict[str, Any]] = field(default_factory=dict)  # tool class -> its arguments
    timeout_s: float = 60.0
    output_chars: int = 20000
    mcp_servers: dict[str, McpServer] = field(default_factory=dict)

    @classmethod
    def load(cls, roots: list[Path]) -> ToolsConfig:
        config = cls()
        for doc, path in yamlfile.layers(roots, "tools.yaml"):
            config._merge(doc, path)
        return config

    def web(self, env: Mapping[str, str]) -> tuple[str, ...]:
        """The web group's tools: the first search tool whose key is set and whose module is installed, then the reader."""
        from importlib.util import find_spec

        found = [tool for tool, key, needs in self.search if env.get(key) and (needs is None or find_spec(needs) is not None)]
        return (*found[:1], self.reader)

    def search_keys(self) -> str:
        return ", ".join(key for _, key, _ in self.search)

    def _merge(self, doc: Any, path: Path) -> None:
        if doc is None:
            return
        if not isinstance(doc, YamlMapping):
            raise ConfigError(f"{path}:1: tools.yaml must be a mapping.")
        known_keys(doc, {"web", "defaults", "limits", "mcp_servers"}, "tools.yaml")
        servers = doc.get("mcp_servers")
        if servers is not None:
            if not isinstance(servers, YamlMapping):
                raise ConfigError(f"{doc.where('mcp_servers')}: 'mcp_servers' maps a server's name to its command or url.")
            for name in servers:
                self.mcp_servers[name] = _server(name, servers[name], servers.where(name))
        web = doc.get("web")
        if web is not None:
            if not isinstance(web, YamlMapping):
                raise ConfigError(f"{doc.where('web')}: 'web' must be a mapping with 'search' and 'reader'.")
            known_keys(web, {"search", "reader"}, "web")
            if "search" in web:
                search = web["search"]
                shape = {"tool", "key"}
                if not isinstance(search, list) or not all(isinstance(s, YamlMapping) and shape <= set(s) <= shape | {"needs"} for s in search):
                    raise ConfigError(f"{web.where('search')}: 'search' is a list of {{tool: CLASS, key: ENV_VAR, needs: MODULE}}, first choice first.")
                self.search = tuple((str(s["tool"]), str(s["key"]), str(s["needs"]) if s.get("needs") else None) for s in search)
            if "reader" in web:
                if not isinstance(web["reader"], str) or not web["reader"]:
                    raise ConfigError(f"{web.where('reader')}: 'reader' must be a tool class name, such as ScrapeWebsiteTool.")
                self.reader = web["reader"]
        defaults = doc.get("defaults")
        if defaults is not None:
            if not isinstance(defaults, YamlMapping) or not all(isinstance(v, YamlMapping) for v in defaults.values()):
                raise ConfigError(f"{doc.where('defaults')}: 'defaults' maps a tool class to a mapping of its arguments.")
            for name, args in defaults.items():
                self.defaults[name] = {**self.defaults.get(name, {}), **args}
        limits = doc.get("limits")
        if limits is not None:
            if not isinstance(limits, YamlMapping):
                raise ConfigError(f"{doc.where('limits')}: 'limits' must be a mapping.")
            known_keys(limits, {"timeout_s", "output_chars"}, "limits")
            for key in ("timeout_s", "output_chars"):
                if key in limits:
                    value = limits[key]
                    if isinstance(value, bool) or not isinstance(value, (int, float)) or value <= 0:
                        raise ConfigError(f"{limits.where(key)}: '{key}' must be a positive number.")
                    setattr(self, key, int(value) if key == "output_chars" else float(value))


def _server(name: str, entry: Any, where: str) -> McpServer:
    what = f"MCP server '{name}'"
    if not isinstance(entry, YamlMapping):
        raise ConfigError(f"{where}: {what} needs a mapping with a 'command' (stdio) or a 'url' (http or sse).")
    known_keys(entry, {"command", "args", "env", "url", "headers", "transport", "tools"}, what)
    if ("command" in entry) == ("url" in entry):
        raise ConfigError(f"{entry.where()}: {what} needs either a 'command' (a local server) or a 'url' (a remote one).")
    for key in ("command", "url"):
        if key in entry and not (isinstance(entry[key], str) and entry[key].strip()):
            raise ConfigError(f"{entry.where(key)}: '{key}' of {what} must be text (quote it if YAML reads it as something else).")
    transport = entry.get("transport", "stdio" if "command" in entry else "http")
    if transport not in TRANSPORTS or (transport == "stdio") != ("command" in entry):
        raise ConfigError(f"{entry.where('transport')}: {what}: transport is stdio for a command, http or sse for a url.")
    for key in ("args", "tools"):
        if key in entry and not (isinstance(entry[key], list) and all(isinstance(v, (str, int, float)) for v in entry[key])):
            raise ConfigError(f"{entry.where(key)}: '{key}' of {what} must be a list of words.")
    for key in ("env", "headers"):
        if key in entry and not (isinstance(entry[key], YamlMapping) and all(isinstance(v, (str, int, float)) for v in entry[key].values())):
            raise ConfigError(f"{entry.where(key)}: '{key}' of {what} must map names to values.")
    return McpServer(
        name=name,
        transport=transport,
        command=str(entry["command"]) if "command" in entry else None,
        args=tuple(str(a) for a in entry.get("args") or ()),
        env={k: str(v) for k, v in (entry.get("env") or {}).items()},
        url=str(entry["url"]) if "url" in entry else None,
        headers={k: str(v) for k, v in (entry.get("headers") or {}).items()},
        tools=tuple(str(t) for t in entry.get("tools") or ()),
        where=entry.where(),
    )
