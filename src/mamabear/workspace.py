"""What a command works on: settings, the catalog, the model table and the run store, each loaded on first use."""

from __future__ import annotations

from functools import cached_property
from typing import TYPE_CHECKING

from mamabear import settings as settings_mod
from mamabear.catalog import Catalog, search_roots
from mamabear.settings import Settings

if TYPE_CHECKING:
    from mamabear.models import ModelTable
    from mamabear.store import Store


class Workspace:
    def __init__(self, settings: Settings | None = None, **flags: object) -> None:
        self.settings = (settings or settings_mod.load()).with_flags(**flags)

    def rerouted(self, model: str | None, base_url: str | None) -> Workspace:
        """The same workspace with other routing flags; what is loaded already (store, catalog) is shared."""
        other = Workspace(self.settings, model=model, base_url=base_url)
        for name in ("roots", "catalog", "models", "store"):  # none of them depends on the routing flags
            if name in self.__dict__:
                other.__dict__[name] = self.__dict__[name]
        return other

    @cached_property
    def roots(self) -> list:
        return search_roots(self.settings.project_dir)

    @cached_property
    def catalog(self) -> Catalog:
        return Catalog(self.roots)

    @cached_property
    def models(self) -> ModelTable:
        from mamabear.models import ModelTable

        return ModelTable.load(self.roots)

    @cached_property
    def store(self) -> Store:
        from mamabear.store import Store

        return Store.open(self.settings.database_url)
