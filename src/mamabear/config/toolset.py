"""``config/tools.yaml``: the ``web`` group's search tools and reader, default arguments per tool class, and limits."""

from __future__ import annotations

from collections.abc import Mapping
from pathlib import Path
from typing import Annotated, Any, Literal

from pydantic import BeforeValidator, Field, field_validator, model_validator

from mamabear.config import layered
from mamabear.config.yamlfile import YamlMapping


def _texts(value: Any) -> Any:
    """A list or mapping of words and numbers, as text (YAML reads `8080` and `1.2` as numbers)."""
    if isinstance(value, list):
        return tuple(str(v) if isinstance(v, (int, float)) and not isinstance(v, bool) else v for v in value)
    if isinstance(value, dict):
        return {k: str(v) if isinstance(v, (int, float)) and not isinstance(v, bool) else v for k, v in value.items()}
    return value


Args = Annotated[tuple[str, ...], BeforeValidator(_texts), Field(description="a list of words")]
Named = Annotated[dict[str, str], BeforeValidator(_texts), Field(description="a mapping of names to values")]


class McpServer(layered.Section):
    """An MCP server declared in tools.yaml, given to agents as ``mcp:NAME``: a command (stdio) or a URL (http, sse)."""

    name: str = Field("", exclude=True)  # its key under mcp_servers
    where: str = Field("", exclude=True)  # the file:line that declares it
    transport: Literal["stdio", "http", "sse"] = Field("stdio", description="stdio for a command, http or sse for a url")
    command: str | None = Field(None, min_length=1, description="text (quote it if YAML reads it as something else)")
    args: Args = ()
    env: Named = {}  # ${VAR} is taken from the environment when the server starts
    url: str | None = Field(None, min_length=1, description="text (quote it if YAML reads it as something else)")
    headers: Named = {}
    tools: Args = ()  # only these of its tools (all when empty)

    @model_validator(mode="before")
    @classmethod
    def _transport(cls, data: Any) -> Any:
        if isinstance(data, dict) and "transport" not in data:
            return {**data, "transport": "stdio" if "command" in data else "http"}
        return data

    @model_validator(mode="after")
    def _one_target(self) -> McpServer:
        what = f"MCP server '{self.name}'"
        if (self.command is None) == (self.url is None):
            raise ValueError(f"{what} needs either a 'command' (a local server) or a 'url' (a remote one).")
        if (self.transport == "stdio") != (self.command is not None):
            raise ValueError(f"{what}: transport is stdio for a command, http or sse for a url.")
        return self


class SearchTool(layered.Section):
    tool: str  # its class in crewai-tools
    key: str  # the environment variable that makes it the one
    needs: str | None = None  # the module it needs


class Web(layered.Section):
    search: Annotated[tuple[SearchTool, ...], BeforeValidator(layered.listed)] = Field(
        (
            SearchTool(tool="SerperDevTool", key="SERPER_API_KEY"),
            SearchTool(tool="TavilySearchTool", key="TAVILY_API_KEY", needs="tavily"),
            SearchTool(tool="BraveSearchTool", key="BRAVE_API_KEY"),
            SearchTool(tool="EXASearchTool", key="EXA_API_KEY", needs="exa_py"),
        ),
        description="a list of {tool: CLASS, key: ENV_VAR, needs: MODULE}, first choice first",
    )
    reader: str = Field("ScrapeWebsiteTool", min_length=1, description="a tool class name, such as ScrapeWebsiteTool")


class Limits(layered.Section):
    timeout_s: float = Field(60.0, gt=0, allow_inf_nan=False, description="a positive number")
    output_chars: int = Field(20000, gt=0, description="a positive whole number")


class ToolsConfig(layered.Section):
    web: Web = Web()
    defaults: dict[str, dict[str, Any]] = Field({}, description="a mapping of tool classes to mappings of their arguments")
    limits: Limits = Limits()
    mcp_servers: dict[str, McpServer] = Field({}, description="a mapping of a server's name to its command or url")

    @classmethod
    def load(cls, roots: list[Path]) -> ToolsConfig:
        return layered.read(roots, "tools.yaml", cls, atomic=("mcp_servers.*", "defaults.*.*"))

    @field_validator("mcp_servers", mode="before")
    @classmethod
    def _named(cls, servers: Any) -> Any:
        if not isinstance(servers, dict):
            return servers

        return {name: {**entry, "name": name, "where": entry.where()} if isinstance(entry, YamlMapping) else entry for name, entry in servers.items()}

    @property
    def search(self) -> tuple[SearchTool, ...]:
        return self.web.search

    @property
    def reader(self) -> str:
        return self.web.reader

    @property
    def timeout_s(self) -> float:
        return self.limits.timeout_s

    @property
    def output_chars(self) -> int:
        return self.limits.output_chars

    def web_group(self, env: Mapping[str, str]) -> tuple[str, ...]:
        """The web group's tools: the first search tool whose key is set and whose module is installed, then the reader."""
        from importlib.util import find_spec

        found = [s.tool for s in self.search if env.get(s.key) and (s.needs is None or find_spec(s.needs) is not None)]
        return (*found[:1], self.reader)

    def search_keys(self) -> str:
        return ", ".join(s.key for s in self.search)
